// ChannelData messages (RFC 8656 §12.4) and first-byte demultiplexing (RFC 7983 §7).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |         Channel Number        |            Length             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   /                       Application Data                        /
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// RFC 8656 §12 allows channel numbers 0x4000-0x4FFF; RFC 5766 §11 allowed 0x4000-0x7FFF, and
// RFC 5766 clients (coturn 4.6's turnutils_uclient among them) still use the upper part, so the
// codec accepts the wider range and leaves the policy to the server.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace ferry::protocol {

inline constexpr std::size_t channel_data_header_size = 4;
inline constexpr std::uint16_t channel_min = 0x4000;
inline constexpr std::uint16_t channel_max_rfc8656 = 0x4FFF;
inline constexpr std::uint16_t channel_max_rfc5766 = 0x7FFF;

constexpr bool is_channel_number(std::uint16_t n) {
    return n >= channel_min && n <= channel_max_rfc5766;
}

struct channel_data_view {
    std::uint16_t channel = 0;
    std::span<const std::uint8_t> data;
};

/// Parses a ChannelData datagram or stream record. The bytes may extend past Length (padding,
/// RFC 8656 §12.5); Length running past the bytes, or a number outside 0x4000-0x7FFF, is invalid.
std::optional<channel_data_view> parse_channel_data(std::span<const std::uint8_t> bytes);

/// Writes the 4-byte header in front of a payload of `length` bytes.
void write_channel_data_header(std::span<std::uint8_t, channel_data_header_size> out,
                               std::uint16_t channel, std::uint16_t length);

/// RFC 7983 §7 demultiplexing by the first byte of a datagram.
enum class packet_kind { stun, dtls, channel_data, other };
constexpr packet_kind classify(std::uint8_t first) {
    if (first <= 3) return packet_kind::stun;
    if (first >= 20 && first <= 63) return packet_kind::dtls;
    if (first >= 64 && first <= 127) return packet_kind::channel_data; // RFC 5766's 0x40-0x7F
    return packet_kind::other;
}

} // namespace ferry::protocol
