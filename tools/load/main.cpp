// ferry-load: a bounded load generator for STUN/TURN servers, single-threaded, non-blocking,
// recvmmsg/sendmmsg. Every workload stops after --seconds (at most 600).
//
//   ferry-load binding  --server IP:PORT [--sockets 64] [--window 4] [--seconds 5] [--max-requests N]
//   ferry-load echo     --bind IP:PORT [--ports N] [--seconds 60]
//   ferry-load relay    --server IP:PORT --peer IP:PORT [--sockets 16] [--window 8] [--payload 100]
//                       [--send] [--rate PPS] [--user U --password P] [--seconds 5] [--trace FILE]
//   ferry-load allocate --server IP:PORT [--user U --password P] [--seconds 5] [--max-requests N]
//   ferry-load hold     --server IP:PORT --sockets N [--user U --password P] [--seconds 10]
//   ferry-load calls    --server IP:PORT --peer IP:PORT [--sockets 2000] [--rate 10] [--payload 100]
//                       [--seconds 10] [--setup-rate 1000] [--server-pid P] [--echo-pid P]
//                       [--transport udp|tcp|tls]
//                       (production shape: allocation i echoes off peer port PORT + i; see calls.cpp)
//
// Prints one line of key=value figures (hold and echo also print a "ready" line first).
#include "load.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace ferry::load {

void print(const std::string& workload, const options& o, const result& r) {
    const double rate = r.seconds > 0 ? static_cast<double>(r.received) / r.seconds : 0;
    // Requests still in flight at the deadline are not lost; those that timed out are.
    const double loss = r.sent > 0 ? 100.0 * static_cast<double>(r.timeouts) / static_cast<double>(r.sent) : 0;
    std::printf("workload=%s server=%s sockets=%u window=%u seconds=%.2f sent=%llu received=%llu "
                "bad=%llu lost=%llu loss_pct=%.3f rate_per_s=%.0f p50_us=%u p99_us=%u load_cpu_s=%.2f\n",
                workload.c_str(), o.server.to_string().c_str(), o.sockets, o.window, r.seconds,
                static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.received),
                static_cast<unsigned long long>(r.bad), static_cast<unsigned long long>(r.timeouts), loss, rate,
                r.p50_us, r.p99_us, r.cpu_seconds);
}

} // namespace ferry::load

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: ferry-load binding|relay|allocate|hold|calls --server IP:PORT [options]\n"
                 "       ferry-load echo --bind IP:PORT [--ports N] [--seconds S]\n"
                 "options: --sockets N --window N --seconds S --max-requests N --peer IP:PORT\n"
                 "         --payload BYTES --send --rate PPS --user U --password P\n"
                 "         --trace FILE (relay: send ms, round trip us, client per line)\n"
                 "calls:   --rate PPS (per allocation) --setup-rate N --server-pid P --echo-pid P\n"
                 "         --transport udp|tcp|tls\n");
    return 2;
}

bool parse_address(std::string_view s, ferry::protocol::transport_address& out) {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    auto host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const int port = std::atoi(std::string(s.substr(colon + 1)).c_str());
    auto a = ferry::protocol::transport_address::from(host, static_cast<std::uint16_t>(port));
    if (!a || port <= 0 || port > 65535) return false;
    out = *a;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string workload = argv[1];
    ferry::load::options o;
    ferry::load::turn_options t;
    ferry::protocol::transport_address bind;
    ferry::load::calls_options c;
    unsigned ports = 1;
    bool have_server = false, have_peer = false, have_bind = false, sockets_set = false, seconds_set = false;
    for (int i = 2; i < argc; ++i) {
        const std::string_view k = argv[i];
        if (k == "--send") {
            t.channels = false;
            continue;
        }
        if (i + 1 >= argc) return usage();
        const char* v = argv[++i];
        if (k == "--server") have_server = parse_address(v, o.server);
        else if (k == "--peer") have_peer = parse_address(v, t.peer);
        else if (k == "--bind") have_bind = parse_address(v, bind);
        else if (k == "--sockets") { o.sockets = static_cast<unsigned>(std::atoi(v)); sockets_set = true; }
        else if (k == "--window") o.window = static_cast<unsigned>(std::atoi(v));
        else if (k == "--seconds") { o.seconds = std::atof(v); seconds_set = true; }
        else if (k == "--max-requests") o.max_requests = std::strtoull(v, nullptr, 10);
        else if (k == "--payload") t.payload = static_cast<std::size_t>(std::atoi(v));
        else if (k == "--rate") t.rate = std::atof(v);
        else if (k == "--trace") t.trace = v;
        else if (k == "--ports") ports = static_cast<unsigned>(std::atoi(v));
        else if (k == "--setup-rate") c.setup_rate = std::atof(v);
        else if (k == "--server-pid") c.server_pid = std::atoi(v);
        else if (k == "--echo-pid") c.echo_pid = std::atoi(v);
        else if (k == "--transport") {
            const std::string_view via = v;
            if (via == "udp") c.via = ferry::load::calls_options::transport::udp;
            else if (via == "tcp") c.via = ferry::load::calls_options::transport::tcp;
            else if (via == "tls") c.via = ferry::load::calls_options::transport::tls;
            else return usage();
        }
        else if (k == "--user") t.creds.user = v;
        else if (k == "--password") t.creds.password = v;
        else return usage();
    }
    if (o.window == 0 || o.seconds <= 0 || o.seconds > 600 || t.payload > 1400) return usage();
    try {
        if (workload == "echo") {
            if (!have_bind || ports == 0 || ports > 20000) return usage();
            if (ports > 1) {
                ferry::load::raise_fd_limit();
                return ferry::load::run_echo_ports(bind, ports, seconds_set ? o.seconds : 60);
            }
            return ferry::load::run_echo(bind, seconds_set ? o.seconds : 60);
        }
        if (workload == "calls") {
            if (!have_server || !have_peer) return usage();
            if (!sockets_set) o.sockets = 2000;
            if (!seconds_set) o.seconds = 10;
            if (t.rate > 0) c.rate = t.rate; // per allocation here
            if (c.rate <= 0 || c.rate > 1000 || c.setup_rate <= 0 || o.sockets == 0 || o.sockets > 20000 ||
                t.peer.port + o.sockets - 1 > 65535)
                return usage();
            ferry::load::raise_fd_limit();
            const auto r = ferry::load::run_calls(o, t, c);
            ferry::load::print_calls(o, c, r);
            return 0;
        }
        if (!have_server || o.sockets == 0) return usage();
        ferry::load::raise_fd_limit();
        ferry::load::result r;
        if (workload == "binding") {
            r = ferry::load::run_binding(o);
        } else if (workload == "relay") {
            if (!have_peer) return usage();
            if (!sockets_set) o.sockets = 16;
            r = ferry::load::run_relay(o, t);
        } else if (workload == "allocate") {
            r = ferry::load::run_allocations(o, t);
        } else if (workload == "hold") {
            r = ferry::load::run_hold(o, t);
        } else {
            return usage();
        }
        ferry::load::print(workload, o, r);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ferry-load: %s\n", e.what());
        return 1;
    }
}
