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

/// The production-shape workload (ferry-load calls): many allocations at call rates.
struct calls_options {
    enum class transport { udp, tcp, tls };
    transport via = transport::udp;  ///< how clients reach the server (the relay side is UDP)
    double rate = 10;                ///< packets per second per allocation
    double setup_rate = 1000;        ///< allocations set up per second at most
    unsigned setup_limit_seconds = 120;
    int server_pid = 0;              ///< read its CPU over the data phase, if given
    int echo_pid = 0;
};
struct calls_result {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t bad = 0;
    std::uint64_t lost = 0;
    double seconds = 0;       ///< the data phase
    double setup_seconds = 0;
    double load_cpu = 0;      ///< this process, data phase
    double server_cpu = 0;    ///< the server, data phase (0 without --server-pid)
    double echo_cpu = 0;      ///< the echo peer, data phase (0 without --echo-pid)
    std::uint32_t p50_us = 0; ///< round trip, send stamp to the kernel's receive timestamp
    std::uint32_t p99_us = 0;
};
/// `ports` echo sockets on first.port, first.port + 1, ...; epoll, until `seconds` pass.
int run_echo_ports(const protocol::transport_address& first, unsigned ports, double seconds);
/// o.sockets allocations, allocation i bound by channel 0x4000 to t.peer with port + i.
calls_result run_calls(const options& o, const turn_options& t, const calls_options& c);
void print_calls(const options& o, const calls_options& c, const calls_result& r);

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
