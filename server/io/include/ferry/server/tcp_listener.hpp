// STUN and TURN over TCP and TLS (RFC 8489 §6.2.2, RFC 8656 §3.1): accepts connections on a
// SO_REUSEPORT socket; each connection frames its stream (protocol/framer.hpp), answers STUN,
// relays ChannelData, and sends everything (answers and relayed data) through one bounded
// queue. A bad frame, an idle connection without an allocation, or a client that stops
// reading ends the connection, and with it its allocation.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/connection_limiter.hpp"
#include "ferry/server/stream_poller.hpp"
#include "ferry/server/stream_registry.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/tls_context.hpp"
#include "ferry/server/turn_handler.hpp"

#include "ferry/server/asio.hpp"

namespace ferry::server {

class tcp_listener {
public:
    /// Takes ownership of `fd`, a listening TCP socket (see net::listen_tcp).
    tcp_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                 stun_handler& handler, const limits_config& limits, connection_limiter& limiter,
                 turn_handler* turn, packet_sink& sink, stream_registry& streams, stream_poller& poller,
                 connection_counts& counts, tls_context_holder* tls = nullptr, bool plain_too = false);

    void start();
    const protocol::transport_address& bound() const { return bound_; }
    /// "tls", "tcp", or "tcp+tls" for a port that serves both.
    std::string_view kind() const { return tls_ == nullptr ? "tcp" : plain_too_ ? "tcp+tls" : "tls"; }

private:
    asio::awaitable<void> accept_loop();
    void serve(asio::ip::tcp::socket socket, bool tls, connection_limiter::ticket ticket);
    /// A port serving both: waits for the first byte (a TLS ClientHello starts with 22).
    asio::awaitable<void> sniff(asio::ip::tcp::socket socket, connection_limiter::ticket ticket);

    asio::ip::tcp::acceptor acceptor_;
    protocol::transport_address bound_;
    stun_handler& handler_;
    const limits_config& limits_;
    connection_limiter& limiter_;
    connection_counts& counts_;
    turn_handler* turn_;
    packet_sink& sink_;
    stream_registry& streams_;
    stream_poller& poller_; ///< reads the connections
    tls_context_holder* tls_; ///< set on TLS listeners
    bool plain_too_;          ///< a TLS listener that also serves plain TCP
    log::throttle log_{5};
};

} // namespace ferry::server
