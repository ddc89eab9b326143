#include "ferry/server/config.hpp"

#include "ferry/auth/keys.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace ferry::server {
namespace {

// Every key the loader knows. only_keys() accepts a key only when its path is listed here,
// so this list, conf/ferry.yaml and the README's reference are compared by a test.
constexpr std::string_view known_keys[] = {
    "threads",
    "batching",
    "batching.delay_us",
    "batching.above_pps",
    "software",
    "listen",
    "listen.address",
    "listen.port",
    "listen.transports",
    "nat_discovery",
    "nat_discovery.alternate_address",
    "nat_discovery.alternate_port",
    "tls",
    "tls.certificate",
    "tls.private_key",
    "turn",
    "turn.realm",
    "turn.users",
    "turn.users.name",
    "turn.users.password",
    "turn.users.key",
    "turn.static_auth_secrets",
    "turn.relay_addresses",
    "turn.relay_addresses.address",
    "turn.relay_addresses.advertised",
    "turn.relay_port_min",
    "turn.relay_port_max",
    "turn.max_lifetime",
    "turn.nonce_lifetime",
    "turn.nonce_secret",
    "turn.allowed_peer_ranges",
    "turn.denied_peer_ranges",
    "turn.alternate_servers",
    "turn.alternate_domain",
    "limits",
    "limits.tcp_idle_timeout",
    "limits.tls_handshake_timeout",
    "limits.max_tcp_connections",
    "limits.max_tcp_connections_per_ip",
    "limits.ipv6_prefix_length",
    "limits.tcp_buffer_bytes",
    "limits.allocations_per_user",
    "limits.allocations_total",
    "limits.permissions_per_allocation",
    "limits.channels_per_allocation",
    "limits.unauthenticated_rate",
    "limits.unauthenticated_burst",
    "limits.allocations_per_ip",
    "limits.allocation_bytes_per_second",
    "limits.relay_bytes_per_second",
    "limits.exempt_sources",
    "log",
    "log.level",
    "log.format",
    "admin",
    "admin.enabled",
    "admin.address",
    "admin.port",
    "admin.per_user_metrics",
    "drain_timeout",
    "signaling",
    "signaling.address",
    "signaling.port",
    "signaling.tls",
    "signaling.token_secrets",
    "signaling.public_host",
    "signaling.credential_lifetime",
    "signaling.max_message",
    "signaling.members_per_room",
    "signaling.rooms",
    "signaling.messages_per_second",
    "signaling.connections",
    "signaling.connections_per_ip",
    "signaling.idle_timeout",
    "redis",
    "redis.address",
    "redis.username",
    "redis.password",
    "redis.database",
    "redis.key_prefix",
    "redis.tls",
    "redis.tls_ca",
    "redis.tls_server_name",
    "redis.configure_notifications",
    "redis.lease",
    "redis.resync_interval",
    "redis.instance",
    "redis.advertise",
};

// Every error names the file and the line of the offending node.
struct reader {
    std::string name;

    [[noreturn]] void fail(const YAML::Node& n, const std::string& what) const {
        const auto mark = n.Mark();
        if (mark.line >= 0) throw config_error(fmt::format("{}:{}: {}", name, mark.line + 1, what));
        throw config_error(fmt::format("{}: {}", name, what));
    }

    /// Fails on a key of `map` whose path (`where`.key) known_keys does not list.
    void only_keys(const YAML::Node& map, const std::string& where) const {
        if (!map.IsMap()) fail(map, fmt::format("'{}' must be a mapping", where));
        for (const auto& kv : map) {
            const auto key = kv.first.as<std::string>();
            const auto path = where.empty() ? key : where + "." + key;
            if (std::find(std::begin(known_keys), std::end(known_keys), path) == std::end(known_keys))
                fail(kv.first, where.empty() ? fmt::format("unknown key '{}'", key)
                                             : fmt::format("unknown key '{}' in '{}'", key, where));
        }
    }

    std::string text(const YAML::Node& n, const std::string& key) const {
        if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a string", key));
        return n.Scalar();
    }

    template <class T> T number(const YAML::Node& n, const std::string& key, T lo, T hi) const {
        if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a number", key));
        long long v = 0;
        try {
            std::size_t used = 0;
            v = std::stoll(n.Scalar(), &used, 10);
            if (used != n.Scalar().size()) throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            fail(n, fmt::format("'{}' must be a whole number, not '{}'", key, n.Scalar()));
        }
        if (v < static_cast<long long>(lo) || v > static_cast<long long>(hi))
            fail(n, fmt::format("'{}' must be between {} and {}", key, lo, hi));
        return static_cast<T>(v);
    }

    bool boolean(const YAML::Node& n, const std::string& key) const {
        bool b = false;
        if (!n.IsScalar() || !YAML::convert<bool>::decode(n, b))
            fail(n, fmt::format("'{}' must be true or false", key));
        return b;
    }

    protocol::ip_address ip(const YAML::Node& n, const std::string& key) const {
        auto s = text(n, key);
        auto a = protocol::ip_address::parse(s);
        if (!a) fail(n, fmt::format("'{}' is not an IP address: '{}'", key, s));
        return *a;
    }
};

log_level parse_level(const reader& r, const YAML::Node& n) {
    const auto s = r.text(n, "log.level");
    for (auto l : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                   log_level::error})
        if (s == to_string(l)) return l;
    r.fail(n, fmt::format("'log.level' must be one of trace, debug, info, warn, error; not '{}'", s));
}

listen_config parse_listener(const reader& r, const YAML::Node& n) {
    r.only_keys(n, "listen");
    listen_config l;
    if (!n["address"]) r.fail(n, "a listener needs an 'address'");
    l.address = r.ip(n["address"], "listen.address");
    if (n["port"]) l.port = r.number<std::uint16_t>(n["port"], "listen.port", 1, 65535);
    if (const auto& t = n["transports"]) {
        if (!t.IsSequence() || t.size() == 0)
            r.fail(t, "'listen.transports' must be a list such as [udp, tcp]");
        l.udp = l.tcp = false;
        for (const auto& item : t) {
            const auto s = r.text(item, "listen.transports");
            if (s == "udp") l.udp = true;
            else if (s == "tcp") l.tcp = true;
            else if (s == "tls") l.tls = true;
            else if (s == "dtls") l.dtls = true;
            else r.fail(item, fmt::format("unknown transport '{}' (udp, tcp, tls or dtls)", s));
        }
    }
    return l;
}

std::vector<ip_range> parse_ranges(const reader& r, const YAML::Node& n, const std::string& key) {
    if (!n.IsSequence()) r.fail(n, fmt::format("'{}' must be a list of address ranges", key));
    std::vector<ip_range> out;
    for (const auto& item : n) {
        const auto text = r.text(item, key);
        auto range = ip_range::parse(text);
        if (!range) r.fail(item, fmt::format("'{}': '{}' is not an address range such as 10.0.0.0/8", key, text));
        out.push_back(*range);
    }
    return out;
}

void parse_turn(const reader& r, const YAML::Node& n, turn_config& t) {
    r.only_keys(n, "turn");
    if (n["realm"]) {
        t.realm = r.text(n["realm"], "turn.realm");
        if (t.realm.empty() || t.realm.size() > 763) r.fail(n["realm"], "'turn.realm' must be 1 to 763 bytes");
    }
    if (const auto& users = n["users"]) {
        if (!users.IsSequence()) r.fail(users, "'turn.users' must be a list of {name, password} or {name, key}");
        for (const auto& u : users) {
            r.only_keys(u, "turn.users");
            turn_user user;
            if (!u["name"]) r.fail(u, "a user needs a 'name'");
            user.name = r.text(u["name"], "turn.users.name");
            if (user.name.empty() || user.name.size() > 512) r.fail(u["name"], "'name' must be 1 to 512 bytes");
            if (u["password"] && u["key"]) r.fail(u, "give a user a 'password' or a 'key', not both");
            if (u["password"]) {
                user.password = r.text(u["password"], "turn.users.password");
                if (user.password.empty()) r.fail(u["password"], "'password' must not be empty");
            } else if (u["key"]) {
                user.key = auth::parse_hex_key(r.text(u["key"], "turn.users.key"));
                if (!user.key) r.fail(u["key"], "'key' must be 32 hex digits: MD5(name:realm:password)");
            } else {
                r.fail(u, fmt::format("user '{}' needs a 'password' or a 'key'", user.name));
            }
            t.users.push_back(std::move(user));
        }
    }
    if (const auto& secrets = n["static_auth_secrets"]) {
        if (!secrets.IsSequence()) r.fail(secrets, "'turn.static_auth_secrets' must be a list of secrets");
        for (const auto& s : secrets) {
            auto secret = r.text(s, "turn.static_auth_secrets");
            if (secret.empty()) r.fail(s, "a REST API secret must not be empty");
            t.static_auth_secrets.push_back(std::move(secret));
        }
        if (t.static_auth_secrets.size() > 8) r.fail(secrets, "at most 8 REST API secrets at once");
    }
    if (const auto& relays = n["relay_addresses"]) {
        if (!relays.IsSequence()) r.fail(relays, "'turn.relay_addresses' must be a list of {address, advertised}");
        for (const auto& a : relays) {
            r.only_keys(a, "turn.relay_addresses");
            if (!a["address"]) r.fail(a, "a relay address needs an 'address'");
            relay_address_config ra;
            ra.address = r.ip(a["address"], "turn.relay_addresses.address");
            ra.advertised = a["advertised"] ? r.ip(a["advertised"], "turn.relay_addresses.advertised") : ra.address;
            if (ra.address.is_unspecified()) r.fail(a["address"], "a relay address must be concrete, not a wildcard");
            if (ra.advertised.family != ra.address.family)
                r.fail(a, "'advertised' must be of the same family as 'address'");
            for (const auto& other : t.relay_addresses)
                if (other.address.family == ra.address.family) r.fail(a, "one relay address per address family");
            t.relay_addresses.push_back(ra);
        }
    }
    if (n["relay_port_min"]) t.relay_port_min = r.number<std::uint16_t>(n["relay_port_min"], "turn.relay_port_min", 1024, 65535);
    if (n["relay_port_max"]) t.relay_port_max = r.number<std::uint16_t>(n["relay_port_max"], "turn.relay_port_max", 1024, 65535);
    if (t.relay_port_min > t.relay_port_max) r.fail(n, "'turn.relay_port_min' is above 'turn.relay_port_max'");
    if (n["max_lifetime"])
        t.max_lifetime = std::chrono::seconds(r.number<unsigned>(n["max_lifetime"], "turn.max_lifetime", 600, 86400));
    if (n["nonce_lifetime"])
        t.nonce_lifetime = std::chrono::seconds(r.number<unsigned>(n["nonce_lifetime"], "turn.nonce_lifetime", 30, 86400));
    if (n["nonce_secret"] && !n["nonce_secret"].IsNull()) {
        t.nonce_secret = r.text(n["nonce_secret"], "turn.nonce_secret");
        if (!t.nonce_secret.empty() && t.nonce_secret.size() < 16)
            r.fail(n["nonce_secret"], "'turn.nonce_secret' must be at least 16 characters (or empty: random)");
    }
    if (n["allowed_peer_ranges"]) t.allowed_peer_ranges = parse_ranges(r, n["allowed_peer_ranges"], "turn.allowed_peer_ranges");
    if (n["denied_peer_ranges"]) t.denied_peer_ranges = parse_ranges(r, n["denied_peer_ranges"], "turn.denied_peer_ranges");
    if (const auto& alts = n["alternate_servers"]) {
        if (!alts.IsSequence()) r.fail(alts, "'turn.alternate_servers' must be a list such as [\"192.0.2.10:3478\"]");
        for (const auto& item : alts) {
            const auto text = r.text(item, "turn.alternate_servers");
            const auto a = parse_endpoint(text, default_port);
            if (!a || a->ip.is_unspecified())
                r.fail(item, fmt::format("'turn.alternate_servers': '{}' is not an address such as 192.0.2.10:3478 "
                                         "or [2001:db8::10]:3478", text));
            t.alternate_servers.push_back(*a);
        }
    }
    if (n["alternate_domain"] && !n["alternate_domain"].IsNull()) {
        t.alternate_domain = r.text(n["alternate_domain"], "turn.alternate_domain");
        if (t.alternate_domain.size() > 255) r.fail(n["alternate_domain"], "'turn.alternate_domain' must be under 256 bytes");
    }
}

// redis.address: "host:port", "[v6]:port", "host" (port 6379) or "unix:/path".
void parse_redis(const reader& r, const YAML::Node& n, config& c) {
    r.only_keys(n, "redis");
    auto& d = c.redis;
    d.enabled = true;
    c.turn.from_redis = true;
    if (n["address"]) {
        const auto text = r.text(n["address"], "redis.address");
        if (text.starts_with("unix:")) {
            d.unix_socket = text.substr(5);
            if (d.unix_socket.empty() || d.unix_socket.size() > 100)
                r.fail(n["address"], "'redis.address': 'unix:' needs a socket path (at most 100 characters)");
        } else {
            std::string_view host = text;
            std::string_view port;
            if (text.starts_with("[")) {
                const auto close = text.find(']');
                if (close == std::string::npos) r.fail(n["address"], "'redis.address': no ']' after an IPv6 address");
                host = std::string_view(text).substr(1, close - 1);
                if (close + 1 < text.size()) {
                    if (text[close + 1] != ':') r.fail(n["address"], "'redis.address': expected ':' and a port after ']'");
                    port = std::string_view(text).substr(close + 2);
                }
            } else if (const auto colon = text.find(':'); colon != std::string::npos) {
                host = std::string_view(text).substr(0, colon);
                port = std::string_view(text).substr(colon + 1);
            }
            if (host.empty()) r.fail(n["address"], "'redis.address' names no host");
            d.host = std::string(host);
            if (!port.empty()) {
                unsigned p = 0;
                auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
                if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535)
                    r.fail(n["address"], fmt::format("'redis.address': '{}' is not a port", port));
                d.port = static_cast<std::uint16_t>(p);
            }
        }
    }
    if (n["username"] && !n["username"].IsNull()) d.username = r.text(n["username"], "redis.username");
    if (n["password"] && !n["password"].IsNull()) d.password = r.text(n["password"], "redis.password");
    if (!d.username.empty() && d.password.empty()) r.fail(n["username"], "'redis.username' needs 'redis.password'");
    if (n["database"]) d.database = r.number<unsigned>(n["database"], "redis.database", 0, 1000);
    if (n["key_prefix"] && !n["key_prefix"].IsNull()) d.key_prefix = r.text(n["key_prefix"], "redis.key_prefix");
    if (d.key_prefix.find_first_of("*?[]\\") != std::string::npos)
        r.fail(n["key_prefix"], "'redis.key_prefix' cannot hold the pattern characters * ? [ ] \\");
    if (n["tls"]) d.tls = r.boolean(n["tls"], "redis.tls");
    if (n["tls_ca"] && !n["tls_ca"].IsNull()) d.tls_ca = r.text(n["tls_ca"], "redis.tls_ca");
    if (n["tls_server_name"] && !n["tls_server_name"].IsNull())
        d.tls_server_name = r.text(n["tls_server_name"], "redis.tls_server_name");
    if (d.tls && !d.unix_socket.empty()) r.fail(n["tls"], "'redis.tls' is for TCP addresses, not a unix socket");
    if (n["configure_notifications"])
        d.configure_notifications = r.boolean(n["configure_notifications"], "redis.configure_notifications");
    if (n["lease"]) d.lease = std::chrono::seconds(r.number<unsigned>(n["lease"], "redis.lease", 3, 3600));
    if (n["resync_interval"])
        d.resync_interval = std::chrono::seconds(r.number<unsigned>(n["resync_interval"], "redis.resync_interval", 5, 86400));
    if (n["instance"] && !n["instance"].IsNull()) {
        d.instance = r.text(n["instance"], "redis.instance");
        if (d.instance.size() > 200 || d.instance.find_first_of(" \t\r\n*?[]") != std::string::npos)
            r.fail(n["instance"], "'redis.instance' must be under 200 characters, without spaces or * ? [ ]");
    }
    if (const auto& a = n["advertise"]; a && !a.IsNull()) {
        if (!a.IsSequence()) r.fail(a, "'redis.advertise' must be a list such as [\"192.0.2.10:3478\"]");
        for (const auto& item : a) {
            const auto text = r.text(item, "redis.advertise");
            const auto e = parse_endpoint(text, default_port);
            if (!e || e->ip.is_unspecified())
                r.fail(item, fmt::format("'redis.advertise': '{}' is not an address such as 192.0.2.10:3478", text));
            d.advertise.push_back(*e);
        }
    }
}

void validate(const reader& r, const YAML::Node& root, config& c) {
    if (c.listen.empty()) r.fail(root, "'listen' names no listener");
    const bool any_tls =
        std::any_of(c.listen.begin(), c.listen.end(), [](const listen_config& l) { return l.tls || l.dtls; });
    if (any_tls && (c.tls.certificate.empty() || c.tls.private_key.empty()))
        r.fail(root["listen"], "a 'tls' or 'dtls' listener needs tls.certificate and tls.private_key");
    for (const auto& l : c.listen) {
        if (l.dtls && l.udp) r.fail(root["listen"], fmt::format("port {} cannot serve both udp and dtls", l.port));
    }
    if (c.admin.enabled)
        for (const auto& l : c.listen)
            if ((l.tcp || l.tls) && l.port == c.admin.port &&
                (l.address == c.admin.address || l.address.is_unspecified()) &&
                l.address.family == c.admin.address.family)
                r.fail(root["admin"] ? root["admin"] : root, fmt::format("'admin' port {} is a TURN listener's port", l.port));
    if (c.signaling.enabled && c.signaling.tls && (c.tls.certificate.empty() || c.tls.private_key.empty()))
        r.fail(root["signaling"], "'signaling.tls' needs tls.certificate and tls.private_key");
    if (c.signaling.enabled)
        for (const auto& l : c.listen)
            if ((l.tcp || l.tls) && l.port == c.signaling.port &&
                (l.address == c.signaling.address || l.address.is_unspecified() || c.signaling.address.is_unspecified()) &&
                l.address.family == c.signaling.address.family)
                r.fail(root["signaling"], fmt::format("'signaling' port {} is a TURN listener's port", l.port));
    if (c.nat_discovery.alternate_address) {
        const auto& alt = *c.nat_discovery.alternate_address;
        if (alt.is_unspecified())
            r.fail(root["nat_discovery"], "'nat_discovery.alternate_address' must be a concrete address");
        const bool any = std::any_of(c.listen.begin(), c.listen.end(), [&](const listen_config& l) {
            return l.udp && l.address.family == alt.family && !l.address.is_unspecified() &&
                   l.address != alt;
        });
        if (!any)
            r.fail(root["nat_discovery"],
                   "'nat_discovery' needs a UDP listener on a concrete address of the same family "
                   "as alternate_address, other than it");
    }
}

config parse_root(const reader& r, const YAML::Node& root) {
    config c;
    if (!root || root.IsNull()) {
        c.listen = config::default_listeners();
        return c;
    }
    r.only_keys(root, "");

    if (const auto& n = root["threads"]) {
        if (n.IsScalar() && n.Scalar() == "auto") c.threads = 0;
        else c.threads = r.number<unsigned>(n, "threads", 1, 1024);
    }
    if (const auto& n = root["software"]) {
        bool off = false;
        if (n.IsNull() || (n.IsScalar() && YAML::convert<bool>::decode(n, off) && !off))
            c.software.clear();
        else c.software = r.text(n, "software");
        if (c.software.size() > 763) r.fail(n, "'software' must be under 128 characters");
    }
    if (const auto& n = root["listen"]) {
        if (!n.IsSequence()) r.fail(n, "'listen' must be a list of listeners");
        for (const auto& item : n) c.listen.push_back(parse_listener(r, item));
    } else {
        c.listen = config::default_listeners();
    }
    if (const auto& n = root["nat_discovery"]) {
        r.only_keys(n, "nat_discovery");
        if (n["alternate_address"] && !n["alternate_address"].IsNull())
            c.nat_discovery.alternate_address =
                r.ip(n["alternate_address"], "nat_discovery.alternate_address");
        if (n["alternate_port"] && !n["alternate_port"].IsNull())
            c.nat_discovery.alternate_port =
                r.number<std::uint16_t>(n["alternate_port"], "nat_discovery.alternate_port", 1, 65535);
    }
    if (const auto& n = root["tls"]) {
        r.only_keys(n, "tls");
        if (n["certificate"]) c.tls.certificate = r.text(n["certificate"], "tls.certificate");
        if (n["private_key"]) c.tls.private_key = r.text(n["private_key"], "tls.private_key");
    }
    if (const auto& n = root["turn"]) parse_turn(r, n, c.turn);
    if (const auto& n = root["limits"]) {
        r.only_keys(n, "limits");
        if (n["tcp_idle_timeout"])
            c.limits.tcp_idle_timeout = std::chrono::seconds(
                r.number<unsigned>(n["tcp_idle_timeout"], "limits.tcp_idle_timeout", 1, 86400));
        if (n["tls_handshake_timeout"])
            c.limits.tls_handshake_timeout = std::chrono::seconds(
                r.number<unsigned>(n["tls_handshake_timeout"], "limits.tls_handshake_timeout", 1, 600));
        if (n["max_tcp_connections"])
            c.limits.max_tcp_connections = r.number<unsigned>(n["max_tcp_connections"], "limits.max_tcp_connections", 1, 10000000);
        if (n["max_tcp_connections_per_ip"])
            c.limits.max_tcp_connections_per_ip =
                r.number<unsigned>(n["max_tcp_connections_per_ip"], "limits.max_tcp_connections_per_ip", 1, 10000000);
        if (n["ipv6_prefix_length"])
            c.limits.ipv6_prefix_length = r.number<unsigned>(n["ipv6_prefix_length"], "limits.ipv6_prefix_length", 32, 128);
        if (n["tcp_buffer_bytes"])
            c.limits.tcp_buffer_bytes = r.number<std::size_t>(n["tcp_buffer_bytes"], "limits.tcp_buffer_bytes", 70000, 1u << 30);
        if (n["allocations_per_user"])
            c.limits.allocations_per_user = r.number<unsigned>(n["allocations_per_user"], "limits.allocations_per_user", 0, 1000000);
        if (n["allocations_total"])
            c.limits.allocations_total = r.number<unsigned>(n["allocations_total"], "limits.allocations_total", 0, 10000000);
        if (n["permissions_per_allocation"])
            c.limits.permissions_per_allocation = r.number<unsigned>(n["permissions_per_allocation"], "limits.permissions_per_allocation", 1, 10000);
        if (n["channels_per_allocation"])
            c.limits.channels_per_allocation = r.number<unsigned>(n["channels_per_allocation"], "limits.channels_per_allocation", 1, 16384);
        if (n["unauthenticated_rate"])
            c.limits.unauthenticated_rate = r.number<unsigned>(n["unauthenticated_rate"], "limits.unauthenticated_rate", 0, 1000000);
        if (n["unauthenticated_burst"])
            c.limits.unauthenticated_burst = r.number<unsigned>(n["unauthenticated_burst"], "limits.unauthenticated_burst", 1, 1000000);
        if (n["allocations_per_ip"])
            c.limits.allocations_per_ip = r.number<unsigned>(n["allocations_per_ip"], "limits.allocations_per_ip", 0, 10000000);
        if (n["allocation_bytes_per_second"])
            c.limits.allocation_bytes_per_second = r.number<std::uint64_t>(
                n["allocation_bytes_per_second"], "limits.allocation_bytes_per_second", 0, 100'000'000'000ull);
        if (n["relay_bytes_per_second"])
            c.limits.relay_bytes_per_second = r.number<std::uint64_t>(
                n["relay_bytes_per_second"], "limits.relay_bytes_per_second", 0, 1'000'000'000'000ull);
        if (n["exempt_sources"]) {
            c.limits.exempt_sources.clear();
            if (!n["exempt_sources"].IsNull())
                c.limits.exempt_sources = parse_ranges(r, n["exempt_sources"], "limits.exempt_sources");
        }
    }
    if (const auto& n = root["log"]) {
        r.only_keys(n, "log");
        if (n["level"]) c.log.level = parse_level(r, n["level"]);
        if (n["format"]) {
            const auto f = r.text(n["format"], "log.format");
            if (f == "text") c.log.format = log_format::text;
            else if (f == "json") c.log.format = log_format::json;
            else r.fail(n["format"], fmt::format("'log.format' must be text or json, not '{}'", f));
        }
    }
    if (const auto& n = root["admin"]) {
        if (n.IsNull()) {
            c.admin.enabled = false;
        } else {
            r.only_keys(n, "admin");
            if (n["enabled"]) c.admin.enabled = r.boolean(n["enabled"], "admin.enabled");
            if (n["address"]) c.admin.address = r.ip(n["address"], "admin.address");
            if (n["port"]) c.admin.port = r.number<std::uint16_t>(n["port"], "admin.port", 1, 65535);
            if (n["per_user_metrics"]) c.admin.per_user_metrics = r.boolean(n["per_user_metrics"], "admin.per_user_metrics");
        }
    }
    if (const auto& n = root["batching"]) {
        r.only_keys(n, "batching");
        if (n["delay_us"])
            c.batching.delay = std::chrono::microseconds(r.number<unsigned>(n["delay_us"], "batching.delay_us", 0, 10000));
        if (n["above_pps"]) c.batching.above_pps = r.number<unsigned>(n["above_pps"], "batching.above_pps", 0, 100'000'000);
    }
    if (const auto& n = root["signaling"]; n && !n.IsNull()) {
        r.only_keys(n, "signaling");
        auto& s = c.signaling;
        s.enabled = true;
        if (n["address"]) s.address = r.ip(n["address"], "signaling.address");
        if (n["port"]) s.port = r.number<std::uint16_t>(n["port"], "signaling.port", 1, 65535);
        if (n["tls"]) s.tls = r.boolean(n["tls"], "signaling.tls");
        if (const auto& t = n["token_secrets"]; t && !t.IsNull()) {
            if (!t.IsSequence()) r.fail(t, "'signaling.token_secrets' must be a list");
            for (const auto& item : t) {
                s.token_secrets.push_back(r.text(item, "signaling.token_secrets"));
                if (s.token_secrets.back().size() < 16)
                    r.fail(item, "'signaling.token_secrets': a secret needs at least 16 characters");
            }
        }
        if (n["public_host"] && !n["public_host"].IsNull()) s.public_host = r.text(n["public_host"], "signaling.public_host");
        if (n["credential_lifetime"])
            s.credential_lifetime = std::chrono::seconds(
                r.number<unsigned>(n["credential_lifetime"], "signaling.credential_lifetime", 60, 86400 * 7));
        if (n["max_message"]) s.max_message = r.number<std::size_t>(n["max_message"], "signaling.max_message", 1024, 1u << 24);
        if (n["members_per_room"])
            s.members_per_room = r.number<unsigned>(n["members_per_room"], "signaling.members_per_room", 2, 10000);
        if (n["rooms"]) s.rooms = r.number<unsigned>(n["rooms"], "signaling.rooms", 1, 10000000);
        if (n["messages_per_second"])
            s.messages_per_second = r.number<unsigned>(n["messages_per_second"], "signaling.messages_per_second", 1, 100000);
        if (n["connections"]) s.connections = r.number<unsigned>(n["connections"], "signaling.connections", 1, 10000000);
        if (n["connections_per_ip"])
            s.connections_per_ip = r.number<unsigned>(n["connections_per_ip"], "signaling.connections_per_ip", 1, 10000000);
        if (n["idle_timeout"])
            s.idle_timeout = std::chrono::seconds(r.number<unsigned>(n["idle_timeout"], "signaling.idle_timeout", 5, 86400));
    }
    if (const auto& n = root["redis"]; n && !n.IsNull()) parse_redis(r, n, c);
    if (const auto& n = root["drain_timeout"])
        c.drain_timeout = std::chrono::seconds(r.number<unsigned>(n, "drain_timeout", 0, 86400));
    validate(r, root, c);
    return c;
}

} // namespace

std::optional<protocol::transport_address> parse_endpoint(std::string_view text, std::uint16_t port) {
    std::string_view host = text;
    if (text.starts_with("[")) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = text.substr(1, close - 1);
        text.remove_prefix(close + 1);
        if (!text.empty() && !text.starts_with(":")) return std::nullopt;
        if (!text.empty()) text.remove_prefix(1);
        else text = {};
    } else if (text.find(':') != std::string_view::npos && text.find(':') == text.rfind(':')) {
        host = text.substr(0, text.find(':'));
        text.remove_prefix(text.find(':') + 1);
    } else {
        text = {};
    }
    if (!text.empty()) {
        unsigned p = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
        if (ec != std::errc{} || end != text.data() + text.size() || p == 0 || p > 65535) return std::nullopt;
        port = static_cast<std::uint16_t>(p);
    }
    return protocol::transport_address::from(host, port);
}

std::vector<listen_config> config::default_listeners() {
    return {listen_config{*protocol::ip_address::parse("0.0.0.0")},
            listen_config{*protocol::ip_address::parse("::")}};
}

std::span<const std::string_view> config_keys() { return known_keys; }

std::string_view to_string(log_level l) {
    switch (l) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
    }
    return "info";
}

std::string expand_environment(const std::string& text, const std::string& name) {
    std::string out;
    out.reserve(text.size());
    std::size_t line = 1;
    bool comment_line = false;
    bool line_start = true;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (line_start && c != ' ' && c != '\t') {
            comment_line = c == '#';
            line_start = false;
        }
        if (c == '\n') {
            ++line;
            line_start = true;
            comment_line = false;
        }
        if (c != '$' || comment_line || i + 1 >= text.size() || text[i + 1] != '{') {
            out += c;
            continue;
        }
        const auto close = text.find('}', i + 2);
        const auto var = close == std::string::npos ? std::string() : text.substr(i + 2, close - i - 2);
        const bool valid = !var.empty() && !std::isdigit(static_cast<unsigned char>(var[0])) &&
                           std::all_of(var.begin(), var.end(), [](char v) {
                               return std::isalnum(static_cast<unsigned char>(v)) || v == '_';
                           });
        if (!valid)
            throw config_error(fmt::format("{}:{}: '${{' starts no environment variable such as ${{NODE_IP}}", name, line));
        const char* value = std::getenv(var.c_str());
        if (value == nullptr)
            throw config_error(fmt::format("{}:{}: the environment variable {} is not set", name, line, var));
        out += value;
        i = close;
    }
    return out;
}

config parse_config(const std::string& text, const std::string& name) {
    reader r{name};
    YAML::Node root;
    try {
        root = YAML::Load(expand_environment(text, name));
    } catch (const YAML::Exception& e) {
        throw config_error(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
    }
    try {
        return parse_root(r, root);
    } catch (const YAML::Exception& e) {
        throw config_error(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
    }
}

config load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw config_error(fmt::format("{}: cannot open the file", path));
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path);
}

unsigned worker_count(const config& c) {
    return c.threads != 0 ? c.threads : std::max(1u, std::thread::hardware_concurrency());
}

} // namespace ferry::server
