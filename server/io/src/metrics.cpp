#include "ferry/server/metrics.hpp"

#include "ferry/admin/exposition.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <map>

namespace ferry::server {
namespace {

constexpr std::array<std::string_view, 4> transports = {"udp", "tcp", "tls", "dtls"};
constexpr std::array<std::string_view, 2> families = {"ipv4", "ipv6"};
constexpr std::array<std::string_view, 8> methods = {"binding",      "allocate", "refresh",        "create_permission",
                                                     "channel_bind", "connect",  "connection_bind", "other"};

std::uint64_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::int64_t open_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    std::int64_t n = 0;
    while (const auto* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1; // the directory's own descriptor
}

std::string code_label(std::uint16_t code) {
    if (code == 0) return "none";
    if (code == 999) return "other";
    return std::to_string(code);
}

} // namespace

std::string render_metrics(std::span<const worker_snapshot> workers, const process_facts& facts, bool per_user) {
    worker_snapshot t; // the sum
    std::map<std::string, turn_gauges::user_usage> users;
    for (const auto& w : workers) {
        t.handler.requests += w.handler.requests;
        t.handler.dropped += w.handler.dropped;
        t.send_failures += w.send_failures;
        t.batched_passes += w.batched_passes;
        for (std::size_t m = 0; m < counted_methods.size(); ++m)
            for (std::size_t c = 0; c < counted_codes.size(); ++c) t.handler.responses[m][c] += w.handler.responses[m][c];
        const auto& s = w.turn;
        t.turn.allocations_created += s.allocations_created;
        t.turn.allocations_expired += s.allocations_expired;
        t.turn.peer_refused += s.peer_refused;
        t.turn.relayed_to_peer += s.relayed_to_peer;
        t.turn.relayed_to_client += s.relayed_to_client;
        t.turn.relayed_to_peer_bytes += s.relayed_to_peer_bytes;
        t.turn.relayed_to_client_bytes += s.relayed_to_client_bytes;
        t.turn.dropped_no_permission += s.dropped_no_permission;
        t.turn.amplification_dropped += s.amplification_dropped;
        t.turn.auth_unknown_user += s.auth_unknown_user;
        t.turn.auth_bad_integrity += s.auth_bad_integrity;
        t.turn.auth_expired += s.auth_expired;
        t.turn.auth_stale_nonce += s.auth_stale_nonce;
        t.turn.quota_refused += s.quota_refused;
        t.turn.redirected += s.redirected;
        t.turn.revoked += s.revoked;
        t.turn.quota_ip_refused += s.quota_ip_refused;
        t.turn.unauthenticated_limited += s.unauthenticated_limited;
        t.turn.bandwidth_dropped += s.bandwidth_dropped;
        t.turn.bandwidth_dropped_bytes += s.bandwidth_dropped_bytes;
        t.turn.tcp_links += s.tcp_links;
        for (std::size_t i = 0; i < 4; ++i)
            for (std::size_t f = 0; f < 2; ++f) {
                t.turn.created_by[i][f] += s.created_by[i][f];
                t.gauges.allocations[i][f] += w.gauges.allocations[i][f];
            }
        t.gauges.permissions += w.gauges.permissions;
        t.gauges.channels += w.gauges.channels;
        t.gauges.tcp_links += w.gauges.tcp_links;
        for (std::size_t k = 0; k < 3; ++k) {
            t.connections.open[k] += w.connections.open[k];
            t.connections.refused[k] += w.connections.refused[k];
        }
        if (per_user)
            for (const auto& [name, u] : w.gauges.users) {
                auto& sum = users[name];
                sum.allocations += u.allocations;
                sum.to_peer_bytes += u.to_peer_bytes;
                sum.to_client_bytes += u.to_client_bytes;
            }
    }

    admin::exposition e;
    e.family("ferry_build_info", "gauge", "ferry's version; always 1");
    e.sample("ferry_build_info", {{"version", FERRY_VERSION}}, std::uint64_t{1});
    e.family("ferry_start_time_seconds", "gauge", "When the process started, unix seconds");
    e.sample("ferry_start_time_seconds", {}, facts.start_time);
    e.family("ferry_worker_threads", "gauge", "Worker threads");
    e.sample("ferry_worker_threads", {}, std::uint64_t{facts.threads});
    e.family("ferry_ready", "gauge", "1 while listeners are bound and ferry is not draining");
    e.sample("ferry_ready", {}, std::uint64_t{facts.ready ? 1u : 0u});
    e.family("ferry_draining", "gauge", "1 while draining after SIGTERM");
    e.sample("ferry_draining", {}, std::uint64_t{facts.draining ? 1u : 0u});
    e.family("ferry_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result");
    e.sample("ferry_config_reloads_total", {{"result", "applied"}}, facts.reloads);
    e.sample("ferry_config_reloads_total", {{"result", "refused"}}, facts.reloads_failed);
    if (facts.redis) {
        e.family("ferry_redis_connected", "gauge", "1 while both Redis connections are up");
        e.sample("ferry_redis_connected", {}, std::uint64_t{facts.redis_connected ? 1u : 0u});
        e.family("ferry_redis_users", "gauge", "Users read from Redis (as last read; kept while Redis is away)");
        e.sample("ferry_redis_users", {}, facts.redis_users);
        e.family("ferry_redis_secrets", "gauge", "TURN REST secrets read from Redis");
        e.sample("ferry_redis_secrets", {}, facts.redis_secrets);
        e.family("ferry_redis_outages_total", "counter", "Times the Redis connection was lost");
        e.sample("ferry_redis_outages_total", {}, facts.redis_outages);
        e.family("ferry_fleet_instances", "gauge", "Other live instances of the fleet, as this one knows them");
        e.sample("ferry_fleet_instances", {}, facts.fleet_instances);
    }
    e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes");
    e.sample("process_resident_memory_bytes", {}, rss_bytes());
    e.family("process_open_fds", "gauge", "Open file descriptors");
    e.sample("process_open_fds", {}, open_fds());

    e.family("ferry_allocations", "gauge", "TURN allocations now, by client transport and relay address family");
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t f = 0; f < 2; ++f)
            e.sample("ferry_allocations", {{"transport", transports[i]}, {"family", families[f]}},
                     t.gauges.allocations[i][f]);
    e.family("ferry_allocations_created_total", "counter", "TURN allocations made, by client transport and relay family");
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t f = 0; f < 2; ++f)
            e.sample("ferry_allocations_created_total", {{"transport", transports[i]}, {"family", families[f]}},
                     t.turn.created_by[i][f]);
    e.family("ferry_allocations_expired_total", "counter", "TURN allocations that expired unrefreshed");
    e.sample("ferry_allocations_expired_total", {}, t.turn.allocations_expired);
    e.family("ferry_allocations_revoked_total", "counter", "TURN allocations ended by a reload that removed their credential");
    e.sample("ferry_allocations_revoked_total", {}, t.turn.revoked);
    e.family("ferry_allocations_redirected_total", "counter", "Allocate requests answered 300 Try Alternate");
    e.sample("ferry_allocations_redirected_total", {}, t.turn.redirected);
    e.family("ferry_permissions", "gauge", "TURN permissions now");
    e.sample("ferry_permissions", {}, t.gauges.permissions);
    e.family("ferry_channels", "gauge", "TURN channel bindings now");
    e.sample("ferry_channels", {}, t.gauges.channels);
    e.family("ferry_tcp_peer_connections", "gauge", "RFC 6062 peer connections now");
    e.sample("ferry_tcp_peer_connections", {}, t.gauges.tcp_links);

    e.family("ferry_relayed_packets_total", "counter", "Packets relayed, by direction");
    e.sample("ferry_relayed_packets_total", {{"direction", "to_peer"}}, t.turn.relayed_to_peer);
    e.sample("ferry_relayed_packets_total", {{"direction", "to_client"}}, t.turn.relayed_to_client);
    e.family("ferry_relayed_bytes_total", "counter", "Payload bytes relayed, by direction");
    e.sample("ferry_relayed_bytes_total", {{"direction", "to_peer"}}, t.turn.relayed_to_peer_bytes);
    e.sample("ferry_relayed_bytes_total", {{"direction", "to_client"}}, t.turn.relayed_to_client_bytes);

    e.family("ferry_requests_total", "counter", "STUN and TURN requests, by method and result code (none: unanswered)");
    for (std::size_t m = 0; m < counted_methods.size(); ++m)
        for (std::size_t c = 0; c < counted_codes.size(); ++c)
            if (t.handler.responses[m][c] != 0)
                e.sample("ferry_requests_total", {{"method", methods[m]}, {"code", code_label(counted_codes[c])}},
                         t.handler.responses[m][c]);
    e.family("ferry_auth_failures_total", "counter", "TURN requests that failed authentication, by reason");
    e.sample("ferry_auth_failures_total", {{"reason", "unknown_user"}}, t.turn.auth_unknown_user);
    e.sample("ferry_auth_failures_total", {{"reason", "bad_integrity"}}, t.turn.auth_bad_integrity);
    e.sample("ferry_auth_failures_total", {{"reason", "stale_nonce"}}, t.turn.auth_stale_nonce);
    e.sample("ferry_auth_failures_total", {{"reason", "expired_rest_credential"}}, t.turn.auth_expired);
    e.family("ferry_dropped_total", "counter",
             "Packets and requests dropped or refused, by reason: no_permission (relayed data without a "
             "permission), peer_refused (peer policy, 403), quota (486/508 by a limit), malformed (not STUN, "
             "bad FINGERPRINT, stray responses), amplification (unauthenticated requests too small to answer), "
             "send_failed (UDP datagrams the kernel refused: a full socket buffer, an unreachable destination), "
             "quota_ip (486 by limits.allocations_per_ip, also counted in quota), unauthenticated_rate (requests "
             "left unanswered: their source spent limits.unauthenticated_rate), bandwidth (relayed packets over "
             "a bandwidth cap)");
    e.sample("ferry_dropped_total", {{"reason", "no_permission"}}, t.turn.dropped_no_permission);
    e.sample("ferry_dropped_total", {{"reason", "peer_refused"}}, t.turn.peer_refused);
    e.sample("ferry_dropped_total", {{"reason", "quota"}}, t.turn.quota_refused);
    e.sample("ferry_dropped_total", {{"reason", "malformed"}}, t.handler.dropped);
    e.sample("ferry_dropped_total", {{"reason", "amplification"}}, t.turn.amplification_dropped);
    e.sample("ferry_dropped_total", {{"reason", "send_failed"}}, t.send_failures);
    e.sample("ferry_dropped_total", {{"reason", "quota_ip"}}, t.turn.quota_ip_refused);
    e.sample("ferry_dropped_total", {{"reason", "unauthenticated_rate"}}, t.turn.unauthenticated_limited);
    e.sample("ferry_dropped_total", {{"reason", "bandwidth"}}, t.turn.bandwidth_dropped);
    e.family("ferry_dropped_bytes_total", "counter", "Relayed bytes dropped by a bandwidth cap");
    e.sample("ferry_dropped_bytes_total", {{"reason", "bandwidth"}}, t.turn.bandwidth_dropped_bytes);

    e.family("ferry_batched_passes_total", "counter",
             "Passes over the sockets that a worker started after the batching delay, because it relayed more "
             "than batching.above_pps packets a second (0 at light load)");
    e.sample("ferry_batched_passes_total", {}, t.batched_passes);

    constexpr std::array<std::string_view, 3> kinds = {"tcp", "tls", "dtls"};
    e.family("ferry_connections", "gauge", "Client connections now (TCP, TLS, DTLS sessions)");
    for (std::size_t k = 0; k < 3; ++k) e.sample("ferry_connections", {{"transport", kinds[k]}}, t.connections.open[k]);
    e.family("ferry_connections_refused_total", "counter", "Client connections refused by the connection limits");
    for (std::size_t k = 0; k < 3; ++k)
        e.sample("ferry_connections_refused_total", {{"transport", kinds[k]}}, t.connections.refused[k]);

    if (per_user) {
        e.family("ferry_user_allocations", "gauge", "TURN allocations now, by user (admin.per_user_metrics)");
        for (const auto& [name, u] : users) e.sample("ferry_user_allocations", {{"user", name}}, u.allocations);
        e.family("ferry_user_relayed_bytes", "gauge",
                 "Payload bytes relayed by the user's current allocations, by direction (admin.per_user_metrics)");
        for (const auto& [name, u] : users) {
            e.sample("ferry_user_relayed_bytes", {{"user", name}, {"direction", "to_peer"}}, u.to_peer_bytes);
            e.sample("ferry_user_relayed_bytes", {{"user", name}, {"direction", "to_client"}}, u.to_client_bytes);
        }
    }
    return e.take();
}

} // namespace ferry::server
