// ferry-load's shared pieces: options, results, and the UDP socket set a workload drives.
#pragma once

#include "ferry/protocol/address.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::load {

struct options {
    protocol::transport_address server;
    unsigned sockets = 64;              ///< client sockets (spread over the server's workers)
    unsigned window = 4;                ///< requests in flight per socket
    double seconds = 5;                 ///< stop after this long...
    std::uint64_t max_requests = 50'000'000; ///< ...or after this many requests
};

struct result {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t bad = 0;        ///< answers that did not parse or did not match
    std::uint64_t timeouts = 0;   ///< requests given up on (lost)
    double seconds = 0;
    double cpu_seconds = 0;       ///< this process's user+system CPU
};

/// Closed-loop Binding requests; every answer is parsed and its XOR-MAPPED-ADDRESS checked.
result run_binding(const options& o);

void print(const std::string& workload, const options& o, const result& r);

} // namespace ferry::load
