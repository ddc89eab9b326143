// ChannelData, RFC 7983 demultiplexing, and the stream framer fed every possible split.
#include "hex.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/framer.hpp"
#include "ferry/protocol/wire.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace ferry::protocol;

namespace {

std::vector<std::uint8_t> stun_message(std::size_t software_len) {
    std::vector<std::uint8_t> buf(2048);
    std::array<std::uint8_t, 12> txid{};
    message_writer w(buf, 0x0001, txid);
    std::string s(software_len, 's');
    software{s}.encode(w);
    auto out = w.finish();
    return {out.begin(), out.end()};
}

std::vector<std::uint8_t> channel_record(std::uint16_t channel, std::size_t len, bool pad) {
    std::vector<std::uint8_t> b(4 + (pad ? padded(len) : len), 0);
    write_channel_data_header(std::span(b).first<4>(), channel, static_cast<std::uint16_t>(len));
    for (std::size_t i = 0; i < len; ++i) b[4 + i] = static_cast<std::uint8_t>(i);
    return b;
}

// Feeds `stream` to the framer in two pieces split at `cut`, the way a socket might deliver
// it, and returns the frame sizes it found.
std::vector<std::size_t> frame_all(const std::vector<std::uint8_t>& stream, std::size_t cut) {
    std::vector<std::uint8_t> buffered;
    std::vector<std::size_t> frames;
    auto consume = [&] {
        for (;;) {
            auto r = next_frame(buffered, 4096);
            if (r.kind == frame_result::invalid) {
                frames.push_back(0);
                return false;
            }
            if (r.kind == frame_result::need_more) return true;
            frames.push_back(r.size);
            buffered.erase(buffered.begin(), buffered.begin() + static_cast<long>(r.size));
        }
    };
    buffered.assign(stream.begin(), stream.begin() + static_cast<long>(cut));
    if (!consume()) return frames;
    buffered.insert(buffered.end(), stream.begin() + static_cast<long>(cut), stream.end());
    consume();
    REQUIRE(buffered.empty());
    return frames;
}

} // namespace

TEST_CASE("ChannelData parses and bounds-checks") {
    auto rec = channel_record(0x4001, 5, false);
    auto cd = parse_channel_data(rec);
    REQUIRE(cd);
    CHECK(cd->channel == 0x4001);
    CHECK(cd->data.size() == 5);
    CHECK(parse_channel_data(channel_record(0x4FFF, 5, true))->data.size() == 5);
    CHECK(parse_channel_data(channel_record(0x7FFF, 0, false))); // RFC 5766 clients
    CHECK_FALSE(parse_channel_data(channel_record(0x3FFF, 4, false)));
    CHECK_FALSE(parse_channel_data(channel_record(0x8000, 4, false)));
    CHECK_FALSE(parse_channel_data(std::span(rec).first(8))); // length runs past the bytes
    CHECK_FALSE(parse_channel_data(std::span(rec).first(3)));
}

TEST_CASE("RFC 7983 first-byte classification") {
    CHECK(classify(0) == packet_kind::stun);
    CHECK(classify(3) == packet_kind::stun);
    CHECK(classify(4) == packet_kind::other);
    CHECK(classify(16) == packet_kind::other); // ZRTP
    CHECK(classify(20) == packet_kind::dtls);
    CHECK(classify(63) == packet_kind::dtls);
    CHECK(classify(64) == packet_kind::channel_data);
    CHECK(classify(0x7F) == packet_kind::channel_data);
    CHECK(classify(0x80) == packet_kind::other); // RTP
    CHECK(classify(0xFF) == packet_kind::other);
}

TEST_CASE("stream framer: every split point of a mixed stream yields the same frames") {
    std::vector<std::uint8_t> stream;
    std::vector<std::size_t> expected;
    for (auto part : {stun_message(5), channel_record(0x4000, 7, true), stun_message(0),
                      channel_record(0x7FFF, 0, true), channel_record(0x4ABC, 12, true),
                      stun_message(37)}) {
        stream.insert(stream.end(), part.begin(), part.end());
        expected.push_back(part.size());
    }
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        CHECK(frame_all(stream, cut) == expected);
    }
}

TEST_CASE("stream framer: byte-at-a-time delivery") {
    auto msg = stun_message(9);
    std::vector<std::uint8_t> buffered;
    for (std::size_t i = 0; i < msg.size(); ++i) {
        buffered.push_back(msg[i]);
        auto r = next_frame(buffered, 4096);
        if (i + 1 < msg.size()) {
            CHECK(r.kind == frame_result::need_more);
            if (buffered.size() >= 4) CHECK(r.size == msg.size());
        } else {
            CHECK(r.kind == frame_result::frame);
            CHECK(r.size == msg.size());
        }
    }
}

TEST_CASE("stream framer: invalid input closes rather than resynchronises") {
    CHECK(next_frame(ferry::test::hex("80 00 00 00"), 4096).kind == frame_result::invalid);
    CHECK(next_frame(ferry::test::hex("16 03 01 00"), 4096).kind == frame_result::invalid);
    CHECK(next_frame(ferry::test::hex("00 01 00 02"), 4096).kind == frame_result::invalid);
    CHECK(next_frame(ferry::test::hex("00 01 00 00 01 02 03 04"), 4096).kind ==
          frame_result::invalid); // no magic cookie on a stream
    SUBCASE("a huge declared length is refused before any of it is buffered") {
        CHECK(next_frame(ferry::test::hex("00 01 ff fc 21 12 a4 42"), 1500).kind ==
              frame_result::invalid);
        CHECK(next_frame(ferry::test::hex("40 00 ff ff"), 1500).kind == frame_result::invalid);
    }
}
