// TURN allocations (RFC 8656 §2.2, §7-§12) and the table that owns them. Permissions and
// channel bindings live in small flat vectors inside their allocation; expiry is a time point
// checked on use (no timer per object) plus one sweep per worker. The table is per worker and
// touched by that worker's thread only.
#pragma once

#include "ferry/auth/keys.hpp"
#include "ferry/protocol/address.hpp"
#include "ferry/server/limits.hpp"
#include "ferry/server/request.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::server {


/// RFC 8656 §2.2: client address, server address and transport identify an allocation.
struct five_tuple {
    protocol::transport_address client;
    protocol::transport_address server;
    transport via = transport::udp;
    friend bool operator==(const five_tuple&, const five_tuple&) = default;
};

struct five_tuple_hash {
    std::size_t operator()(const five_tuple& t) const noexcept;
};

/// How to reach the client: the socket the allocation was made on and the addresses to use.
struct client_route {
    int socket = -1;          ///< listener socket (UDP) or connection id (streams)
    bool pktinfo = false;     ///< the socket is bound to a wildcard: set the source address
    protocol::transport_address local;
    protocol::transport_address remote;
    transport via = transport::udp;
};

/// One relayed transport address of an allocation.
struct relay_endpoint {
    int handle = -1;                       ///< the I/O layer's socket for it
    protocol::transport_address local;     ///< what it is bound to
    protocol::transport_address advertised; ///< what XOR-RELAYED-ADDRESS tells the client
    steady_time expires; ///< RFC 8656 §7.3: a dual-stack allocation refreshes each family apart
};

struct permission {
    protocol::ip_address peer;
    steady_time expires;
};

struct channel_binding {
    std::uint16_t number = 0;
    protocol::transport_address peer;
    steady_time expires;
};

/// RFC 6062: a TCP connection between a TCP allocation's relayed address and a peer.
struct tcp_link {
    enum class state : std::uint8_t {
        connecting,   ///< a Connect request waits for the outgoing connection
        waiting_bind, ///< connected; the client has 30 s to send ConnectionBind
        bound,        ///< spliced to a client data connection
    };
    std::uint32_t id = 0; ///< CONNECTION-ID
    protocol::transport_address peer;
    state st = state::connecting;
    steady_time expires; ///< when a waiting link is given up (bound links: never)
    std::array<std::uint8_t, 12> connect_txid{}; ///< the Connect request to answer
    bool connect_fingerprint = false;             ///< it carried FINGERPRINT
};

struct relay_counters {
    std::uint64_t to_peer_packets = 0;
    std::uint64_t to_peer_bytes = 0;
    std::uint64_t to_client_packets = 0;
    std::uint64_t to_client_bytes = 0;
};

/// Why an allocation ended, for its usage record.
enum class end_reason : std::uint8_t { expired, deleted, connection_closed, revoked, drained, shutdown };
std::string_view to_string(end_reason r);

struct allocation {
    five_tuple tuple;
    client_route route;
    std::string username;
    auth::key key;
    bool sha256 = false; ///< answer with MESSAGE-INTEGRITY-SHA256
    std::optional<std::int64_t> credential_expires; ///< TURN REST: the credential's end, unix seconds
    steady_time created;
    steady_time expires; ///< the latest of its relays' expiries
    std::array<relay_endpoint, 2> relays;
    std::size_t relay_count = 0;
    std::vector<permission> permissions;
    std::vector<channel_binding> channels;
    std::optional<std::array<std::uint8_t, 8>> reserved; ///< the RESERVATION-TOKEN it was given
    bool tcp = false;            ///< RFC 6062: the relayed address is a listening TCP socket
    std::vector<tcp_link> links; ///< its peer connections
    relay_counters counters;
    /// Bandwidth caps (limits.allocation_bytes_per_second), each direction; `capped` is false
    /// for a client from an exempt source.
    bool capped = true;
    protocol::ip_address quota_source; ///< the source_key it is counted under (allocations_per_ip)
    token_bucket to_peer_budget;
    token_bucket to_client_budget;
    end_reason ended = end_reason::expired; ///< set before it leaves the table
    std::int64_t created_unix = 0;          ///< start, unix seconds (usage records)

    /// The last answered request, to answer a retransmission identically (RFC 8489 §6.3).
    std::array<std::uint8_t, 12> last_txid{};
    std::vector<std::uint8_t> last_response;

    std::span<const relay_endpoint> relayed() const { return {relays.data(), relay_count}; }
    const relay_endpoint* relay_for(protocol::address_family f) const;
    bool permits(const protocol::ip_address& peer, steady_time now) const;
    const channel_binding* channel_by_number(std::uint16_t n, steady_time now) const;
    const channel_binding* channel_by_peer(const protocol::transport_address& p, steady_time now) const;
};

/// RFC 8656 §9: permissions last 300 s; §12: channel bindings 600 s, and a channel number or
/// peer stays reserved for 300 s after its binding expires.
inline constexpr std::chrono::seconds permission_lifetime{300};
inline constexpr std::chrono::seconds channel_lifetime{600};
inline constexpr std::chrono::seconds channel_cooldown{300};
/// RFC 6062 §5.2/§5.3: a peer connection the client does not bind within 30 s is closed, and an
/// outgoing connection attempt is given at least 30 s.
inline constexpr std::chrono::seconds tcp_bind_timeout{30};

class allocation_table {
public:
    /// The live allocation on this 5-tuple, or nullptr (an expired one is not returned).
    allocation* find(const five_tuple& t, steady_time now);
    /// The allocation that owns relay socket `handle`, or nullptr.
    allocation* find_by_relay(int handle, steady_time now);

    allocation& insert(std::unique_ptr<allocation> a);
    /// Removes it; `on_remove` sees it first (to close sockets, release quotas, log).
    void erase(allocation& a);
    /// Removes relayed address `index` of a dual-stack allocation (one of two) and returns
    /// its handle, for the caller to close.
    int drop_relay(allocation& a, std::size_t index);
    /// Called for a relay that sweep() drops on its own (it expired, its allocation lives on).
    std::function<void(allocation&, int handle)> on_relay_dropped;
    /// Drops expired allocations, permissions and channel bindings.
    void sweep(steady_time now);

    std::size_t size() const { return count_; }
    /// Calls `f` on every allocation (it must not add or remove any).
    template <class F> void for_each(F&& f) {
        for (auto& s : slots_)
            if (s.owned) f(*s.owned);
    }
    template <class F> void for_each(F&& f) const {
        for (const auto& s : slots_)
            if (s.owned) f(static_cast<const allocation&>(*s.owned));
    }
    /// Called for every allocation leaving the table (erase or expiry).
    std::function<void(allocation&)> on_remove;

private:
    // The allocations by 5-tuple: open addressing with linear probing (at most half full) and
    // backward-shift deletion. A lookup reads one slot (the hash beside the owning pointer) and
    // then the allocation itself, where a node-based map chased a bucket and a node first: on
    // every ChannelData from a client, with thousands of allocations, those were cache misses.
    struct slot {
        std::uint64_t hash = 0;
        std::unique_ptr<allocation> owned;
    };
    std::vector<slot> slots_; ///< size 0 or a power of two
    std::size_t count_ = 0;
    std::size_t index_of(const five_tuple& t, std::uint64_t hash) const; ///< slots_.size() if absent
    void place(std::uint64_t hash, std::unique_ptr<allocation> a);

    /// Indexed by relay handle (the I/O layer's descriptors: small, dense, non-negative): one
    /// load on the peer->client path instead of a hash lookup and a node to chase.
    std::vector<allocation*> by_relay_;
    void set_relay(int handle, allocation* a);
};

} // namespace ferry::server
