// ferry-load calls: the shape of production traffic. N allocations (one client socket each),
// each bound by a channel to its own echo peer port, each sending ChannelData open loop at R
// packets per second, the sends spread evenly in time. Set-up is paced and bounded; the data
// phase alone is measured: round trips from the send stamp to the kernel's receive timestamp
// (SO_TIMESTAMPNS; over TCP and TLS that of the last segment a read took), loss, this
// process's CPU and, given their PIDs, the server's and the echo peer's CPU from /proc.
// --transport tcp or tls: each allocation on its own connection (TURN over TCP, or over TLS
// without certificate check).
//
//   ferry-load echo  --bind IP:PORT --ports N            N echo sockets, PORT..PORT+N-1
//   ferry-load calls --server IP:PORT --peer IP:PORT --sockets N [--rate 10] [--payload 100]
//                    [--seconds 10] [--setup-rate 1000] [--server-pid P] [--echo-pid P]
//                    [--transport udp|tcp|tls]
#include "load.hpp"
#include "stream_link.hpp"
#include "turn_client.hpp"

#include "ferry/protocol/channel_data.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace ferry::load {

using namespace ferry::protocol;

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr std::uint16_t channel = 0x4000;

std::uint64_t realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// User + system CPU seconds of a process from /proc/PID/stat; 0 if it cannot be read.
double process_cpu(int pid) {
    if (pid <= 0) return 0;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) return 0;
    // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
    std::size_t pos = close + 2;
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && pos < text.size(); ++field) {
        const auto next = text.find(' ', pos);
        if (field == 14) utime = std::strtoull(text.c_str() + pos, nullptr, 10);
        if (field == 15) stime = std::strtoull(text.c_str() + pos, nullptr, 10);
        pos = next == std::string::npos ? text.size() : next + 1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

} // namespace

int run_echo_ports(const transport_address& first, unsigned ports, double seconds) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<int> fds;
    for (unsigned i = 0; i < ports; ++i) {
        transport_address a = first;
        a.port = static_cast<std::uint16_t>(first.port + i);
        sockaddr_storage ss;
        const auto len = to_sockaddr(a, ss);
        const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
            throw std::runtime_error("echo: cannot bind " + a.to_string());
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        fds.push_back(fd);
    }
    std::printf("echo ready on %s, %u ports\n", first.to_string().c_str(), ports);
    std::fflush(stdout);
    std::uint64_t echoed = 0;
    std::array<epoll_event, 256> events{};
    std::array<std::uint8_t, 2048> buf{};
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
    while (clock::now() < deadline) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
        for (int e = 0; e < n; ++e) {
            const int fd = events[static_cast<std::size_t>(e)].data.fd;
            for (;;) {
                sockaddr_storage from{};
                socklen_t len = sizeof from;
                const auto got = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
                if (got < 0) break;
                ::sendto(fd, buf.data(), static_cast<std::size_t>(got), 0, reinterpret_cast<sockaddr*>(&from), len);
                ++echoed;
            }
        }
    }
    std::printf("workload=echo ports=%u echoed=%llu\n", ports, static_cast<unsigned long long>(echoed));
    for (const int fd : fds) ::close(fd);
    ::close(ep);
    return 0;
}

calls_result run_calls(const options& o, const turn_options& t, const calls_options& c) {
    calls_result r;
    const std::size_t payload = std::clamp<std::size_t>(t.payload, 16, 1200);
    // Set-up, paced: one allocation and its channel every 1/setup_rate seconds at most.
    const bool streams = c.via != calls_options::transport::udp;
    // Over streams ChannelData is padded to four bytes (RFC 8656 §12.5); the echo returns the
    // payload as sent, and the server pads its ChannelData the same way.
    const std::size_t wire_payload = streams ? (payload + 3) & ~std::size_t{3} : payload;
    struct call {
        int fd = -1;
        std::unique_ptr<stream_link> stream;
        turn_session session{-1};
    };
    std::vector<call> calls(o.sockets);
    const auto setup_start = clock::now();
    const auto setup_step = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / c.setup_rate));
    const auto setup_deadline = setup_start + std::chrono::seconds(c.setup_limit_seconds);
    for (std::size_t i = 0; i < calls.size(); ++i) {
        if (clock::now() > setup_deadline) throw std::runtime_error("set-up took longer than its limit");
        std::this_thread::sleep_until(setup_start + setup_step * static_cast<long>(i));
        auto& k = calls[i];
        if (streams) {
            std::string why;
            k.stream = stream_link::open(o.server, c.via == calls_options::transport::tls ? insecure_client_tls() : nullptr,
                                         milliseconds(3000), why);
            if (!k.stream) throw std::runtime_error("connection " + std::to_string(i) + ": " + why);
            k.fd = k.stream->fd();
            k.session = turn_session(*k.stream);
        } else {
            k.fd = open_client(o.server);
            if (k.fd < 0) throw std::runtime_error("cannot open a client socket (fd limit?)");
            const int on = 1;
            ::setsockopt(k.fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
            k.session = turn_session(k.fd);
        }
        if (!k.session.allocate(t.creds, milliseconds(3000)))
            throw std::runtime_error("allocation " + std::to_string(i) + ": " + k.session.error());
        transport_address peer = t.peer;
        peer.port = static_cast<std::uint16_t>(t.peer.port + i);
        if (!k.session.channel_bind(channel, peer, milliseconds(3000)))
            throw std::runtime_error("channel " + std::to_string(i) + ": " + k.session.error());
    }
    r.setup_seconds = std::chrono::duration<double>(clock::now() - setup_start).count();

    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    for (std::uint32_t i = 0; i < calls.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, calls[i].fd, &ev);
    }
    std::vector<std::uint32_t> rtt_us;
    rtt_us.reserve(std::min<std::size_t>(1 << 22, static_cast<std::size_t>(o.sockets * c.rate * o.seconds) + 16));
    std::array<std::uint8_t, 1300> out{};
    std::array<std::uint8_t, 2048> in{};
    std::array<char, 256> control{};
    std::array<epoll_event, 256> events{};

    // Data phase: call (k mod N) sends its packet at start + k / (N * R): open loop, spread evenly.
    const double total_rate = static_cast<double>(calls.size()) * c.rate;
    const auto interval = std::chrono::duration<double>(1.0 / total_rate);
    const double server0 = process_cpu(c.server_pid);
    const double echo0 = process_cpu(c.echo_pid);
    const double self0 = self_cpu();
    const auto start = clock::now();
    const auto end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(o.seconds));
    std::uint64_t k = 0;
    bool sending = true;
    auto drain_until = end;
    for (;;) {
        const auto now = clock::now();
        if (sending && now >= end) {
            sending = false;
            drain_until = now + milliseconds(500);
        }
        if (!sending && (now >= drain_until || r.received >= r.sent)) break;
        auto due = start + std::chrono::duration_cast<clock::duration>(interval * static_cast<double>(k));
        while (sending && due <= now) {
            auto& call = calls[k % calls.size()];
            write_channel_data_header(std::span(out).first<4>(), channel, static_cast<std::uint16_t>(payload));
            const std::uint64_t stamp = realtime_ns();
            std::memcpy(out.data() + 4, &k, 8);
            std::memcpy(out.data() + 12, &stamp, 8);
            if (call.stream) {
                if (call.stream->send({out.data(), 4 + wire_payload})) ++r.sent;
            } else if (::send(call.fd, out.data(), 4 + payload, MSG_DONTWAIT) > 0) {
                ++r.sent;
            }
            ++k;
            due = start + std::chrono::duration_cast<clock::duration>(interval * static_cast<double>(k));
        }
        const auto wait_ns = sending ? std::max<long long>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(due - clock::now()).count())
                                     : 20'000'000;
        const timespec wait{0, static_cast<long>(std::min<long long>(wait_ns, 20'000'000))};
        const int n = ::epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &wait, nullptr);
        for (int e = 0; e < n; ++e) {
            auto& call = calls[events[static_cast<std::size_t>(e)].data.u32];
            const int fd = call.fd;
            if (call.stream) {
                if (!call.stream->fill()) throw std::runtime_error("the server closed a connection");
                // The kernel's time for the last segment read (all messages of this read count
                // from it); this loop's own time only when the kernel gave none.
                const std::uint64_t rx = call.stream->received_ns() != 0 ? call.stream->received_ns() : realtime_ns();
                for (auto m = call.stream->next(); !m.empty(); m = call.stream->next()) {
                    const auto cd = parse_channel_data(m);
                    if (!cd || cd->channel != channel || cd->data.size() != payload) {
                        ++r.bad;
                        continue;
                    }
                    std::uint64_t stamp = 0;
                    std::memcpy(&stamp, cd->data.data() + 8, 8);
                    if (rtt_us.size() < rtt_us.capacity() && rx > stamp)
                        rtt_us.push_back(static_cast<std::uint32_t>((rx - stamp) / 1000));
                    ++r.received;
                }
                if (call.stream->bad()) throw std::runtime_error("a connection carried something not TURN");
                continue;
            }
            for (;;) {
                iovec iov{in.data(), in.size()};
                msghdr m{};
                m.msg_iov = &iov;
                m.msg_iovlen = 1;
                m.msg_control = control.data();
                m.msg_controllen = control.size();
                const auto got = ::recvmsg(fd, &m, MSG_DONTWAIT);
                if (got < 0) break;
                const auto cd = parse_channel_data({in.data(), static_cast<std::size_t>(got)});
                if (!cd || cd->channel != channel || cd->data.size() != payload) {
                    ++r.bad;
                    continue;
                }
                std::uint64_t rx = 0;
                for (auto* h = CMSG_FIRSTHDR(&m); h != nullptr; h = CMSG_NXTHDR(&m, h))
                    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                        timespec ts{};
                        std::memcpy(&ts, CMSG_DATA(h), sizeof ts);
                        rx = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
                    }
                if (rx == 0) rx = realtime_ns();
                std::uint64_t stamp = 0;
                std::memcpy(&stamp, cd->data.data() + 8, 8);
                if (rtt_us.size() < rtt_us.capacity() && rx > stamp)
                    rtt_us.push_back(static_cast<std::uint32_t>((rx - stamp) / 1000));
                ++r.received;
            }
        }
    }
    const double elapsed = std::chrono::duration<double>(std::min(clock::now(), end) - start).count();
    r.seconds = elapsed;
    r.load_cpu = self_cpu() - self0;
    r.server_cpu = process_cpu(c.server_pid) - server0;
    r.echo_cpu = process_cpu(c.echo_pid) - echo0;
    r.lost = r.sent - std::min(r.sent, r.received + r.bad);
    if (!rtt_us.empty()) {
        std::sort(rtt_us.begin(), rtt_us.end());
        r.p50_us = rtt_us[rtt_us.size() / 2];
        r.p99_us = rtt_us[std::min(rtt_us.size() - 1, rtt_us.size() * 99 / 100)];
    }
    ::close(ep);
    for (auto& call : calls) {
        call.session.release(milliseconds(500));
        ::close(call.fd);
    }
    return r;
}

void print_calls(const options& o, const calls_options& c, const calls_result& r) {
    // A round trip is two relayed packets: client to peer and peer to client.
    const double relayed = 2.0 * static_cast<double>(r.received);
    const char* via = c.via == calls_options::transport::udp ? "udp" : c.via == calls_options::transport::tcp ? "tcp" : "tls";
    std::printf("workload=calls transport=%s server=%s allocations=%u rate_per_allocation=%.1f seconds=%.2f setup_seconds=%.2f "
                "sent=%llu received=%llu bad=%llu lost=%llu loss_pct=%.3f p50_us=%u p99_us=%u load_cpu_s=%.2f "
                "echo_cpu_s=%.2f server_cpu_s=%.2f server_us_per_packet=%.2f\n",
                via, o.server.to_string().c_str(), o.sockets, c.rate, r.seconds, r.setup_seconds,
                static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.received),
                static_cast<unsigned long long>(r.bad), static_cast<unsigned long long>(r.lost),
                r.sent ? 100.0 * static_cast<double>(r.lost) / static_cast<double>(r.sent) : 0.0, r.p50_us, r.p99_us,
                r.load_cpu, r.echo_cpu, r.server_cpu, relayed > 0 ? r.server_cpu * 1e6 / relayed : 0.0);
}

} // namespace ferry::load
