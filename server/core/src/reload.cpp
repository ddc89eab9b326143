#include "ferry/server/reload.hpp"

#include <fmt/format.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

namespace ferry::server {

std::shared_ptr<const turn_runtime> build_runtime(config& cfg) {
    const auto& t = cfg.turn;
    turn_settings s;
    s.max_lifetime = t.max_lifetime;
    for (const auto& r : t.relay_addresses) s.relay_addresses.push_back({r.address, r.advertised});
    s.port_min = t.relay_port_min;
    s.port_max = t.relay_port_max;
    s.allocations_per_user = cfg.limits.allocations_per_user;
    s.allocations_total = cfg.limits.allocations_total;
    s.permissions_per_allocation = cfg.limits.permissions_per_allocation;
    s.channels_per_allocation = cfg.limits.channels_per_allocation;
    const auto& l = cfg.limits;
    s.limits.unauthenticated_rate = l.unauthenticated_rate;
    s.limits.unauthenticated_burst = l.unauthenticated_burst;
    s.limits.allocations_per_ip = l.allocations_per_ip;
    s.limits.allocation_bytes_per_second = static_cast<double>(l.allocation_bytes_per_second);
    // Each worker keeps its own share of the total: no shared counter on the packet path.
    s.limits.relay_bytes_per_second = static_cast<double>(l.relay_bytes_per_second) / worker_count(cfg);
    s.limits.ipv6_prefix = l.ipv6_prefix_length;
    s.limits.exempt = l.exempt_sources;
    s.alternate_servers = t.alternate_servers;
    s.alternate_domain = t.alternate_domain;
    auto rt = std::make_shared<turn_runtime>(
        turn_runtime{s, auth::credential_store(t.realm), peer_policy(t.allowed_peer_ranges, t.denied_peer_ranges)});
    for (auto& u : cfg.turn.users) {
        if (u.key) {
            auth::key k;
            std::copy(u.key->begin(), u.key->end(), k.bytes.begin());
            k.size = 16;
            rt->credentials.add_user_key(u.name, k);
        } else {
            rt->credentials.add_user(u.name, u.password);
        }
        // Keys only from here on: the password leaves memory.
        OPENSSL_cleanse(u.password.data(), u.password.size());
        u.password.clear();
    }
    for (const auto& secret : t.static_auth_secrets) rt->credentials.add_rest_secret(secret);
    return rt;
}

std::shared_ptr<const turn_runtime> with_redis_users(const turn_runtime& base,
                                                     const std::map<std::string, redis_user>& users,
                                                     const std::vector<std::string>& secrets, std::size_t* left_out) {
    auto rt = std::make_shared<turn_runtime>(base);
    for (const auto& [name, u] : users) {
        if (base.credentials.has_user(name)) continue;
        if (u.key) {
            auth::key k;
            std::copy(u.key->begin(), u.key->end(), k.bytes.begin());
            k.size = 16;
            rt->credentials.add_user_key(name, k);
        } else if (u.from_password) {
            rt->credentials.add_user_keys(name, *u.from_password);
        }
    }
    std::size_t skipped = 0;
    for (const auto& s : secrets) {
        if (rt->credentials.secret_count() == auth::credential_store::max_secrets) ++skipped;
        else rt->credentials.add_rest_secret(s);
    }
    if (left_out != nullptr) *left_out = skipped;
    return rt;
}

auth::nonce_manager::secret nonce_secret_of(const turn_config& t) {
    if (t.nonce_secret.empty()) return auth::random_secret();
    auth::nonce_manager::secret s{};
    ::SHA256(reinterpret_cast<const unsigned char*>(t.nonce_secret.data()), t.nonce_secret.size(), s.data());
    return s;
}

namespace {

std::string describe(const std::vector<listen_config>& ls) {
    std::string out;
    for (const auto& l : ls)
        out += fmt::format("{}:{}:{}{}{}{};", l.address.to_string(), l.port, l.udp, l.tcp, l.tls, l.dtls);
    return out;
}

std::string describe(const std::vector<relay_address_config>& rs) {
    std::string out;
    for (const auto& r : rs) out += r.address.to_string() + "=" + r.advertised.to_string() + ";";
    return out;
}

} // namespace

std::vector<std::string> restart_needed(const config& a, const config& b) {
    std::vector<std::string> keys;
    auto check = [&](bool same, const char* key) {
        if (!same) keys.emplace_back(key);
    };
    check(a.threads == b.threads, "threads");
    check(a.batching.delay == b.batching.delay && a.batching.above_pps == b.batching.above_pps, "batching");
    check(a.software == b.software, "software");
    check(describe(a.listen) == describe(b.listen), "listen");
    check(a.nat_discovery.alternate_address == b.nat_discovery.alternate_address &&
              a.nat_discovery.alternate_port == b.nat_discovery.alternate_port,
          "nat_discovery");
    check(a.turn.enabled() || !b.turn.enabled(), "turn (users or secrets where there were none: TURN starts)");
    check(describe(a.turn.relay_addresses) == describe(b.turn.relay_addresses), "turn.relay_addresses");
    check(a.turn.relay_port_min == b.turn.relay_port_min && a.turn.relay_port_max == b.turn.relay_port_max,
          "turn.relay_port_min/relay_port_max");
    check(a.turn.nonce_lifetime == b.turn.nonce_lifetime, "turn.nonce_lifetime");
    check(a.turn.nonce_secret == b.turn.nonce_secret, "turn.nonce_secret");
    check(a.limits.ipv6_prefix_length == b.limits.ipv6_prefix_length, "limits.ipv6_prefix_length");
    const auto& ra = a.redis;
    const auto& rb = b.redis;
    check(ra.enabled == rb.enabled && ra.host == rb.host && ra.port == rb.port && ra.unix_socket == rb.unix_socket &&
              ra.username == rb.username && ra.password == rb.password && ra.database == rb.database &&
              ra.key_prefix == rb.key_prefix && ra.tls == rb.tls && ra.tls_ca == rb.tls_ca &&
              ra.tls_server_name == rb.tls_server_name && ra.lease == rb.lease &&
              ra.configure_notifications == rb.configure_notifications &&
              ra.resync_interval == rb.resync_interval && ra.instance == rb.instance && ra.advertise == rb.advertise,
          "redis");
    check(!ra.enabled || a.turn.realm == b.turn.realm, "turn.realm (with redis: its keys are the realm's)");
    check(a.admin.enabled == b.admin.enabled && a.admin.address == b.admin.address && a.admin.port == b.admin.port,
          "admin");
    const auto& sa = a.signaling;
    const auto& sb = b.signaling;
    check(sa.enabled == sb.enabled && sa.address == sb.address && sa.port == sb.port && sa.tls == sb.tls &&
              sa.token_secrets == sb.token_secrets && sa.public_host == sb.public_host &&
              sa.credential_lifetime == sb.credential_lifetime && sa.max_message == sb.max_message &&
              sa.members_per_room == sb.members_per_room && sa.rooms == sb.rooms &&
              sa.messages_per_second == sb.messages_per_second && sa.connections == sb.connections &&
              sa.connections_per_ip == sb.connections_per_ip && sa.idle_timeout == sb.idle_timeout,
          "signaling");
    return keys;
}

} // namespace ferry::server
