// DTLS 1.2 (RFC 6347) for TURN over DTLS (RFC 8656 §3.1), over OpenSSL with memory BIOs: no
// sockets here, so tests drive it in memory. Two parts:
//  - dtls_gate answers a ClientHello from an unknown source statelessly (RFC 6347 §4.2.1): a
//    HelloVerifyRequest with a cookie MAC'd over the source address, and nothing remembered.
//    Only a ClientHello that returns a valid cookie yields an SSL object, and with it state.
//  - dtls_channel is one session after that: datagrams in, plaintext records out, and back.
// Each outgoing DTLS datagram leaves through a datagram_out, one datagram per write.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/server/config.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;

namespace ferry::server {

/// Where DTLS datagrams go: the listener's socket (or a test's queue).
class datagram_out {
public:
    virtual ~datagram_out() = default;
    virtual void send_datagram(const protocol::transport_address& to, std::span<const std::uint8_t> bytes) = 0;
};

/// The DTLS server context: DTLS 1.2, forward-secret AEAD ciphers, the configured certificate,
/// stateless cookies. Throws std::runtime_error naming the file when it cannot load.
std::shared_ptr<SSL_CTX> make_dtls_context(const tls_config& cfg);

/// RFC 7983 §7: a first byte from 20 to 63 is DTLS.
inline bool looks_like_dtls(std::span<const std::uint8_t> datagram) {
    return !datagram.empty() && datagram[0] >= 20 && datagram[0] <= 63;
}

/// Where a DTLS object's datagrams go: kept behind its write BIO.
struct dtls_target {
    datagram_out* out = nullptr;
    protocol::transport_address to;
    std::uint64_t writes = 0;
};

struct ssl_deleter {
    void operator()(SSL* s) const noexcept;
};
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;

/// The cookie exchange in front of a DTLS listener. One per listener; keeps no per-client state.
class dtls_gate {
public:
    explicit dtls_gate(datagram_out& out);
    ~dtls_gate();
    dtls_gate(const dtls_gate&) = delete;
    dtls_gate& operator=(const dtls_gate&) = delete;

    /// One datagram from a source without a session. Returns the SSL object, mid-handshake,
    /// when it is a ClientHello with a valid cookie; otherwise null, after answering a
    /// ClientHello without one (or with a stale one) by a HelloVerifyRequest, or dropping
    /// anything else.
    ssl_ptr offer(const std::shared_ptr<SSL_CTX>& ctx, const protocol::transport_address& from,
                  std::span<const std::uint8_t> datagram);
    std::uint64_t verify_requests_sent() const { return verify_requests_; }

private:
    datagram_out& out_;
    std::unique_ptr<dtls_target> target_;
    ssl_ptr listening_;
    std::shared_ptr<SSL_CTX> listening_ctx_;
    std::uint64_t verify_requests_ = 0;
};

/// One DTLS session, from the cookie-checked ClientHello on.
class dtls_channel {
public:
    enum class state { handshaking, open, closed };

    /// `ssl` comes from dtls_gate::offer; its datagrams go to `peer` through `out`.
    dtls_channel(ssl_ptr ssl, std::shared_ptr<SSL_CTX> ctx, datagram_out& out, const protocol::transport_address& peer);
    ~dtls_channel();
    dtls_channel(const dtls_channel&) = delete;
    dtls_channel& operator=(const dtls_channel&) = delete;

    /// Continues the handshake (call once after construction: the ClientHello is already in).
    state start();
    /// One datagram from the peer. Calls `on_record` with each application record's plaintext.
    state receive(std::span<const std::uint8_t> datagram,
                  const std::function<void(std::span<const std::uint8_t>)>& on_record);
    /// Sends one application record; false if the session is not open.
    bool send(std::span<const std::uint8_t> plaintext);
    /// When a lost handshake flight must be resent, if the handshake waits for one.
    std::optional<std::chrono::steady_clock::time_point> retransmit_at() const;
    /// Resends the last flight if its timer ran out.
    state on_timer();
    /// Sends close_notify; the session is closed afterwards.
    void close();
    state current() const { return state_; }
    /// Why the handshake or session failed, for the log.
    const std::string& error() const { return error_; }

private:
    state advance(int rc);

    std::unique_ptr<dtls_target> target_;
    std::shared_ptr<SSL_CTX> ctx_; ///< kept while the session lives (SIGHUP swaps contexts)
    ssl_ptr ssl_;
    state state_ = state::handshaking;
    std::string error_;
};

} // namespace ferry::server
