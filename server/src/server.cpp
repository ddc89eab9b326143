#include "ferry/server/server.hpp"

#include "ferry/server/log.hpp"
#include "ferry/server/worker.hpp"

#include "ferry/server/asio.hpp"

#include <memory>
#include <thread>
#include <vector>

namespace ferry::server {

void run(const config& cfg) {
    const unsigned threads = cfg.threads != 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());

    std::vector<std::unique_ptr<worker>> workers;
    workers.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<worker>(cfg, i));

    std::string where;
    for (const auto& d : workers.front()->describe()) where += (where.empty() ? "" : ", ") + d;
    log::info("ferry {} started: {} worker thread{}; listening on {}", FERRY_VERSION, threads,
              threads == 1 ? "" : "s", where);

    asio::io_context signals_io(1);
    asio::signal_set signals(signals_io, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code& ec, int sig) {
        if (ec) return;
        log::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        for (auto& w : workers) w->stop();
    });

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
}

} // namespace ferry::server
