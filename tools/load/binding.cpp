#include "load.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ferry::load {
namespace {

using clock = std::chrono::steady_clock;
constexpr std::size_t batch = 32;
constexpr auto resend_after = std::chrono::milliseconds(500);

struct client {
    int fd = -1;
    protocol::transport_address local;
    std::uint64_t next_id = 0;   ///< low 8 bytes of the next transaction id
    std::uint64_t oldest = 0;    ///< lowest id still awaited
    unsigned in_flight = 0;
    clock::time_point last_progress;
};

double cpu_now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

sockaddr_storage to_sockaddr(const protocol::transport_address& a, socklen_t& len) {
    sockaddr_storage ss{};
    if (a.ip.family == protocol::address_family::ipv4) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(a.port);
        std::memcpy(&s->sin_addr, a.ip.bytes.data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(a.port);
        std::memcpy(&s->sin6_addr, a.ip.bytes.data(), 16);
        len = sizeof(sockaddr_in6);
    }
    return ss;
}

// Transaction id: 4 bytes naming the client socket, 8 bytes of sequence number.
void make_txid(std::array<std::uint8_t, 12>& id, std::uint32_t client_index, std::uint64_t seq) {
    protocol::store_u32(id.data(), client_index);
    protocol::store_u32(id.data() + 4, static_cast<std::uint32_t>(seq >> 32));
    protocol::store_u32(id.data() + 8, static_cast<std::uint32_t>(seq));
}

} // namespace

result run_binding(const options& o) {
    socklen_t server_len = 0;
    const auto server = to_sockaddr(o.server, server_len);
    const int family = o.server.ip.family == protocol::address_family::ipv4 ? AF_INET : AF_INET6;
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<client> clients(o.sockets);
    for (std::uint32_t i = 0; i < o.sockets; ++i) {
        auto& c = clients[i];
        c.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<const sockaddr*>(&server), server_len) != 0)
            throw std::runtime_error("cannot open a client socket");
        sockaddr_storage local{};
        socklen_t len = sizeof local;
        ::getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &len);
        c.local.ip.family = o.server.ip.family;
        if (family == AF_INET) {
            auto* s = reinterpret_cast<sockaddr_in*>(&local);
            std::memcpy(c.local.ip.bytes.data(), &s->sin_addr, 4);
            c.local.port = ntohs(s->sin_port);
        } else {
            auto* s = reinterpret_cast<sockaddr_in6*>(&local);
            std::memcpy(c.local.ip.bytes.data(), &s->sin6_addr, 16);
            c.local.port = ntohs(s->sin6_port);
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    }

    result r;
    std::array<std::array<std::uint8_t, 20>, batch> tx{};
    std::array<iovec, batch> tx_iov{};
    std::array<mmsghdr, batch> tx_hdr{};
    std::array<std::array<std::uint8_t, 512>, batch> rx{};
    std::array<iovec, batch> rx_iov{};
    std::array<mmsghdr, batch> rx_hdr{};
    for (std::size_t i = 0; i < batch; ++i) {
        tx_iov[i] = {tx[i].data(), tx[i].size()};
        tx_hdr[i].msg_hdr.msg_iov = &tx_iov[i];
        tx_hdr[i].msg_hdr.msg_iovlen = 1;
        rx_iov[i] = {rx[i].data(), rx[i].size()};
        rx_hdr[i].msg_hdr.msg_iov = &rx_iov[i];
        rx_hdr[i].msg_hdr.msg_iovlen = 1;
    }

    // Sends `n` new requests on client `i`, as one sendmmsg.
    auto send_new = [&](std::uint32_t i, unsigned n) {
        auto& c = clients[i];
        n = std::min<unsigned>({n, static_cast<unsigned>(batch),
                                static_cast<unsigned>(o.max_requests - std::min(o.max_requests, r.sent))});
        for (unsigned k = 0; k < n; ++k) {
            std::array<std::uint8_t, 12> id{};
            make_txid(id, i, c.next_id++);
            protocol::message_writer w(tx[k], protocol::make_message_type(
                                                  protocol::method::binding, protocol::message_class::request),
                                       id);
        }
        if (n == 0) return;
        const int sent = ::sendmmsg(c.fd, tx_hdr.data(), n, MSG_DONTWAIT);
        const unsigned ok = sent > 0 ? static_cast<unsigned>(sent) : 0;
        r.sent += ok;
        c.in_flight += ok;
        c.next_id -= n - ok;
    };

    const auto start = clock::now();
    const double cpu_start = cpu_now();
    const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(o.seconds));
    for (std::uint32_t i = 0; i < o.sockets; ++i) {
        clients[i].last_progress = start;
        send_new(i, o.window);
    }

    std::array<epoll_event, 64> events{};
    auto last_sweep = start;
    protocol::message_view m;
    for (;;) {
        const auto now = clock::now();
        if (now >= deadline) break;
        if (r.sent >= o.max_requests && r.received + r.timeouts + r.bad >= r.sent) break;
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
        for (int e = 0; e < n; ++e) {
            const std::uint32_t i = events[e].data.u32;
            auto& c = clients[i];
            const int got = ::recvmmsg(c.fd, rx_hdr.data(), batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) continue;
            for (int k = 0; k < got; ++k) {
                const std::span<const std::uint8_t> bytes(rx[k].data(), rx_hdr[k].msg_len);
                bool good = !m.parse(bytes) &&
                            m.is(protocol::method::binding, protocol::message_class::success_response) &&
                            protocol::load_u32(m.transaction_id().data()) == i;
                if (good) {
                    auto x = m.get<protocol::xor_mapped_address>();
                    good = x && x->address == c.local;
                }
                if (!good) {
                    ++r.bad;
                    continue;
                }
                ++r.received;
                if (c.in_flight > 0) --c.in_flight;
                c.last_progress = now;
            }
            if (r.sent < o.max_requests && now < deadline) send_new(i, o.window - std::min(o.window, c.in_flight));
        }
        // Requests unanswered for a while are counted lost and replaced.
        if (now - last_sweep > std::chrono::milliseconds(100)) {
            last_sweep = now;
            for (std::uint32_t i = 0; i < o.sockets; ++i) {
                auto& c = clients[i];
                if (c.in_flight > 0 && now - c.last_progress > resend_after) {
                    r.timeouts += c.in_flight;
                    c.in_flight = 0;
                    c.last_progress = now;
                    if (r.sent < o.max_requests) send_new(i, o.window);
                }
            }
        }
    }
    r.seconds = std::chrono::duration<double>(clock::now() - start).count();
    r.cpu_seconds = cpu_now() - cpu_start;
    for (auto& c : clients) ::close(c.fd);
    ::close(ep);
    return r;
}

} // namespace ferry::load
