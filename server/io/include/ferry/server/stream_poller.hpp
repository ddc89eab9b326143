// The reading side of a worker's TCP and TLS client connections. Every connection's socket sits
// in one edge-triggered epoll set of the worker's own, added once; Asio waits on that set's
// descriptor only. A pass reads every connection that has bytes until the socket is drained and
// handles the frames at once. Waiting through Asio per connection cost, per message, a receive
// that found nothing (Asio tries a read before it waits) or a re-arm of the descriptor
// (epoll_ctl on every async_wait), plus an operation, a posted handler and a coroutine resume.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/log.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <sys/epoll.h>
#include <vector>

namespace ferry::server {

/// What the poller calls when a connection's socket has bytes.
class stream_reader {
public:
    virtual ~stream_reader() = default;
    /// Reads what the socket holds and handles it. False if it stopped with bytes still there
    /// (it had its share of this pass): the poller calls it again in the next pass, since no new
    /// edge will announce them.
    virtual bool readable() = 0;
    /// readable() threw: the connection must end.
    virtual void abort() = 0;
};

class stream_poller {
public:
    /// Throws std::system_error if the epoll set cannot be made.
    explicit stream_poller(asio::io_context& io);
    stream_poller(const stream_poller&) = delete;
    stream_poller& operator=(const stream_poller&) = delete;

    /// Starts the loop (once, from the worker's thread before it runs).
    void start();
    /// `reader` is called whenever `fd` (a connected stream socket) has bytes to read, from the
    /// next pass on (also for bytes already there). False (errno set) if the kernel refuses.
    bool add(int fd, std::weak_ptr<stream_reader> reader);
    /// No more calls for `fd`; call before the descriptor is closed.
    void remove(int fd);
    std::size_t size() const { return count_; }

private:
    static constexpr std::size_t max_events = 256;

    asio::awaitable<void> run();
    /// One pass over the connections with bytes; true when none is left waiting.
    bool poll_once();
    void service(std::uint64_t tag);

    struct entry {
        std::uint32_t generation = 0; ///< 0: not ours
        std::weak_ptr<stream_reader> reader;
    };

    asio::posix::stream_descriptor epoll_;
    /// By descriptor. An event carries the generation too, so one for a connection closed
    /// earlier in the same pass (whose number may already belong to another) is ignored.
    std::vector<entry> live_;
    std::uint32_t next_generation_ = 0;
    std::size_t count_ = 0;
    std::array<epoll_event, max_events> events_{};
    std::vector<std::uint64_t> backlog_, backlog_spare_;
    log::throttle log_{5};
};

} // namespace ferry::server
