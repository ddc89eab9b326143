// The relay side of a worker's UDP allocations. Every relay socket (one relayed transport
// address per allocation) sits in one epoll set of the worker's own; Asio waits on that set's
// descriptor only. A wake-up harvests every relay socket that has datagrams, hands each
// datagram to the TURN handler, and sends what that queued for clients in one flush: at
// production shape (thousands of sockets, one datagram each per wake-up) this costs one
// recvmmsg per socket and one sendmmsg per turn, with none of the per-operation work of a
// reactor wait per socket. Also here: batch_sink, the packet_sink over udp_batch.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/stream_registry.hpp"
#include "ferry/server/turn_handler.hpp"
#include "ferry/server/udp_batch.hpp"

#include <array>
#include <cstdint>
#include <sys/epoll.h>
#include <vector>

namespace ferry::server {

/// packet_sink over a worker's udp_batch: to_peer and to_client queue datagrams that the next
/// flush sends with sendmmsg; data for clients on streams goes to their connection.
class batch_sink final : public packet_sink {
public:
    batch_sink(udp_batch& batch, const stream_registry& streams) : batch_(batch), streams_(streams) {}
    std::span<std::uint8_t> buffer() override;
    void to_peer(int relay_handle, const protocol::transport_address& peer,
                 std::span<const std::uint8_t> bytes) override;
    void to_client(const client_route& route, std::span<const std::uint8_t> bytes) override;
    void flush() override { batch_.flush(); }
    void discard() override { batch_.discard(); }

private:
    udp_batch& batch_;
    const stream_registry& streams_;
};

class relay_poller {
public:
    /// Throws std::system_error if the epoll set cannot be made.
    relay_poller(asio::io_context& io, peer_handler& peers, udp_batch& batch, packet_sink& sink);
    ~relay_poller();
    relay_poller(const relay_poller&) = delete;
    relay_poller& operator=(const relay_poller&) = delete;

    /// Starts the receive loop (once, from the worker's thread before it runs).
    void start();
    /// `fd` (a bound UDP relay socket) receives for this worker from now on. False (errno set)
    /// if the kernel refuses to watch it; the caller still owns it then.
    bool add(int fd);
    bool contains(int fd) const { return fd >= 0 && static_cast<std::size_t>(fd) < live_.size() && live_[fd] != 0; }
    /// Stops receiving on `fd` and closes it after the batch's next flush, so a datagram still
    /// queued for it cannot leave from a new socket given its number.
    void remove(int fd);
    /// remove() for every socket (the worker's end).
    void remove_all();
    std::size_t size() const { return count_; }

private:
    static constexpr std::size_t max_events = 256;
    /// recvmmsg rounds per socket and turn, before the socket waits for the next turn.
    static constexpr int rounds = 4;

    asio::awaitable<void> run();
    /// One pass over the sockets with datagrams; true when none is left waiting.
    bool poll_once();
    /// Drains up to `rounds` batches from one socket; false if it still has datagrams.
    bool service(int fd, std::uint32_t generation);

    asio::posix::stream_descriptor epoll_;
    peer_handler& peers_;
    udp_batch& batch_;
    packet_sink& sink_;
    /// By descriptor: the generation it was added with, 0 when not ours. An event carries the
    /// generation too, so one for a socket removed earlier in the same turn (whose number may
    /// already belong to another) is recognised and ignored.
    std::vector<std::uint32_t> live_;
    std::uint32_t next_generation_ = 0;
    std::size_t count_ = 0;
    std::array<epoll_event, max_events> events_{};
    /// Sockets left with datagrams by the last turn (edge-triggered: no new event announces them).
    std::vector<std::uint64_t> backlog_, backlog_spare_;
};

} // namespace ferry::server
