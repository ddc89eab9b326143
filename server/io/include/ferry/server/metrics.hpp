// The /metrics body: every worker's snapshot summed, plus process facts, in the Prometheus
// text format. Built at scrape time on the main thread; the packet path only bumps its own
// worker's plain counters.
#pragma once

#include "ferry/server/worker.hpp"

#include <span>
#include <string>

namespace ferry::server {

struct process_facts {
    double start_time = 0;  ///< unix seconds
    bool ready = false;     ///< listeners bound and not draining
    bool draining = false;
    std::uint64_t reloads = 0;
    std::uint64_t reloads_failed = 0;
    unsigned threads = 0;
    std::int64_t allocations_quota_held = 0; ///< places taken under allocations_total
    bool redis = false;            ///< redis: configured (the four below are written only then)
    bool redis_connected = false;
    std::uint64_t redis_users = 0; ///< users and secrets read from Redis
    std::uint64_t redis_secrets = 0;
    std::uint64_t redis_outages = 0;
    std::uint64_t fleet_instances = 0; ///< other live instances
};

std::string render_metrics(std::span<const worker_snapshot> workers, const process_facts& facts, bool per_user);

} // namespace ferry::server
