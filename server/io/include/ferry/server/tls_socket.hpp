// TLS straight on a TCP socket's descriptor (SSL_set_fd), for TURN over TLS. asio::ssl::stream
// runs OpenSSL over a memory BIO pair: every record is copied through the pair and every read
// and write is an Asio composed operation. Here OpenSSL reads and writes the non-blocking socket
// itself, Asio only waits for readiness, and a message can be written the moment it is ready.
// It is also what lets OpenSSL hand the record layer to the kernel (SSL_OP_ENABLE_KTLS) where
// the kernel has the `tls` module; where it has not, OpenSSL stays in user space by itself.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <tuple>

#include <openssl/ssl.h>

namespace ferry::server {

class tls_socket {
public:
    /// Takes the connected socket; the server's side of a handshake that has not begun.
    tls_socket(asio::ip::tcp::socket socket, asio::ssl::context& context);
    ~tls_socket();
    tls_socket(const tls_socket&) = delete;
    tls_socket& operator=(const tls_socket&) = delete;

    asio::ip::tcp::socket& next_layer() { return socket_; }
    asio::any_io_executor get_executor() { return socket_.get_executor(); }

    /// The outcome of one non-blocking step: bytes moved, or what to wait for, or an error.
    struct step {
        enum kind { done, want_read, want_write, failed } what = failed;
        std::size_t bytes = 0;
        std::error_code error;
    };

    asio::awaitable<std::error_code> handshake();
    /// Decrypted bytes into `into` now, or want_read when there are none yet; eof when the
    /// client ends.
    step read_now(std::span<std::uint8_t> into);
    /// After read_now gave bytes: whether another may give more. False when OpenSSL holds no
    /// record and its last read from the socket took less than it asked for (the socket was
    /// drained then; bytes that came after raise a new edge).
    bool may_have_more() const { return !last_read_short_ || SSL_has_pending(ssl_) != 0; }
    /// Decrypted bytes into `into` (waits until there are some); eof when the client ends.
    asio::awaitable<std::tuple<std::error_code, std::size_t>> read_some(std::span<std::uint8_t> into);
    /// One record holding `bytes`, now if the socket takes it. After want_write, the same bytes
    /// must be offered again (OpenSSL holds what it already encrypted).
    step write_now(std::span<const std::uint8_t> bytes);
    /// One record holding `bytes`, waiting for room as long as needed.
    asio::awaitable<std::error_code> write(std::span<const std::uint8_t> bytes);
    /// No OpenSSL call touches the descriptor after this (it may be reused at once).
    void close();

    /// Whether OpenSSL handed sending (and receiving) to the kernel for this connection.
    bool kernel_send() const;
    bool kernel_receive() const;

private:
    enum class operation { handshake, read, write };
    step classify(int rc);
    /// One non-blocking try of `op` (nothing once closed).
    step attempt(operation op, std::span<std::uint8_t> bytes);
    /// `op` tried until done or failed, waiting for readiness in between.
    asio::awaitable<step> complete(operation op, std::span<std::uint8_t> bytes);

    /// Notes, after each read OpenSSL makes from the socket, whether it came back short.
    static long note_read(BIO* bio, int oper, const char* argp, std::size_t len, int argi, long argl, int ret,
                          std::size_t* processed);

    asio::ip::tcp::socket socket_;
    SSL* ssl_ = nullptr;
    bool closed_ = false;
    bool last_read_short_ = false;
};

} // namespace ferry::server
