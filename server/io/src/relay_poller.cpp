#include "ferry/server/relay_poller.hpp"

#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"

#include <cerrno>
#include <system_error>
#include <unistd.h>

namespace ferry::server {

std::span<std::uint8_t> batch_sink::buffer() {
    auto b = batch_.send_buffer();
    if (b.empty()) {
        batch_.flush();
        b = batch_.send_buffer();
    }
    return b;
}

void batch_sink::to_peer(int relay_handle, const protocol::transport_address& peer,
                         std::span<const std::uint8_t> bytes) {
    sockaddr_storage to;
    net::to_sockaddr(peer, to);
    batch_.queue(relay_handle, to, bytes);
}

void batch_sink::to_client(const client_route& route, std::span<const std::uint8_t> bytes) {
    if (route.via != transport::udp) {
        if (auto client = streams_.find(route.socket)) client->deliver(bytes);
        return;
    }
    sockaddr_storage to;
    net::to_sockaddr(route.remote, to);
    batch_.queue(route.socket, to, bytes,
                 route.pktinfo ? std::optional<protocol::ip_address>(route.local.ip) : std::nullopt);
}

namespace {

int make_epoll() {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot make the relay sockets' epoll set");
    return fd;
}

std::uint64_t tag(int fd, std::uint32_t generation) {
    return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
}

} // namespace

relay_poller::relay_poller(asio::io_context& io, peer_handler& peers, udp_batch& batch, packet_sink& sink)
    : epoll_(io, make_epoll()), peers_(peers), batch_(batch), sink_(sink) {}

relay_poller::~relay_poller() { remove_all(); }

void relay_poller::start() {
    spawn_restarting(epoll_.get_executor(), "relay sockets", [this] { return run(); });
}

bool relay_poller::add(int fd) {
    if (fd < 0) return false;
    if (++next_generation_ == 0) ++next_generation_;
    epoll_event e{};
    // Edge-triggered: a socket is reported when datagrams arrive, and is drained (or put on
    // the backlog) in that turn.
    e.events = EPOLLIN | EPOLLET;
    e.data.u64 = tag(fd, next_generation_);
    if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &e) != 0) return false;
    if (static_cast<std::size_t>(fd) >= live_.size()) live_.resize(static_cast<std::size_t>(fd) + 1 + live_.size() / 2, 0);
    live_[fd] = next_generation_;
    ++count_;
    return true;
}

void relay_poller::remove(int fd) {
    if (!contains(fd)) return;
    live_[fd] = 0;
    --count_;
    ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
    batch_.close_after_flush(fd);
}

void relay_poller::remove_all() {
    for (std::size_t fd = 0; fd < live_.size(); ++fd)
        if (live_[fd] != 0) remove(static_cast<int>(fd));
}

asio::awaitable<void> relay_poller::run() {
    for (;;) {
        auto [ec] = co_await epoll_.async_wait(asio::posix::descriptor_base::wait_read, use_tuple);
        if (ec) co_return; // closed at the worker's end
        // Yield between turns so a flood on the relay side cannot starve the listeners.
        while (!poll_once()) co_await asio::post(epoll_.get_executor(), asio::use_awaitable);
    }
}

bool relay_poller::poll_once() {
    // Everything this turn queues for clients and peers leaves in one flush at its end (or
    // earlier, when the outbox fills); handle_peer copies each datagram into a send buffer,
    // so the receive slots can be reused from one socket to the next.
    send_scope sent(batch_);
    backlog_spare_.clear();
    backlog_.swap(backlog_spare_);
    for (const auto t : backlog_spare_) service(static_cast<int>(t & 0xFFFFFFFFu), static_cast<std::uint32_t>(t >> 32));
    const int n = ::epoll_wait(epoll_.native_handle(), events_.data(), static_cast<int>(max_events), 0);
    for (int i = 0; i < n; ++i) {
        const auto t = events_[static_cast<std::size_t>(i)].data.u64;
        service(static_cast<int>(t & 0xFFFFFFFFu), static_cast<std::uint32_t>(t >> 32));
    }
    return backlog_.empty() && n < static_cast<int>(max_events);
}

bool relay_poller::service(int fd, std::uint32_t generation) {
    for (int round = 0; round < rounds; ++round) {
        if (!contains(fd) || live_[fd] != generation) return true; // removed in this turn
        const std::size_t n = batch_.receive(fd);
        for (std::size_t i = 0; i < n; ++i) {
            if (batch_.truncated(i)) continue;
            peers_.handle_peer(fd, net::from_sockaddr(batch_.source(i)), batch_.payload(i), sink_);
            // The handler may have ended the allocation (expiry) and removed this very socket.
            if (live_[fd] != generation) return true;
        }
        if (n < udp_batch::batch_size) return true;
    }
    backlog_.push_back(tag(fd, generation));
    return false;
}

} // namespace ferry::server
