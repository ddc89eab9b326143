// The message parser and writer: type encoding, framing checks, the integrity ordering rules,
// RFC 3489 messages, and the writer's refusal to break the order rules or overrun its buffer.
#include "hex.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace ferry::protocol;
using ferry::test::bytes;

namespace {

const std::array<std::uint8_t, 12> txid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

std::vector<std::uint8_t> build(std::uint16_t type, const std::function<void(message_writer&)>& f) {
    std::vector<std::uint8_t> buf(1024);
    message_writer w(buf, type, txid);
    f(w);
    auto out = w.finish();
    return {out.begin(), out.end()};
}

} // namespace

TEST_CASE("message type encoding follows RFC 8489 figure 3") {
    CHECK(make_message_type(method::binding, message_class::request) == 0x0001);
    CHECK(make_message_type(method::binding, message_class::success_response) == 0x0101);
    CHECK(make_message_type(method::binding, message_class::error_response) == 0x0111);
    CHECK(make_message_type(method::allocate, message_class::request) == 0x0003);
    CHECK(make_message_type(method::send, message_class::indication) == 0x0016);
    CHECK(make_message_type(method::data, message_class::indication) == 0x0017);
    CHECK(make_message_type(method::channel_bind, message_class::error_response) == 0x0119);
    for (std::uint16_t m = 0; m < 0x1000; m += 0x55) {
        for (auto c : {message_class::request, message_class::indication,
                       message_class::success_response, message_class::error_response}) {
            auto t = make_message_type(m, c);
            CHECK(method_of(t) == m);
            CHECK(class_of(t) == c);
            CHECK((t & 0xC000) == 0);
        }
    }
}

TEST_CASE("parse rejects malformed framing") {
    auto good = build(0x0001, [](message_writer& w) { software{"abc"}.encode(w); });
    message_view m;
    REQUIRE_FALSE(m.parse(good));

    SUBCASE("top bits set") {
        auto b = good;
        b[0] |= 0x80;
        CHECK(m.parse(b) == errc::not_stun);
    }
    SUBCASE("length not a multiple of 4") {
        auto b = good;
        b[3] += 1;
        b.push_back(0);
        CHECK(m.parse(b) == errc::bad_length);
    }
    SUBCASE("header length shorter than the datagram") {
        auto b = good;
        b[3] -= 4;
        CHECK(m.parse(b) == errc::bad_length);
    }
    SUBCASE("header cut inside an attribute") {
        auto b = good;
        b[3] = 4;
        b.resize(24);
        CHECK(m.parse(b) == errc::attribute_overrun);
    }
    SUBCASE("attribute header cut short") {
        std::vector<std::uint8_t> b(good.begin(), good.begin() + 20);
        b[3] = 0;
        CHECK_FALSE(m.parse(b)); // header alone is a valid empty message
    }
    SUBCASE("a failed parse leaves the view empty") {
        auto b = good;
        b[0] |= 0x80;
        CHECK(m.parse(b));
        CHECK(m.bytes().empty());
        CHECK(m.attributes().empty());
    }
}

TEST_CASE("attributes after MESSAGE-INTEGRITY are ignored, except the RFC's exceptions") {
    const auto key = bytes("key");
    auto signed_msg = build(make_message_type(method::allocate, message_class::request),
                            [&](message_writer& w) {
                                lifetime{600}.encode(w);
                                w.append_message_integrity(key);
                            });
    // An attacker appends LIFETIME 0 and a DATA attribute after the integrity check.
    std::vector<std::uint8_t> b = signed_msg;
    const std::uint8_t tail[] = {0x00, 0x0D, 0x00, 0x04, 0, 0, 0, 0, 0x00, 0x13, 0x00, 0x01, 0x41, 0, 0, 0};
    b.insert(b.end(), std::begin(tail), std::end(tail));
    store_u16(b.data() + 2, static_cast<std::uint16_t>(b.size() - 20));

    message_view m;
    REQUIRE_FALSE(m.parse(b));
    CHECK(m.get<lifetime>()->seconds == 600); // the first, covered one
    CHECK_FALSE(m.has(attribute_type::data));
    CHECK(m.attributes().size() == 2);
    CHECK(verify_message_integrity(m, key));

    SUBCASE("an attribute placed only after MESSAGE-INTEGRITY is invisible") {
        auto only_after = build(make_message_type(method::refresh, message_class::request),
                                [&](message_writer& w) { w.append_message_integrity(key); });
        const std::uint8_t lt0[] = {0x00, 0x0D, 0x00, 0x04, 0, 0, 0, 0};
        only_after.insert(only_after.end(), std::begin(lt0), std::end(lt0));
        store_u16(only_after.data() + 2, static_cast<std::uint16_t>(only_after.size() - 20));
        message_view r;
        REQUIRE_FALSE(r.parse(only_after));
        CHECK_FALSE(r.get<lifetime>());
    }
    SUBCASE("MESSAGE-INTEGRITY-SHA256 and FINGERPRINT after MESSAGE-INTEGRITY are indexed") {
        auto both = build(0x0001, [&](message_writer& w) {
            w.append_message_integrity(key);
            w.append_message_integrity_sha256(key);
            w.append_fingerprint();
        });
        message_view r;
        REQUIRE_FALSE(r.parse(both));
        CHECK(verify_message_integrity(r, key));
        CHECK(verify_message_integrity_sha256(r, key));
        CHECK(check_fingerprint(r) == fingerprint_status::valid);
    }
}

TEST_CASE("anything after FINGERPRINT makes the message invalid") {
    auto b = build(0x0001, [](message_writer& w) { w.append_fingerprint(); });
    const std::uint8_t extra[] = {0x80, 0x22, 0x00, 0x00};
    b.insert(b.end(), std::begin(extra), std::end(extra));
    store_u16(b.data() + 2, static_cast<std::uint16_t>(b.size() - 20));
    message_view m;
    CHECK(m.parse(b) == errc::after_fingerprint);
}

TEST_CASE("too many attributes are refused, not silently truncated") {
    std::vector<std::uint8_t> buf(4096);
    message_writer w(buf, 0x0001, txid);
    for (std::size_t i = 0; i <= message_view::max_attributes; ++i)
        w.append(static_cast<attribute_type>(0x8050), 0);
    message_view m;
    CHECK(m.parse(w.finish()) == errc::too_many_attributes);
}

TEST_CASE("unknown comprehension-required attributes are listed") {
    auto b = build(0x0001, [](message_writer& w) {
        w.append(static_cast<attribute_type>(0x7777), 4);
        w.append(static_cast<attribute_type>(0x8777), 4); // optional: not listed
        w.append(attribute_type::response_address, 8);    // RFC 3489, refused on purpose
        software{"x"}.encode(w);
    });
    message_view m;
    REQUIRE_FALSE(m.parse(b));
    std::array<std::uint16_t, 8> unknown{};
    REQUIRE(m.unknown_required(unknown) == 2);
    CHECK(unknown[0] == 0x7777);
    CHECK(unknown[1] == 0x0002);
}

TEST_CASE("RFC 3489 messages parse without a magic cookie and keep their 128-bit id") {
    auto b = build(0x0001, [](message_writer&) {});
    b[4] = 0xAA; // no cookie: bytes 4..7 belong to the transaction id
    message_view m;
    REQUIRE_FALSE(m.parse(b));
    CHECK_FALSE(m.has_magic_cookie());
    std::vector<std::uint8_t> out(64);
    message_writer w(out, 0x0101, m);
    auto r = w.finish();
    REQUIRE(r.size() == 20);
    CHECK(std::equal(r.begin() + 4, r.end(), b.begin() + 4));
}

TEST_CASE("the writer enforces the RFC 8489 order rules") {
    const auto key = bytes("k");
    std::vector<std::uint8_t> buf(512);
    SUBCASE("nothing but MI-SHA256 and FINGERPRINT after MESSAGE-INTEGRITY") {
        message_writer w(buf, 0x0001, txid);
        w.append_message_integrity(key);
        software{"late"}.encode(w);
        CHECK_FALSE(w.ok());
        CHECK(w.finish().empty());
    }
    SUBCASE("nothing after FINGERPRINT") {
        message_writer w(buf, 0x0001, txid);
        w.append_fingerprint();
        w.append_message_integrity(key);
        CHECK_FALSE(w.ok());
    }
    SUBCASE("MESSAGE-INTEGRITY cannot follow MESSAGE-INTEGRITY-SHA256") {
        message_writer w(buf, 0x0001, txid);
        w.append_message_integrity_sha256(key);
        w.append_message_integrity(key);
        CHECK_FALSE(w.ok());
    }
    SUBCASE("running out of buffer fails the whole message") {
        std::vector<std::uint8_t> small(30);
        message_writer w(small, 0x0001, txid);
        software{"this will not fit"}.encode(w);
        CHECK_FALSE(w.ok());
        CHECK(w.finish().empty());
    }
    SUBCASE("a buffer smaller than a header fails at once") {
        std::vector<std::uint8_t> tiny(10);
        message_writer w(tiny, 0x0001, txid);
        CHECK_FALSE(w.ok());
    }
    SUBCASE("padding is zeroed and the length updated") {
        message_writer w(buf, 0x0001, txid);
        std::fill(buf.begin() + 20, buf.end(), 0xEE);
        software{"abcde"}.encode(w);
        auto out = w.finish();
        REQUIRE(out.size() == 32);
        CHECK(load_u16(out.data() + 2) == 12);
        CHECK(out[29] == 0);
        CHECK(out[30] == 0);
        CHECK(out[31] == 0);
    }
}

TEST_CASE("looks_like_stun") {
    std::vector<std::uint8_t> b(20, 0);
    CHECK(looks_like_stun(b));
    b[0] = 0x40;
    CHECK_FALSE(looks_like_stun(b));
    b[0] = 0;
    b[3] = 2;
    CHECK_FALSE(looks_like_stun(b));
    CHECK_FALSE(looks_like_stun(std::span(b).first(19)));
}

TEST_CASE("an attribute's reserved bytes are zero whatever the buffer held before") {
    std::vector<std::uint8_t> buf(256, 0xEE);
    std::array<std::uint8_t, 12> txid{};
    message_writer w(buf, 0x0103, txid);
    error_code{438, ""}.encode(w);
    requested_transport{}.encode(w);
    password_algorithms pa;
    pa.algorithms[0] = 2;
    pa.count = 1;
    pa.encode(w);
    const auto m = w.finish();
    message_view v;
    REQUIRE_FALSE(v.parse(m));
    CHECK(v.find_value(attribute_type::error_code)->data()[1] == 0);       // reserved
    const auto rt = *v.find_value(attribute_type::requested_transport);
    CHECK((rt[1] | rt[2] | rt[3]) == 0);                                     // RFFU
    CHECK(load_u16(v.find_value(attribute_type::password_algorithms)->data() + 2) == 0); // no parameters
    REQUIRE(v.get<password_algorithms>());
}
