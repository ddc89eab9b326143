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
    // Still the socket BIO (kernel TLS needs it), with a callback that watches its reads.
    BIO* bio = SSL_get_rbio(ssl_);
    BIO_set_callback_arg(bio, reinterpret_cast<char*>(this));
    BIO_set_callback_ex(bio, &tls_socket::note_read);
    SSL_set_accept_state(ssl_);
}

long tls_socket::note_read(BIO* bio, int oper, const char*, std::size_t len, int, long, int ret,
                           std::size_t* processed) {
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        auto* self = reinterpret_cast<tls_socket*>(BIO_get_callback_arg(bio));
        self->last_read_short_ = ret <= 0 || processed == nullptr || *processed < len;
    }
    return ret;
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

tls_socket::step tls_socket::attempt(operation op, std::span<std::uint8_t> bytes) {
    if (closed_) {
        step s;
        s.error = asio::error::operation_aborted;
        return s;
    }
    ERR_clear_error(); // SSL_get_error reads the queue: nothing older may be left in it
    errno = 0;
    const int size = static_cast<int>(bytes.size());
    switch (op) {
    case operation::handshake: return classify(SSL_do_handshake(ssl_));
    case operation::read: return classify(SSL_read(ssl_, bytes.data(), size));
    case operation::write: return classify(SSL_write(ssl_, bytes.data(), size));
    }
    return classify(-1);
}

// Tries first, then waits for what OpenSSL asked for and tries again. Reads always try first:
// OpenSSL may hold decrypted bytes that the socket will not signal again.
asio::awaitable<tls_socket::step> tls_socket::complete(operation op, std::span<std::uint8_t> bytes) {
    for (;;) {
        auto s = attempt(op, bytes);
        if (s.what == step::done || s.what == step::failed) co_return s;
        auto [ec] = co_await socket_.async_wait(s.what == step::want_write ? asio::ip::tcp::socket::wait_write
                                                                            : asio::ip::tcp::socket::wait_read,
                                                use_tuple);
        if (ec) {
            s.what = step::failed;
            s.error = ec;
            co_return s;
        }
    }
}

asio::awaitable<std::error_code> tls_socket::handshake() {
    co_return (co_await complete(operation::handshake, {})).error;
}

tls_socket::step tls_socket::read_now(std::span<std::uint8_t> into) { return attempt(operation::read, into); }

asio::awaitable<std::tuple<std::error_code, std::size_t>> tls_socket::read_some(std::span<std::uint8_t> into) {
    const auto s = co_await complete(operation::read, into);
    co_return std::tuple{s.error, s.bytes};
}

tls_socket::step tls_socket::write_now(std::span<const std::uint8_t> bytes) {
    // SSL_write does not write into its buffer; attempt() takes one span type for all three.
    return attempt(operation::write, {const_cast<std::uint8_t*>(bytes.data()), bytes.size()});
}

asio::awaitable<std::error_code> tls_socket::write(std::span<const std::uint8_t> bytes) {
    co_return (co_await complete(operation::write, {const_cast<std::uint8_t*>(bytes.data()), bytes.size()})).error;
}

} // namespace ferry::server
