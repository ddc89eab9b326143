// ferry-load: a bounded load generator for STUN/TURN servers.
//   ferry-load binding --server 127.0.0.1:3478 [--sockets 64] [--window 4] [--seconds 5]
//                      [--max-requests N]
// Prints one line of key=value figures.
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
                "bad=%llu lost=%llu loss_pct=%.3f rate_per_s=%.0f load_cpu_s=%.2f\n",
                workload.c_str(), o.server.to_string().c_str(), o.sockets, o.window, r.seconds,
                static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.received),
                static_cast<unsigned long long>(r.bad), static_cast<unsigned long long>(r.timeouts),
                loss, rate, r.cpu_seconds);
}

} // namespace ferry::load

namespace {

int usage() {
    std::fprintf(stderr, "usage: ferry-load binding --server IP:PORT [--sockets N] [--window N] "
                         "[--seconds S] [--max-requests N]\n");
    return 2;
}

bool parse_server(std::string_view s, ferry::protocol::transport_address& out) {
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
    bool have_server = false;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string_view k = argv[i];
        const char* v = argv[i + 1];
        if (k == "--server") have_server = parse_server(v, o.server);
        else if (k == "--sockets") o.sockets = static_cast<unsigned>(std::atoi(v));
        else if (k == "--window") o.window = static_cast<unsigned>(std::atoi(v));
        else if (k == "--seconds") o.seconds = std::atof(v);
        else if (k == "--max-requests") o.max_requests = std::strtoull(v, nullptr, 10);
        else return usage();
    }
    if (!have_server || o.sockets == 0 || o.window == 0 || o.seconds <= 0 || o.seconds > 600) return usage();
    try {
        if (workload == "binding") {
            ferry::load::print(workload, o, ferry::load::run_binding(o));
            return 0;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ferry-load: %s\n", e.what());
        return 1;
    }
    return usage();
}
