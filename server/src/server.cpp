#include "ferry/server/server.hpp"

#include "ferry/server/log.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/server/tls_context.hpp"
#include "ferry/server/worker.hpp"

#include "ferry/server/asio.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <openssl/crypto.h>

namespace ferry::server {
namespace {

std::unique_ptr<turn_context> make_turn_context(config& cfg) {
    if (!cfg.turn.enabled()) return nullptr;
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
    auto ctx = std::unique_ptr<turn_context>(new turn_context{
        s, auth::credential_store(t.realm), auth::nonce_manager(t.nonce_lifetime, auth::random_secret()),
        peer_policy(t.allowed_peer_ranges, t.denied_peer_ranges), {}, {}});
    for (auto& u : cfg.turn.users) {
        if (u.key) {
            auth::key k;
            std::copy(u.key->begin(), u.key->end(), k.bytes.begin());
            k.size = 16;
            ctx->credentials.add_user_key(u.name, k);
        } else {
            ctx->credentials.add_user(u.name, u.password);
        }
        // Keys only from here on: the password leaves memory.
        OPENSSL_cleanse(u.password.data(), u.password.size());
        u.password.clear();
    }
    for (const auto& secret : t.static_auth_secrets) ctx->credentials.add_rest_secret(secret);
    return ctx;
}

} // namespace

int run(config cfg) {
    const unsigned threads = cfg.threads != 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());

    auto turn = make_turn_context(cfg);
    connection_limiter connections(cfg.limits.max_tcp_connections, cfg.limits.max_tcp_connections_per_ip,
                                   cfg.limits.ipv6_prefix_length);
    std::unique_ptr<tls_context_holder> tls;
    const bool any_tls = std::any_of(cfg.listen.begin(), cfg.listen.end(), [](const listen_config& l) { return l.tls; });
    const bool any_dtls = std::any_of(cfg.listen.begin(), cfg.listen.end(), [](const listen_config& l) { return l.dtls; });
    if (any_tls || any_dtls) // throws, naming the file, if it cannot load
        tls = std::make_unique<tls_context_holder>(cfg.tls, any_tls, any_dtls);
    std::vector<std::unique_ptr<worker>> workers;
    workers.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<worker>(cfg, i, connections, turn.get(), tls.get()));

    std::string where;
    for (const auto& d : workers.front()->describe()) where += (where.empty() ? "" : ", ") + d;
    log::info("ferry {} started: {} worker thread{}; listening on {}", FERRY_VERSION, threads,
              threads == 1 ? "" : "s", where);

    if (turn) {
        log::info("TURN on: realm '{}', {} user{}, {} REST secret{}, relay ports {}-{}", cfg.turn.realm,
                  cfg.turn.users.size(), cfg.turn.users.size() == 1 ? "" : "s", cfg.turn.static_auth_secrets.size(),
                  cfg.turn.static_auth_secrets.size() == 1 ? "" : "s", cfg.turn.relay_port_min, cfg.turn.relay_port_max);
    } else {
        log::info("TURN off: no turn.users or turn.static_auth_secrets configured (STUN only)");
    }

    asio::io_context signals_io(1);
    asio::signal_set signals(signals_io, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const std::error_code&, int)> on_signal = [&](const std::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            // New TLS and DTLS sessions get the reloaded certificate; established ones keep theirs.
            if (tls) {
                const auto error = tls->reload();
                if (error.empty()) log::info("SIGHUP: TLS certificate reloaded from {}", cfg.tls.certificate);
                else log::error("SIGHUP: TLS certificate not reloaded, keeping the old one: {}", error);
            } else {
                log::info("SIGHUP: nothing to reload");
            }
            signals.async_wait(on_signal);
            return;
        }
        if (requested_exit() != 0) log::error("stopping after an internal error");
        else log::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        for (auto& w : workers) w->stop();
    };
    signals.async_wait(on_signal);

    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (auto& w : workers) pool.emplace_back([&w] { w->run(); });
    signals_io.run();
    for (auto& t : pool) t.join();

    handler_stats total;
    for (const auto& w : workers) {
        total.requests += w->stats().requests;
        total.dropped += w->stats().dropped;
        total.errors_sent += w->stats().errors_sent;
    }
    log::info("stopped: {} requests answered, {} error responses, {} messages dropped",
              total.requests, total.errors_sent, total.dropped);
    for (auto& w : workers) w->drop_pending(); // every worker's, before any worker goes
    workers.clear(); // ends every allocation (and logs it) before the shared TURN state goes
    return requested_exit();
}

} // namespace ferry::server
