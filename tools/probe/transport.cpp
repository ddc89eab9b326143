#include "transport.hpp"

#include "ferry/protocol/wire.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ferry::probe {
namespace {

protocol::transport_address from_sockaddr(const sockaddr_storage& ss) {
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
        return *protocol::transport_address::from(text, ntohs(a->sin6_port));
    }
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    return *protocol::transport_address::from(text, ntohs(a->sin_port));
}

socklen_t to_sockaddr(const protocol::transport_address& a, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    const auto text = a.ip.to_string();
    if (a.ip.family == protocol::address_family::ipv6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a.port);
        ::inet_pton(AF_INET6, text.c_str(), &s6->sin6_addr);
        return sizeof(sockaddr_in6);
    }
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a.port);
    ::inet_pton(AF_INET, text.c_str(), &s4->sin_addr);
    return sizeof(sockaddr_in);
}

bool wait_for(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

std::string ssl_error() {
    const auto e = ::ERR_get_error();
    if (e == 0) return "the connection closed during the handshake";
    char buf[256];
    ::ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

} // namespace

std::string_view to_string(wire w) {
    switch (w) {
    case wire::udp: return "udp";
    case wire::tcp: return "tcp";
    case wire::tls: return "tls";
    }
    return "udp";
}

std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
double ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(now() - t).count();
}

std::optional<server_url> parse_url(std::string_view text, std::string& why) {
    server_url u;
    u.scheme = "stun";
    if (const auto colon = text.find(':'); colon != std::string_view::npos &&
                                           (text.starts_with("stun:") || text.starts_with("turn:") ||
                                            text.starts_with("turns:") || text.starts_with("stuns:"))) {
        u.scheme = std::string(text.substr(0, colon));
        text.remove_prefix(colon + 1);
    }
    if (text.starts_with("//")) text.remove_prefix(2);
    std::string_view query;
    if (const auto q = text.find('?'); q != std::string_view::npos) {
        query = text.substr(q + 1);
        text = text.substr(0, q);
    }
    const bool secure = u.scheme == "turns" || u.scheme == "stuns";
    u.port = secure ? 5349 : 3478;
    u.via = secure ? wire::tls : wire::udp;
    std::string_view port_text;
    if (text.starts_with("[")) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            why = "an IPv6 address needs its closing ']'";
            return std::nullopt;
        }
        u.host = std::string(text.substr(1, close - 1));
        const auto rest = text.substr(close + 1);
        if (rest.starts_with(":")) port_text = rest.substr(1);
        else if (!rest.empty()) {
            why = "unexpected text after the address";
            return std::nullopt;
        }
    } else if (const auto c = text.rfind(':'); c != std::string_view::npos && text.find(':') == c) {
        u.host = std::string(text.substr(0, c));
        port_text = text.substr(c + 1);
    } else {
        u.host = std::string(text);
    }
    if (u.host.empty()) {
        why = "no host";
        return std::nullopt;
    }
    if (!port_text.empty()) {
        unsigned p = 0;
        for (const char ch : port_text) {
            if (ch < '0' || ch > '9' || p > 65535) {
                why = "the port is not a number from 1 to 65535";
                return std::nullopt;
            }
            p = p * 10 + static_cast<unsigned>(ch - '0');
        }
        if (p == 0 || p > 65535) {
            why = "the port is not a number from 1 to 65535";
            return std::nullopt;
        }
        u.port = static_cast<std::uint16_t>(p);
    }
    if (!query.empty()) {
        if (query == "transport=tcp") u.via = secure ? wire::tls : wire::tcp;
        else if (query == "transport=udp" && !secure) u.via = wire::udp;
        else {
            why = "the query may only be ?transport=udp or ?transport=tcp (turns: is TLS over TCP)";
            return std::nullopt;
        }
    }
    return u;
}

connection::~connection() {
    if (ssl_ != nullptr) {
        ::SSL_shutdown(ssl_);
        ::SSL_free(ssl_);
    }
    if (ctx_ != nullptr) ::SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<connection> connection::open(const server_url& url, std::chrono::milliseconds timeout,
                                             const std::string& ca, bool insecure, failure& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = url.via == wire::udp ? SOCK_DGRAM : SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(url.host.c_str(), std::to_string(url.port).c_str(), &hints, &found); rc != 0) {
        why = {"cannot resolve " + url.host + ": " + ::gai_strerror(rc), true};
        return nullptr;
    }
    std::unique_ptr<connection> c(new connection());
    c->via_ = url.via;
    std::string last = "no address";
    for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last = std::strerror(errno);
            ::close(fd);
            continue;
        }
        if (url.via != wire::udp) {
            int err = 0;
            socklen_t len = sizeof err;
            if (!wait_for(fd, POLLOUT, timeout)) {
                last = "no answer within the timeout";
                ::close(fd);
                continue;
            }
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                last = std::strerror(err);
                ::close(fd);
                continue;
            }
        }
        c->fd_ = fd;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        c->local_ = from_sockaddr(ss);
        std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        c->remote_ = from_sockaddr(ss);
        break;
    }
    ::freeaddrinfo(found);
    if (c->fd_ < 0) {
        why = {"connect to " + url.host + ":" + std::to_string(url.port) + ": " + last, true};
        return nullptr;
    }
    if (url.via == wire::tls) {
        c->ctx_ = ::SSL_CTX_new(::TLS_client_method());
        ::SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
        if (!insecure) {
            ::SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
            ::SSL_CTX_set_default_verify_paths(c->ctx_);
            if (!ca.empty() && ::SSL_CTX_load_verify_locations(c->ctx_, ca.c_str(), nullptr) != 1) {
                why = {"cannot load the CA file " + ca, false};
                return nullptr;
            }
        }
        static const unsigned char alpn[] = {9, 's', 't', 'u', 'n', '.', 't', 'u', 'r', 'n'};
        ::SSL_CTX_set_alpn_protos(c->ctx_, alpn, sizeof alpn);
        c->ssl_ = ::SSL_new(c->ctx_);
        ::SSL_set_fd(c->ssl_, c->fd_);
        const auto ip = protocol::ip_address::parse(url.host);
        if (!ip) ::SSL_set_tlsext_host_name(c->ssl_, url.host.c_str());
        if (!insecure) {
            if (ip) ::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(c->ssl_), url.host.c_str());
            else ::SSL_set1_host(c->ssl_, url.host.c_str());
        }
        const auto deadline = now() + timeout;
        for (;;) {
            const int rc = ::SSL_connect(c->ssl_);
            if (rc == 1) break;
            const int e = ::SSL_get_error(c->ssl_, rc);
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now());
            if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && left.count() > 0 &&
                wait_for(c->fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left))
                continue;
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                why = {"TLS handshake: no answer within the timeout", true};
                return nullptr;
            }
            const long verify = ::SSL_get_verify_result(c->ssl_);
            if (verify != X509_V_OK)
                why = {std::string("TLS certificate not accepted: ") + ::X509_verify_cert_error_string(verify), false};
            else
                why = {"TLS handshake failed: " + ssl_error(), false};
            return nullptr;
        }
    }
    return c;
}

std::string connection::tls_summary() const {
    if (ssl_ == nullptr) return {};
    std::string out = ::SSL_get_version(ssl_);
    if (X509* cert = ::SSL_get1_peer_certificate(ssl_)) {
        char name[256] = {};
        ::X509_NAME_oneline(::X509_get_subject_name(cert), name, sizeof name);
        out += std::string(", certificate ") + name;
        ::X509_free(cert);
    }
    return out;
}

bool connection::send(std::span<const std::uint8_t> bytes) {
    if (ssl_ != nullptr) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const int n = ::SSL_write(ssl_, bytes.data() + off, static_cast<int>(bytes.size() - off));
            if (n > 0) {
                off += static_cast<std::size_t>(n);
                continue;
            }
            const int e = ::SSL_get_error(ssl_, n);
            if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return false;
            wait_for(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, std::chrono::milliseconds(1000));
        }
        return true;
    }
    std::size_t off = 0;
    while (off < bytes.size()) {
        const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_for(fd_, POLLOUT, std::chrono::milliseconds(1000));
            continue;
        }
        if (n < 0) return false;
        if (via_ == wire::udp) return true;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool connection::read_some(std::chrono::milliseconds timeout) {
    std::uint8_t buf[65536];
    if (ssl_ != nullptr && ::SSL_pending(ssl_) == 0 && !wait_for(fd_, POLLIN, timeout)) return false;
    if (ssl_ == nullptr && !wait_for(fd_, POLLIN, timeout)) return false;
    for (;;) {
        long n = 0;
        if (ssl_ != nullptr) {
            n = ::SSL_read(ssl_, buf, sizeof buf);
            if (n <= 0) {
                const int e = ::SSL_get_error(ssl_, static_cast<int>(n));
                if (e == SSL_ERROR_WANT_READ && wait_for(fd_, POLLIN, timeout)) continue;
                if (e != SSL_ERROR_WANT_READ) error_ = ECONNRESET;
                return false;
            }
        } else {
            n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                error_ = n == 0 ? ECONNRESET : errno;
                return false;
            }
        }
        pending_.insert(pending_.end(), buf, buf + n);
        return true;
    }
}

std::optional<std::vector<std::uint8_t>> connection::receive(std::chrono::milliseconds timeout) {
    const auto deadline = now() + timeout;
    error_ = 0;
    auto left = [&] {
        return std::max(std::chrono::milliseconds(0),
                        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now()));
    };
    if (via_ == wire::udp) {
        if (!wait_for(fd_, POLLIN, left())) return std::nullopt;
        std::vector<std::uint8_t> buf(65536);
        const auto n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n < 0) {
            error_ = errno;
            return std::nullopt;
        }
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }
    // Streams: a STUN message is 20 + length bytes; ChannelData 4 + length, padded to 4.
    for (;;) {
        if (pending_.size() >= 4) {
            const std::size_t length = protocol::load_u16(pending_.data() + 2);
            const bool channel = (pending_[0] & 0xC0) == 0x40;
            const std::size_t total = channel ? 4 + ((length + 3) & ~std::size_t{3}) : 20 + length;
            if (pending_.size() >= total) {
                std::vector<std::uint8_t> record(pending_.begin(), pending_.begin() + static_cast<long>(total));
                pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(total));
                return record;
            }
        }
        if (left().count() == 0 || !read_some(left())) return std::nullopt;
    }
}

udp_socket::udp_socket(const protocol::ip_address& ip) {
    const protocol::transport_address any{ip, 0};
    sockaddr_storage ss{};
    const auto len = to_sockaddr(any, ss);
    fd_ = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    socklen_t got = sizeof ss;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &got);
    local_ = from_sockaddr(ss);
}

udp_socket::~udp_socket() {
    if (fd_ >= 0) ::close(fd_);
}

bool udp_socket::send_to(const protocol::transport_address& to, std::span<const std::uint8_t> bytes) {
    sockaddr_storage ss{};
    const auto len = to_sockaddr(to, ss);
    return ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
           static_cast<ssize_t>(bytes.size());
}

std::optional<udp_socket::datagram> udp_socket::receive(std::chrono::milliseconds timeout) {
    if (!wait_for(fd_, POLLIN, timeout)) return std::nullopt;
    datagram d;
    d.bytes.resize(65536);
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const auto n = ::recvfrom(fd_, d.bytes.data(), d.bytes.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return std::nullopt;
    d.bytes.resize(static_cast<std::size_t>(n));
    d.from = from_sockaddr(from);
    return d;
}

} // namespace ferry::probe
