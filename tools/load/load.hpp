// ferry-load's shared pieces: options, results, and the UDP socket set a workload drives.
#pragma once

#include "ferry/protocol/address.hpp"
#include "turn_client.hpp"

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
    std::uint32_t p50_us = 0;     ///< round-trip percentiles (relay workloads)
    std::uint32_t p99_us = 0;
};

/// What the TURN workloads need besides the common options.
struct turn_options {
    credentials creds;
    protocol::transport_address peer; ///< the echo peer
    bool channels = true;             ///< ChannelData (else Send/Data indications)
    std::size_t payload = 100;        ///< bytes of application data per packet
    double rate = 0;                  ///< packets per second in total; 0 = closed loop
    std::string trace;                ///< file for one line per round trip, if set
};

/// Closed-loop Binding requests; every answer is parsed and its XOR-MAPPED-ADDRESS checked.
result run_binding(const options& o);
/// Reflects every datagram to its sender until `seconds` pass.
int run_echo(const protocol::transport_address& bind, double seconds);
/// N allocations relaying to the echo peer: closed loop (window per socket) or paced (rate).
result run_relay(const options& o, const turn_options& t);
/// Allocation cycles, one after another, each on a new socket: 401, Allocate, Refresh 0.
result run_allocations(const options& o, const turn_options& t);
/// Makes `sockets` allocations, prints "ready", holds them `seconds`, releases them.
result run_hold(const options& o, const turn_options& t);

void print(const std::string& workload, const options& o, const result& r);

} // namespace ferry::load
