#include "stream_link.hpp"

#include "turn_client.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

namespace ferry::load {

SSL_CTX* insecure_client_tls() {
    static SSL_CTX* ctx = [] {
        SSL_CTX* c = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
        return c;
    }();
    return ctx;
}

std::unique_ptr<stream_link> stream_link::open(const protocol::transport_address& server, SSL_CTX* tls,
                                               std::chrono::milliseconds timeout, std::string& why) {
    std::unique_ptr<stream_link> l(new stream_link);
    sockaddr_storage ss;
    const auto len = to_sockaddr(server, ss);
    l->fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd_ < 0) {
        why = std::string("socket: ") + std::strerror(errno);
        return nullptr;
    }
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(l->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(l->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int on = 1;
    ::setsockopt(l->fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (::connect(l->fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        why = std::string("connect: ") + std::strerror(errno);
        return nullptr;
    }
    ::setsockopt(l->fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    if (tls != nullptr) {
        l->ssl_ = SSL_new(tls);
        // OpenSSL reads through this link's receive() (the timestamp comes with the bytes) and
        // writes with send().
        BIO* bio = BIO_new(timestamped_socket());
        BIO_set_data(bio, l.get());
        BIO_set_init(bio, 1);
        SSL_set_bio(l->ssl_, bio, bio);
        if (SSL_connect(l->ssl_) != 1) {
            why = "TLS handshake failed";
            return nullptr;
        }
    }
    ::fcntl(l->fd_, F_SETFL, ::fcntl(l->fd_, F_GETFL) | O_NONBLOCK);
    return l;
}

long stream_link::receive(void* into, std::size_t size) {
    iovec iov{into, size};
    alignas(cmsghdr) std::array<std::uint8_t, CMSG_SPACE(sizeof(timespec))> control{};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.data();
    m.msg_controllen = control.size();
    const auto n = ::recvmsg(fd_, &m, 0);
    if (n > 0) {
        for (auto* h = CMSG_FIRSTHDR(&m); h != nullptr; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(h), sizeof ts);
                received_ns_ = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
            }
    }
    return n;
}

BIO_METHOD* stream_link::timestamped_socket() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "timestamped socket");
        BIO_meth_set_read(b, [](BIO* bio, char* out, int size) -> int {
            BIO_clear_retry_flags(bio);
            const auto n = static_cast<stream_link*>(BIO_get_data(bio))->receive(out, static_cast<std::size_t>(size));
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
            return static_cast<int>(n);
        });
        BIO_meth_set_write(b, [](BIO* bio, const char* in, int size) -> int {
            BIO_clear_retry_flags(bio);
            const auto n = ::send(static_cast<stream_link*>(BIO_get_data(bio))->fd_, in, static_cast<std::size_t>(size), MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(bio);
            return static_cast<int>(n);
        });
        BIO_meth_set_ctrl(b, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
        return b;
    }();
    return method;
}

stream_link::~stream_link() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
}

bool stream_link::wait(short events) {
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, 1000) == 1;
}

bool stream_link::send(std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
        if (ssl_ != nullptr) {
            const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
            if (n > 0) {
                bytes = bytes.subspan(static_cast<std::size_t>(n));
                continue;
            }
            const int e = SSL_get_error(ssl_, n);
            if ((e == SSL_ERROR_WANT_WRITE && wait(POLLOUT)) || (e == SSL_ERROR_WANT_READ && wait(POLLIN))) continue;
            return false;
        }
        const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait(POLLOUT)) continue;
        return false;
    }
    return true;
}

bool stream_link::fill() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (begin_ > buffer_.size() / 2) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    for (;;) {
        if (end_ == buffer_.size()) return true; // next() makes room
        if (ssl_ != nullptr) {
            const int n = SSL_read(ssl_, buffer_.data() + end_, static_cast<int>(buffer_.size() - end_));
            if (n > 0) {
                end_ += static_cast<std::size_t>(n);
                continue;
            }
            const int e = SSL_get_error(ssl_, n);
            return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
        }
        const auto n = receive(buffer_.data() + end_, buffer_.size() - end_);
        if (n > 0) {
            end_ += static_cast<std::size_t>(n);
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
}

std::span<const std::uint8_t> stream_link::next() {
    const std::size_t have = end_ - begin_;
    if (have < 4 || bad_) return {};
    const std::uint8_t* p = buffer_.data() + begin_;
    const std::size_t length = (std::size_t{p[2]} << 8) | p[3];
    std::size_t size = 0;
    if ((p[0] & 0xC0) == 0x00) size = 20 + length;                 // STUN
    else if ((p[0] & 0xC0) == 0x40) size = 4 + ((length + 3) & ~std::size_t{3}); // ChannelData, padded
    else {
        bad_ = true;
        return {};
    }
    if (have < size) {
        if (begin_ != 0 && size > buffer_.size() - begin_) { // make room for the rest
            std::memmove(buffer_.data(), p, have);
            begin_ = 0;
            end_ = have;
        }
        return {};
    }
    begin_ += size;
    return {p, size};
}

} // namespace ferry::load
