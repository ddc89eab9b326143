// A UDP socket that answers STUN. It waits for readability, then drains the socket in
// batches (recvmmsg), hands each datagram to the worker's handler and flushes the replies with
// sendmmsg. With an RFC 5780 set, a reply may leave from a sibling socket of the same worker.
#pragma once

#include "ferry/server/stun_handler.hpp"
#include "ferry/server/turn_handler.hpp"
#include "ferry/server/udp_batch.hpp"

#include "ferry/server/asio.hpp"

#include <array>

namespace ferry::server {

class udp_listener {
public:
    /// The four sockets of an RFC 5780 set, [ip][port].
    using nat_sockets = std::array<std::array<udp_listener*, 2>, 2>;

    /// Takes ownership of `fd`, a bound UDP socket (see net::bind_udp).
    udp_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                 stun_handler& handler, udp_batch& batch, turn_handler* turn, packet_sink& sink);

    /// Makes this socket part of an RFC 5780 set.
    void join_nat_set(const nat_identity* identity, const nat_sockets* sockets) {
        nat_ = identity;
        nat_sockets_ = sockets;
    }
    void start();
    int native_handle() { return socket_.native_handle(); }
    const protocol::transport_address& bound() const { return bound_; }

private:
    asio::awaitable<void> run();
    /// Services up to a few batches; false if datagrams may still be waiting.
    bool service();

    asio::ip::udp::socket socket_;
    protocol::transport_address bound_;
    bool wildcard_;
    stun_handler& handler_;
    udp_batch& batch_;
    turn_handler* turn_;
    packet_sink& sink_;
    const nat_identity* nat_ = nullptr;
    const nat_sockets* nat_sockets_ = nullptr;
    log::throttle drop_log_{5};
};

} // namespace ferry::server
