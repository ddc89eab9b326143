// ferry-load's TURN-over-TCP and TURN-over-TLS client side: one connection to the server,
// messages framed as RFC 8656 §12 says (a STUN message by its length; ChannelData by its length
// padded to four bytes). Connect and handshake block (with a deadline); afterwards the socket is
// non-blocking and driven by the workload's epoll loop.
#pragma once

#include "ferry/protocol/address.hpp"

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ferry::load {

/// A client TLS context that accepts any certificate (a load test, not a probe).
SSL_CTX* insecure_client_tls();

class stream_link {
public:
    /// A TCP connection to `server`, with a TLS handshake over it when `tls` is given. nullptr
    /// with `why` set on failure.
    static std::unique_ptr<stream_link> open(const protocol::transport_address& server, SSL_CTX* tls,
                                             std::chrono::milliseconds timeout, std::string& why);
    ~stream_link();
    stream_link(const stream_link&) = delete;
    stream_link& operator=(const stream_link&) = delete;

    int fd() const { return fd_; }
    /// Writes all of `bytes`, waiting for room (up to a second) if the socket is full.
    bool send(std::span<const std::uint8_t> bytes);
    /// Reads whatever has arrived; false when the connection closed or failed.
    bool fill();
    /// The next whole message from what fill() read (padding included), or an empty span.
    /// Valid until the next call of next() or fill(). A stream that is not STUN or ChannelData
    /// fails (bad()).
    std::span<const std::uint8_t> next();
    bool bad() const { return bad_; }
    /// The kernel's receive time (CLOCK_REALTIME, ns) of the last bytes fill() read: the
    /// SO_TIMESTAMPNS of the last segment, so a round trip excludes this process's own delays.
    /// 0 when the kernel gave none.
    std::uint64_t received_ns() const { return received_ns_; }

private:
    stream_link() = default;
    bool wait(short events);
    /// recv() that keeps the segment's receive timestamp; for the TLS BIO too.
    long receive(void* into, std::size_t size);
    static BIO_METHOD* timestamped_socket();

    int fd_ = -1;
    SSL* ssl_ = nullptr;
    std::vector<std::uint8_t> buffer_ = std::vector<std::uint8_t>(65536 + 8);
    std::size_t begin_ = 0, end_ = 0;
    bool bad_ = false;
    std::uint64_t received_ns_ = 0;
};

} // namespace ferry::load
