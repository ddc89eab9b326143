// auth/: base64, stateless nonces, the credential store (static users and TURN REST
// credentials) and the RFC 8489 §9.2.4 verdicts.
#include "hex.hpp"

#include "ferry/auth/authenticate.hpp"
#include "ferry/auth/base64.hpp"
#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace ferry::auth;
using namespace ferry::protocol;
using ferry::test::bytes;

namespace {

const nonce_manager::secret fixed_secret = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const auto client = *transport_address::from("203.0.113.9", 50000);
constexpr std::int64_t t0 = 1'800'000'000;

} // namespace

TEST_CASE("base64 follows RFC 4648 section 10") {
    CHECK(base64_encode(bytes("")) == "");
    CHECK(base64_encode(bytes("f")) == "Zg==");
    CHECK(base64_encode(bytes("fo")) == "Zm8=");
    CHECK(base64_encode(bytes("foo")) == "Zm9v");
    CHECK(base64_encode(bytes("foob")) == "Zm9vYg==");
    CHECK(base64_encode(bytes("fooba")) == "Zm9vYmE=");
    CHECK(base64_encode(bytes("foobar")) == "Zm9vYmFy");
    std::array<std::uint8_t, 6> out{};
    CHECK(base64_decode("Zm9vYmFy", out));
    CHECK(std::string(out.begin(), out.end()) == "foobar");
    std::array<std::uint8_t, 4> four{};
    CHECK(base64_decode("Zm9vYg==", four));
    CHECK_FALSE(base64_decode("Zm9vYg=", four));
    CHECK_FALSE(base64_decode("Zm9v!g==", four));
    CHECK_FALSE(base64_decode("Zm=vYg==", four));
}

TEST_CASE("nonces are bound to the client's address, port and transport, and expire") {
    nonce_manager n(std::chrono::seconds(600), fixed_secret);
    const auto nonce = n.issue(client, t0);
    CHECK(nonce.starts_with("obMatJos2gAAA"));
    CHECK(nonce.size() == 33);
    CHECK(n.check(nonce, client, t0) == nonce_manager::verdict::valid);
    CHECK(n.check(nonce, client, t0 + 600) == nonce_manager::verdict::valid);
    CHECK(n.check(nonce, client, t0 + 601) == nonce_manager::verdict::stale);
    auto other_port = client;
    other_port.port = 50001;
    // A signed request captured and replayed from another port (or transport) fails.
    CHECK(n.check(nonce, other_port, t0) == nonce_manager::verdict::stale);
    CHECK(n.check(nonce, client_identity(client, 1), t0) == nonce_manager::verdict::stale);
    CHECK(n.check(n.issue(client_identity(client, 1), t0), client_identity(client, 1), t0) ==
          nonce_manager::verdict::valid);
    auto other_ip = client;
    other_ip.ip.bytes[3] ^= 1;
    CHECK(n.check(nonce, other_ip, t0) == nonce_manager::verdict::stale);
    auto tampered = nonce;
    tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
    CHECK(n.check(tampered, client, t0) == nonce_manager::verdict::stale);
    CHECK(n.check("obMatJos2gAAAnonsense", client, t0) == nonce_manager::verdict::stale);
    CHECK(n.check("", client, t0) == nonce_manager::verdict::stale);

    SUBCASE("a nonce from another server (another key) is stale") {
        auto key2 = fixed_secret;
        key2[0] ^= 1;
        nonce_manager other_server(std::chrono::seconds(600), key2);
        CHECK(other_server.check(nonce, client, t0) == nonce_manager::verdict::stale);
    }
    SUBCASE("keys rotate every lifetime; two managers with one master agree") {
        nonce_manager twin(std::chrono::seconds(600), fixed_secret);
        CHECK(twin.check(nonce, client, t0 + 10) == nonce_manager::verdict::valid);
        const auto later = n.issue(client, t0 + 1200);
        CHECK(later.substr(13) != nonce.substr(13));
        CHECK(twin.check(later, client, t0 + 1200) == nonce_manager::verdict::valid);
        CHECK(n.check(later, client, t0 + 1800) == nonce_manager::verdict::valid);
        CHECK(n.check(later, client, t0 + 1801) == nonce_manager::verdict::stale);
    }
}

TEST_CASE("static users are stored as keys") {
    credential_store store("ferry");
    store.add_user("bob", "hunter2");
    auto c = store.lookup("bob", password_algorithm::md5, t0);
    REQUIRE(c.count == 1);
    // MD5("bob:ferry:hunter2"), computed independently.
    CHECK(c.keys[0].view().size() == 16);
    CHECK(std::vector<std::uint8_t>(c.keys[0].view().begin(), c.keys[0].view().end()) ==
          ferry::test::hex("e37f6482bf2dc838b0978a11952987dd"));
    CHECK(store.lookup("bob", password_algorithm::sha256, t0).keys[0].size == 32);
    CHECK(store.lookup("alice", password_algorithm::md5, t0).count == 0);

    key k;
    k.size = 16;
    k.bytes[0] = 0xAB;
    store.add_user_key("carol", k);
    CHECK(store.lookup("carol", password_algorithm::md5, t0).count == 1);
    CHECK(store.lookup("carol", password_algorithm::sha256, t0).count == 0);
}

TEST_CASE("TURN REST API credentials") {
    credential_store store("ferry");
    store.add_rest_secret("north");
    SUBCASE("expiry:user, matching an independent computation") {
        auto c = store.lookup("1700000000:alice", password_algorithm::md5, 1'600'000'000);
        REQUIRE(c.count == 1);
        CHECK(std::vector<std::uint8_t>(c.keys[0].view().begin(), c.keys[0].view().end()) ==
              ferry::test::hex("28b603da6bd9fb6aae7a9923e44cb10b"));
    }
    SUBCASE("user:expiry order is accepted too") {
        CHECK(store.lookup("alice:1700000000", password_algorithm::md5, 1'600'000'000).count == 1);
    }
    SUBCASE("an expired username is refused") {
        CHECK(store.lookup("1700000000:alice", password_algorithm::md5, 1'700'000'001).count == 0);
        CHECK(store.lookup("1700000000:alice", password_algorithm::md5, 1'700'000'000).count == 1);
    }
    SUBCASE("a username without a time is not a REST username") {
        CHECK(store.lookup("alice", password_algorithm::md5, 0).count == 0);
        CHECK(store.lookup("alice:bob", password_algorithm::md5, 0).count == 0);
        CHECK(store.lookup(":", password_algorithm::md5, 0).count == 0);
    }
    SUBCASE("several secrets give one candidate each (rotation)") {
        store.add_rest_secret("south");
        CHECK(store.lookup("1700000000:alice", password_algorithm::md5, 0).count == 2);
    }
}

namespace {

struct auth_fixture {
    credential_store store{"ferry"};
    nonce_manager nonces{std::chrono::seconds(600), fixed_secret};
    bool by_hash = false; ///< request() sends USERHASH instead of USERNAME
    std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(1024);
    message_view msg;

    auth_fixture() {
        store.add_user("bob", "hunter2");
        store.add_rest_secret("north");
    }

    const message_view& request(std::string_view user, std::string_view password,
                                std::string_view nonce_text, bool sha256 = false,
                                bool with_realm = true) {
        std::array<std::uint8_t, 12> txid{7};
        message_writer w(buf, make_message_type(method::allocate, message_class::request), txid);
        requested_transport{transport_udp}.encode(w);
        if (by_hash) userhash{user_hash(user, "ferry")}.encode(w);
        else if (!user.empty()) username{user}.encode(w);
        if (with_realm) realm{"ferry"}.encode(w);
        nonce{nonce_text}.encode(w);
        if (sha256) {
            password_algorithm_attribute{2}.encode(w);
            password_algorithms offered; // echoed as the 401 sent it (RFC 8489 §9.2.4)
            offered.algorithms[0] = 2;
            offered.algorithms[1] = 1;
            offered.count = 2;
            offered.encode(w);
            w.append_message_integrity_sha256(
                long_term_key(user, "ferry", password, password_algorithm::sha256).view());
        } else {
            w.append_message_integrity(long_term_key(user, "ferry", password).view());
        }
        REQUIRE_FALSE(msg.parse(w.finish()));
        return msg;
    }
};

} // namespace

TEST_CASE("authenticate: the RFC 8489 9.2.4 verdicts") {
    auth_fixture f;
    const auto good_nonce = f.nonces.issue(client, t0);

    SUBCASE("no integrity: challenge") {
        std::array<std::uint8_t, 12> txid{};
        message_writer w(f.buf, 0x0003, txid);
        requested_transport{}.encode(w);
        message_view m;
        REQUIRE_FALSE(m.parse(w.finish()));
        CHECK(authenticate(m, client, f.store, f.nonces, t0).status == auth_status::challenge);
    }
    SUBCASE("integrity without REALM: 400") {
        auto& m = f.request("bob", "hunter2", good_nonce, false, false);
        CHECK(authenticate(m, client, f.store, f.nonces, t0).status == auth_status::bad_request);
    }
    SUBCASE("good credentials") {
        auto r = authenticate(f.request("bob", "hunter2", good_nonce), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::ok);
        CHECK(r.username == "bob");
        CHECK_FALSE(r.sha256);
    }
    SUBCASE("SHA-256 password algorithm with MESSAGE-INTEGRITY-SHA256") {
        auto r = authenticate(f.request("bob", "hunter2", good_nonce, true), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::ok);
        CHECK(r.sha256);
    }
    SUBCASE("wrong password and unknown user answer alike") {
        CHECK(authenticate(f.request("bob", "hunter3", good_nonce), client, f.store, f.nonces, t0).status ==
              auth_status::unauthorized);
        CHECK(authenticate(f.request("mallory", "hunter2", good_nonce), client, f.store, f.nonces, t0).status ==
              auth_status::unauthorized);
        // An unknown user with an empty password must not slip through the throwaway key.
        CHECK(authenticate(f.request("mallory", "", good_nonce), client, f.store, f.nonces, t0).status ==
              auth_status::unauthorized);
    }
    SUBCASE("stale, foreign and forged nonces: 438") {
        CHECK(authenticate(f.request("bob", "hunter2", good_nonce), client, f.store, f.nonces, t0 + 601).status ==
              auth_status::stale_nonce);
        auto elsewhere = client;
        elsewhere.ip.bytes[3] ^= 1;
        CHECK(authenticate(f.request("bob", "hunter2", good_nonce), elsewhere, f.store, f.nonces, t0).status ==
              auth_status::stale_nonce);
        CHECK(authenticate(f.request("bob", "hunter2", "obMatJos2gAAAmadeup"), client, f.store, f.nonces, t0).status ==
              auth_status::stale_nonce);
    }
    SUBCASE("REST credentials, and an expired REST username") {
        const std::string user = std::to_string(t0 + 3600) + ":alice";
        std::array<std::uint8_t, 20> mac{};
        hmac_sha1(bytes("north"), bytes(user), mac);
        const auto password = base64_encode(mac);
        CHECK(authenticate(f.request(user, password, good_nonce), client, f.store, f.nonces, t0).status ==
              auth_status::ok);
        const auto later_nonce = f.nonces.issue(client, t0 + 3601);
        CHECK(authenticate(f.request(user, password, later_nonce), client, f.store, f.nonces, t0 + 3601).status ==
              auth_status::unauthorized);
    }
    SUBCASE("the allocation's key is used when the username matches") {
        const auto k = long_term_key("bob", "ferry", "hunter2");
        auto r = authenticate(f.request("bob", "hunter2", good_nonce), client, f.store, f.nonces, t0, &k, "bob");
        CHECK(r.status == auth_status::ok);
        credential_store empty("ferry");
        r = authenticate(f.request("bob", "hunter2", good_nonce), client, empty, f.nonces, t0, &k, "bob");
        CHECK(r.status == auth_status::ok); // no lookup was needed
    }
}

namespace {

/// A signed MD5 request for bob with whatever PASSWORD-ALGORITHM(S) a test wants.
message_view& with_algorithms(auth_fixture& f, std::string_view nonce_text, std::optional<std::uint16_t> chosen,
                              std::vector<std::uint16_t> list) {
    std::array<std::uint8_t, 12> txid{9};
    message_writer w(f.buf, make_message_type(method::allocate, message_class::request), txid);
    requested_transport{}.encode(w);
    username{"bob"}.encode(w);
    realm{"ferry"}.encode(w);
    nonce{nonce_text}.encode(w);
    if (chosen) password_algorithm_attribute{*chosen}.encode(w);
    if (!list.empty()) {
        password_algorithms pa;
        for (auto a : list) pa.algorithms[pa.count++] = a;
        pa.encode(w);
    }
    const auto alg = chosen == 2 ? password_algorithm::sha256 : password_algorithm::md5;
    w.append_message_integrity(long_term_key("bob", "ferry", "hunter2", alg).view());
    REQUIRE_FALSE(f.msg.parse(w.finish()));
    return f.msg;
}

} // namespace

TEST_CASE("USERHASH in place of USERNAME names a static user (RFC 8489 14.4)") {
    auth_fixture f;
    f.by_hash = true;
    const auto n = f.nonces.issue(client, t0);
    SUBCASE("the user is found by the hash, with SHA-256 or MD5") {
        auto r = authenticate(f.request("bob", "hunter2", n, true), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::ok);
        CHECK(r.username == "bob");
        CHECK(r.sha256);
        r = authenticate(f.request("bob", "hunter2", n), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::ok);
        CHECK(r.username == "bob");
    }
    SUBCASE("a wrong password, or a hash that names nobody, fails like an unknown user") {
        auto r = authenticate(f.request("bob", "hunter3", n, true), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::unauthorized);
        CHECK(r.failure == auth_failure::bad_integrity);
        r = authenticate(f.request("mallory", "", n, true), client, f.store, f.nonces, t0);
        CHECK(r.status == auth_status::unauthorized);
        CHECK(r.failure == auth_failure::unknown_user);
    }
    SUBCASE("a hash of another realm's name does not match") {
        CHECK_FALSE(f.store.find_by_hash(user_hash("bob", "elsewhere")));
        CHECK(f.store.find_by_hash(user_hash("bob", "ferry")) == "bob");
    }
    SUBCASE("a REST username cannot be found by its hash") {
        const std::string user = std::to_string(t0 + 3600) + ":alice";
        std::array<std::uint8_t, 20> mac{};
        hmac_sha1(bytes("north"), bytes(user), mac);
        CHECK(authenticate(f.request(user, base64_encode(mac), n, true), client, f.store, f.nonces, t0).status ==
              auth_status::unauthorized);
    }
    SUBCASE("neither USERNAME nor USERHASH: 400") {
        f.by_hash = false;
        CHECK(authenticate(f.request("", "hunter2", n), client, f.store, f.nonces, t0).status ==
              auth_status::bad_request);
    }
}

TEST_CASE("PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS: both or neither, as offered (RFC 8489 9.2.4)") {
    auth_fixture f;
    const auto n = f.nonces.issue(client, t0);
    auto verdict = [&](std::optional<std::uint16_t> chosen, std::vector<std::uint16_t> list) {
        return authenticate(with_algorithms(f, n, chosen, std::move(list)), client, f.store, f.nonces, t0).status;
    };
    CHECK(verdict(std::nullopt, {}) == auth_status::ok);             // neither: MD5
    CHECK(static_cast<int>(verdict(2, {2, 1})) == static_cast<int>(auth_status::ok)); // both, as offered
    CHECK(verdict(1, {2, 1}) == auth_status::ok);                    // MD5 is offered too
    CHECK(verdict(2, {}) == auth_status::bad_request);               // the algorithm alone
    CHECK(verdict(std::nullopt, {2, 1}) == auth_status::bad_request); // the list alone
    CHECK(verdict(2, {1, 2}) == auth_status::bad_request);           // reordered
    CHECK(verdict(2, {2}) == auth_status::bad_request);              // shortened
    CHECK(verdict(3, {2, 1}) == auth_status::bad_request);           // not in the list
}

TEST_CASE("a user with only an MD5 key is never offered SHA-256") {
    credential_store store("ferry");
    store.add_user("alice", "pw");
    REQUIRE(store.offered_algorithms().size() == 2);
    CHECK(store.offered_algorithms()[0] == password_algorithm::sha256);
    store.add_user_key("carol", long_term_key("carol", "ferry", "pw"));
    REQUIRE(store.offered_algorithms().size() == 1);
    CHECK(store.offered_algorithms()[0] == password_algorithm::md5);
}

TEST_CASE("an expired REST credential fails even with the allocation's cached key") {
    auth_fixture f;
    const std::string user = std::to_string(t0 + 3) + ":alice";
    std::array<std::uint8_t, 20> mac{};
    hmac_sha1(bytes("north"), bytes(user), mac);
    const auto password = base64_encode(mac);
    const auto k = long_term_key(user, "ferry", password);
    const auto n = f.nonces.issue(client, t0);
    auto r = authenticate(f.request(user, password, n), client, f.store, f.nonces, t0, &k, user);
    REQUIRE(r.status == auth_status::ok);
    CHECK(r.expires == t0 + 3);
    r = authenticate(f.request(user, password, n), client, f.store, f.nonces, t0 + 5, &k, user);
    CHECK(r.status == auth_status::unauthorized);
}
