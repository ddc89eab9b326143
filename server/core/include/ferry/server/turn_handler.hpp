// TURN (RFC 8656, with RFC 5766 clients and RFC 6156's IPv6) over UDP: the request handlers
// for Allocate, Refresh, CreatePermission and ChannelBind, and the relay of Send indications,
// ChannelData and peer datagrams. Pure logic: sockets are reached through relay_provider (to
// open and close relay sockets) and packet_sink (to send), so tests drive it with fakes and a
// manual clock.
#pragma once

#include "ferry/auth/authenticate.hpp"
#include "ferry/server/allocation.hpp"
#include "ferry/server/fleet.hpp"
#include "ferry/server/log.hpp"
#include "ferry/server/peer_policy.hpp"
#include "ferry/server/request.hpp"

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace ferry::server {

/// A relay address the operator configured: what to bind, and what to tell clients (the public
/// address of a host behind 1:1 NAT).
struct relay_address {
    protocol::ip_address bind;
    protocol::ip_address advertised;
};

struct turn_settings {
    std::chrono::seconds default_lifetime{600}; ///< RFC 8656 §2.2
    std::chrono::seconds max_lifetime{3600};
    std::vector<relay_address> relay_addresses; ///< at most one per family; empty: the listener's
    std::uint16_t port_min = 49152;
    std::uint16_t port_max = 65535;
    unsigned allocations_per_user = 64;
    unsigned allocations_total = 50000;
    unsigned permissions_per_allocation = 64;
    unsigned channels_per_allocation = 64;
    abuse_limits limits; ///< per-source answers, allocations per IP, bandwidth caps
    /// RFC 8489 §10: where new Allocates go (300) while draining or when full; empty: 508.
    std::vector<protocol::transport_address> alternate_servers;
    std::string alternate_domain; ///< ALTERNATE-DOMAIN, sent to clients on TLS or DTLS
};

/// What a reload can change, built whole and swapped in: each worker holds the one it uses
/// (a shared_ptr) until it is handed the next, so nothing on the packet path takes a lock.
struct turn_runtime {
    turn_settings settings;
    auth::credential_store credentials;
    peer_policy policy;
};

/// State shared by all workers, touched only when allocations come and go (never per packet):
/// quota counts and EVEN-PORT reservations, which RFC 8656 §7.2 makes server-wide.
class turn_shared {
public:
    enum class quota { ok, user, total, ip };
    /// A place for an allocation of `user`'s from `source` (a source_key; none: not counted by
    /// address), or which quota is full. `per_ip` 0: no limit by address.
    quota acquire(const std::string& user, unsigned per_user, unsigned total,
                  const std::optional<protocol::ip_address>& source = std::nullopt, unsigned per_ip = 0);
    void release(const std::string& user, const std::optional<protocol::ip_address>& source = std::nullopt);
    std::size_t total() const;

    /// A fleet (Redis): the per-user quota counts `fleet`'s other instances too, and
    /// `on_user_change(user)` is called (under this object's lock: it must only queue work)
    /// whenever a user's count here changes. Set before the workers start.
    void join_fleet(const fleet_view* fleet, std::function<void(const std::string&)> on_user_change);
    const fleet_view* fleet() const { return fleet_; }
    /// `user`'s allocations (and reservations) on this instance.
    unsigned count_of(const std::string& user) const;
    std::vector<std::pair<std::string, unsigned>> user_counts() const;

    /// RFC 8656 §7.2 EVEN-PORT with R: port N+1 held for a later Allocate. It holds a place
    /// under `user`'s quota and the total, like an allocation, until it is taken, cancelled
    /// (its allocation ended) or expires.
    struct reservation {
        int handle = -1;
        protocol::transport_address local;
        steady_time expires;
        std::string user;
    };
    /// Takes a place under the quotas for the reservation, or says which quota is full.
    quota reserve(const std::array<std::uint8_t, 8>& token, reservation r, unsigned per_user, unsigned total);
    /// The reservation for `token` (its quota place given back: the Allocate has its own).
    std::optional<reservation> take(const std::array<std::uint8_t, 8>& token, steady_time now);
    /// Ends the reservation an ending allocation made, if still unclaimed; the caller closes it.
    std::optional<reservation> cancel(const std::array<std::uint8_t, 8>& token);
    /// Reservations past their time, removed; the caller closes their sockets.
    std::vector<reservation> expire(steady_time now);

    /// RFC 6062 CONNECTION-IDs are server-wide: a ConnectionBind may reach any worker.
    /// A new unique id for a peer connection of `user`'s; bindable once `ready`.
    std::uint32_t add_connection(const std::string& user, bool ready);
    void ready_connection(std::uint32_t id);
    /// Claims a ready, unclaimed connection for a ConnectionBind by `user`; false if none.
    bool claim_connection(std::uint32_t id, std::string_view user);
    void drop_connection(std::uint32_t id);

    /// Answers to UDP sources that have not authenticated (limits.unauthenticated_rate), for
    /// all workers at once: a source's ports reach different workers.
    source_limiter unauthenticated;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, unsigned> per_user_;
    using ip_key = std::pair<protocol::address_family, std::array<std::uint8_t, 16>>;
    quota acquire_locked(const std::string& user, unsigned per_user, unsigned total,
                         const std::optional<protocol::ip_address>& source = std::nullopt, unsigned per_ip = 0);
    void release_locked(const std::string& user, const std::optional<protocol::ip_address>& source = std::nullopt);
    std::map<ip_key, unsigned> per_ip_;

    std::size_t total_ = 0;
    std::map<std::array<std::uint8_t, 8>, reservation> reservations_;
    struct pending_connection {
        std::string user;
        bool ready = false;
        bool claimed = false;
    };
    std::unordered_map<std::uint32_t, pending_connection> connections_;
    const fleet_view* fleet_ = nullptr;
    std::function<void(const std::string&)> on_user_change_;
};

/// Opens and closes relay sockets; the worker implements it.
class relay_provider {
public:
    virtual ~relay_provider() = default;
    struct opened {
        int handle = -1;
        protocol::transport_address local;
    };
    /// A relay socket on `ip` with a port from the configured range (an even one if `even`),
    /// receiving for this worker. With `pair`, an even port whose N+1 is kept free for the
    /// open_next that follows. nullopt when no port is free or the socket cannot be made.
    virtual std::optional<opened> open(const protocol::ip_address& ip, bool even, bool dont_fragment,
                                       bool pair = false) = 0;
    /// Port N+1 next to an opened even port N, bound but not yet receiving (for a reservation).
    virtual std::optional<opened> open_next(const opened& even_port) = 0;
    /// Makes a reserved socket (from open_next, maybe another worker's) receive for this worker.
    virtual void adopt(int handle) = 0;
    /// Closes a relay socket, UDP or TCP (a TCP allocation's listening socket).
    virtual void close(int handle) = 0;

    // RFC 6062 TCP allocations. The defaults refuse, for providers without TCP relaying.
    /// A listening TCP socket on `ip` with a port from the range; its accepted connections come
    /// back as turn_handler::tcp_peer_arrived.
    virtual std::optional<opened> open_tcp(const protocol::ip_address&) { return std::nullopt; }
    /// Starts connecting from relay socket `handle`'s address to `peer`; the outcome comes back
    /// as turn_handler::tcp_connect_result(id, ...).
    virtual void connect_tcp(int /*handle*/, const protocol::transport_address& /*peer*/, std::uint32_t /*id*/) {}
    /// Splices peer connection `id` (maybe another worker's) with the client data connection
    /// `stream` of this worker. False if either is gone.
    virtual bool bind_tcp(std::uint32_t /*id*/, int /*stream*/) { return false; }
    /// Closes peer connection `id` (or abandons its connection attempt).
    virtual void close_tcp(std::uint32_t /*id*/) {}
};

/// Where relayed packets go; the listener implements it over its batch buffers.
class packet_sink {
public:
    virtual ~packet_sink() = default;
    /// Scratch space for one outgoing datagram, valid until the sink flushes.
    virtual std::span<std::uint8_t> buffer() = 0;
    virtual void to_peer(int relay_handle, const protocol::transport_address& peer,
                         std::span<const std::uint8_t> bytes) = 0;
    virtual void to_client(const client_route& route, std::span<const std::uint8_t> bytes) = 0;
    /// Sends what is queued now (before the bytes handed to to_peer may change).
    virtual void flush() {}
    /// Drops what is queued, unsent (the buffers it points into are no longer valid).
    virtual void discard() {}
};

/// Time as the handler sees it: monotonic for lifetimes, unix seconds for nonces and REST.
class turn_clock {
public:
    virtual ~turn_clock() = default;
    virtual steady_time now() const = 0;
    virtual std::int64_t unix_now() const = 0;
};

class system_turn_clock final : public turn_clock {
public:
    steady_time now() const override { return std::chrono::steady_clock::now(); }
    std::int64_t unix_now() const override;
};

struct turn_stats {
    std::uint64_t allocations_created = 0;
    std::uint64_t allocations_expired = 0;
    std::uint64_t auth_failures = 0;
    std::uint64_t peer_refused = 0;
    std::uint64_t relayed_to_peer = 0;
    std::uint64_t relayed_to_client = 0;
    std::uint64_t dropped_no_permission = 0;
    std::uint64_t amplification_dropped = 0; ///< unauthenticated requests too small to answer
    std::uint64_t tcp_links = 0; ///< RFC 6062 peer connections made or accepted
    std::uint64_t relayed_to_peer_bytes = 0;
    std::uint64_t relayed_to_client_bytes = 0;
    std::uint64_t auth_unknown_user = 0;  ///< of auth_failures
    std::uint64_t auth_bad_integrity = 0; ///< of auth_failures
    std::uint64_t auth_expired = 0;       ///< of auth_failures: a TURN REST credential past its time
    std::uint64_t auth_stale_nonce = 0;   ///< 438s (not counted in auth_failures)
    std::uint64_t quota_refused = 0;      ///< requests refused by a quota (486, 508)
    std::uint64_t redirected = 0;         ///< Allocates sent elsewhere (300)
    std::uint64_t revoked = 0;            ///< allocations ended by a reload
    std::uint64_t quota_ip_refused = 0;   ///< of quota_refused: limits.allocations_per_ip
    std::uint64_t unauthenticated_limited = 0; ///< answers not sent: the source's rate was spent
    std::uint64_t bandwidth_dropped = 0;       ///< packets dropped by a bandwidth cap
    std::uint64_t bandwidth_dropped_bytes = 0;
    /// allocations made, by [transport][family]: transport as `transport`, family 0 IPv4, 1 IPv6
    std::array<std::array<std::uint64_t, 2>, 4> created_by{};
};

/// A worker's allocations now, counted when asked (metrics).
struct turn_gauges {
    std::array<std::array<std::uint64_t, 2>, 4> allocations{}; ///< by [transport][family]
    std::uint64_t permissions = 0;
    std::uint64_t channels = 0;
    std::uint64_t tcp_links = 0;
    /// per user (only when asked for): allocations, bytes to peers, bytes to clients
    struct user_usage {
        std::uint64_t allocations = 0;
        std::uint64_t to_peer_bytes = 0;
        std::uint64_t to_client_bytes = 0;
    };
    std::unordered_map<std::string, user_usage> users;
};

/// What a relay socket's datagrams are handed to: the TURN handler (tests use their own).
class peer_handler {
public:
    virtual ~peer_handler() = default;
    /// A datagram a peer sent to relay socket `handle`.
    virtual void handle_peer(int handle, const protocol::transport_address& peer,
                             std::span<const std::uint8_t> payload, packet_sink& sink) = 0;
};

class turn_handler final : public peer_handler {
public:
    turn_handler(const turn_settings& settings, const auth::credential_store& credentials,
                 const auth::nonce_manager& nonces, const peer_policy& policy, turn_shared& shared,
                 relay_provider& relays, const turn_clock& clock, std::string software);
    ~turn_handler();
    turn_handler(const turn_handler&) = delete;
    turn_handler& operator=(const turn_handler&) = delete;

    /// Allocate, Refresh, CreatePermission or ChannelBind: writes the response into `out`
    /// and returns its size (0: no answer).
    std::size_t handle_request(const request_context& ctx, const protocol::message_view& req,
                               std::span<std::uint8_t> out);
    /// A Send indication (RFC 8656 §11.2).
    void handle_send(const request_context& ctx, const protocol::message_view& ind, packet_sink& sink);
    /// A ChannelData message from a client (RFC 8656 §12.6).
    void handle_channel_data(const request_context& ctx, std::span<const std::uint8_t> bytes,
                             packet_sink& sink);
    /// A datagram a peer sent to relay socket `handle` (RFC 8656 §11.3, §12.7).
    void handle_peer(int handle, const protocol::transport_address& peer,
                     std::span<const std::uint8_t> payload, packet_sink& sink) override;

    /// RFC 6062: a peer connected to TCP relay socket `handle`. Returns its CONNECTION-ID after
    /// telling the client (ConnectionAttempt), or 0 when it must be closed (no permission).
    std::uint32_t tcp_peer_arrived(int handle, const protocol::transport_address& peer, packet_sink& sink);
    /// The outgoing connection of a Connect request succeeded or failed: answers the request.
    void tcp_connect_result(std::uint32_t id, bool connected, packet_sink& sink);
    /// Peer connection `id` was spliced to its client data connection (on whichever worker).
    void tcp_link_bound(std::uint32_t id);
    /// Peer connection `id` closed.
    void tcp_link_closed(std::uint32_t id);

    /// The client's stream connection closed: its allocation ends with it (RFC 8656 §7).
    void client_closed(const five_tuple& tuple);
    /// True while the 5-tuple has a live allocation.
    bool has_allocation(const five_tuple& tuple);

    /// Expires allocations, permissions, channels and reservations.
    void sweep();
    std::size_t allocations() const { return table_.size(); }
    const turn_stats& stats() const { return stats_; }
    /// Counts what is live now; with `per_user`, by user too.
    void gauges(turn_gauges& g, bool per_user) const;
    /// Deletes every allocation (shutdown), each ended for `why`.
    void clear(end_reason why = end_reason::shutdown);

    /// A reload: later requests use `next`. Allocations whose user or REST secret is gone end
    /// at once (revoked); those whose password changed verify later requests with the new key.
    /// Returns how many ended.
    std::size_t reconfigure(std::shared_ptr<const turn_runtime> next);
    /// From now on new Allocates are sent to an alternate server (300), or refused (508).
    void start_drain() { draining_ = true; }

private:
    /// What an Allocate asks for, once RFC 8656 §7.2's checks have passed.
    struct allocate_plan {
        bool tcp = false;           ///< RFC 6062: REQUESTED-TRANSPORT TCP
        bool dont_fragment = false;
        bool even = false;          ///< EVEN-PORT
        bool reserve_next = false;  ///< ... with R: keep N+1 for a later Allocate
        std::optional<std::array<std::uint8_t, 8>> token; ///< RESERVATION-TOKEN
        protocol::address_family family = protocol::address_family::ipv4;
        protocol::ip_address primary;                    ///< where the relay socket binds
        std::optional<protocol::ip_address> additional;  ///< ADDITIONAL-ADDRESS-FAMILY's, if served
        bool partial = false; ///< an additional family asked for and not served (ADDRESS-ERROR-CODE)
    };

    // RFC 8656 §7.2, in turn_allocate.cpp.
    std::size_t handle_allocate(const request_context& ctx, const protocol::message_view& req,
                                const auth::auth_result& auth, std::span<std::uint8_t> out);
    std::uint16_t check_allocate(const request_context& ctx, const protocol::message_view& req, steady_time now,
                                 allocate_plan& p);
    turn_shared::quota take_quota(const request_context& ctx, const std::string& user,
                                  const protocol::ip_address& source, bool exempt);
    std::uint16_t open_relays(allocate_plan& p, const std::string& user, steady_time now, allocation& a,
                              std::optional<std::array<std::uint8_t, 8>>& new_token);
    std::span<const std::uint8_t> allocate_success(const request_context& ctx, const protocol::message_view& req,
                                                   const auth::auth_result& auth, const allocation& a, bool partial,
                                                   std::chrono::seconds life,
                                                   const std::optional<std::array<std::uint8_t, 8>>& token,
                                                   std::span<std::uint8_t> out);
    /// The relay address of family `f` for a client that reached `ctx.local`.
    std::optional<relay_address> relay_ip_for(const request_context& ctx, protocol::address_family f) const;

    std::size_t handle_refresh(allocation& a, const protocol::message_view& req, std::span<std::uint8_t> out);
    std::size_t handle_create_permission(allocation& a, const protocol::message_view& req,
                                         std::span<std::uint8_t> out);
    std::size_t handle_channel_bind(allocation& a, const protocol::message_view& req,
                                    std::span<std::uint8_t> out);
    std::size_t handle_connect(allocation& a, const protocol::message_view& req, std::span<std::uint8_t> out);
    std::size_t handle_connection_bind(const request_context& ctx, const protocol::message_view& req,
                                       const auth::auth_result& auth, std::span<std::uint8_t> out);
    /// Forgets link `id` of `a` (closing it when `close`), server-wide too.
    void drop_link(allocation& a, std::uint32_t id, bool close);

    /// An error response; `signing` signs it (errors after authentication), else it carries
    /// REALM and NONCE when `challenge` (401, 438).
    std::size_t error(const request_context& ctx, const protocol::message_view& req, std::uint16_t code,
                      std::span<std::uint8_t> out, const auth::key* signing = nullptr,
                      bool sha256 = false, bool challenge = false,
                      std::span<const std::uint16_t> unknown = {});
    /// A success response with no attributes of its own, signed and remembered.
    std::size_t empty_success(allocation& a, const protocol::message_view& req, std::span<std::uint8_t> out);
    /// The peer policy's verdict on `peer`, counted and logged when it refuses.
    bool peer_permitted(const allocation& a, const protocol::transport_address& peer, std::string_view what);
    std::chrono::seconds lifetime_for(const protocol::message_view& req) const;
    /// `life`, cut to what is left of a credential that expires at `expires` (unix seconds).
    std::chrono::seconds within_credential(std::chrono::seconds life, std::optional<std::int64_t> expires) const;
    void remember(allocation& a, const protocol::message_view& req, std::span<const std::uint8_t> response);
    void on_removed(allocation& a);
    /// 300 Try Alternate naming an alternate server of the client's family (RFC 8489 §10),
    /// signed; 508 when none is configured for it.
    std::size_t try_alternate(const request_context& ctx, const protocol::message_view& req,
                              const auth::auth_result& auth, std::span<std::uint8_t> out);
    void count_failure(const auth::auth_result& auth);

    std::shared_ptr<const turn_runtime> runtime_; ///< set by reconfigure(); keeps the three below alive
    const turn_settings* settings_;
    const auth::credential_store* credentials_;
    const auth::nonce_manager& nonces_;
    const peer_policy* policy_;
    turn_shared& shared_;
    relay_provider& relays_;
    const turn_clock& clock_;
    std::string software_;
    allocation_table table_;
    std::unordered_map<std::uint32_t, allocation*> links_; ///< RFC 6062 peer connections by id
    turn_stats stats_;
    std::uint64_t indication_counter_ = 0;
    std::size_t next_alternate_ = 0;
    bool draining_ = false;
    log::throttle log_{10};
    token_bucket worker_budget_;     ///< limits.relay_bytes_per_second, this worker's share
    /// False (and the packet counted as dropped) when a bandwidth cap has no room for `bytes`.
    bool within_bandwidth(allocation& a, token_bucket& budget, std::size_t bytes, steady_time now);
};

} // namespace ferry::server
