// ferry's configuration: one YAML file read into this plain struct, validated once, then
// passed around immutable by const&. Defaults are the member initialisers below and match
// conf/ferry.yaml. Only config.cpp includes yaml-cpp.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/server/peer_policy.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ferry::server {

enum class log_level { trace, debug, info, warn, error };
enum class log_format { text, json };

/// RFC 8489 §18.4: the default port for STUN and TURN over UDP and TCP.
inline constexpr std::uint16_t default_port = 3478;

/// One address and port the server listens on, with the transports served there.
struct listen_config {
    protocol::ip_address address;
    std::uint16_t port = default_port;
    bool udp = true;
    bool tcp = true;
    bool tls = false; ///< TURN over TLS (turns:, RFC 8656 §3.1); port 5349 by convention. With
                      ///< tcp as well, each connection's first byte tells them apart
    bool dtls = false; ///< TURN over DTLS 1.2 (turns: over UDP); port 5349 by convention
};

/// The certificate for TLS and DTLS listeners. Reloaded on SIGHUP; established sessions keep theirs.
struct tls_config {
    std::string certificate; ///< PEM chain, leaf first
    std::string private_key; ///< PEM key
};

/// RFC 5780 NAT behaviour discovery: a second IP address of this host (and a second port)
/// from which the server can answer CHANGE-REQUEST. Off unless alternate_address is set.
struct nat_discovery_config {
    std::optional<protocol::ip_address> alternate_address;
    std::uint16_t alternate_port = 0; ///< 0: each listener's port + 1
};

struct limits_config {
    /// A TCP connection that completes no message for this long is closed.
    std::chrono::seconds tcp_idle_timeout{30};
    std::chrono::seconds tls_handshake_timeout{10}; ///< a TLS client must finish its handshake by then
    unsigned max_tcp_connections = 10000;      ///< in total; more are closed at accept
    unsigned max_tcp_connections_per_ip = 1000; ///< from one source IP address (many users share a NAT)
    unsigned ipv6_prefix_length = 64; ///< IPv6 sources count per prefix: one host holds a whole /64
    std::size_t tcp_buffer_bytes = 262144;     ///< unsent bytes a connection may queue before it is cut
    unsigned allocations_per_user = 64;       ///< 486 beyond this (0: no limit)
    unsigned allocations_total = 50000;       ///< 508 beyond this (0: no limit)
    unsigned permissions_per_allocation = 64; ///< 508 beyond this
    unsigned channels_per_allocation = 64;    ///< 508 beyond this
    /// Answers a second (and saved up) to one UDP source whose requests do not authenticate
    /// (401, 438, 400); past them, none. 0: no limit.
    unsigned unauthenticated_rate = 20;
    unsigned unauthenticated_burst = 60;
    unsigned allocations_per_ip = 1000;  ///< 486 beyond this, for clients at one address (0: no limit)
    std::uint64_t allocation_bytes_per_second = 12'500'000; ///< per allocation, each direction (0: no limit)
    std::uint64_t relay_bytes_per_second = 0; ///< all relayed data, both directions (0: no limit)
    /// Sources the four limits above do not apply to: loopback cannot be forged from outside
    /// and is the host's own (monitoring, load tests).
    std::vector<ip_range> exempt_sources{*ip_range::parse("127.0.0.0/8"), *ip_range::parse("::1")};
};

/// A long-term credential user: a password, or the precomputed key MD5(name:realm:password).
struct turn_user {
    std::string name;
    std::string password; ///< cleared once the keys are derived
    std::optional<std::array<std::uint8_t, 16>> key;
};

/// A relay address: what to bind, and what XOR-RELAYED-ADDRESS says (a 1:1 NAT's public side).
struct relay_address_config {
    protocol::ip_address address;
    protocol::ip_address advertised;
};

/// TURN (RFC 8656). Served when at least one user or REST secret is configured.
struct turn_config {
    std::string realm = "ferry";
    std::vector<turn_user> users;
    std::vector<std::string> static_auth_secrets; ///< TURN REST API shared secrets
    std::vector<relay_address_config> relay_addresses; ///< empty: the address the client reached
    std::uint16_t relay_port_min = 49152;
    std::uint16_t relay_port_max = 65535;
    std::chrono::seconds max_lifetime{3600};
    std::chrono::seconds nonce_lifetime{600};
    /// The key nonces are made with. Empty: a random one per process. Servers that redirect to
    /// each other (alternate_servers) share one, so that a client carrying a nonce from one
    /// (as browsers do after 300 Try Alternate) is served by the other.
    std::string nonce_secret;
    std::vector<ip_range> allowed_peer_ranges;
    std::vector<ip_range> denied_peer_ranges;
    /// RFC 8489 §10: where a draining or full server sends new Allocates (300 Try Alternate).
    std::vector<protocol::transport_address> alternate_servers;
    std::string alternate_domain; ///< ALTERNATE-DOMAIN for clients on TLS or DTLS (the certificate's name)

    bool enabled() const { return !users.empty() || !static_auth_secrets.empty() || from_redis; }
    bool from_redis = false; ///< users and secrets come from Redis too (redis: is configured)
};

struct log_config {
    log_level level = log_level::info;
    log_format format = log_format::text; ///< json: one JSON object a line, for log shippers
};

/// The HTTP endpoint for operators: /metrics, /healthz, /readyz. Never on a TURN port.
struct admin_config {
    bool enabled = true;
    protocol::ip_address address = *protocol::ip_address::parse("127.0.0.1");
    std::uint16_t port = 9641;
    bool per_user_metrics = false; ///< labels by user name: one series per user, so off by default
};

/// The signaling service (WebSocket rooms for WebRTC offers, answers and candidates, with
/// TURN credentials in the join answer). Off unless configured.
struct signaling_config {
    bool enabled = false;
    protocol::ip_address address = *protocol::ip_address::parse("0.0.0.0");
    std::uint16_t port = 8443;
    bool tls = false;                        ///< wss:// with tls.certificate
    std::vector<std::string> token_secrets;  ///< join tokens required when any is set
    std::string public_host;                 ///< host name in iceServers URLs; empty: the request's Host
    std::chrono::seconds credential_lifetime{3600}; ///< of the TURN credentials handed out
    std::size_t max_message = 65536;
    unsigned members_per_room = 16;
    unsigned rooms = 10000;
    unsigned messages_per_second = 50;
    unsigned connections = 10000;
    unsigned connections_per_ip = 100;
    std::chrono::seconds idle_timeout{60}; ///< no frame (pongs count) for this long: closed
};

/// Redis, shared by a fleet of ferry instances (docs/deploy.md): users and REST secrets in
/// coturn's key layout, allocations per user across the fleet, and each instance's load for
/// 300 Try Alternate. Off unless configured. Restart-only.
struct redis_config {
    bool enabled = false;
    std::string host = "127.0.0.1"; ///< a name or an address; unused with `unix_socket`
    std::uint16_t port = 6379;
    std::string unix_socket;       ///< from "unix:/run/redis/redis.sock"
    std::string username;          ///< Redis 6 ACL user (AUTH username password)
    std::string password;
    unsigned database = 0;
    std::string key_prefix;        ///< before every key ferry reads or writes
    bool tls = false;
    std::string tls_ca;            ///< CA file the server's certificate must chain to; empty: the system's
    std::string tls_server_name;   ///< name checked in the certificate; empty: `host`
    /// Adds the keyspace notification flags ferry follows users by (K$gx) to Redis's
    /// notify-keyspace-events when they are missing (CONFIG SET); false: only says so.
    bool configure_notifications = true;
    /// What this instance publishes (load, allocations per user) lives this long in Redis
    /// unless renewed (every third of it): an instance that dies drops out of the fleet after it.
    std::chrono::seconds lease{10};
    /// Users and secrets are read whole this often, besides following changes as they come.
    std::chrono::seconds resync_interval{60};
    std::string instance; ///< this instance's name in the fleet; empty: the host name and first listener
    /// Where other instances send clients for this one (300 Try Alternate); empty: nowhere.
    std::vector<protocol::transport_address> advertise;
};

/// Adaptive batching: above `above_pps` relayed packets a second, a worker starts its passes
/// over the sockets at most every `delay`, so one wake-up handles many datagrams.
struct batching_config {
    std::chrono::microseconds delay{500}; ///< 0: every datagram is handled as it arrives
    unsigned above_pps = 5000;            ///< per worker thread, both directions counted
};

struct config {
    unsigned threads = 0;           ///< worker threads; 0 means one per core ("auto")
    batching_config batching;
    std::string software = "ferry"; ///< SOFTWARE attribute; empty sends none
    std::vector<listen_config> listen;
    nat_discovery_config nat_discovery;
    tls_config tls;
    turn_config turn;
    limits_config limits;
    log_config log;
    admin_config admin;
    signaling_config signaling;
    redis_config redis;
    /// SIGTERM drains: allocations run on for up to this long, then ferry exits.
    std::chrono::seconds drain_timeout{300};

    /// The listeners used when the file names none: every IPv4 and IPv6 address, port 3478.
    static std::vector<listen_config> default_listeners();
};

/// A bad configuration: the message names the file and line ("ferry.yaml:12: ...").
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The worker threads a configuration runs: `threads`, or one per core.
unsigned worker_count(const config& c);

/// Reads and validates a YAML file. Throws config_error.
config load_config(const std::string& path);
/// Same, from YAML text (tests); `name` stands in for the file name in messages.
config parse_config(const std::string& yaml, const std::string& name = "<config>");
/// `text` with every ${NAME} (outside comment lines) replaced by that environment variable's
/// value, as a Kubernetes pod's env gives a node's address; an unset one is an error.
std::string expand_environment(const std::string& text, const std::string& name);

std::string_view to_string(log_level l);

/// "192.0.2.10:3478", "[2001:db8::1]:3478", or an address alone (then port `port`).
std::optional<protocol::transport_address> parse_endpoint(std::string_view text, std::uint16_t port);

/// Every key the loader accepts, as dotted paths ("limits.allocations_total", "listen.port"
/// for a key of a list's items). The loader checks keys against this list and nothing else.
std::span<const std::string_view> config_keys();

} // namespace ferry::server
