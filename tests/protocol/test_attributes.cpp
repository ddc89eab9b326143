// Each typed attribute: encode then decode gives the value back, and malformed lengths decode
// to nothing rather than to garbage.
#include "hex.hpp"

#include "ferry/protocol/attributes.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace ferry::protocol;

namespace {

const std::array<std::uint8_t, 12> txid = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                           0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

template <class A> std::optional<A> round_trip(const A& a) {
    static std::vector<std::uint8_t> buf(2048);
    message_writer w(buf, 0x0001, txid);
    a.encode(w);
    REQUIRE(w.ok());
    static message_view m;
    REQUIRE_FALSE(m.parse(w.finish()));
    return m.get<A>();
}

template <class A> std::optional<A> decode_raw(std::vector<std::uint8_t> value) {
    static std::vector<std::uint8_t> buf(2048);
    message_writer w(buf, 0x0001, txid);
    w.append_bytes(A::type, value);
    static message_view m;
    REQUIRE_FALSE(m.parse(w.finish()));
    return m.get<A>();
}

} // namespace

TEST_CASE("address attributes round-trip for IPv4 and IPv6") {
    for (auto text : {"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::",
                      "::ffff:127.0.0.1", "fe80::1:2:3:4"}) {
        CAPTURE(text);
        auto a = *transport_address::from(text, 32853);
        CHECK(round_trip(xor_mapped_address{a})->address == a);
        CHECK(round_trip(xor_peer_address{a})->address == a);
        CHECK(round_trip(xor_relayed_address{a})->address == a);
        CHECK(round_trip(mapped_address{a})->address == a);
        CHECK(round_trip(other_address{a})->address == a);
        CHECK(round_trip(response_origin{a})->address == a);
    }
}

TEST_CASE("XOR address matches RFC 5769 2.2 on the wire") {
    auto a = *transport_address::from("192.0.2.1", 32853);
    std::array<std::uint8_t, 8> out{};
    encode_xor_address(a, txid, out);
    CHECK(std::vector<std::uint8_t>(out.begin(), out.end()) ==
          ferry::test::hex("00 01 a1 47 e1 12 a6 43"));
}

TEST_CASE("malformed address values decode to nothing") {
    CHECK_FALSE(decode_raw<xor_mapped_address>({0, 1, 0, 0, 1, 2, 3}));            // short
    CHECK_FALSE(decode_raw<xor_mapped_address>({0, 3, 0, 0, 1, 2, 3, 4}));         // family 3
    CHECK_FALSE(decode_raw<mapped_address>({0, 2, 0, 0, 1, 2, 3, 4}));            // v6 too short
    CHECK_FALSE(decode_raw<mapped_address>({0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})); // v4 too long
    CHECK_FALSE(decode_raw<mapped_address>({}));
}

TEST_CASE("text attributes enforce their length limits") {
    CHECK(round_trip(username{"alice"})->value == "alice");
    CHECK(round_trip(realm{"example.org"})->value == "example.org");
    CHECK(decode_raw<username>(std::vector<std::uint8_t>(512, 'a')));
    CHECK_FALSE(decode_raw<username>(std::vector<std::uint8_t>(513, 'a')));
    CHECK_FALSE(decode_raw<nonce>(std::vector<std::uint8_t>(764, 'n')));
    CHECK(round_trip(software{""})->value.empty());
}

TEST_CASE("numeric and flag attributes") {
    CHECK(round_trip(lifetime{3600})->seconds == 3600);
    CHECK_FALSE(decode_raw<lifetime>({0, 0, 1}));
    CHECK(round_trip(channel_number{0x4001})->number == 0x4001);
    CHECK_FALSE(decode_raw<channel_number>({0x40, 0x01}));
    CHECK(round_trip(requested_transport{transport_tcp})->protocol == transport_tcp);
    CHECK(round_trip(requested_address_family{2})->family == 2);
    CHECK(round_trip(additional_address_family{2})->family == 2);
    CHECK(round_trip(even_port{true})->reserve);
    CHECK_FALSE(round_trip(even_port{false})->reserve);
    CHECK_FALSE(decode_raw<even_port>({0x80, 0, 0, 0}));
    CHECK(round_trip(dont_fragment{}));
    CHECK_FALSE(decode_raw<dont_fragment>({1, 2, 3, 4}));
    auto cr = round_trip(change_request{true, false});
    CHECK(cr->change_ip);
    CHECK_FALSE(cr->change_port);
    CHECK(round_trip(change_request{false, true})->change_port);
    CHECK(round_trip(response_port{4242})->port == 4242);
    CHECK(round_trip(connection_id{0xDEADBEEF})->id == 0xDEADBEEF);
    CHECK(round_trip(padding{64})->length == 64);
    auto i = round_trip(icmp{3, 1, 77});
    CHECK(i->icmp_type == 3);
    CHECK(i->icmp_code == 1);
    CHECK(i->error_data == 77);
    reservation_token t;
    t.token = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(round_trip(t)->token == t.token);
    CHECK_FALSE(decode_raw<reservation_token>({1, 2, 3, 4}));
    std::array<std::uint8_t, 5> payload = {1, 2, 3, 4, 5};
    auto d = round_trip(data{payload});
    CHECK(std::equal(d->bytes.begin(), d->bytes.end(), payload.begin(), payload.end()));
}

TEST_CASE("ERROR-CODE") {
    auto e = round_trip(error_code{438, "Stale Nonce"});
    CHECK(e->code == 438);
    CHECK(e->reason == "Stale Nonce");
    CHECK(round_trip(error_code{420, ""})->reason == "Unknown Attribute");
    CHECK(round_trip(error_code{508, ""})->code == 508);
    CHECK_FALSE(decode_raw<error_code>({0, 0, 2, 0}));  // class 2
    CHECK_FALSE(decode_raw<error_code>({0, 0, 4, 100})); // number 100
    CHECK_FALSE(decode_raw<error_code>({0, 0, 4}));
    auto ae = round_trip(address_error_code{2, 440, ""});
    CHECK(ae->family == 2);
    CHECK(ae->code == 440);
}

TEST_CASE("UNKNOWN-ATTRIBUTES, PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM") {
    unknown_attributes u;
    u.types[0] = 0x7777;
    u.types[1] = 0x0002;
    u.count = 2;
    auto ru = round_trip(u);
    REQUIRE(ru->count == 2);
    CHECK(ru->types[1] == 0x0002);
    CHECK_FALSE(decode_raw<unknown_attributes>({0, 1, 2}));

    password_algorithms p;
    p.algorithms[0] = 2;
    p.algorithms[1] = 1;
    p.count = 2;
    auto rp = round_trip(p);
    REQUIRE(rp->count == 2);
    CHECK(rp->contains(1));
    CHECK(rp->contains(2));
    CHECK_FALSE(rp->contains(3));
    CHECK_FALSE(decode_raw<password_algorithms>({0, 1, 0, 8, 0, 0}));

    CHECK(round_trip(password_algorithm_attribute{2})->algorithm == 2);
    CHECK_FALSE(decode_raw<password_algorithm_attribute>({0, 1}));
}
