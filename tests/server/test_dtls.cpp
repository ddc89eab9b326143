// The DTLS gate and channel in memory: an OpenSSL DTLS client on memory BIOs talks to them,
// datagram by datagram, with no socket.
#include "ferry/server/dtls.hpp"

#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace ferry;
using namespace ferry::server;

namespace {

using bytes = std::vector<std::uint8_t>;

struct recorder final : datagram_out {
    std::vector<std::pair<protocol::transport_address, bytes>> sent;
    void send_datagram(const protocol::transport_address& to, std::span<const std::uint8_t> b) override {
        sent.emplace_back(to, bytes(b.begin(), b.end()));
    }
    bytes take() {
        bytes all;
        for (auto& [to, b] : sent) all.insert(all.end(), b.begin(), b.end());
        sent.clear();
        return all;
    }
};

// A self-signed P-256 certificate and key in a temporary directory.
struct test_certificate {
    std::filesystem::path dir;
    tls_config cfg;

    test_certificate() {
        dir = std::filesystem::temp_directory_path() / ("ferry-dtls-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        X509_sign(x, key, EVP_sha256());
        cfg.certificate = (dir / "cert.pem").string();
        cfg.private_key = (dir / "key.pem").string();
        FILE* f = std::fopen(cfg.certificate.c_str(), "w");
        PEM_write_X509(f, x);
        std::fclose(f);
        f = std::fopen(cfg.private_key.c_str(), "w");
        PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
        X509_free(x);
        EVP_PKEY_free(key);
    }
    ~test_certificate() { std::filesystem::remove_all(dir); }
};

// A DTLS 1.2 client whose datagrams are read and written by hand.
struct client {
    SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
    SSL* ssl = nullptr;
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());

    client() {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        ssl = SSL_new(ctx);
        BIO_set_mem_eof_return(in, -1);
        BIO_set_mem_eof_return(out, -1);
        SSL_set_bio(ssl, in, out);
        SSL_set_connect_state(ssl);
    }
    ~client() {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    bool handshake() { return SSL_do_handshake(ssl) == 1; }
    bytes outgoing() {
        bytes b(static_cast<std::size_t>(BIO_ctrl_pending(out)));
        if (!b.empty()) BIO_read(out, b.data(), static_cast<int>(b.size()));
        return b;
    }
    void incoming(const bytes& b) {
        if (!b.empty()) BIO_write(in, b.data(), static_cast<int>(b.size()));
    }
};

const auto alice = *protocol::transport_address::from("192.0.2.10", 40000);
const auto mallory = *protocol::transport_address::from("192.0.2.66", 40000);

} // namespace

TEST_CASE("dtls: the cookie exchange keeps no state, then the session carries records both ways") {
    test_certificate cert;
    auto ctx = make_dtls_context(cert.cfg);
    recorder gate_out;
    dtls_gate gate(gate_out);
    client c;

    // 1. A ClientHello without a cookie: a HelloVerifyRequest, and no SSL object.
    CHECK_FALSE(c.handshake());
    const bytes hello = c.outgoing();
    REQUIRE(hello.size() > 13);
    CHECK(gate.offer(ctx, alice, hello) == nullptr);
    REQUIRE(gate_out.sent.size() == 1);
    CHECK(gate_out.sent[0].first == alice);
    CHECK(gate_out.sent[0].second[0] == 22);  // handshake record
    CHECK(gate_out.sent[0].second[13] == 3);  // hello_verify_request
    CHECK(gate.verify_requests_sent() == 1);
    const bytes verify = gate_out.sent[0].second;

    // Replaying the same first ClientHello only ever gets the same answer.
    CHECK(gate.offer(ctx, alice, hello) == nullptr);
    CHECK(gate.verify_requests_sent() == 2);
    gate_out.sent.clear();

    // 2. The client answers with the cookie.
    c.incoming(verify);
    CHECK_FALSE(c.handshake());
    const bytes hello_with_cookie = c.outgoing();
    REQUIRE_FALSE(hello_with_cookie.empty());

    // The cookie is bound to the source address: from another address it is refused.
    CHECK(gate.offer(ctx, mallory, hello_with_cookie) == nullptr);
    CHECK(gate.verify_requests_sent() == 3);
    gate_out.sent.clear();

    // Anything but a handshake record from a stranger is dropped without an answer.
    CHECK(gate.offer(ctx, alice, bytes{23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}) == nullptr);
    CHECK(gate.offer(ctx, alice, bytes{0, 1, 0, 0}) == nullptr);
    CHECK(gate_out.sent.empty());

    // 3. From the right address, the gate hands over an SSL object.
    ssl_ptr accepted = gate.offer(ctx, alice, hello_with_cookie);
    REQUIRE(accepted != nullptr);
    CHECK(gate_out.sent.empty());

    recorder session_out;
    dtls_channel channel(std::move(accepted), ctx, session_out, alice);
    CHECK(channel.start() == dtls_channel::state::handshaking);
    REQUIRE_FALSE(session_out.sent.empty()); // ServerHello ... ServerHelloDone
    for (auto& [to, b] : session_out.sent) CHECK(to == alice);

    std::vector<bytes> records;
    auto collect = [&records](std::span<const std::uint8_t> r) { records.emplace_back(r.begin(), r.end()); };
    for (int round = 0; round < 10 && !(SSL_is_init_finished(c.ssl) && channel.current() == dtls_channel::state::open);
         ++round) {
        c.incoming(session_out.take());
        c.handshake();
        const bytes flight = c.outgoing();
        if (!flight.empty()) channel.receive(flight, collect);
    }
    c.incoming(session_out.take());
    CHECK(c.handshake());
    REQUIRE(channel.current() == dtls_channel::state::open);
    CHECK(records.empty());

    // 4. Application records each way.
    const std::string ping = "binding request";
    REQUIRE(SSL_write(c.ssl, ping.data(), static_cast<int>(ping.size())) > 0);
    REQUIRE(SSL_write(c.ssl, "second", 6) > 0);
    CHECK(channel.receive(c.outgoing(), collect) == dtls_channel::state::open);
    REQUIRE(records.size() == 2);
    CHECK(std::string(records[0].begin(), records[0].end()) == ping);
    CHECK(std::string(records[1].begin(), records[1].end()) == "second");

    const std::string pong = "binding response";
    CHECK(channel.send({reinterpret_cast<const std::uint8_t*>(pong.data()), pong.size()}));
    REQUIRE(session_out.sent.size() == 1); // one record, one datagram
    c.incoming(session_out.take());
    char buf[64];
    const int n = SSL_read(c.ssl, buf, sizeof buf);
    REQUIRE(n > 0);
    CHECK(std::string(buf, static_cast<std::size_t>(n)) == pong);

    // A tampered record is dropped, and the session goes on.
    REQUIRE(SSL_write(c.ssl, "x", 1) > 0);
    bytes tampered = c.outgoing();
    tampered.back() ^= 0x55;
    records.clear();
    CHECK(channel.receive(tampered, collect) == dtls_channel::state::open);
    CHECK(records.empty());

    // 5. close_notify from the client closes the session.
    SSL_shutdown(c.ssl);
    CHECK(channel.receive(c.outgoing(), collect) == dtls_channel::state::closed);
    CHECK_FALSE(channel.send({reinterpret_cast<const std::uint8_t*>("late"), 4}));
}

TEST_CASE("dtls: a lost flight is sent again when its timer runs out") {
    test_certificate cert;
    auto ctx = make_dtls_context(cert.cfg);
    recorder gate_out;
    dtls_gate gate(gate_out);
    client c;
    c.handshake();
    CHECK(gate.offer(ctx, alice, c.outgoing()) == nullptr);
    c.incoming(gate_out.take());
    c.handshake();
    auto accepted = gate.offer(ctx, alice, c.outgoing());
    REQUIRE(accepted != nullptr);
    recorder out;
    dtls_channel channel(std::move(accepted), ctx, out, alice);
    channel.start();
    const auto first_flight = out.sent.size();
    REQUIRE(first_flight > 0);
    // Nothing is resent before the retransmission timer (1 s) runs out, then the flight is.
    CHECK(channel.on_timer() == dtls_channel::state::handshaking);
    CHECK(out.sent.size() == first_flight);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(channel.on_timer() == dtls_channel::state::handshaking);
    CHECK(out.sent.size() > first_flight); // resent, maybe one message per datagram
    CHECK(out.sent.back().second[0] == 22);
}

TEST_CASE("dtls: a context needs a readable certificate and key") {
    tls_config missing{"/nonexistent/cert.pem", "/nonexistent/key.pem"};
    CHECK_THROWS_WITH_AS(make_dtls_context(missing), doctest::Contains("/nonexistent/cert.pem"), std::runtime_error);
}
