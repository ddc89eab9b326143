#include "ferry/server/tls_context.hpp"

#include "ferry/server/dtls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <stdexcept>

namespace ferry::server {
namespace {

// RFC 7443: "stun.turn" and "stun.nat-discovery". A client offering other protocols only is
// served without ALPN rather than refused.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void*) {
    static const unsigned char ours[] = "\x09stun.turn\x12stun.nat-discovery";
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, out_len, ours, sizeof ours - 1, in, in_len) == OPENSSL_NPN_NEGOTIATED) {
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) return "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

} // namespace

void configure_tls_server(SSL_CTX* native, const tls_config& cfg) {
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(native, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    if (SSL_CTX_use_certificate_chain_file(native, cfg.certificate.c_str()) != 1)
        throw std::runtime_error("TLS certificate " + cfg.certificate + ": " + openssl_error());
    if (SSL_CTX_use_PrivateKey_file(native, cfg.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw std::runtime_error("TLS private key " + cfg.private_key + ": " + openssl_error());
    if (SSL_CTX_check_private_key(native) != 1)
        throw std::runtime_error("TLS private key " + cfg.private_key + " does not match " + cfg.certificate);
    SSL_CTX_set_alpn_select_cb(native, select_alpn, nullptr);
}

std::shared_ptr<asio::ssl::context> tls_context_holder::load(const tls_config& cfg) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    // TURN over TLS runs OpenSSL on the socket itself (tls_socket), so OpenSSL can move the
    // record layer into the kernel where it has the tls module; elsewhere it stays in user space.
    SSL_CTX_set_options(native, SSL_OP_ENABLE_KTLS);
    configure_tls_server(native, cfg);
    return ctx;
}

tls_context_holder::tls_context_holder(const tls_config& cfg, bool tls, bool dtls) : cfg_(cfg) {
    if (tls) context_ = load(cfg);
    if (dtls) dtls_context_ = make_dtls_context(cfg);
}

std::shared_ptr<asio::ssl::context> tls_context_holder::current() const {
    std::lock_guard lock(mutex_);
    return context_;
}

std::shared_ptr<SSL_CTX> tls_context_holder::current_dtls() const {
    std::lock_guard lock(mutex_);
    return dtls_context_;
}

std::string tls_context_holder::reload(const tls_config* cfg) {
    try {
        const tls_config& files = cfg != nullptr ? *cfg : cfg_;
        // Both or neither: a file that fails for one fails for the other.
        auto fresh = context_ ? load(files) : nullptr;
        auto fresh_dtls = dtls_context_ ? make_dtls_context(files) : nullptr;
        std::lock_guard lock(mutex_);
        context_ = std::move(fresh);
        dtls_context_ = std::move(fresh_dtls);
        cfg_ = files;
        return {};
    } catch (const std::exception& e) {
        return e.what();
    }
}

} // namespace ferry::server
