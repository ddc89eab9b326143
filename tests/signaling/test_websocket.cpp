// RFC 6455 framing: the RFC's own examples (§1.3, §5.7), then every rule a server enforces on
// a client's frames, byte by byte and in pieces.
#include "ferry/signaling/websocket.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ferry::signaling::ws;
using kind = reader::event::kind;

namespace {

std::vector<std::uint8_t> bytes(std::initializer_list<int> b) {
    std::vector<std::uint8_t> out;
    for (int x : b) out.push_back(static_cast<std::uint8_t>(x));
    return out;
}

/// A client frame: masked with `mask`, its length in the shortest form unless `long_form`.
std::vector<std::uint8_t> client_frame(bool fin, int op, std::string_view payload,
                                       std::array<std::uint8_t, 4> mask = {0x37, 0xfa, 0x21, 0x3d},
                                       int rsv = 0, int long_form = 0) {
    std::vector<std::uint8_t> out;
    out.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0) | rsv | op));
    const auto n = payload.size();
    if (long_form == 8 || (long_form == 0 && n > 0xFFFF)) {
        out.push_back(0x80 | 127);
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(n) >> (8 * i)));
    } else if (long_form == 2 || (long_form == 0 && n >= 126)) {
        out.push_back(0x80 | 126);
        out.push_back(static_cast<std::uint8_t>(n >> 8));
        out.push_back(static_cast<std::uint8_t>(n));
    } else {
        out.push_back(static_cast<std::uint8_t>(0x80 | n));
    }
    out.insert(out.end(), mask.begin(), mask.end());
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(payload[i]) ^ mask[i % 4]);
    return out;
}

/// Feeds everything, collecting events (in one piece, or `step` bytes at a time).
std::vector<reader::event> read_all(reader& r, const std::vector<std::uint8_t>& in, std::size_t step = 0) {
    std::vector<reader::event> events;
    std::size_t fed = 0; // bytes handed to the reader so far
    std::size_t pos = 0;
    std::vector<std::uint8_t> pending;
    while (fed < in.size() || !pending.empty()) {
        const std::size_t n = step == 0 ? in.size() - fed : std::min(step, in.size() - fed);
        pending.insert(pending.end(), in.begin() + static_cast<std::ptrdiff_t>(fed),
                       in.begin() + static_cast<std::ptrdiff_t>(fed + n));
        fed += n;
        for (;;) {
            reader::event ev;
            const auto used = r.feed(pending, ev);
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
            if (ev.what != kind::none) events.push_back(ev);
            if (ev.what == kind::error || ev.what == kind::close) return events;
            if (ev.what == kind::none) break;
        }
        if (n == 0) break;
        (void)pos;
    }
    return events;
}

} // namespace

TEST_CASE("the opening handshake's accept key (RFC 6455 1.3)") {
    CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ"));   // not padded
    CHECK_FALSE(valid_client_key("c2hvcnQ="));                 // 5 bytes
    CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=!"));
}

TEST_CASE("server frames as in RFC 6455 5.7") {
    const auto hello = frame(opcode::text, "Hello");
    CHECK(std::vector<std::uint8_t>(hello.begin(), hello.end()) == bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    const auto ping = frame(opcode::ping, "Hello");
    CHECK(static_cast<std::uint8_t>(ping[0]) == 0x89);
    const auto b256 = frame(opcode::binary, std::string(256, 'x'));
    CHECK(std::vector<std::uint8_t>(b256.begin(), b256.begin() + 4) == bytes({0x82, 0x7E, 0x01, 0x00}));
    CHECK(b256.size() == 4 + 256);
    const auto b64k = frame(opcode::binary, std::string(65536, 'x'));
    CHECK(std::vector<std::uint8_t>(b64k.begin(), b64k.begin() + 10) ==
          bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
    const auto c = close_frame(1009, "too big");
    CHECK(std::vector<std::uint8_t>(c.begin(), c.begin() + 4) == bytes({0x88, 0x09, 0x03, 0xF1}));
    // A reason longer than a control frame holds is cut, at a character boundary.
    const auto long_close = close_frame(1000, std::string(200, 'a') + "\xC3\xA9");
    CHECK(long_close.size() == 2 + 125);
    CHECK(valid_utf8(long_close.substr(4)));
}

TEST_CASE("the RFC's masked Hello, whole and byte by byte") {
    const auto in = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    for (std::size_t step : {0, 1, 3}) {
        CAPTURE(step);
        reader r(1024);
        const auto ev = read_all(r, in, step);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].what == kind::message);
        CHECK(ev[0].type == opcode::text);
        CHECK(ev[0].data == "Hello");
    }
}

TEST_CASE("fragments make one message, with a ping between them") {
    auto in = client_frame(false, 0x1, "Hel");
    const auto ping = client_frame(true, 0x9, "are you there", {1, 2, 3, 4});
    const auto last = client_frame(true, 0x0, "lo", {9, 8, 7, 6});
    in.insert(in.end(), ping.begin(), ping.end());
    in.insert(in.end(), last.begin(), last.end());
    for (std::size_t step : {0, 1, 5}) {
        CAPTURE(step);
        reader r(1024);
        const auto ev = read_all(r, in, step);
        REQUIRE(ev.size() == 2);
        CHECK(ev[0].what == kind::ping);
        CHECK(ev[0].data == "are you there");
        CHECK(ev[1].what == kind::message);
        CHECK(ev[1].data == "Hello");
    }
}

TEST_CASE("lengths: 16-bit and 64-bit forms, empty frames, binary") {
    reader r(1 << 20);
    const std::string big(70000, 'q');
    auto in = client_frame(true, 0x2, std::string(300, 'b'));
    const auto b = client_frame(true, 0x2, big);
    const auto empty = client_frame(true, 0x1, "");
    in.insert(in.end(), b.begin(), b.end());
    in.insert(in.end(), empty.begin(), empty.end());
    std::vector<reader::event> got;
    std::vector<std::uint8_t> pending = in;
    for (;;) {
        reader::event ev;
        const auto used = r.feed(pending, ev);
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
        if (ev.what == kind::none) break;
        got.push_back(ev);
    }
    REQUIRE(got.size() == 3);
    CHECK(got[0].type == opcode::binary);
    CHECK(got[0].data.size() == 300);
    CHECK(got[1].data == big);
    CHECK(got[2].what == kind::message);
    CHECK(got[2].data.empty());
}

TEST_CASE("a client's protocol errors close with 1002") {
    auto error_of = [](const std::vector<std::uint8_t>& in) {
        reader r(1 << 16);
        const auto ev = read_all(r, in);
        return ev.empty() ? std::uint16_t{0} : (ev.back().what == kind::error ? ev.back().code : std::uint16_t{1});
    };
    auto unmasked = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    CHECK(error_of(unmasked) == close_code::protocol_error);                               // not masked
    CHECK(error_of(client_frame(true, 0x1, "x", {1, 2, 3, 4}, 0x40)) == close_code::protocol_error); // RSV1
    CHECK(error_of(client_frame(true, 0x3, "x")) == close_code::protocol_error);           // opcode 3
    CHECK(error_of(client_frame(true, 0xB, "x")) == close_code::protocol_error);           // opcode 0xB
    CHECK(error_of(client_frame(false, 0x9, "x")) == close_code::protocol_error);          // fragmented ping
    CHECK(error_of(client_frame(true, 0x9, std::string(126, 'p'))) == close_code::protocol_error); // long ping
    CHECK(error_of(client_frame(true, 0x0, "x")) == close_code::protocol_error);           // stray continuation
    auto two_starts = client_frame(false, 0x1, "a");
    const auto second = client_frame(true, 0x1, "b");
    two_starts.insert(two_starts.end(), second.begin(), second.end());
    CHECK(error_of(two_starts) == close_code::protocol_error);                             // new message mid-message
    CHECK(error_of(client_frame(true, 0x1, "short", {1, 2, 3, 4}, 0, 2)) == close_code::protocol_error); // 16-bit form for 5
    CHECK(error_of(client_frame(true, 0x1, "short", {1, 2, 3, 4}, 0, 8)) == close_code::protocol_error); // 64-bit form for 5
    auto top_bit = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
    CHECK(error_of(top_bit) == close_code::protocol_error);                                // 64-bit length, top bit
    CHECK(error_of(client_frame(true, 0x8, "\x03")) == close_code::protocol_error);         // 1-byte close
    CHECK(error_of(client_frame(true, 0x8, std::string("\x03\xED", 2))) == close_code::protocol_error); // code 1005
    CHECK(error_of(client_frame(true, 0x8, std::string("\x07\xD0", 2))) == close_code::protocol_error); // code 2000
}

TEST_CASE("size limits: 1009 for a message over the limit, whole or in fragments") {
    {
        reader r(100);
        const auto ev = read_all(r, client_frame(true, 0x2, std::string(101, 'x')));
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == close_code::too_big);
    }
    {
        reader r(100);
        auto in = client_frame(false, 0x2, std::string(60, 'x'));
        const auto more = client_frame(true, 0x0, std::string(60, 'y'));
        in.insert(in.end(), more.begin(), more.end());
        const auto ev = read_all(r, in);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == close_code::too_big);
    }
    {
        // A header that claims 2^62 bytes is refused before any of it is read.
        reader r(100);
        const auto ev = read_all(r, bytes({0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}));
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == close_code::too_big);
    }
}

TEST_CASE("UTF-8: text must be valid (1007), binary need not be") {
    reader r(100);
    CHECK(read_all(r, client_frame(true, 0x1, "caf\xC3\xA9 \xF0\x9F\x98\x80"))[0].what == kind::message);
    for (const char* bad : {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF", "a\x80"}) {
        CAPTURE(bad);
        reader rb(100);
        const auto ev = read_all(rb, client_frame(true, 0x1, bad));
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == close_code::invalid_payload);
    }
    reader r2(100);
    CHECK(read_all(r2, client_frame(true, 0x2, "\xFF\xFE"))[0].what == kind::message);
}

TEST_CASE("a close frame: its code and reason, and nothing read after it") {
    reader r(100);
    auto in = client_frame(true, 0x8, std::string("\x03\xE8", 2) + "bye");
    const auto after = client_frame(true, 0x1, "ignored");
    in.insert(in.end(), after.begin(), after.end());
    reader::event ev;
    const auto used = r.feed(in, ev);
    CHECK(ev.what == kind::close);
    CHECK(ev.code == 1000);
    CHECK(ev.data == "bye");
    reader::event next;
    r.feed(std::span(in).subspan(used), next);
    CHECK(next.what == kind::none);
    reader r2(100);
    CHECK(read_all(r2, client_frame(true, 0x8, ""))[0].code == close_code::no_status);
}

#include "ferry/signaling/upgrade.hpp"

using namespace ferry::signaling;

TEST_CASE("the opening handshake: the RFC's request is accepted and answered 101") {
    const std::string req = "GET /chat?room=a HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                            "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const auto h = parse_head(req);
    REQUIRE(h);
    CHECK(h->path == "/chat");
    CHECK(h->target == "/chat?room=a");
    CHECK(h->origin == "http://example.com");
    CHECK(handshake_problem(*h).empty());
    const auto answer = switching_protocols(*h);
    CHECK(answer.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(answer.starts_with("HTTP/1.1 101 "));
}

TEST_CASE("handshakes that are not valid say why") {
    auto problem = [](std::string head) { return handshake_problem(*parse_head(head)); };
    const std::string ok_headers = "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    CHECK(problem("POST / HTTP/1.1\r\n" + ok_headers + "Sec-WebSocket-Version: 13\r\n\r\n") != "");
    CHECK(problem("GET / HTTP/1.1\r\n" + ok_headers + "Sec-WebSocket-Version: 8\r\n\r\n") ==
          "Sec-WebSocket-Version must be 13");
    CHECK(problem("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n") == "no valid Sec-WebSocket-Key");
    CHECK(problem("GET / HTTP/1.1\r\nHost: h\r\n\r\n") == "no Upgrade: websocket");
    CHECK_FALSE(parse_head("GET / HTTP/1.0\r\n\r\n"));
    CHECK_FALSE(parse_head("GET nopath HTTP/1.1\r\n\r\n"));
    CHECK_FALSE(parse_head("garbage"));
    CHECK(host_without_port("example.org:8443") == "example.org");
    CHECK(host_without_port("[::1]:80") == "::1");
    CHECK(host_without_port("203.0.113.1") == "203.0.113.1");
}
