// The server contexts for TLS and DTLS listeners (RFC 8656 §3.1): TLS 1.2 and 1.3 (DTLS 1.2)
// only, forward-secret AEAD ciphers, the certificate chain and key from the configuration, and
// ALPN "stun.turn" / "stun.nat-discovery" (RFC 7443) when the client offers them. SIGHUP
// reloads the files; new connections get the new context, established ones keep theirs.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/config.hpp"

#include <asio/ssl.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace ferry::server {

/// What TLS and DTLS server contexts share: the certificate chain and key (throws
/// std::runtime_error naming the file), cipher suites, options and ALPN.
void configure_tls_server(SSL_CTX* native, const tls_config& cfg);

class tls_context_holder {
public:
    /// Loads the certificate and key into a TLS context (`tls`) and a DTLS one (`dtls`);
    /// throws std::runtime_error naming the file on failure.
    tls_context_holder(const tls_config& cfg, bool tls, bool dtls);

    std::shared_ptr<asio::ssl::context> current() const;
    std::shared_ptr<SSL_CTX> current_dtls() const;
    /// Loads the files again (those of `cfg` when given: a reload may name new ones). On
    /// failure keeps the current context and files, and returns why.
    std::string reload(const tls_config* cfg = nullptr);

private:
    static std::shared_ptr<asio::ssl::context> load(const tls_config& cfg);

    tls_config cfg_;
    mutable std::mutex mutex_;
    std::shared_ptr<asio::ssl::context> context_;
    std::shared_ptr<SSL_CTX> dtls_context_;
};

} // namespace ferry::server
