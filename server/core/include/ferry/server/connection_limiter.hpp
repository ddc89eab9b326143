// Caps on stream connections (TCP and TLS): in total and per source IP address (an IPv6
// source per prefix, a /64 by default: one host is given a whole /64 and could otherwise take
// every slot), across all workers. Consulted once per accepted connection, never per packet; a connection holds a
// ticket that gives its place back when the connection ends.
#pragma once

#include "ferry/protocol/address.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace ferry::server {

/// One worker's stream connections by kind, kept on its thread and read when metrics ask.
struct connection_counts {
    enum kind : std::size_t { tcp, tls, dtls };
    std::array<std::int64_t, 3> open{};
    std::array<std::uint64_t, 3> refused{};
};

class connection_limiter {
public:
    connection_limiter(unsigned max_total, unsigned max_per_ip, unsigned ipv6_prefix = 64)
        : max_total_(max_total), max_per_ip_(max_per_ip), ipv6_prefix_(ipv6_prefix) {}
    connection_limiter(const connection_limiter&) = delete;
    connection_limiter& operator=(const connection_limiter&) = delete;

    class ticket {
    public:
        ticket() = default;
        ticket(connection_limiter* owner, const protocol::ip_address& ip) : owner_(owner), ip_(ip) {}
        ticket(ticket&& other) noexcept : owner_(other.owner_), ip_(other.ip_), gauge_(other.gauge_) {
            other.owner_ = nullptr;
            other.gauge_ = nullptr;
        }
        ticket& operator=(ticket&& other) noexcept {
            if (this != &other) {
                release();
                owner_ = other.owner_;
                ip_ = other.ip_;
                gauge_ = other.gauge_;
                other.owner_ = nullptr;
                other.gauge_ = nullptr;
            }
            return *this;
        }
        ~ticket() { release(); }
        explicit operator bool() const { return owner_ != nullptr; }
        /// Counts the connection in `gauge` (a worker's, touched on that worker's thread only)
        /// while the ticket lives.
        void count_in(std::int64_t& gauge) {
            gauge_ = &gauge;
            ++gauge;
        }

    private:
        void release() {
            if (owner_ != nullptr) owner_->release(ip_);
            if (gauge_ != nullptr) --*gauge_;
            owner_ = nullptr;
            gauge_ = nullptr;
        }
        connection_limiter* owner_ = nullptr;
        protocol::ip_address ip_;
        std::int64_t* gauge_ = nullptr;
    };

    /// A ticket, or an empty one when the total or this address's count is at its cap.
    ticket admit(const protocol::ip_address& ip);
    unsigned total() const { return total_.load(std::memory_order_relaxed); }
    /// A reload's new caps: later connections are admitted under them; none is cut.
    void set_limits(unsigned max_total, unsigned max_per_ip);

private:
    struct ip_hash {
        std::size_t operator()(const protocol::ip_address& a) const noexcept;
    };
    void release(const protocol::ip_address& ip);
    /// The key a source counts under: the address, or its IPv6 prefix.
    protocol::ip_address key_of(const protocol::ip_address& ip) const;

    std::atomic<unsigned> max_total_;
    unsigned max_per_ip_; ///< under mutex_
    const unsigned ipv6_prefix_;
    std::atomic<unsigned> total_{0};
    std::mutex mutex_;
    std::unordered_map<protocol::ip_address, unsigned, ip_hash> per_ip_;
};

} // namespace ferry::server
