// STUN and TURN over DTLS 1.2 (RFC 8656 §3.1, RFC 7350): a UDP socket (SO_REUSEPORT, one per
// worker) whose datagrams from unknown sources meet the stateless cookie exchange
// (dtls_gate) and whose sessions (dtls_channel) carry one STUN message or ChannelData per
// record. Sessions count against the connection limits; a handshake must finish within
// limits.tls_handshake_timeout, and a session without an allocation is closed after
// limits.tcp_idle_timeout. Closing a session ends its allocation.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/connection_limiter.hpp"
#include "ferry/server/dtls.hpp"
#include "ferry/server/stream_registry.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/tls_context.hpp"
#include "ferry/server/turn_handler.hpp"
#include "ferry/server/udp_batch.hpp"

#include "ferry/server/asio.hpp"

#include <memory>
#include <unordered_map>

namespace ferry::server {

class dtls_session;

struct transport_address_hash {
    std::size_t operator()(const protocol::transport_address& a) const noexcept;
};

class dtls_listener final : public datagram_out {
public:
    /// Takes ownership of `fd`, a bound UDP socket (see net::bind_udp).
    dtls_listener(asio::io_context& io, int fd, const protocol::transport_address& bound, stun_handler& handler,
                  const limits_config& limits, connection_limiter& limiter, turn_handler* turn, udp_batch& batch,
                  packet_sink& sink, stream_registry& streams, tls_context_holder& tls, connection_counts& counts);
    ~dtls_listener() override;

    void start();
    const protocol::transport_address& bound() const { return bound_; }
    std::size_t sessions() const { return sessions_.size(); }

    /// Queues one datagram on this socket, leaving from `local` when the socket is a wildcard.
    void queue(const protocol::transport_address& to, const protocol::ip_address& local,
               std::span<const std::uint8_t> bytes);
    // datagram_out, for the cookie exchange
    void send_datagram(const protocol::transport_address& to, std::span<const std::uint8_t> bytes) override;

private:
    friend class dtls_session;
    asio::awaitable<void> receive_loop();
    asio::awaitable<void> timer_loop();
    bool service();
    void on_datagram(const protocol::transport_address& from, const protocol::ip_address& local,
                     std::span<const std::uint8_t> bytes);
    void admit(const protocol::transport_address& from, const protocol::ip_address& local, ssl_ptr ssl,
               std::shared_ptr<SSL_CTX> ctx);
    void end(const std::shared_ptr<dtls_session>& s, std::string_view why);

    asio::ip::udp::socket socket_;
    asio::steady_timer timer_;
    protocol::transport_address bound_;
    bool wildcard_;
    protocol::ip_address current_local_; ///< the local address of the datagram in hand
    stun_handler& handler_;
    const limits_config& limits_;
    connection_limiter& limiter_;
    connection_counts& counts_;
    turn_handler* turn_;
    udp_batch& batch_;
    packet_sink& sink_;
    stream_registry& streams_;
    tls_context_holder& tls_;
    dtls_gate gate_;
    std::unordered_map<protocol::transport_address, std::shared_ptr<dtls_session>, transport_address_hash> sessions_;
    log::throttle log_{5};
};

} // namespace ferry::server
