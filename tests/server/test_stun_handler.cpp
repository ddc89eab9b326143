// The STUN handler without sockets: a crafted request and context in, reply bytes out.
#include "hex.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"
#include "ferry/server/stun_handler.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace ferry::protocol;
using namespace ferry::server;

namespace {

const std::array<std::uint8_t, 12> txid = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

struct fixture {
    stun_handler handler{handler_settings{"ferry-test"}};
    request_context ctx;
    std::vector<std::uint8_t> out = std::vector<std::uint8_t>(1500);
    message_view response;
    reply last;

    fixture() {
        ctx.via = transport::udp;
        ctx.local = *transport_address::from("192.0.2.10", 5000);
        ctx.remote = *transport_address::from("203.0.113.5", 40000);
    }

    std::vector<std::uint8_t> request(const std::function<void(message_writer&)>& f,
                                      method m = method::binding) {
        std::vector<std::uint8_t> buf(1500);
        message_writer w(buf, make_message_type(m, message_class::request), txid);
        f(w);
        auto s = w.finish();
        return {s.begin(), s.end()};
    }

    /// Sends `in`, parses the reply; false if there was none.
    bool send(const std::vector<std::uint8_t>& in) {
        last = handler.handle(ctx, in, out);
        if (last.size == 0) return false;
        REQUIRE_FALSE(response.parse(std::span(out).first(last.size)));
        return true;
    }
};

nat_identity make_nat() {
    nat_identity n;
    const char* ips[2] = {"192.0.2.10", "192.0.2.11"};
    const std::uint16_t ports[2] = {5000, 5001};
    for (unsigned i = 0; i < 2; ++i)
        for (unsigned p = 0; p < 2; ++p) n.addresses[i][p] = *transport_address::from(ips[i], ports[p]);
    return n;
}

} // namespace

TEST_CASE("Binding success carries XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and SOFTWARE") {
    fixture f;
    REQUIRE(f.send(f.request([](message_writer&) {})));
    CHECK(f.response.is(method::binding, message_class::success_response));
    CHECK(std::equal(txid.begin(), txid.end(), f.response.transaction_id().begin()));
    CHECK(f.response.get<xor_mapped_address>()->address == f.ctx.remote);
    CHECK(f.response.get<response_origin>()->address == f.ctx.local);
    CHECK(f.response.get<software>()->value == "ferry-test");
    CHECK_FALSE(f.response.has(attribute_type::fingerprint));
    CHECK_FALSE(f.response.has(attribute_type::other_address));
    CHECK_FALSE(f.response.has(attribute_type::mapped_address));
}

TEST_CASE("IPv6 clients get their IPv6 address back") {
    fixture f;
    f.ctx.remote = *transport_address::from("2001:db8::7", 5555);
    f.ctx.local = *transport_address::from("2001:db8::1", 5000);
    REQUIRE(f.send(f.request([](message_writer&) {})));
    CHECK(f.response.get<xor_mapped_address>()->address.to_string() == "[2001:db8::7]:5555");
}

TEST_CASE("FINGERPRINT is answered with FINGERPRINT, and a bad one is dropped") {
    fixture f;
    auto req = f.request([](message_writer& w) { w.append_fingerprint(); });
    REQUIRE(f.send(req));
    CHECK(check_fingerprint(f.response) == fingerprint_status::valid);
    req[req.size() - 1] ^= 0xFF;
    CHECK_FALSE(f.send(req));
    CHECK(f.handler.stats().dropped == 1);
}

TEST_CASE("SOFTWARE can be left out") {
    fixture f;
    f.handler = stun_handler(handler_settings{""});
    REQUIRE(f.send(f.request([](message_writer&) {})));
    CHECK_FALSE(f.response.has(attribute_type::software));
}

TEST_CASE("an RFC 3489 request gets MAPPED-ADDRESS and its 128-bit id back") {
    fixture f;
    auto req = f.request([](message_writer&) {});
    req[4] = 0x11; // no magic cookie
    REQUIRE(f.send(req));
    CHECK_FALSE(f.response.has_magic_cookie());
    CHECK(std::equal(req.begin() + 4, req.begin() + 20, f.out.begin() + 4));
    CHECK(f.response.get<mapped_address>()->address == f.ctx.remote);
    CHECK(f.response.get<source_address>()->address == f.ctx.local);
    CHECK_FALSE(f.response.has(attribute_type::xor_mapped_address));
}

TEST_CASE("unknown comprehension-required attributes get 420 with UNKNOWN-ATTRIBUTES") {
    fixture f;
    REQUIRE(f.send(f.request([](message_writer& w) {
        w.append(static_cast<attribute_type>(0x7F01), 4);
        w.append(static_cast<attribute_type>(0xC001), 4); // optional: ignored
    })));
    CHECK(f.response.is(method::binding, message_class::error_response));
    CHECK(f.response.get<error_code>()->code == 420);
    auto u = f.response.get<unknown_attributes>();
    REQUIRE(u);
    REQUIRE(u->count == 1);
    CHECK(u->types[0] == 0x7F01);
}

TEST_CASE("RESPONSE-ADDRESS (RFC 3489) is refused, never followed") {
    fixture f;
    REQUIRE(f.send(f.request([](message_writer& w) {
        mapped_address{*transport_address::from("198.51.100.1", 9)}.encode(w);
        w.append_bytes(attribute_type::response_address, std::vector<std::uint8_t>(8, 1));
    })));
    CHECK(f.response.get<error_code>()->code == 420);
    CHECK(f.last.to_port == 0);
}

TEST_CASE("attributes placed after MESSAGE-INTEGRITY cannot trigger anything") {
    fixture f;
    auto req = f.request([](message_writer& w) { w.append_message_integrity(ferry::test::bytes("k")); });
    // Append an unknown comprehension-required attribute behind the integrity check.
    const std::uint8_t tail[] = {0x7F, 0x01, 0x00, 0x00};
    req.insert(req.end(), std::begin(tail), std::end(tail));
    store_u16(req.data() + 2, static_cast<std::uint16_t>(req.size() - 20));
    REQUIRE(f.send(req));
    CHECK(f.response.is(method::binding, message_class::success_response));
}

TEST_CASE("malformed input is dropped, not answered") {
    fixture f;
    auto req = f.request([](message_writer& w) { software{"abcd"}.encode(w); });
    SUBCASE("truncated") { CHECK_FALSE(f.send({req.begin(), req.end() - 1})); }
    SUBCASE("length mismatch") {
        req[3] += 4;
        CHECK_FALSE(f.send(req));
    }
    SUBCASE("attribute overrun") {
        req[23] = 200;
        CHECK_FALSE(f.send(req));
    }
    SUBCASE("indications and responses get no answer") {
        auto ind = req;
        store_u16(ind.data(), make_message_type(method::binding, message_class::indication));
        CHECK_FALSE(f.send(ind));
        store_u16(ind.data(), make_message_type(method::binding, message_class::success_response));
        CHECK_FALSE(f.send(ind));
    }
}

TEST_CASE("a method the server does not serve gets 400") {
    fixture f;
    REQUIRE(f.send(f.request([](message_writer&) {}, static_cast<method>(0x0ABC))));
    CHECK(f.response.klass() == message_class::error_response);
    CHECK(f.response.method() == 0x0ABC);
    CHECK(f.response.get<error_code>()->code == 400);
}

TEST_CASE("CHANGE-REQUEST and RESPONSE-PORT without an RFC 5780 set") {
    fixture f;
    SUBCASE("flags set: 420 naming CHANGE-REQUEST") {
        REQUIRE(f.send(f.request([](message_writer& w) { change_request{true, true}.encode(w); })));
        CHECK(f.response.get<error_code>()->code == 420);
        CHECK(f.response.get<unknown_attributes>()->types[0] == 0x0003);
    }
    SUBCASE("no flags: an ordinary answer") {
        REQUIRE(f.send(f.request([](message_writer& w) { change_request{false, false}.encode(w); })));
        CHECK(f.response.klass() == message_class::success_response);
    }
    SUBCASE("RESPONSE-PORT: 420") {
        REQUIRE(f.send(f.request([](message_writer& w) { response_port{9999}.encode(w); })));
        CHECK(f.response.get<error_code>()->code == 420);
        CHECK(f.last.to_port == 0);
    }
}

TEST_CASE("RFC 5780: OTHER-ADDRESS, CHANGE-REQUEST, RESPONSE-PORT and PADDING") {
    fixture f;
    auto nat = make_nat();
    f.ctx.nat = &nat;
    SUBCASE("on the primary socket") {
        REQUIRE(f.send(f.request([](message_writer&) {})));
        CHECK(f.response.get<other_address>()->address.to_string() == "192.0.2.11:5001");
        CHECK(f.response.get<response_origin>()->address.to_string() == "192.0.2.10:5000");
        CHECK(f.last.from_ip == 0);
        CHECK(f.last.from_port == 0);
    }
    SUBCASE("change IP and port") {
        REQUIRE(f.send(f.request([](message_writer& w) { change_request{true, true}.encode(w); })));
        CHECK(f.last.from_ip == 1);
        CHECK(f.last.from_port == 1);
        CHECK(f.response.get<response_origin>()->address.to_string() == "192.0.2.11:5001");
    }
    SUBCASE("change port only, arriving on the alternate address") {
        nat.ip = 1;
        REQUIRE(f.send(f.request([](message_writer& w) { change_request{false, true}.encode(w); })));
        CHECK(f.last.from_ip == 1);
        CHECK(f.last.from_port == 1);
        CHECK(f.response.get<other_address>()->address.to_string() == "192.0.2.10:5001");
    }
    SUBCASE("RESPONSE-PORT redirects to another port of the same client") {
        REQUIRE(f.send(f.request([](message_writer& w) { response_port{40001}.encode(w); })));
        CHECK(f.last.to_port == 40001);
    }
    SUBCASE("PADDING is answered with PADDING of the same length") {
        auto req = f.request([](message_writer& w) { padding{500}.encode(w); });
        REQUIRE(f.send(req));
        CHECK(f.response.get<padding>()->length == 500);
        CHECK(f.last.size < req.size() + 100);
    }
    SUBCASE("RFC 3489 clients get CHANGED-ADDRESS") {
        auto req = f.request([](message_writer&) {});
        req[4] = 0;
        REQUIRE(f.send(req));
        CHECK(f.response.get<changed_address>()->address.to_string() == "192.0.2.11:5001");
    }
}

TEST_CASE("an unauthenticated request never gets a much larger answer") {
    fixture f;
    const auto req = f.request([](message_writer&) {});
    REQUIRE(f.send(req));
    // 20-byte request: XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and a short SOFTWARE.
    CHECK(f.last.size <= 20 + 12 + 12 + 4 + 12);
}

TEST_CASE("a Binding answer stays within three times its request, optional attributes giving way") {
    fixture f;
    SUBCASE("IPv4, 20 bytes in") {
        REQUIRE(f.send(f.request([](message_writer&) {})));
        CHECK(f.last.size <= 60);
        CHECK(f.response.has(attribute_type::xor_mapped_address));
    }
    SUBCASE("IPv6, 20 bytes in: RESPONSE-ORIGIN and SOFTWARE are dropped before the mapped address") {
        f.ctx.local = *transport_address::from("2001:db8::1", 5000);
        f.ctx.remote = *transport_address::from("2001:db8::99", 40000);
        REQUIRE(f.send(f.request([](message_writer&) {})));
        CHECK(f.last.size <= 60);
        CHECK(f.response.get<xor_mapped_address>()->address == f.ctx.remote);
    }
    SUBCASE("with FINGERPRINT, 28 bytes in") {
        REQUIRE(f.send(f.request([](message_writer& w) { w.append_fingerprint(); })));
        CHECK(f.last.size <= 84);
        CHECK(f.response.has(attribute_type::fingerprint));
    }
    SUBCASE("a larger request gets every attribute") {
        REQUIRE(f.send(f.request([](message_writer& w) { software{"a client with a long name"}.encode(w); })));
        CHECK(f.response.has(attribute_type::response_origin));
        CHECK(f.response.get<software>()->value == "ferry-test");
    }
}

TEST_CASE("an RFC 3489 request gets SOFTWARE padded with spaces to a multiple of four") {
    fixture f; // "ferry-test" is 10 bytes
    std::vector<std::uint8_t> req(20, 0);
    req[1] = 0x01; // Binding request, no magic cookie
    for (std::size_t i = 4; i < 20; ++i) req[i] = static_cast<std::uint8_t>(i);
    // A larger classic request (with a CHANGE-REQUEST of no flags) leaves room for SOFTWARE.
    const std::uint8_t change[] = {0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0};
    req.insert(req.end(), std::begin(change), std::end(change));
    req[3] = 8;
    REQUIRE(f.send(req));
    const auto sw = f.response.find_value(attribute_type::software);
    REQUIRE(sw);
    CHECK(sw->size() == 12);
    CHECK(std::string(sw->begin(), sw->end()) == "ferry-test  ");
}
