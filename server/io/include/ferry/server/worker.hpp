// One worker per thread, sharing nothing with the others: its own io_context, its own
// SO_REUSEPORT sockets on every configured address, its own handler, batch buffers and
// counters. The kernel's 5-tuple hash keeps each client on one worker, so the packet path
// takes no lock.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/dtls_listener.hpp"
#include "ferry/server/port_pool.hpp"
#include "ferry/server/relay_poller.hpp"
#include "ferry/server/stream_poller.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/tcp_listener.hpp"
#include "ferry/server/tcp_relay.hpp"
#include "ferry/server/udp_batch.hpp"
#include "ferry/server/udp_listener.hpp"

#include "ferry/server/asio.hpp"

#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace ferry::server {

/// What all workers share for TURN, built once at start-up. `runtime` is the start-up
/// configuration (each worker holds its own pointer to the current one after reloads).
struct turn_context {
    std::shared_ptr<const turn_runtime> runtime;
    auth::nonce_manager nonces;
    turn_shared shared;
    tcp_link_hub links; ///< RFC 6062 peer connections, for ConnectionBind on any worker
    port_pool ports{runtime->settings.port_min, runtime->settings.port_max};
};

/// One worker's counters and gauges, copied on its own thread for a metrics scrape.
struct worker_snapshot {
    handler_stats handler;
    turn_stats turn;
    turn_gauges gauges;
    connection_counts connections;
    std::uint64_t send_failures = 0; ///< UDP datagrams the kernel refused (buffer full, unreachable)
    std::uint64_t batched_passes = 0; ///< passes that waited for the batching delay (busy)
};

/// A worker's io_context, whose pending work can be destroyed ahead of the context itself:
/// objects shared across workers (RFC 6062 splices) can be held by one worker's coroutine and
/// own I/O objects of another, so every worker drops its pending work before any context goes.
class worker_io : public asio::io_context {
public:
    worker_io() : asio::io_context(1) {}
    using asio::execution_context::shutdown;
};

class worker final : public relay_provider {
public:
    /// Binds every socket the configuration names. Throws std::system_error if one cannot be
    /// bound (except a wildcard IPv6 address on a host without IPv6, which is skipped).
    /// With `turn`, this worker also serves TURN.
    worker(const config& cfg, unsigned index, connection_limiter& connections, turn_context* turn = nullptr,
           tls_context_holder* tls = nullptr);
    ~worker() override;
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// Runs the event loop until stop(). Call from the worker's own thread.
    void run();
    /// Thread-safe.
    void stop() { io_.stop(); }
    /// After run() has returned on every worker, before any worker is destroyed: destroys the
    /// coroutines and handlers still pending.
    void drop_pending() { io_.shutdown(); }

    const handler_stats& stats() const { return handler_.stats(); }
    const turn_handler* turn() const { return turn_.get(); }

    /// Runs `f` on this worker's thread. Thread-safe.
    template <class F> void post(F&& f) { asio::post(io_, std::forward<F>(f)); }
    // The four below run on the worker's own thread (through post()).
    /// A reload: new TURN settings and credentials (revoking what they no longer allow) and limits.
    void reconfigure(std::shared_ptr<const turn_runtime> runtime, const limits_config& limits);
    /// New Allocates are redirected (300) or refused from now on.
    void start_drain();
    /// Ends every allocation now, for `why` (the drain's timeout).
    void end_allocations(end_reason why);
    worker_snapshot snapshot(bool per_user) const;

    // relay_provider
    std::optional<opened> open(const protocol::ip_address& ip, bool even, bool dont_fragment, bool pair) override;
    std::optional<opened> open_next(const opened& even_port) override;
    void adopt(int handle) override;
    void close(int handle) override;
    std::optional<opened> open_tcp(const protocol::ip_address& ip) override;
    void connect_tcp(int handle, const protocol::transport_address& peer, std::uint32_t id) override;
    bool bind_tcp(std::uint32_t id, int stream) override;
    void close_tcp(std::uint32_t id) override;
    /// What this worker listens on, for the start-up log line.
    std::vector<std::string> describe() const;

private:
    struct nat_set {
        std::array<nat_identity, 4> identities;
        udp_listener::nat_sockets sockets{};
    };

    void add_udp(const protocol::transport_address& a, const nat_identity* nat = nullptr,
                 nat_set* set = nullptr);
    asio::awaitable<void> sweep_loop();
    /// Packets relayed by this worker so far, both directions (the batching's measure of load).
    std::uint64_t relayed_packets() const;
    /// RFC 6062 Connect: the outgoing connection, answered through the handler.
    asio::awaitable<void> connect_attempt(std::shared_ptr<asio::ip::tcp::socket> socket,
                                          asio::ip::tcp::endpoint endpoint, std::uint32_t id);
    /// A port from the pool, bound by `bind` (which returns a descriptor or -1 with errno).
    template <class Bind>
    std::optional<opened> bind_from_pool(const protocol::ip_address& ip, port_pool::protocol_kind kind, bool even,
                                         bool pair, Bind bind);
    void add_nat_set(const listen_config& l, const protocol::ip_address& alternate,
                     std::uint16_t alternate_port);

    const config& cfg_;
    limits_config limits_; ///< the current limits (a reload replaces them on this thread)
    unsigned index_;
    worker_io io_;
    stun_handler handler_;
    udp_batch batch_;
    std::vector<std::unique_ptr<udp_listener>> udp_;
    stream_poller stream_poller_{io_}; ///< reads the TCP and TLS client connections; before tcp_
    std::vector<std::unique_ptr<tcp_listener>> tcp_;
    std::vector<std::unique_ptr<nat_set>> nat_sets_;
    stream_registry streams_;
    connection_counts conns_;
    batch_sink sink_{batch_, streams_};
    std::vector<std::unique_ptr<dtls_listener>> dtls_; // after streams_ and sink_, which it uses
    std::mt19937 rng_;
    std::unique_ptr<relay_poller> relays_; ///< UDP relay sockets (with TURN on)
    std::unordered_map<int, std::shared_ptr<tcp_relay_listener>> tcp_relays_;          // by listening fd
    std::unordered_map<std::uint32_t, std::shared_ptr<asio::ip::tcp::socket>> connecting_; // Connect in progress
    system_turn_clock clock_;
    turn_context* turn_context_ = nullptr;
    std::unique_ptr<turn_handler> turn_; // after relays_: destroyed first, closing its relays
    log::throttle log_{5};
    std::uint64_t batched_passes_ = 0;
};

} // namespace ferry::server
