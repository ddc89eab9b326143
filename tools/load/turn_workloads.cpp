// TURN workloads of ferry-load: an echo peer, relayed packets per second (ChannelData or
// Send/Data) with loss and round-trip percentiles, allocations per second, and holding N
// allocations open while the benchmark reads the server's memory. All bounded in time.
#include "load.hpp"
#include "turn_client.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace ferry::load {

using namespace ferry::protocol;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t batch = 32;

double cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count());
}

clock::time_point after(double seconds) {
    return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
}

struct mmsg_set {
    std::vector<std::array<std::uint8_t, 2048>> buffers = std::vector<std::array<std::uint8_t, 2048>>(batch);
    std::array<iovec, batch> iov{};
    std::array<mmsghdr, batch> hdr{};
    std::array<sockaddr_storage, batch> addr{};
    mmsg_set() {
        for (std::size_t i = 0; i < batch; ++i) {
            iov[i] = {buffers[i].data(), buffers[i].size()};
            hdr[i].msg_hdr.msg_iov = &iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
        }
    }
    void expect_names() {
        for (std::size_t i = 0; i < batch; ++i) {
            hdr[i].msg_hdr.msg_name = &addr[i];
            hdr[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
            iov[i].iov_len = buffers[i].size();
        }
    }
};

} // namespace

int run_echo(const transport_address& bind, double seconds) {
    sockaddr_storage ss;
    const auto len = to_sockaddr(bind, ss);
    const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
        throw std::runtime_error("echo: cannot bind " + bind.to_string());
    const int size = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    timeval tv{0, 200000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::printf("echo ready on %s\n", bind.to_string().c_str());
    std::fflush(stdout);
    mmsg_set m;
    std::uint64_t echoed = 0;
    const auto deadline = after(seconds);
    while (clock::now() < deadline) {
        m.expect_names();
        const int n = ::recvmmsg(fd, m.hdr.data(), batch, MSG_WAITFORONE, nullptr);
        if (n <= 0) continue;
        for (int i = 0; i < n; ++i) m.iov[static_cast<std::size_t>(i)].iov_len = m.hdr[static_cast<std::size_t>(i)].msg_len;
        int sent = 0;
        while (sent < n) {
            const int k = ::sendmmsg(fd, m.hdr.data() + sent, static_cast<unsigned>(n - sent), 0);
            if (k <= 0) break;
            sent += k;
        }
        echoed += static_cast<std::uint64_t>(n);
    }
    std::printf("workload=echo echoed=%llu\n", static_cast<unsigned long long>(echoed));
    ::close(fd);
    return 0;
}

namespace {

struct relay_client {
    int fd = -1;
    turn_session session{-1};
    unsigned in_flight = 0;
    std::uint64_t next_seq = 0;
};

std::vector<relay_client> setup_clients(const options& o, const turn_options& t, bool bind_peer) {
    std::vector<relay_client> clients(o.sockets);
    for (auto& c : clients) {
        // A server may still remember a 5-tuple it just released (coturn does for a moment):
        // on failure, try again from a new socket, hence a new port.
        for (int attempt = 0;; ++attempt) {
            c.fd = open_client(o.server);
            if (c.fd < 0) throw std::runtime_error("cannot open a client socket (fd limit?)");
            c.session = turn_session(c.fd);
            if (c.session.allocate(t.creds, milliseconds(3000))) break;
            ::close(c.fd);
            if (attempt == 4) throw std::runtime_error("allocate: " + c.session.error());
        }
        if (bind_peer) {
            const bool ok = t.channels ? c.session.channel_bind(0x4000, t.peer, milliseconds(3000))
                                       : c.session.create_permission(t.peer, milliseconds(3000));
            if (!ok) throw std::runtime_error("peer set-up: " + c.session.error());
        }
    }
    return clients;
}

} // namespace

result run_relay(const options& o, const turn_options& t) {
    auto clients = setup_clients(o, t, true);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    for (std::uint32_t i = 0; i < clients.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, clients[i].fd, &ev);
    }
    mmsg_set tx;
    mmsg_set rx;
    std::vector<std::uint32_t> rtt_us;
    rtt_us.reserve(1 << 20);
    result r;
    const std::size_t payload = std::max<std::size_t>(t.payload, 16);

    // Writes `n` new data messages for client `i` and sends them with one sendmmsg.
    auto send_new = [&](std::uint32_t i, unsigned n) {
        auto& c = clients[i];
        n = std::min<unsigned>(n, batch);
        for (unsigned k = 0; k < n; ++k) {
            auto& buf = tx.buffers[k];
            std::array<std::uint8_t, 1500> body{};
            const std::uint64_t stamp = now_ns();
            const std::uint64_t seq = c.next_seq + k;
            std::memcpy(body.data(), &seq, 8);
            std::memcpy(body.data() + 8, &stamp, 8);
            std::size_t size;
            if (t.channels) {
                write_channel_data_header(std::span(buf).first<4>(), 0x4000, static_cast<std::uint16_t>(payload));
                std::memcpy(buf.data() + 4, body.data(), payload);
                size = 4 + payload;
            } else {
                size = turn_session::send_indication(buf, t.peer, {body.data(), payload}, seq);
            }
            tx.iov[k].iov_len = size;
            tx.hdr[k].msg_hdr.msg_name = nullptr;
            tx.hdr[k].msg_hdr.msg_namelen = 0;
        }
        const int sent = ::sendmmsg(c.fd, tx.hdr.data(), n, MSG_DONTWAIT);
        const unsigned ok = sent > 0 ? static_cast<unsigned>(sent) : 0;
        c.next_seq += ok;
        c.in_flight += ok;
        r.sent += ok;
    };

    // --trace: one line per round trip (send time in ms from the start, round trip in µs, client),
    // to tell a slow server from a stalled machine: a stall delays every client at once.
    std::FILE* trace = t.trace.empty() ? nullptr : std::fopen(t.trace.c_str(), "w");
    if (!t.trace.empty() && trace == nullptr) throw std::runtime_error("cannot write " + t.trace);
    const std::uint64_t trace0 = now_ns();
    const bool paced = t.rate > 0;
    const auto start = clock::now();
    const double cpu0 = cpu_seconds();
    const auto deadline = after(o.seconds);
    if (!paced)
        for (std::uint32_t i = 0; i < clients.size(); ++i) send_new(i, o.window);
    auto next_paced = start;
    const auto interval = paced ? std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / t.rate))
                                : clock::duration{};
    std::uint32_t paced_client = 0;
    std::array<epoll_event, 64> events{};
    bool draining = false;
    auto drain_until = deadline;
    for (;;) {
        const auto now = clock::now();
        if (!draining && now >= deadline) {
            draining = true;
            drain_until = now + milliseconds(500);
        }
        if (draining && (now >= drain_until || r.received + r.bad >= r.sent)) break;
        if (paced && !draining) {
            while (next_paced <= now) {
                send_new(paced_client, 1);
                paced_client = (paced_client + 1) % static_cast<std::uint32_t>(clients.size());
                next_paced += interval;
            }
        }
        // Paced: sleep until the next send is due (microsecond timeout), never spin.
        timespec wait{0, 20'000'000};
        if (paced && !draining) {
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next_paced - clock::now()).count();
            wait = {0, std::max<long>(0, static_cast<long>(ns))};
        }
        const int n = ::epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &wait, nullptr);
        for (int e = 0; e < n; ++e) {
            const std::uint32_t i = events[e].data.u32;
            auto& c = clients[i];
            for (std::size_t k = 0; k < batch; ++k) {
                rx.iov[k].iov_len = rx.buffers[k].size();
                rx.hdr[k].msg_hdr.msg_name = nullptr;
                rx.hdr[k].msg_hdr.msg_namelen = 0;
            }
            const int got = ::recvmmsg(c.fd, rx.hdr.data(), batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) continue;
            const auto t_now = now_ns();
            for (int k = 0; k < got; ++k) {
                const std::span<const std::uint8_t> bytes(rx.buffers[static_cast<std::size_t>(k)].data(),
                                                          rx.hdr[static_cast<std::size_t>(k)].msg_len);
                std::span<const std::uint8_t> body;
                if (!bytes.empty() && classify(bytes[0]) == packet_kind::channel_data) {
                    if (auto cd = parse_channel_data(bytes)) body = cd->data;
                } else {
                    message_view m;
                    if (!m.parse(bytes) && m.is(method::data, message_class::indication))
                        if (auto d = m.get<ferry::protocol::data>()) body = d->bytes;
                }
                if (body.size() != payload) {
                    ++r.bad;
                    continue;
                }
                std::uint64_t stamp = 0;
                std::memcpy(&stamp, body.data() + 8, 8);
                if (rtt_us.size() < rtt_us.capacity()) rtt_us.push_back(static_cast<std::uint32_t>((t_now - stamp) / 1000));
                if (trace) std::fprintf(trace, "%.3f %llu %u\n", static_cast<double>(stamp - trace0) / 1e6, static_cast<unsigned long long>((t_now - stamp) / 1000), i);
                ++r.received;
                if (c.in_flight > 0) --c.in_flight;
            }
            if (!paced && !draining) send_new(i, o.window - std::min(o.window, c.in_flight));
        }
    }
    r.seconds = std::chrono::duration<double>(std::min(clock::now(), deadline) - start).count();
    r.cpu_seconds = cpu_seconds() - cpu0;
    r.timeouts = r.sent - std::min(r.sent, r.received + r.bad);
    if (trace) std::fclose(trace);
    if (!rtt_us.empty()) {
        std::sort(rtt_us.begin(), rtt_us.end());
        r.p50_us = rtt_us[rtt_us.size() / 2];
        r.p99_us = rtt_us[std::min(rtt_us.size() - 1, rtt_us.size() * 99 / 100)];
    }
    for (auto& c : clients) {
        c.session.release(milliseconds(500));
        ::close(c.fd);
    }
    ::close(ep);
    return r;
}

result run_allocations(const options& o, const turn_options& t) {
    result r;
    const auto start = clock::now();
    const double cpu0 = cpu_seconds();
    const auto deadline = after(o.seconds);
    while (clock::now() < deadline && r.sent < o.max_requests) {
        const int fd = open_client(o.server);
        if (fd < 0) throw std::runtime_error("cannot open a client socket");
        turn_session s(fd);
        ++r.sent;
        if (s.allocate(t.creds, milliseconds(2000)) && s.release(milliseconds(2000))) ++r.received;
        else ++r.timeouts;
        ::close(fd);
    }
    r.seconds = std::chrono::duration<double>(clock::now() - start).count();
    r.cpu_seconds = cpu_seconds() - cpu0;
    return r;
}

result run_hold(const options& o, const turn_options& t) {
    result r;
    const double cpu0 = cpu_seconds();
    const auto start = clock::now();
    auto clients = setup_clients(o, t, false);
    r.sent = r.received = clients.size();
    std::printf("ready allocations=%zu setup_seconds=%.2f\n", clients.size(),
                std::chrono::duration<double>(clock::now() - start).count());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    for (auto& c : clients) {
        c.session.release(milliseconds(500));
        ::close(c.fd);
    }
    r.seconds = std::chrono::duration<double>(clock::now() - start).count();
    r.cpu_seconds = cpu_seconds() - cpu0;
    return r;
}

} // namespace ferry::load
