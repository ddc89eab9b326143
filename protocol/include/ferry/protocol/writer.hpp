// Builds a STUN message into a caller's buffer, in place, with no allocation. The writer
// enforces the order rules of RFC 8489 §14.5-§14.7: after MESSAGE-INTEGRITY only
// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow; after MESSAGE-INTEGRITY-SHA256 only
// FINGERPRINT; nothing after FINGERPRINT. Breaking a rule, or running out of buffer, puts the
// writer in a failed state and finish() returns an empty span: no half-built message escapes.
#pragma once

#include "ferry/protocol/constants.hpp"

#include <cstdint>
#include <span>
#include <string_view>

namespace ferry::protocol {

class message_view;

class message_writer {
public:
    /// Starts a message of `type` with the magic cookie and the given transaction id.
    message_writer(std::span<std::uint8_t> buffer, std::uint16_t type,
                   std::span<const std::uint8_t, transaction_id_size> txid);
    /// Starts a response to `request`, copying its transaction id and bytes 4..7 (so an
    /// RFC 3489 request, which has no magic cookie, gets its 128-bit id back).
    message_writer(std::span<std::uint8_t> buffer, std::uint16_t type, const message_view& request);

    /// Appends an attribute and returns its value area, zeroed (padding included), or an empty
    /// span if it does not fit or the order rules forbid it.
    std::span<std::uint8_t> append(attribute_type type, std::size_t length);
    void append_bytes(attribute_type type, std::span<const std::uint8_t> value);
    void append_string(attribute_type type, std::string_view value);
    void append_u32(attribute_type type, std::uint32_t value);

    /// RFC 8489 §14.5: HMAC-SHA1 over the message so far, with the length covering this attribute.
    void append_message_integrity(std::span<const std::uint8_t> key);
    /// RFC 8489 §14.6: HMAC-SHA256, full 32 bytes.
    void append_message_integrity_sha256(std::span<const std::uint8_t> key);
    /// RFC 8489 §14.7: CRC-32 of the message so far XOR 0x5354554E; always last.
    void append_fingerprint();

    std::span<const std::uint8_t, transaction_id_size> transaction_id() const {
        return std::span<const std::uint8_t, transaction_id_size>(buf_.data() + 8,
                                                                  transaction_id_size);
    }
    bool ok() const { return !failed_; }
    std::size_t size() const { return size_; }
    /// The finished message, or an empty span if any step failed.
    std::span<const std::uint8_t> finish() const {
        return failed_ ? std::span<const std::uint8_t>{} : std::span<const std::uint8_t>(buf_.data(), size_);
    }

private:
    enum class phase { open, after_mi, after_mi_sha256, after_fingerprint };
    std::span<std::uint8_t> append_in(phase allowed_up_to, attribute_type type, std::size_t length);
    void set_length(std::size_t total);

    std::span<std::uint8_t> buf_;
    std::size_t size_ = 0;
    phase phase_ = phase::open;
    bool failed_ = false;
};

} // namespace ferry::protocol
