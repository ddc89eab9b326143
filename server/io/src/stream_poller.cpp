#include "ferry/server/stream_poller.hpp"

#include "ferry/server/spawn.hpp"

#include <cerrno>
#include <exception>
#include <system_error>

namespace ferry::server {

namespace {

int make_epoll() {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot make the connections' epoll set");
    return fd;
}

std::uint64_t tag(int fd, std::uint32_t generation) {
    return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
}

} // namespace

stream_poller::stream_poller(asio::io_context& io) : epoll_(io, make_epoll()) {}

void stream_poller::start() {
    spawn_restarting(epoll_.get_executor(), "stream connections", [this] { return run(); });
}

bool stream_poller::add(int fd, std::weak_ptr<stream_reader> reader) {
    if (fd < 0) return false;
    if (++next_generation_ == 0) ++next_generation_;
    epoll_event e{};
    // Edge-triggered, added once: a connection is reported when bytes arrive after it was last
    // drained. Adding reports bytes that are already there.
    e.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    e.data.u64 = tag(fd, next_generation_);
    if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &e) != 0) return false;
    const auto at = static_cast<std::size_t>(fd);
    if (at >= live_.size()) live_.resize(at + 1 + live_.size() / 2);
    live_[at] = entry{next_generation_, std::move(reader)};
    ++count_;
    return true;
}

void stream_poller::remove(int fd) {
    const auto at = static_cast<std::size_t>(fd);
    if (fd < 0 || at >= live_.size() || live_[at].generation == 0) return;
    live_[at] = entry{};
    --count_;
    ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
}

asio::awaitable<void> stream_poller::run() {
    for (;;) {
        auto [ec] = co_await epoll_.async_wait(asio::posix::descriptor_base::wait_read, use_tuple);
        if (ec) co_return; // closed at the worker's end
        // Yield between passes so a flood on one connection cannot starve the other sockets.
        while (!poll_once()) co_await asio::post(epoll_.get_executor(), asio::use_awaitable);
    }
}

bool stream_poller::poll_once() {
    backlog_spare_.clear();
    backlog_.swap(backlog_spare_);
    for (const auto t : backlog_spare_) service(t);
    const int n = ::epoll_wait(epoll_.native_handle(), events_.data(), static_cast<int>(max_events), 0);
    for (int i = 0; i < n; ++i) service(events_[static_cast<std::size_t>(i)].data.u64);
    return backlog_.empty() && n < static_cast<int>(max_events);
}

void stream_poller::service(std::uint64_t t) {
    const auto at = static_cast<std::size_t>(t & 0xFFFFFFFFu);
    const auto generation = static_cast<std::uint32_t>(t >> 32);
    if (at >= live_.size() || live_[at].generation != generation) return; // closed in this pass
    // Held for the call: the connection may close (and drop its last other owner) inside it.
    const auto reader = live_[at].reader.lock();
    if (!reader) return;
    try {
        if (!reader->readable() && live_[at].generation == generation) backlog_.push_back(t);
    } catch (const std::exception& e) {
        log_.at(log_level::error, "a stream connection ended by an unexpected exception: {}", e.what());
        reader->abort();
    }
}

} // namespace ferry::server
