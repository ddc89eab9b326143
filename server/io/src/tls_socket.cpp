#include "ferry/server/tls_socket.hpp"

#include "ferry/server/spawn.hpp"

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>

#include <cerrno>
#include <new>

#include <openssl/err.h>

namespace ferry::server {

tls_socket::tls_socket(asio::ip::tcp::socket socket, asio::ssl::context& context)
    : socket_(std::move(socket)), ssl_(SSL_new(context.native_handle())) {
    if (ssl_ == nullptr) throw std::bad_alloc();
    std::error_code ec;
    socket_.non_blocking(true, ec);
    // A write that waited for room is offered again from wherever its bytes are queued now.
    SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // One read() takes whatever the socket holds (a record's header and body, and the next
    // records), not a header and a body apart.
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_fd(ssl_, socket_.native_handle());
    SSL_set_accept_state(ssl_);
}

tls_socket::~tls_socket() { SSL_free(ssl_); }

void tls_socket::close() {
    closed_ = true;
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
}

bool tls_socket::kernel_send() const { return BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0; }
bool tls_socket::kernel_receive() const { return BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0; }

tls_socket::step tls_socket::classify(int rc) {
    step s;
    if (rc > 0) {
        s.what = step::done;
        s.bytes = static_cast<std::size_t>(rc);
        return s;
    }
    const int why = SSL_get_error(ssl_, rc);
    switch (why) {
    case SSL_ERROR_WANT_READ: s.what = step::want_read; return s;
    case SSL_ERROR_WANT_WRITE: s.what = step::want_write; return s;
    case SSL_ERROR_ZERO_RETURN: s.error = asio::error::eof; return s; // close_notify
    case SSL_ERROR_SYSCALL:
        // errno 0: the peer closed the TCP connection without a close_notify.
        s.error = errno != 0 ? std::error_code(errno, std::system_category()) : asio::error::eof;
        ERR_clear_error();
        return s;
    default: {
        const auto e = ERR_get_error();
        ERR_clear_error();
        s.error = std::error_code(static_cast<int>(e), asio::error::get_ssl_category());
        if (!s.error) s.error = asio::error::fault;
        return s;
    }
    }
}

asio::awaitable<std::error_code> tls_socket::wait_for(step::kind what) {
    auto [ec] = co_await socket_.async_wait(what == step::want_write ? asio::ip::tcp::socket::wait_write
                                                                      : asio::ip::tcp::socket::wait_read,
                                            use_tuple);
    if (!ec && closed_) ec = asio::error::operation_aborted;
    co_return ec;
}

asio::awaitable<std::error_code> tls_socket::handshake() {
    for (;;) {
        if (closed_) co_return asio::error::operation_aborted;
        ERR_clear_error();
        errno = 0;
        const auto s = classify(SSL_do_handshake(ssl_));
        if (s.what == step::done) co_return std::error_code{};
        if (s.what == step::failed) co_return s.error;
        if (const auto ec = co_await wait_for(s.what)) co_return ec;
    }
}

asio::awaitable<std::pair<std::error_code, std::size_t>> tls_socket::read_some(std::span<std::uint8_t> into) {
    for (;;) {
        if (closed_) co_return std::pair{std::error_code(asio::error::operation_aborted), std::size_t{0}};
        // Always try first: OpenSSL may hold decrypted bytes the socket will not signal again.
        ERR_clear_error(); // SSL_get_error reads the queue: nothing older may be left in it
        errno = 0;
        const auto s = classify(SSL_read(ssl_, into.data(), static_cast<int>(into.size())));
        if (s.what == step::done) co_return std::pair{std::error_code{}, s.bytes};
        if (s.what == step::failed) co_return std::pair{s.error, std::size_t{0}};
        if (const auto ec = co_await wait_for(s.what)) co_return std::pair{ec, std::size_t{0}};
    }
}

tls_socket::step tls_socket::write_now(std::span<const std::uint8_t> bytes) {
    if (closed_) {
        step s;
        s.error = asio::error::operation_aborted;
        return s;
    }
    ERR_clear_error();
    errno = 0;
    return classify(SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())));
}

asio::awaitable<std::error_code> tls_socket::write(std::span<const std::uint8_t> bytes) {
    for (;;) {
        const auto s = write_now(bytes);
        if (s.what == step::done) co_return std::error_code{};
        if (s.what == step::failed) co_return s.error;
        if (const auto ec = co_await wait_for(s.what)) co_return ec;
    }
}

} // namespace ferry::server
