// WebSocket (RFC 6455) for a server, as pure code: the opening handshake's accept key, the
// frames a server writes, and a reader that turns a client's bytes into messages and control
// frames, checking every rule a server must (§5: masking, reserved bits, opcodes, control
// frame sizes, fragmentation, length encoding, close codes, UTF-8 of text) and a size limit.
//
// Debian's websocketpp 0.8.2 does not build with C++20 or with Asio 1.22's
// ASIO_NO_DEPRECATED (io_service is gone), both of which ferry uses; the framing is small
// enough to own, with the RFC's examples as tests.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ferry::signaling::ws {

enum class opcode : std::uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

/// §7.4.1 status codes ferry sends or checks.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005; ///< never sent: "the close frame had no code"
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t try_again_later = 1013;
} // namespace close_code

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2): base64(SHA-1(key + GUID)).
std::string accept_key(std::string_view client_key);

/// A valid Sec-WebSocket-Key: base64 of 16 bytes (§4.1).
bool valid_client_key(std::string_view key);

/// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view text);

/// The largest header a frame has: 2 bytes, 8 of extended length (a server sends no mask).
inline constexpr std::size_t max_server_header = 10;

/// Writes the header of an unfragmented, unmasked frame carrying `payload_size` bytes; returns
/// its size (2, 4 or 10).
std::size_t write_header(std::span<std::uint8_t, max_server_header> out, opcode op, std::uint64_t payload_size);

/// A whole server frame: header and payload.
std::string frame(opcode op, std::string_view payload);
/// A close frame with `code` and `reason` (cut to fit the 125 bytes of a control frame).
std::string close_frame(std::uint16_t code, std::string_view reason);

/// Reads a client's frames. feed() takes bytes as they arrive and returns what they complete:
/// one event at a time (call again with the rest). A protocol error is final: the connection
/// closes with the event's code.
class reader {
public:
    explicit reader(std::size_t max_message) : max_message_(max_message) {}

    struct event {
        enum class kind { none, message, ping, pong, close, error } what = kind::none;
        opcode type = opcode::text; ///< message: text or binary
        std::string data;           ///< message or ping/pong payload; close: the reason
        std::uint16_t code = 0;     ///< close: the peer's code (no_status if none); error: ours to send
    };

    /// Consumes a prefix of `in` and says how much; `ev` is what it completed (kind::none: it
    /// needs more bytes). After an error nothing more is read.
    std::size_t feed(std::span<const std::uint8_t> in, event& ev);

private:
    std::size_t fail(event& ev, std::uint16_t code, std::string why);

    std::size_t max_message_;
    bool failed_ = false;
    // The frame being read.
    bool in_frame_ = false;
    bool fin_ = false;
    opcode op_ = opcode::text;
    std::array<std::uint8_t, 4> mask_{};
    std::uint64_t left_ = 0;  ///< payload bytes still to come
    std::uint64_t seen_ = 0;  ///< payload bytes of this frame so far (the mask's offset)
    std::string control_;     ///< a control frame's payload
    // The message being assembled (fragments).
    bool in_message_ = false;
    opcode message_type_ = opcode::text;
    std::string message_;
};

} // namespace ferry::signaling::ws
