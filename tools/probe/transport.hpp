// ferry-probe's side of the wire: the URL forms of browsers' iceServers, and one connection to
// a STUN/TURN server over UDP, TCP or TLS that sends a message and waits for the next one.
// Blocking sockets with poll(2): a probe makes one exchange at a time.
#pragma once

#include "ferry/protocol/address.hpp"

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ferry::probe {

enum class wire { udp, tcp, tls };
std::string_view to_string(wire w);

/// stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT][?transport=tcp],
/// or HOST[:PORT] (UDP). IPv6 hosts in brackets.
struct server_url {
    std::string scheme; ///< stun, turn or turns
    std::string host;
    std::uint16_t port = 3478;
    wire via = wire::udp;
};
/// nullopt with `why` set when the text is not such a URL.
std::optional<server_url> parse_url(std::string_view text, std::string& why);

/// What went wrong when a connection could not be made or an answer did not come.
struct failure {
    std::string what;   ///< e.g. "connect: Connection refused"
    bool unreachable;   ///< nothing answered (as opposed to an answer we did not like)
};

class connection {
public:
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Resolves and connects (TCP and TLS: the handshake too). `ca` adds trusted certificates
    /// for TLS; `insecure` skips the certificate check.
    static std::unique_ptr<connection> open(const server_url& url, std::chrono::milliseconds timeout,
                                           const std::string& ca, bool insecure, failure& why);

    bool send(std::span<const std::uint8_t> bytes);
    /// The next datagram or stream record (a STUN message or ChannelData), or nullopt on timeout
    /// or a closed connection.
    std::optional<std::vector<std::uint8_t>> receive(std::chrono::milliseconds timeout);

    const protocol::transport_address& local() const { return local_; }
    const protocol::transport_address& remote() const { return remote_; }
    wire via() const { return via_; }
    std::string tls_summary() const; ///< "TLSv1.3, certificate CN=..." or ""
    /// The errno of the last failed receive: ECONNREFUSED when an ICMP port unreachable came
    /// back for a UDP request (nothing listens on that port).
    int last_error() const { return error_; }

private:
    connection() = default;
    bool read_some(std::chrono::milliseconds timeout);

    int fd_ = -1;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    wire via_ = wire::udp;
    protocol::transport_address local_;
    protocol::transport_address remote_;
    std::vector<std::uint8_t> pending_; ///< stream bytes not yet returned
    int error_ = 0;
};

/// A UDP socket on `ip`, any port: ferry-probe's own echo peer for the TURN test.
class udp_socket {
public:
    explicit udp_socket(const protocol::ip_address& ip);
    ~udp_socket();
    udp_socket(const udp_socket&) = delete;
    udp_socket& operator=(const udp_socket&) = delete;
    bool ok() const { return fd_ >= 0; }
    const protocol::transport_address& local() const { return local_; }
    bool send_to(const protocol::transport_address& to, std::span<const std::uint8_t> bytes);
    struct datagram {
        protocol::transport_address from;
        std::vector<std::uint8_t> bytes;
    };
    std::optional<datagram> receive(std::chrono::milliseconds timeout);

private:
    int fd_ = -1;
    protocol::transport_address local_;
};

std::chrono::steady_clock::time_point now();
double ms_since(std::chrono::steady_clock::time_point t);

} // namespace ferry::probe
