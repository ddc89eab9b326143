#include "ferry/signaling/websocket.hpp"

#include "ferry/auth/base64.hpp"

#include <openssl/sha.h>

#include <algorithm>

namespace ferry::signaling::ws {

namespace {

constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // §1.3

bool is_control(opcode op) { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

bool known(std::uint8_t op) { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

/// §7.4: codes a close frame may carry (1012-1014 were registered after the RFC).
bool valid_close_code(std::uint16_t c) {
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

} // namespace

std::string accept_key(std::string_view client_key) {
    std::string input(client_key);
    input += guid;
    std::array<std::uint8_t, SHA_DIGEST_LENGTH> digest{};
    ::SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
    return auth::base64_encode(digest);
}

bool valid_client_key(std::string_view key) {
    std::array<std::uint8_t, 16> nonce{};
    return key.size() == 24 && auth::base64_decode(key, nonce);
}

bool valid_utf8(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        const unsigned c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        std::size_t n = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if (static_cast<std::size_t>(end - p) <= n) return false;
        for (std::size_t i = 1; i <= n; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += n + 1;
    }
    return true;
}

std::size_t write_header(std::span<std::uint8_t, max_server_header> out, opcode op, std::uint64_t payload_size) {
    out[0] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(op)); // FIN, no RSV
    if (payload_size < 126) {
        out[1] = static_cast<std::uint8_t>(payload_size);
        return 2;
    }
    if (payload_size <= 0xFFFF) {
        out[1] = 126;
        out[2] = static_cast<std::uint8_t>(payload_size >> 8);
        out[3] = static_cast<std::uint8_t>(payload_size);
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload_size >> (56 - 8 * i));
    return 10;
}

std::string frame(opcode op, std::string_view payload) {
    std::array<std::uint8_t, max_server_header> h{};
    const auto n = write_header(h, op, payload.size());
    std::string out(reinterpret_cast<const char*>(h.data()), n);
    out += payload;
    return out;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xFF);
    // A control frame carries at most 125 bytes; cut the reason at a character boundary.
    std::size_t keep = std::min<std::size_t>(reason.size(), 123);
    while (keep > 0 && keep < reason.size() && (static_cast<unsigned char>(reason[keep]) & 0xC0) == 0x80) --keep;
    payload += reason.substr(0, keep);
    return frame(opcode::close, payload);
}

std::size_t reader::fail(event& ev, std::uint16_t code, std::string why) {
    failed_ = true;
    ev.what = event::kind::error;
    ev.code = code;
    ev.data = std::move(why);
    return 0;
}

std::size_t reader::feed(std::span<const std::uint8_t> in, event& ev) {
    ev = {};
    if (failed_) return in.size();
    std::size_t used = 0;
    for (;;) {
        if (!in_frame_) {
            // §5.2: the header.
            const auto rest = in.subspan(used);
            if (rest.size() < 2) return used;
            const std::uint8_t b0 = rest[0];
            const std::uint8_t b1 = rest[1];
            const std::uint8_t len7 = b1 & 0x7F;
            const bool masked = (b1 & 0x80) != 0;
            const std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
            if ((b0 & 0x70) != 0) return used + fail(ev, close_code::protocol_error, "reserved bits set");
            if (!known(b0 & 0x0F)) return used + fail(ev, close_code::protocol_error, "unknown opcode");
            // §5.1: "The server MUST close the connection upon receiving a frame that is not masked."
            if (!masked) return used + fail(ev, close_code::protocol_error, "a client frame without a mask");
            if (rest.size() < need) return used;
            const auto op = static_cast<opcode>(b0 & 0x0F);
            const bool fin = (b0 & 0x80) != 0;
            std::uint64_t length = len7;
            if (len7 == 126) {
                length = (std::uint64_t{rest[2]} << 8) | rest[3];
                if (length < 126) return used + fail(ev, close_code::protocol_error, "length not in its shortest form");
            } else if (len7 == 127) {
                length = 0;
                for (int i = 0; i < 8; ++i) length = (length << 8) | rest[2 + static_cast<std::size_t>(i)];
                if ((length >> 63) != 0) return used + fail(ev, close_code::protocol_error, "64-bit length with its top bit set");
                if (length <= 0xFFFF) return used + fail(ev, close_code::protocol_error, "length not in its shortest form");
            }
            if (is_control(op)) {
                // §5.5: control frames are never fragmented and carry at most 125 bytes.
                if (!fin || length > 125) return used + fail(ev, close_code::protocol_error, "a fragmented or long control frame");
            } else {
                // §5.4: continuation frames continue a message; a new message waits for the last.
                if (op == opcode::continuation && !in_message_)
                    return used + fail(ev, close_code::protocol_error, "a continuation frame with no message");
                if (op != opcode::continuation && in_message_)
                    return used + fail(ev, close_code::protocol_error, "a new message inside a fragmented one");
                const std::uint64_t so_far = in_message_ ? message_.size() : 0;
                if (length > max_message_ || so_far + length > max_message_)
                    return used + fail(ev, close_code::too_big, "message over " + std::to_string(max_message_) + " bytes");
                if (op != opcode::continuation) {
                    in_message_ = true;
                    message_type_ = op;
                    message_.clear();
                }
            }
            std::copy_n(rest.begin() + static_cast<std::ptrdiff_t>(need - 4), 4, mask_.begin());
            in_frame_ = true;
            fin_ = fin;
            op_ = op;
            left_ = length;
            seen_ = 0;
            control_.clear();
            used += need;
        }

        // The payload, unmasked (§5.3) as it arrives.
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size() - used));
        std::string& into = is_control(op_) ? control_ : message_;
        const auto at = into.size();
        into.resize(at + take);
        for (std::size_t i = 0; i < take; ++i)
            into[at + i] = static_cast<char>(in[used + i] ^ mask_[(seen_ + i) % 4]);
        used += take;
        left_ -= take;
        seen_ += take;
        if (left_ > 0) return used;
        in_frame_ = false;

        switch (op_) {
        case opcode::ping:
            ev.what = event::kind::ping;
            ev.data = std::move(control_);
            return used;
        case opcode::pong:
            ev.what = event::kind::pong;
            ev.data = std::move(control_);
            return used;
        case opcode::close: {
            // §5.5.1: no body, or a 2-byte code and a UTF-8 reason.
            if (control_.size() == 1) return used + fail(ev, close_code::protocol_error, "a 1-byte close frame");
            std::uint16_t code = close_code::no_status;
            std::string reason;
            if (control_.size() >= 2) {
                code = static_cast<std::uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                                  static_cast<unsigned char>(control_[1]));
                if (!valid_close_code(code)) return used + fail(ev, close_code::protocol_error, "an invalid close code");
                reason = control_.substr(2);
                if (!valid_utf8(reason)) return used + fail(ev, close_code::invalid_payload, "a close reason not in UTF-8");
            }
            failed_ = true; // nothing follows a close
            ev.what = event::kind::close;
            ev.code = code;
            ev.data = std::move(reason);
            return used;
        }
        default:
            if (!fin_) break; // more fragments to come
            in_message_ = false;
            // §8.1: a text message that is not UTF-8 fails the connection.
            if (message_type_ == opcode::text && !valid_utf8(message_))
                return used + fail(ev, close_code::invalid_payload, "a text message not in UTF-8");
            ev.what = event::kind::message;
            ev.type = message_type_;
            ev.data = std::move(message_);
            message_.clear();
            return used;
        }
    }
}

} // namespace ferry::signaling::ws
