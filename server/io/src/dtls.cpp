#include "ferry/server/dtls.hpp"

#include "ferry/server/tls_context.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <array>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace ferry::server {
namespace {

// Handshake messages are fragmented to fit this (SSL_OP_NO_QUERY_MTU: the BIO has no socket
// to ask). 1200 bytes leave room for IPv6 and UDP headers under the IPv6 minimum MTU.
constexpr long handshake_mtu = 1200;

// --- A write-only BIO: each write is one datagram to the target's address -------------------

int target_write(BIO* b, const char* data, int len) {
    auto* t = static_cast<dtls_target*>(BIO_get_data(b));
    if (t == nullptr || t->out == nullptr || len < 0) return -1;
    ++t->writes;
    t->out->send_datagram(t->to, {reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(len)});
    return len;
}

long target_ctrl(BIO*, int cmd, long, void*) {
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    default: return 0; // no MTU to query, no peer to report, nothing pending
    }
}

int target_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD* target_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry datagram");
        BIO_meth_set_write(m, target_write);
        BIO_meth_set_ctrl(m, target_ctrl);
        BIO_meth_set_create(m, target_create);
        return m;
    }();
    return method;
}

BIO* target_bio(dtls_target* t) {
    BIO* b = BIO_new(target_method());
    BIO_set_data(b, t);
    return b;
}

// --- Stateless cookies: HMAC-SHA256 over the time window and the client's address ------------

constexpr std::size_t cookie_size = 16;
constexpr std::int64_t cookie_window = 30; // seconds; a cookie is good for 30 to 60 s

const std::array<std::uint8_t, 32>& cookie_secret() {
    static const auto secret = [] {
        std::array<std::uint8_t, 32> s{};
        if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1)
            throw std::runtime_error("no randomness for DTLS cookies");
        return s;
    }();
    return secret;
}

std::array<std::uint8_t, cookie_size> make_cookie(const protocol::transport_address& a, std::int64_t window) {
    std::array<std::uint8_t, 8 + 1 + 16 + 2> in{};
    for (int i = 0; i < 8; ++i) in[i] = static_cast<std::uint8_t>(window >> (8 * i));
    in[8] = static_cast<std::uint8_t>(a.ip.family);
    std::memcpy(in.data() + 9, a.ip.bytes.data(), 16);
    in[25] = static_cast<std::uint8_t>(a.port >> 8);
    in[26] = static_cast<std::uint8_t>(a.port);
    const auto& key = cookie_secret();
    std::array<std::uint8_t, 32> mac{};
    std::size_t mac_len = 0;
    EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), in.data(), in.size(), mac.data(),
              mac.size(), &mac_len);
    std::array<std::uint8_t, cookie_size> out{};
    std::memcpy(out.data(), mac.data(), cookie_size);
    return out;
}

const dtls_target* target_of(SSL* ssl) {
    BIO* w = SSL_get_wbio(ssl);
    return w == nullptr ? nullptr : static_cast<const dtls_target*>(BIO_get_data(w));
}

int generate_cookie(SSL* ssl, unsigned char* cookie, unsigned int* len) {
    const auto* t = target_of(ssl);
    if (t == nullptr) return 0;
    const auto c = make_cookie(t->to, std::time(nullptr) / cookie_window);
    std::memcpy(cookie, c.data(), c.size());
    *len = static_cast<unsigned int>(c.size());
    return 1;
}

int verify_cookie(SSL* ssl, const unsigned char* cookie, unsigned int len) {
    const auto* t = target_of(ssl);
    if (t == nullptr || len != cookie_size) return 0;
    const auto now = std::time(nullptr) / cookie_window;
    for (const auto window : {now, now - 1}) {
        const auto c = make_cookie(t->to, window);
        if (CRYPTO_memcmp(c.data(), cookie, cookie_size) == 0) return 1;
    }
    return 0;
}

std::string openssl_error(const char* what) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return what;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return std::string(what) + ": " + buf;
}

ssl_ptr new_server_ssl(SSL_CTX* ctx, dtls_target* target) {
    ssl_ptr ssl(SSL_new(ctx));
    if (!ssl) throw std::runtime_error(openssl_error("SSL_new"));
    BIO* in = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1); // empty means "wait for the next datagram", not EOF
    SSL_set_bio(ssl.get(), in, target_bio(target));
    SSL_set_options(ssl.get(), SSL_OP_NO_QUERY_MTU | SSL_OP_COOKIE_EXCHANGE);
    SSL_set_mtu(ssl.get(), handshake_mtu);
    SSL_set_accept_state(ssl.get());
    return ssl;
}

} // namespace

void ssl_deleter::operator()(SSL* s) const noexcept { SSL_free(s); }

std::shared_ptr<SSL_CTX> make_dtls_context(const tls_config& cfg) {
    std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(DTLS_server_method()), SSL_CTX_free);
    if (!ctx) throw std::runtime_error(openssl_error("SSL_CTX_new"));
    SSL_CTX_set_min_proto_version(ctx.get(), DTLS1_2_VERSION);
    configure_tls_server(ctx.get(), cfg);
    SSL_CTX_set_cookie_generate_cb(ctx.get(), generate_cookie);
    SSL_CTX_set_cookie_verify_cb(ctx.get(), verify_cookie);
    (void)cookie_secret(); // fail at start-up, not on the first client
    return ctx;
}

// --- dtls_gate ---------------------------------------------------------------------------------

dtls_gate::dtls_gate(datagram_out& out) : out_(out), target_(std::make_unique<dtls_target>()) {
    target_->out = &out_;
}

dtls_gate::~dtls_gate() = default;

ssl_ptr dtls_gate::offer(const std::shared_ptr<SSL_CTX>& ctx, const protocol::transport_address& from,
                         std::span<const std::uint8_t> datagram) {
    // A handshake record (content type 22) is the only thing a stranger may send.
    if (datagram.size() < 13 || datagram[0] != 22 || datagram.size() > 16384) return nullptr;
    if (!listening_ || listening_ctx_ != ctx) {
        listening_ = new_server_ssl(ctx.get(), target_.get());
        listening_ctx_ = ctx;
    }
    target_->to = from;
    BIO* in = SSL_get_rbio(listening_.get());
    (void)BIO_reset(in);
    BIO_write(in, datagram.data(), static_cast<int>(datagram.size()));
    const std::uint64_t before = target_->writes;
    BIO_ADDR* peer = BIO_ADDR_new();
    const int rc = DTLSv1_listen(listening_.get(), peer);
    BIO_ADDR_free(peer);
    ERR_clear_error();
    verify_requests_ += target_->writes - before;
    if (rc <= 0) {
        (void)BIO_reset(in);
        return nullptr;
    }
    // The cookie checked out: this SSL object now holds the ClientHello and becomes the
    // session's. The next stranger gets a fresh one.
    ssl_ptr accepted = std::move(listening_);
    listening_ctx_.reset();
    return accepted;
}

// --- dtls_channel ------------------------------------------------------------------------------

dtls_channel::dtls_channel(ssl_ptr ssl, std::shared_ptr<SSL_CTX> ctx, datagram_out& out,
                           const protocol::transport_address& peer)
    : target_(std::make_unique<dtls_target>()), ctx_(std::move(ctx)), ssl_(std::move(ssl)) {
    target_->out = &out;
    target_->to = peer;
    SSL_set0_wbio(ssl_.get(), target_bio(target_.get()));
}

dtls_channel::~dtls_channel() = default;

dtls_channel::state dtls_channel::advance(int rc) {
    if (rc == 1) return state_ = state::open;
    const int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return state_;
    }
    error_ = openssl_error("handshake failed");
    return state_ = state::closed;
}

dtls_channel::state dtls_channel::start() {
    if (state_ != state::handshaking) return state_;
    return advance(SSL_do_handshake(ssl_.get()));
}

dtls_channel::state dtls_channel::receive(std::span<const std::uint8_t> datagram,
                                          const std::function<void(std::span<const std::uint8_t>)>& on_record) {
    if (state_ == state::closed || datagram.empty() || datagram.size() > 16384 + 512) return state_;
    BIO* in = SSL_get_rbio(ssl_.get());
    (void)BIO_reset(in); // one datagram at a time: nothing of the last one may linger
    BIO_write(in, datagram.data(), static_cast<int>(datagram.size()));
    if (state_ == state::handshaking && advance(SSL_do_handshake(ssl_.get())) != state::open) return state_;
    std::array<std::uint8_t, 16384> plain;
    while (state_ == state::open) {
        const int n = SSL_read(ssl_.get(), plain.data(), static_cast<int>(plain.size()));
        if (n > 0) {
            on_record({plain.data(), static_cast<std::size_t>(n)});
            continue;
        }
        const int err = SSL_get_error(ssl_.get(), n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            break;
        }
        error_ = err == SSL_ERROR_ZERO_RETURN ? "closed by the client" : openssl_error("read failed");
        state_ = state::closed;
    }
    return state_;
}

bool dtls_channel::send(std::span<const std::uint8_t> plaintext) {
    if (state_ != state::open || plaintext.empty()) return false;
    const int n = SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
    if (n > 0) return true;
    ERR_clear_error();
    return false;
}

std::optional<std::chrono::steady_clock::time_point> dtls_channel::retransmit_at() const {
    if (state_ != state::handshaking) return std::nullopt;
    timeval tv{};
    if (DTLSv1_get_timeout(ssl_.get(), &tv) != 1) return std::nullopt;
    return std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) +
           std::chrono::microseconds(tv.tv_usec);
}

dtls_channel::state dtls_channel::on_timer() {
    if (state_ != state::handshaking) return state_;
    if (DTLSv1_handle_timeout(ssl_.get()) < 0) {
        error_ = openssl_error("handshake timed out");
        state_ = state::closed;
    }
    return state_;
}

void dtls_channel::close() {
    if (state_ == state::open) SSL_shutdown(ssl_.get()); // close_notify
    ERR_clear_error();
    state_ = state::closed;
}

} // namespace ferry::server
