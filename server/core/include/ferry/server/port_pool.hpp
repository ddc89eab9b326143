// Which relay ports are free, server-wide (every worker takes from it), per relay IP and
// protocol: a bit per port of the configured range. A new allocation's port is the first free
// one after a random start, so the choice is unpredictable yet never misses a free port, however
// full the range (random bind attempts give false 508s near full). A port some other process
// holds is kept out for a minute, then tried again. Touched when allocations come and go,
// never per packet.
#pragma once

#include "ferry/protocol/address.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace ferry::server {

class port_pool {
public:
    enum class protocol_kind : std::uint8_t { udp, tcp };
    using time_point = std::chrono::steady_clock::time_point;
    /// How long a port found in use by another process stays out of the pool.
    static constexpr std::chrono::seconds foreign_hold{60};

    port_pool(std::uint16_t min, std::uint16_t max) : min_(min), max_(max) {}

    /// A free port, marked used: even when `even`; with `pair`, an even port N whose N+1 is free
    /// too, and both are marked. `random` picks where the search starts.
    std::optional<std::uint16_t> take(const protocol::ip_address& ip, protocol_kind k, bool even, bool pair,
                                      std::uint32_t random);
    /// Marks a port free again.
    void give_back(const protocol::ip_address& ip, protocol_kind k, std::uint16_t port);
    /// The port was taken but could not be bound (another process has it): it stays marked
    /// until release_foreign() finds it older than foreign_hold.
    void held_elsewhere(const protocol::ip_address& ip, protocol_kind k, std::uint16_t port, time_point now);
    void release_foreign(time_point now);
    /// Ports marked used for this IP and protocol.
    std::size_t used(const protocol::ip_address& ip, protocol_kind k) const;

private:
    struct range {
        protocol::ip_address ip;
        protocol_kind kind;
        std::vector<std::uint64_t> bits; ///< 1 = used; bit i is port min_ + i
        std::size_t used = 0;
    };
    struct foreign {
        protocol::ip_address ip;
        protocol_kind kind;
        std::uint16_t port;
        time_point since;
    };
    range& range_for(const protocol::ip_address& ip, protocol_kind k);
    static bool test(const range& r, std::size_t i) { return (r.bits[i / 64] >> (i % 64)) & 1u; }
    static void set(range& r, std::size_t i);
    static void clear(range& r, std::size_t i);

    std::uint16_t min_;
    std::uint16_t max_;
    mutable std::mutex mutex_;
    std::vector<range> ranges_; ///< one per relay IP and protocol: a handful
    std::vector<foreign> foreign_;
};

} // namespace ferry::server
