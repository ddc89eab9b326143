#include "ferry/server/relay_socket.hpp"

#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"

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

relay_socket::relay_socket(asio::io_context& io, int fd, protocol::address_family family, turn_handler& turn,
                           udp_batch& batch, packet_sink& sink)
    : socket_(io), turn_(turn), batch_(batch), sink_(sink) {
    socket_.assign(family == protocol::address_family::ipv4 ? asio::ip::udp::v4() : asio::ip::udp::v6(), fd);
}

void relay_socket::start() {
    auto self = shared_from_this();
    spawn_restarting(socket_.get_executor(), "relay socket", [self] { return self->run(); });
}

void relay_socket::close() {
    if (!socket_.is_open()) return;
    // The descriptor leaves Asio now (the receive loop ends) but closes only after the batch's
    // next flush: datagrams queued for it must not leave from a new socket given its number.
    std::error_code ec;
    const int fd = socket_.release(ec);
    if (ec) socket_.close(ec);
    else batch_.close_after_flush(fd);
}

asio::awaitable<void> relay_socket::run() {
    for (;;) {
        auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_tuple);
        if (ec || !socket_.is_open()) co_return;
        while (!service()) {
            co_await asio::post(socket_.get_executor(), asio::use_awaitable);
            if (!socket_.is_open()) co_return;
        }
    }
}

bool relay_socket::service() {
    constexpr int rounds = 4;
    for (int round = 0; round < rounds; ++round) {
        if (!socket_.is_open()) return true;
        const int fd = socket_.native_handle();
        const std::size_t n = batch_.receive(fd);
        if (n == 0) return true;
        send_scope sent(batch_); // what this round queues points into its receive slots
        for (std::size_t i = 0; i < n; ++i) {
            if (batch_.truncated(i)) continue;
            turn_.handle_peer(fd, net::from_sockaddr(batch_.source(i)), batch_.payload(i), sink_);
            // The handler may have ended the allocation (expiry) and closed this very socket.
            if (!socket_.is_open()) break;
        }
        sent.now();
        if (n < udp_batch::batch_size) return true;
    }
    return false;
}

} // namespace ferry::server
