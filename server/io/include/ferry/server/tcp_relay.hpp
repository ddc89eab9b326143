// RFC 6062 TCP relaying, the I/O side: a TCP allocation's listening relay socket, its peer
// connections, and the server-wide table that lets a ConnectionBind arriving on any worker find
// the peer connection it names. A bound peer connection is spliced to the client data
// connection: bytes are copied across as they come, with no framing, and each side stops
// reading while the other has more than a high-water mark queued.
#pragma once

#include "ferry/server/stream_registry.hpp"
#include "ferry/server/turn_handler.hpp"

#include "ferry/server/asio.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ferry::server {

class tcp_peer_link;

/// Peer connections by CONNECTION-ID, across workers.
class tcp_link_hub {
public:
    void add(std::uint32_t id, std::weak_ptr<tcp_peer_link> link);
    void remove(std::uint32_t id);
    std::shared_ptr<tcp_peer_link> find(std::uint32_t id) const;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::uint32_t, std::weak_ptr<tcp_peer_link>> links_;
};

/// One TCP connection with a peer. Until it is bound it buffers what the peer sends (up to
/// `cap` bytes; RFC 6062 §5.3 asks the server to keep it), then forwards to its partner.
class tcp_peer_link final : public splice_end, public std::enable_shared_from_this<tcp_peer_link> {
public:
    tcp_peer_link(asio::ip::tcp::socket socket, std::uint32_t id, tcp_link_hub& hub, turn_handler& turn,
                  std::size_t cap);
    /// Registers it in the hub and starts reading. Owner thread.
    void start();
    /// Splices it to the client data connection. Owner thread.
    void attach(std::shared_ptr<splice_end> client);
    std::uint32_t id() const { return id_; }
    turn_handler& turn() { return turn_; }
    asio::any_io_executor executor() { return socket_.get_executor(); }

    // splice_end: any thread
    void push(std::span<const std::uint8_t> bytes) override;
    void hang_up() override;
    std::size_t backlog() const override { return backlog_.load(std::memory_order_relaxed); }
    void resume() override;

private:
    asio::awaitable<void> read_loop();
    asio::awaitable<void> write_loop();
    void write(std::span<const std::uint8_t> bytes);
    void close();

    asio::ip::tcp::socket socket_;
    asio::steady_timer pause_; ///< the reader waits on it while the client is behind
    std::uint32_t id_;
    tcp_link_hub& hub_;
    turn_handler& turn_;
    std::size_t cap_;
    std::shared_ptr<splice_end> client_;
    std::vector<std::uint8_t> early_;   ///< from the peer, before the bind
    std::vector<std::uint8_t> pending_; ///< to the peer, queued
    std::vector<std::uint8_t> sending_; ///< to the peer, being written
    std::atomic<std::size_t> backlog_{0};
    protocol::transport_address peer_;
    std::uint64_t to_peer_ = 0;
    std::uint64_t from_peer_ = 0;
    bool writing_ = false;
    bool closed_ = false;
};

/// A TCP allocation's relayed transport address: accepts peers and hands them to the handler.
class tcp_relay_listener : public std::enable_shared_from_this<tcp_relay_listener> {
public:
    tcp_relay_listener(asio::io_context& io, int fd, const protocol::transport_address& local, turn_handler& turn,
                       packet_sink& sink, tcp_link_hub& hub, std::size_t cap);
    void start();
    void close();
    const protocol::transport_address& local() const { return local_; }

private:
    asio::awaitable<void> accept_loop();

    asio::ip::tcp::acceptor acceptor_;
    protocol::transport_address local_;
    turn_handler& turn_;
    packet_sink& sink_;
    tcp_link_hub& hub_;
    std::size_t cap_;
};

/// Bytes of backlog past which a splice's reader waits for its partner to drain. The partner's
/// writer wakes it (no polling); a partner that drains nothing for splice_stall_timeout is
/// taken for dead and the splice closed.
inline constexpr std::size_t splice_high_water = 64 * 1024;
inline constexpr std::chrono::seconds splice_stall_timeout{60};

/// Pauses a splice reader until `partner` is below the high-water mark (its writer resumes the
/// `pause` timer) or splice_stall_timeout passes; false when it stalled that long.
asio::awaitable<bool> wait_for_partner(asio::steady_timer& pause, const splice_end& partner);

} // namespace ferry::server
