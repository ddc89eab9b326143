// STUN over TCP (RFC 8489 §6.2.2): accepts connections on a SO_REUSEPORT socket and runs one
// coroutine per connection that frames the stream (protocol/framer.hpp), answers each STUN
// message, and closes the connection on a bad frame or after the idle timeout.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/connection_limiter.hpp"
#include "ferry/server/stun_handler.hpp"

#include "ferry/server/asio.hpp"

namespace ferry::server {

class tcp_listener {
public:
    /// Takes ownership of `fd`, a listening TCP socket (see net::listen_tcp).
    tcp_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                 stun_handler& handler, const limits_config& limits, connection_limiter& limiter);

    void start();
    const protocol::transport_address& bound() const { return bound_; }

private:
    asio::awaitable<void> accept_loop();

    asio::ip::tcp::acceptor acceptor_;
    protocol::transport_address bound_;
    stun_handler& handler_;
    const limits_config& limits_;
    connection_limiter& limiter_;
    log::throttle log_{5};
};

} // namespace ferry::server
