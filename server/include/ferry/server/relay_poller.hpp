// The relay side of an allocation: a UDP socket on a relayed transport address. It drains
// peer datagrams in batches (recvmmsg) and hands each to the TURN handler, which answers
// through the worker's batch sink. Also the sink itself: packet_sink over udp_batch.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/stream_registry.hpp"
#include "ferry/server/turn_handler.hpp"
#include "ferry/server/udp_batch.hpp"

#include <memory>

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

class relay_socket : public std::enable_shared_from_this<relay_socket> {
public:
    relay_socket(asio::io_context& io, int fd, protocol::address_family family, turn_handler& turn,
                 udp_batch& batch, packet_sink& sink);
    void start();
    /// Closes the socket (after the batch's next flush); the receive loop ends at its next step.
    void close();

private:
    asio::awaitable<void> run();
    bool service();

    asio::ip::udp::socket socket_;
    turn_handler& turn_;
    udp_batch& batch_;
    packet_sink& sink_;
};

} // namespace ferry::server
