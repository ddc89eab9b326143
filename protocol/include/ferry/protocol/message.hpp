// A parsed STUN message: a non-owning view over the received bytes with an index of its
// attributes (RFC 8489 §5, §14). Parsing checks the framing only; typed attribute values are
// decoded on demand with get<T>() (see attributes.hpp), so a handler pays only for what it reads.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |0 0|     STUN Message Type     |         Message Length        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                         Magic Cookie                          |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                     Transaction ID (96 bits)                  |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Integrity rules applied while indexing (RFC 8489 §14.5, §14.6, §14.7): attributes after
// MESSAGE-INTEGRITY are not indexed, except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT;
// attributes after MESSAGE-INTEGRITY-SHA256 are not indexed, except FINGERPRINT; anything
// after FINGERPRINT makes the message invalid. A handler therefore cannot act on an attribute
// an attacker appended behind the integrity check.
#pragma once

#include "ferry/protocol/constants.hpp"
#include "ferry/protocol/errc.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

namespace ferry::protocol {

/// One indexed attribute: its type and where its value lies in the message.
struct attribute_ref {
    std::uint16_t type = 0;
    std::uint16_t offset = 0; ///< offset of the attribute header from the message start
    std::uint16_t length = 0; ///< value length, without padding
};

class message_view {
public:
    /// Most attributes a message may carry; more is rejected as too_many_attributes.
    static constexpr std::size_t max_attributes = 48;

    /// Parses `bytes`, which must hold exactly one message (a datagram or a framed stream
    /// record). On error the view is left empty. Never reads outside `bytes`.
    std::error_code parse(std::span<const std::uint8_t> bytes) noexcept;

    std::span<const std::uint8_t> bytes() const { return bytes_; }
    std::uint16_t type() const { return type_; }
    std::uint16_t method() const { return method_of(type_); }
    message_class klass() const { return class_of(type_); }
    bool is(protocol::method m, message_class c) const {
        return type_ == make_message_type(m, c);
    }
    /// False for RFC 3489 messages, whose bytes 4..7 are part of a 128-bit transaction id.
    bool has_magic_cookie() const { return has_cookie_; }
    /// The 96-bit transaction id (bytes 8..19).
    std::span<const std::uint8_t, transaction_id_size> transaction_id() const {
        return std::span<const std::uint8_t, transaction_id_size>(bytes_.data() + 8,
                                                                  transaction_id_size);
    }
    /// Bytes 4..7: the magic cookie, or the first 32 bits of an RFC 3489 transaction id.
    std::span<const std::uint8_t, 4> cookie_bytes() const {
        return std::span<const std::uint8_t, 4>(bytes_.data() + 4, 4);
    }

    std::span<const attribute_ref> attributes() const { return {index_.data(), count_}; }
    /// The value of an indexed attribute.
    std::span<const std::uint8_t> value(const attribute_ref& a) const {
        return bytes_.subspan(a.offset + 4u, a.length);
    }
    /// The first indexed attribute of this type, if any.
    const attribute_ref* find(attribute_type t) const noexcept;
    std::optional<std::span<const std::uint8_t>> find_value(attribute_type t) const {
        if (auto* a = find(t)) return value(*a);
        return std::nullopt;
    }
    bool has(attribute_type t) const { return find(t) != nullptr; }

    /// Decodes the first attribute of A's type: nullopt if absent or malformed.
    template <class A> std::optional<A> get() const {
        if (auto* a = find(A::type)) return A::decode(value(*a), *this);
        return std::nullopt;
    }

    /// Comprehension-required attributes this codec does not know (RFC 8489 §6.3.1), at most
    /// `out.size()` of them; returns how many were written.
    std::size_t unknown_required(std::span<std::uint16_t> out) const;

private:
    std::span<const std::uint8_t> bytes_;
    std::uint16_t type_ = 0;
    bool has_cookie_ = false;
    std::size_t count_ = 0;
    std::array<attribute_ref, max_attributes> index_{};
};

/// Cheap pre-check on a datagram's first bytes: could this be a STUN message?
/// (RFC 8489 §5: top two bits zero, length a multiple of 4.)
bool looks_like_stun(std::span<const std::uint8_t> bytes);

} // namespace ferry::protocol
