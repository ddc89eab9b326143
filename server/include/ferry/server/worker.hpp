// One worker per thread, sharing nothing with the others: its own io_context, its own
// SO_REUSEPORT sockets on every configured address, its own handler, batch buffers and
// counters. The kernel's 5-tuple hash keeps each client on one worker, so the packet path
// takes no lock.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/tcp_listener.hpp"
#include "ferry/server/udp_batch.hpp"
#include "ferry/server/udp_listener.hpp"

#include "ferry/server/asio.hpp"

#include <memory>
#include <vector>

namespace ferry::server {

class worker {
public:
    /// Binds every socket the configuration names. Throws std::system_error if one cannot be
    /// bound (except a wildcard IPv6 address on a host without IPv6, which is skipped).
    worker(const config& cfg, unsigned index);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// Runs the event loop until stop(). Call from the worker's own thread.
    void run();
    /// Thread-safe.
    void stop() { io_.stop(); }

    const handler_stats& stats() const { return handler_.stats(); }
    /// What this worker listens on, for the start-up log line.
    std::vector<std::string> describe() const;

private:
    struct nat_set {
        std::array<nat_identity, 4> identities;
        udp_listener::nat_sockets sockets{};
    };

    void add_udp(const protocol::transport_address& a, const nat_identity* nat = nullptr,
                 nat_set* set = nullptr);
    void add_nat_set(const listen_config& l, const protocol::ip_address& alternate,
                     std::uint16_t alternate_port);

    const config& cfg_;
    unsigned index_;
    asio::io_context io_{1};
    stun_handler handler_;
    udp_batch batch_;
    std::vector<std::unique_ptr<udp_listener>> udp_;
    std::vector<std::unique_ptr<tcp_listener>> tcp_;
    std::vector<std::unique_ptr<nat_set>> nat_sets_;
};

} // namespace ferry::server
