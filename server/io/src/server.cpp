#include "ferry/server/server.hpp"

#include "ferry/admin/http.hpp"
#include "ferry/server/log.hpp"
#include "ferry/server/metrics.hpp"
#include "ferry/server/redis_sync.hpp"
#include "ferry/server/reload.hpp"
#include "ferry/server/signaling_server.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/server/systemd.hpp"
#include "ferry/server/tls_context.hpp"
#include "ferry/server/worker.hpp"

#include "ferry/server/asio.hpp"

#include <algorithm>
#include <atomic>
#include <malloc.h>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace ferry::server {
namespace {

constexpr auto drain_poll = std::chrono::milliseconds(200);

/// The main thread: signals (reload, drain, stop), the admin endpoint, systemd, and the
/// workers it started. Everything here runs on `io_`; workers are reached through post().
class process {
public:
    process(config cfg, std::string path) : running_(std::move(cfg)), path_(std::move(path)) {}

    int run();

private:
    void on_signal(const std::error_code& ec, int sig);
    void reload();
    void start_drain();
    void drain_tick();
    void stop_now(end_reason why);
    void watchdog_tick();
    void trim_tick();
    /// Redis's users changed: the file's runtime with them added goes to every worker.
    void apply_redis_users();
    /// Publishes this instance's load to the fleet (every third of the lease).
    asio::awaitable<void> fleet_loop();
    instance_load load_now(double packets_per_second) const;
    std::string status() const;
    asio::awaitable<admin::http_response> serve_admin(admin::http_request req);
    /// Every worker's snapshot, or nullopt when one has not answered within 2 s.
    asio::awaitable<std::optional<std::vector<worker_snapshot>>> gather(bool per_user);

    config running_;
    std::string path_;
    asio::io_context io_{1};
    asio::signal_set signals_{io_, SIGINT, SIGTERM, SIGHUP};
    asio::steady_timer drain_timer_{io_};
    asio::steady_timer watchdog_timer_{io_};
    asio::steady_timer trim_timer_{io_};
    std::chrono::steady_clock::time_point drain_deadline_;
    std::optional<std::chrono::microseconds> watchdog_;
    std::shared_ptr<std::atomic<unsigned>> watchdog_acks_ = std::make_shared<std::atomic<unsigned>>(0);
    std::unique_ptr<turn_context> turn_;
    std::unique_ptr<connection_limiter> connections_;
    std::unique_ptr<tls_context_holder> tls_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::unique_ptr<admin::http_server> admin_;
    std::unique_ptr<signaling_server> signaling_;
    std::shared_ptr<const turn_runtime> file_runtime_; ///< the file's users and secrets, before Redis's
    std::unique_ptr<fleet_view> fleet_;
    std::unique_ptr<redis_sync> redis_;
    std::vector<protocol::transport_address> advertise_;
    double last_pps_ = 0;
    asio::steady_timer fleet_timer_{io_};
    std::size_t secrets_left_out_ = 0;
    bool first_ping_ = true;
    bool draining_ = false;
    bool stopping_ = false;
    end_reason end_ = end_reason::shutdown;
    std::uint64_t reloads_ = 0;
    std::uint64_t reloads_failed_ = 0;
    double start_time_ = 0;
};

int process::run() {
    auto& cfg = running_;
    start_time_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const unsigned threads = worker_count(cfg);

    if (cfg.turn.enabled()) {
        file_runtime_ = build_runtime(cfg); // wipes the passwords
        turn_ = std::unique_ptr<turn_context>(new turn_context{
            file_runtime_, auth::nonce_manager(cfg.turn.nonce_lifetime, nonce_secret_of(cfg.turn)), {}, {}});
    }
    if (turn_ && cfg.redis.enabled) {
        fleet_ = std::make_unique<fleet_view>();
        try {
            redis_ = std::make_unique<redis_sync>(io_, cfg, turn_->shared, *fleet_, [this] { apply_redis_users(); });
        } catch (const std::system_error& e) {
            throw std::runtime_error(fmt::format("redis.tls_ca {}: {}", cfg.redis.tls_ca, e.what()));
        }
        // Set before any worker runs; redis_ outlives the workers (reset after them below).
        turn_->shared.join_fleet(fleet_.get(), [r = redis_.get()](const std::string& user) { r->user_changed(user); });
        advertise_ = cfg.redis.advertise.empty() ? default_advertise(cfg) : cfg.redis.advertise;
    }
    connections_ = std::make_unique<connection_limiter>(cfg.limits.max_tcp_connections,
                                                        cfg.limits.max_tcp_connections_per_ip,
                                                        cfg.limits.ipv6_prefix_length);
    const bool any_tls = std::any_of(cfg.listen.begin(), cfg.listen.end(), [](const listen_config& l) { return l.tls; });
    const bool any_dtls = std::any_of(cfg.listen.begin(), cfg.listen.end(), [](const listen_config& l) { return l.dtls; });
    const bool signaling_tls = cfg.signaling.enabled && cfg.signaling.tls;
    if (any_tls || any_dtls || signaling_tls) // throws, naming the file, if it cannot load
        tls_ = std::make_unique<tls_context_holder>(cfg.tls, any_tls || signaling_tls, any_dtls);
    workers_.reserve(threads);
    for (unsigned i = 0; i < threads; ++i)
        workers_.push_back(std::make_unique<worker>(cfg, i, *connections_, turn_.get(), tls_.get()));

    std::string where;
    for (const auto& d : workers_.front()->describe()) where += (where.empty() ? "" : ", ") + d;
    if (cfg.admin.enabled) {
        const asio::ip::tcp::endpoint at(asio::ip::make_address(cfg.admin.address.to_string()), cfg.admin.port);
        try {
            admin_ = std::make_unique<admin::http_server>(
                io_.get_executor(), at, [this](admin::http_request r) { return serve_admin(std::move(r)); },
                [](const std::string& what) { log::warn("{}", what); });
        } catch (const std::system_error& e) {
            throw std::runtime_error(fmt::format("admin endpoint {}:{}: {}", cfg.admin.address, cfg.admin.port,
                                                 e.code().message()));
        }
        admin_->start();
        where += fmt::format("; admin http://{}/metrics", protocol::transport_address{cfg.admin.address, cfg.admin.port});
    }
    if (cfg.signaling.enabled) {
        const auto& s = cfg.signaling;
        try {
            signaling_ = std::make_unique<signaling_server>(io_, cfg, signaling_tls ? tls_->current() : nullptr);
        } catch (const std::system_error& e) {
            throw std::runtime_error(fmt::format("signaling {}: {}", protocol::transport_address{s.address, s.port},
                                                 e.code().message()));
        }
        signaling_->start();
        where += fmt::format("; signaling {}://{}/ws", s.tls ? "wss" : "ws", protocol::transport_address{s.address, s.port});
    }
    log::info("ferry {} started: {} worker thread{}; listening on {}", FERRY_VERSION, threads,
              threads == 1 ? "" : "s", where);
    if (turn_) {
        log::info("TURN on: realm '{}', {} user{}, {} REST secret{}, relay ports {}-{}", cfg.turn.realm,
                  cfg.turn.users.size(), cfg.turn.users.size() == 1 ? "" : "s", cfg.turn.static_auth_secrets.size(),
                  cfg.turn.static_auth_secrets.size() == 1 ? "" : "s", cfg.turn.relay_port_min, cfg.turn.relay_port_max);
    } else {
        log::info("TURN off: no turn.users or turn.static_auth_secrets configured (STUN only)");
    }

    if (redis_) {
        std::string to;
        for (const auto& a : advertise_) {
            if (!to.empty()) to += ", ";
            to += a.to_string();
        }
        log::info("fleet: instance '{}', lease {} s; other instances send clients to {}", redis_->instance(),
                  cfg.redis.lease.count(), to.empty() ? "none of its addresses (redis.advertise is empty)" : to);
        redis_->start();
        spawn(io_.get_executor(), "fleet load", [this] { return fleet_loop(); }, [] {});
    }

    signals_.async_wait([this](const std::error_code& ec, int sig) { on_signal(ec, sig); });
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (auto& w : workers_) pool.emplace_back([&w] { w->run(); });

    systemd::notify("READY=1\nSTATUS=" + status());
    watchdog_ = systemd::watchdog_interval();
    watchdog_tick();
    trim_tick();

    io_.run();
    for (auto& t : pool) t.join();

    handler_stats total;
    for (const auto& w : workers_) {
        total.requests += w->stats().requests;
        total.dropped += w->stats().dropped;
        total.errors_sent += w->stats().errors_sent;
    }
    log::info("stopped: {} requests answered, {} error responses, {} messages dropped", total.requests,
              total.errors_sent, total.dropped);
    for (auto& w : workers_) w->drop_pending(); // every worker's, before any worker goes
    for (auto& w : workers_) w->end_allocations(end_); // logged, each with why it ended
    workers_.clear(); // before the shared TURN state goes
    if (redis_) {
        // The fleet hears this instance leave now rather than when its lease runs out.
        redis_->leave();
        io_.restart();
        io_.run_for(std::chrono::milliseconds(300));
        redis_.reset();
    }
    admin_.reset();
    return requested_exit();
}

void process::on_signal(const std::error_code& ec, int sig) {
    if (ec) return;
    signals_.async_wait([this](const std::error_code& e, int s) { on_signal(e, s); });
    if (sig == SIGHUP) {
        reload();
        return;
    }
    if (requested_exit() != 0) {
        log::error("stopping after an internal error");
        stop_now(end_reason::shutdown);
    } else if (sig == SIGTERM && !draining_) {
        start_drain();
    } else {
        log::info("received {}, stopping now", sig == SIGINT ? "SIGINT" : "a second SIGTERM");
        stop_now(draining_ ? end_reason::drained : end_reason::shutdown);
    }
}

void process::reload() {
    systemd::notify_reloading();
    if (path_.empty()) {
        log::info("SIGHUP: no configuration file to reload (running on the built-in defaults)");
        systemd::notify("READY=1");
        return;
    }
    config next;
    try {
        next = load_config(path_);
    } catch (const config_error& e) {
        ++reloads_failed_;
        log::error("reload refused, the running configuration stays: {}", e.what());
        systemd::notify("READY=1\nSTATUS=reload refused: " + std::string(e.what()));
        return;
    }
    for (const auto& key : restart_needed(running_, next))
        log::warn("reload: '{}' changed; it takes effect after a restart (the running value stays)", key);
    // What only a restart can change keeps its running value, here and in later comparisons.
    next.threads = running_.threads;
    next.software = running_.software;
    next.listen = running_.listen;
    next.nat_discovery = running_.nat_discovery;
    next.turn.relay_addresses = running_.turn.relay_addresses;
    next.turn.relay_port_min = running_.turn.relay_port_min;
    next.turn.relay_port_max = running_.turn.relay_port_max;
    next.turn.nonce_lifetime = running_.turn.nonce_lifetime;
    next.turn.nonce_secret = running_.turn.nonce_secret;
    next.limits.ipv6_prefix_length = running_.limits.ipv6_prefix_length;
    next.admin.enabled = running_.admin.enabled;
    next.admin.address = running_.admin.address;
    next.admin.port = running_.admin.port;
    next.redis = running_.redis;
    next.turn.from_redis = running_.turn.from_redis;
    if (running_.redis.enabled) next.turn.realm = running_.turn.realm;

    log::set_level(next.log.level);
    log::set_format(next.log.format);
    connections_->set_limits(next.limits.max_tcp_connections, next.limits.max_tcp_connections_per_ip);
    if (tls_) {
        const auto error = tls_->reload(&next.tls);
        if (error.empty()) log::info("reload: TLS certificate loaded from {}", next.tls.certificate);
        else log::error("reload: TLS certificate not loaded, keeping the old one: {}", error);
    }
    const auto users = next.turn.users.size();
    const auto secrets = next.turn.static_auth_secrets.size();
    // With TURN running, a file without any user or secret left revokes every allocation (and
    // answers every later request 401); TURN itself starts only with a restart.
    std::shared_ptr<const turn_runtime> runtime;
    if (turn_) {
        file_runtime_ = build_runtime(next);
        runtime = redis_ ? with_redis_users(*file_runtime_, redis_->users(), redis_->secrets()) : file_runtime_;
    } else {
        next.turn = running_.turn;
    }
    for (auto& w : workers_) {
        worker* wp = w.get();
        wp->post([wp, runtime, limits = next.limits] { wp->reconfigure(runtime, limits); });
    }
    running_ = std::move(next);
    ++reloads_;
    log::info("reload: applied {}: realm '{}', {} user{}, {} REST secret{}, log level {}", path_, running_.turn.realm,
              users, users == 1 ? "" : "s", secrets, secrets == 1 ? "" : "s", to_string(running_.log.level));
    systemd::notify("READY=1\nSTATUS=" + status());
}

void process::start_drain() {
    draining_ = true;
    systemd::notify("STOPPING=1");
    const auto held = turn_ ? turn_->shared.total() : 0;
    if (held == 0) {
        log::info("received SIGTERM, stopping: no allocations to drain");
        stop_now(end_reason::drained);
        return;
    }
    if (running_.drain_timeout.count() == 0) {
        log::info("received SIGTERM, stopping now (drain_timeout 0): ending {} allocation{}", held,
                  held == 1 ? "" : "s");
        stop_now(end_reason::shutdown);
        return;
    }
    log::info("received SIGTERM: draining {} allocation{} for up to {}s; new Allocates get {}", held,
              held == 1 ? "" : "s", running_.drain_timeout.count(),
              running_.turn.alternate_servers.empty() ? "508" : "300 Try Alternate");
    for (auto& w : workers_) {
        worker* wp = w.get();
        wp->post([wp] { wp->start_drain(); });
    }
    drain_deadline_ = std::chrono::steady_clock::now() + running_.drain_timeout;
    if (redis_) redis_->publish_load(load_now(last_pps_)); // the fleet stops sending clients here
    drain_tick();
}

void process::drain_tick() {
    if (stopping_) return;
    const auto held = turn_->shared.total();
    if (held == 0) {
        log::info("drained: the last allocation ended");
        stop_now(end_reason::drained);
        return;
    }
    if (std::chrono::steady_clock::now() >= drain_deadline_) {
        log::info("drain timeout: ending {} allocation{}", held, held == 1 ? "" : "s");
        stop_now(end_reason::drained);
        return;
    }
    drain_timer_.expires_after(drain_poll);
    drain_timer_.async_wait([this](const std::error_code& ec) {
        if (!ec) drain_tick();
    });
}

void process::stop_now(end_reason why) {
    if (stopping_) return;
    stopping_ = true;
    end_ = why;
    systemd::notify("STOPPING=1");
    fleet_timer_.cancel();
    for (auto& w : workers_) w->stop();
    if (admin_) admin_->stop();
    if (signaling_) signaling_->stop();
    io_.stop();
}

void process::watchdog_tick() {
    if (!watchdog_) {
        // Without a watchdog, STATUS= still tells `systemctl status` what is going on.
        watchdog_timer_.expires_after(std::chrono::seconds(5));
        watchdog_timer_.async_wait([this](const std::error_code& ec) {
            if (ec) return;
            systemd::notify("STATUS=" + status());
            watchdog_tick();
        });
        return;
    }
    // WATCHDOG=1 only when every worker answered the previous round: a stuck worker stops
    // the pings, and systemd restarts the service.
    if (watchdog_acks_->exchange(0) >= workers_.size() || std::exchange(first_ping_, false))
        systemd::notify("WATCHDOG=1\nSTATUS=" + status());
    else
        log::warn("watchdog: a worker did not answer within {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog_ / 2).count());
    for (auto& w : workers_) w->post([acks = watchdog_acks_] { ++*acks; });
    watchdog_timer_.expires_after(*watchdog_ / 2);
    watchdog_timer_.async_wait([this](const std::error_code& ec) {
        if (!ec) watchdog_tick();
    });
}

// Every 30 s, the heap's free pages go back to the system (glibc keeps them otherwise): after
// a burst of connections (a TLS session holds tens of KiB) RSS falls back to what is in use,
// so an operator's memory graph shows load and leaks, not the highest peak so far.
void process::trim_tick() {
    ::malloc_trim(0);
    trim_timer_.expires_after(std::chrono::seconds(30));
    trim_timer_.async_wait([this](const std::error_code& ec) {
        if (!ec) trim_tick();
    });
}

void process::apply_redis_users() {
    if (!turn_ || !redis_ || !file_runtime_ || stopping_) return;
    std::size_t left_out = 0;
    auto runtime = with_redis_users(*file_runtime_, redis_->users(), redis_->secrets(), &left_out);
    if (left_out != secrets_left_out_ && left_out != 0)
        log::warn("redis: {} REST secret{} left out: at most {} are active at once, the file's first",
                  left_out, left_out == 1 ? "" : "s", auth::credential_store::max_secrets);
    secrets_left_out_ = left_out;
    for (auto& w : workers_) {
        worker* wp = w.get();
        wp->post([wp, runtime, limits = running_.limits] { wp->reconfigure(runtime, limits); });
    }
}

instance_load process::load_now(double packets_per_second) const {
    instance_load l;
    l.addresses = advertise_;
    l.allocations = turn_ ? turn_->shared.total() : 0;
    l.capacity = running_.limits.allocations_total;
    l.packets_per_second = static_cast<std::uint64_t>(packets_per_second);
    l.draining = draining_;
    return l;
}

asio::awaitable<void> process::fleet_loop() {
    // Relayed packets a second, from the workers' counters (their own threads copy them).
    std::uint64_t last = 0;
    auto last_at = std::chrono::steady_clock::now();
    const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(running_.redis.lease) / 3;
    while (!stopping_) {
        if (const auto snaps = co_await gather(false)) {
            std::uint64_t relayed = 0;
            for (const auto& s : *snaps) relayed += s.turn.relayed_to_peer + s.turn.relayed_to_client;
            const auto now = std::chrono::steady_clock::now();
            const double dt = std::chrono::duration<double>(now - last_at).count();
            if (last != 0 && dt > 0) last_pps_ = static_cast<double>(relayed - last) / dt;
            last = relayed;
            last_at = now;
        }
        if (stopping_ || !redis_) co_return;
        redis_->publish_load(load_now(last_pps_));
        fleet_timer_.expires_after(every);
        co_await fleet_timer_.async_wait(use_tuple);
    }
}

std::string process::status() const {
    const auto allocations = turn_ ? turn_->shared.total() : 0;
    return fmt::format("{}{} allocation{}, {} connection{}", draining_ ? "draining: " : "", allocations,
                       allocations == 1 ? "" : "s", connections_->total(), connections_->total() == 1 ? "" : "s");
}

asio::awaitable<std::optional<std::vector<worker_snapshot>>> process::gather(bool per_user) {
    // Each worker copies its own counters on its own thread, so the packet path needs no
    // atomics; the copies come back here, to the main thread.
    struct state {
        explicit state(asio::any_io_executor ex, std::size_t n) : timer(ex), out(n), remaining(n) {}
        asio::steady_timer timer;
        std::vector<worker_snapshot> out;
        std::size_t remaining;
    };
    auto s = std::make_shared<state>(io_.get_executor(), workers_.size());
    auto ex = io_.get_executor();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        worker* wp = workers_[i].get();
        wp->post([s, i, wp, per_user, ex] {
            auto snap = wp->snapshot(per_user);
            asio::post(ex, [s, i, snap = std::move(snap)]() mutable {
                s->out[i] = std::move(snap);
                if (--s->remaining == 0) s->timer.cancel();
            });
        });
    }
    s->timer.expires_after(std::chrono::seconds(2));
    co_await s->timer.async_wait(use_tuple);
    // Partial sums would look like counter resets to Prometheus: better no scrape than a wrong one.
    if (s->remaining != 0) co_return std::nullopt;
    co_return std::move(s->out);
}

asio::awaitable<admin::http_response> process::serve_admin(admin::http_request req) {
    admin::http_response r;
    if (req.path == "/healthz") {
        r.body = "ok\n";
    } else if (req.path == "/readyz") {
        const bool ready = !draining_ && !stopping_;
        r.status = ready ? 200 : 503;
        r.body = ready ? "ready\n" : "draining\n";
    } else if (req.path == "/metrics") {
        const bool per_user = running_.admin.per_user_metrics;
        const auto snaps = co_await gather(per_user);
        if (!snaps) {
            log::warn("metrics: a worker did not answer within 2 s; scrape refused");
            r.status = 503;
            r.body = "a worker did not answer\n";
            co_return r;
        }
        process_facts facts;
        facts.start_time = start_time_;
        facts.ready = !draining_ && !stopping_;
        facts.draining = draining_;
        facts.reloads = reloads_;
        facts.reloads_failed = reloads_failed_;
        facts.threads = static_cast<unsigned>(workers_.size());
        if (redis_) {
            facts.redis = true;
            facts.redis_connected = redis_->connected();
            facts.redis_users = redis_->users().size();
            facts.redis_secrets = redis_->secrets().size();
            facts.redis_outages = redis_->outages();
            facts.fleet_instances = fleet_->size();
        }
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = render_metrics(*snaps, facts, per_user);
    } else if (req.path == "/") {
        r.body = "ferry admin: /metrics /healthz /readyz\n";
    } else {
        r.status = 404;
    }
    co_return r;
}

} // namespace

int run(config cfg, std::string config_path) {
    process p(std::move(cfg), std::move(config_path));
    return p.run();
}

} // namespace ferry::server
