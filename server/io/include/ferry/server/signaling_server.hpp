// The signaling service's listener: HTTP/1.1 on its own address (ws:// or wss://), the
// WebSocket opening handshake at /ws, then RFC 6455 frames into the rooms of
// ferry_signaling's hub. It runs on the main thread's io_context, off the relay path: signaling
// is a few messages per call set-up. Limits: connections in total and per source address, a
// deadline for the request head and the TLS handshake, the message size, pings and an idle
// timeout, and a bound on what a slow reader may leave queued.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/config.hpp"

#include <asio/ssl.hpp>

#include <memory>

namespace ferry::server {

class signaling_server {
public:
    /// Binds `cfg.signaling`'s address; throws std::system_error when it cannot. `tls` is the
    /// context for wss:// (null for ws://).
    signaling_server(asio::io_context& io, const config& cfg, std::shared_ptr<asio::ssl::context> tls);
    ~signaling_server();
    void start();
    void stop();
    asio::ip::tcp::endpoint local_endpoint() const;

    struct counters {
        std::uint64_t connections = 0;      ///< open now
        std::uint64_t refused = 0;          ///< at accept: over a connection limit
        std::uint64_t messages = 0;         ///< text messages handled
        std::uint64_t protocol_errors = 0;  ///< connections closed for breaking RFC 6455
    };
    counters stats() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace ferry::server
