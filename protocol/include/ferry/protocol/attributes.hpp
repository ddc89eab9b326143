// Typed STUN/TURN attribute values. Each is a small value type with
//   static constexpr attribute_type type;
//   static std::optional<T> decode(std::span<const std::uint8_t> value, const message_view&);
//   void encode(message_writer&) const;
// so a handler reads `msg.get<lifetime>()` and writes `lifetime{600}.encode(w)`. Decoding is
// strict about lengths and never reads outside `value`; a malformed value decodes to nullopt.
// Text values are views into the message (or the caller's string) and are not copied.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/protocol/message.hpp"
#include "ferry/protocol/writer.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ferry::protocol {

// --- Addresses (RFC 8489 §14.1, §14.2, §14.15; RFC 5780 §7.3, §7.4; RFC 8656 §18.3, §18.5;
//     RFC 3489 §11.2) ---------------------------------------------------------------------

template <attribute_type T> struct plain_address_attribute {
    static constexpr attribute_type type = T;
    transport_address address;

    static std::optional<plain_address_attribute> decode(std::span<const std::uint8_t> v,
                                                         const message_view&) {
        if (auto a = decode_address(v)) return plain_address_attribute{*a};
        return std::nullopt;
    }
    void encode(message_writer& w) const {
        auto out = w.append(T, address_value_size(address.ip.family));
        if (!out.empty()) encode_address(address, out);
    }
};

template <attribute_type T> struct xor_address_attribute {
    static constexpr attribute_type type = T;
    transport_address address;

    static std::optional<xor_address_attribute> decode(std::span<const std::uint8_t> v,
                                                       const message_view& m) {
        if (auto a = decode_xor_address(v, m.transaction_id())) return xor_address_attribute{*a};
        return std::nullopt;
    }
    void encode(message_writer& w) const {
        auto out = w.append(T, address_value_size(address.ip.family));
        if (!out.empty()) encode_xor_address(address, w.transaction_id(), out);
    }
};

using mapped_address = plain_address_attribute<attribute_type::mapped_address>;
using source_address = plain_address_attribute<attribute_type::source_address>;
using changed_address = plain_address_attribute<attribute_type::changed_address>;
using response_origin = plain_address_attribute<attribute_type::response_origin>;
using other_address = plain_address_attribute<attribute_type::other_address>;
using alternate_server = plain_address_attribute<attribute_type::alternate_server>;
using xor_mapped_address = xor_address_attribute<attribute_type::xor_mapped_address>;
using xor_peer_address = xor_address_attribute<attribute_type::xor_peer_address>;
using xor_relayed_address = xor_address_attribute<attribute_type::xor_relayed_address>;

// --- Text (RFC 8489 §14.3, §14.9, §14.10, §14.14, §14.16) ----------------------------------

/// A UTF-8 value of at most MaxBytes bytes (the RFCs' "fewer than 128 characters" is at most
/// 763 bytes of UTF-8).
template <attribute_type T, std::size_t MaxBytes> struct text_attribute {
    static constexpr attribute_type type = T;
    static constexpr std::size_t max_bytes = MaxBytes;
    std::string_view value;

    static std::optional<text_attribute> decode(std::span<const std::uint8_t> v,
                                                const message_view&) {
        if (v.size() > MaxBytes) return std::nullopt;
        return text_attribute{{reinterpret_cast<const char*>(v.data()), v.size()}};
    }
    void encode(message_writer& w) const {
        w.append_string(T, value.size() > MaxBytes ? value.substr(0, MaxBytes) : value);
    }
};

using username = text_attribute<attribute_type::username, 512>;   // §14.3: < 513 bytes
using realm = text_attribute<attribute_type::realm, 763>;
using nonce = text_attribute<attribute_type::nonce, 763>;
using software = text_attribute<attribute_type::software, 763>;
using alternate_domain = text_attribute<attribute_type::alternate_domain, 255>;

// --- Opaque values ---------------------------------------------------------------------

/// RFC 8489 §14.4: SHA-256(username ":" realm), 32 bytes.
struct userhash {
    static constexpr attribute_type type = attribute_type::userhash;
    std::array<std::uint8_t, 32> hash{};
    static std::optional<userhash> decode(std::span<const std::uint8_t> v, const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.4: the application data of a Send or Data indication.
struct data {
    static constexpr attribute_type type = attribute_type::data;
    std::span<const std::uint8_t> bytes;
    static std::optional<data> decode(std::span<const std::uint8_t> v, const message_view&) {
        return data{v};
    }
    void encode(message_writer& w) const { w.append_bytes(type, bytes); }
};

/// RFC 8656 §18.10: 8 opaque bytes naming a reserved relay port.
struct reservation_token {
    static constexpr attribute_type type = attribute_type::reservation_token;
    std::array<std::uint8_t, 8> token{};
    static std::optional<reservation_token> decode(std::span<const std::uint8_t> v,
                                                   const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 5780 §7.4: padding whose bytes carry no meaning; only its length matters.
struct padding {
    static constexpr attribute_type type = attribute_type::padding;
    std::size_t length = 0;
    static std::optional<padding> decode(std::span<const std::uint8_t> v, const message_view&) {
        return padding{v.size()};
    }
    void encode(message_writer& w) const { w.append(type, length); }
};

// --- Numbers and flags -------------------------------------------------------------------

/// RFC 8656 §18.2: seconds remaining until the allocation expires.
struct lifetime {
    static constexpr attribute_type type = attribute_type::lifetime;
    std::uint32_t seconds = 0;
    static std::optional<lifetime> decode(std::span<const std::uint8_t> v, const message_view&);
    void encode(message_writer& w) const { w.append_u32(type, seconds); }
};

/// RFC 6062 §6.2.1: identifies a TCP peer connection.
struct connection_id {
    static constexpr attribute_type type = attribute_type::connection_id;
    std::uint32_t id = 0;
    static std::optional<connection_id> decode(std::span<const std::uint8_t> v,
                                               const message_view&);
    void encode(message_writer& w) const { w.append_u32(type, id); }
};

/// RFC 8656 §18.1: channel number and 16 reserved bits.
struct channel_number {
    static constexpr attribute_type type = attribute_type::channel_number;
    std::uint16_t number = 0;
    static std::optional<channel_number> decode(std::span<const std::uint8_t> v,
                                                const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.8: IANA protocol number (17 UDP, 6 TCP) and 24 reserved bits.
struct requested_transport {
    static constexpr attribute_type type = attribute_type::requested_transport;
    std::uint8_t protocol = transport_udp;
    static std::optional<requested_transport> decode(std::span<const std::uint8_t> v,
                                                     const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.6 / §18.11: an address family byte and 24 reserved bits. The raw byte is kept
/// so a handler can answer 440 for a family it does not know.
template <attribute_type T> struct family_attribute {
    static constexpr attribute_type type = T;
    std::uint8_t family = 0;
    static std::optional<family_attribute> decode(std::span<const std::uint8_t> v,
                                                  const message_view&) {
        if (v.size() != 4) return std::nullopt;
        return family_attribute{v[0]};
    }
    void encode(message_writer& w) const {
        auto out = w.append(T, 4);
        if (!out.empty()) out[0] = family;
    }
};
using requested_address_family = family_attribute<attribute_type::requested_address_family>;
using additional_address_family = family_attribute<attribute_type::additional_address_family>;

/// RFC 8656 §18.7: one byte whose top bit asks to reserve the next port.
struct even_port {
    static constexpr attribute_type type = attribute_type::even_port;
    bool reserve = false;
    static std::optional<even_port> decode(std::span<const std::uint8_t> v, const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.9: no value; its presence is the flag.
struct dont_fragment {
    static constexpr attribute_type type = attribute_type::dont_fragment;
    static std::optional<dont_fragment> decode(std::span<const std::uint8_t> v,
                                               const message_view&) {
        if (!v.empty()) return std::nullopt;
        return dont_fragment{};
    }
    void encode(message_writer& w) const { w.append(type, 0); }
};

/// RFC 5780 §7.2: the "change IP" (0x4) and "change port" (0x2) flags.
struct change_request {
    static constexpr attribute_type type = attribute_type::change_request;
    bool change_ip = false;
    bool change_port = false;
    static std::optional<change_request> decode(std::span<const std::uint8_t> v,
                                                const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 5780 §7.5: the port the response should go to, and 16 reserved bits.
struct response_port {
    static constexpr attribute_type type = attribute_type::response_port;
    std::uint16_t port = 0;
    static std::optional<response_port> decode(std::span<const std::uint8_t> v,
                                               const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.13: an ICMP error received from the peer.
struct icmp {
    static constexpr attribute_type type = attribute_type::icmp;
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    std::uint32_t error_data = 0;
    static std::optional<icmp> decode(std::span<const std::uint8_t> v, const message_view&);
    void encode(message_writer& w) const;
};

// --- Errors and lists ----------------------------------------------------------------------

/// RFC 8489 §14.8: class (3..6) and number (0..99), then a UTF-8 reason phrase.
struct error_code {
    static constexpr attribute_type type = attribute_type::error_code;
    std::uint16_t code = 0;
    std::string_view reason;
    static std::optional<error_code> decode(std::span<const std::uint8_t> v, const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8656 §18.12: which family of a dual allocation failed, and why.
struct address_error_code {
    static constexpr attribute_type type = attribute_type::address_error_code;
    std::uint8_t family = 0;
    std::uint16_t code = 0;
    std::string_view reason;
    static std::optional<address_error_code> decode(std::span<const std::uint8_t> v,
                                                    const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8489 §14.13: the comprehension-required types a server did not understand.
struct unknown_attributes {
    static constexpr attribute_type type = attribute_type::unknown_attributes;
    static constexpr std::size_t max_types = 16;
    std::array<std::uint16_t, max_types> types{};
    std::size_t count = 0;
    /// The first max_types of `list`.
    static unknown_attributes of(std::span<const std::uint16_t> list);
    static std::optional<unknown_attributes> decode(std::span<const std::uint8_t> v,
                                                    const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8489 §14.12: the algorithm the client chose, with its (empty) parameters.
struct password_algorithm_attribute {
    static constexpr attribute_type type = attribute_type::password_algorithm;
    std::uint16_t algorithm = 0;
    static std::optional<password_algorithm_attribute> decode(std::span<const std::uint8_t> v,
                                                              const message_view&);
    void encode(message_writer& w) const;
};

/// RFC 8489 §14.11: the algorithms a server offers, in its order of preference.
struct password_algorithms {
    static constexpr attribute_type type = attribute_type::password_algorithms;
    static constexpr std::size_t max_algorithms = 8;
    std::array<std::uint16_t, max_algorithms> algorithms{};
    std::size_t count = 0;
    static std::optional<password_algorithms> decode(std::span<const std::uint8_t> v,
                                                     const message_view&);
    void encode(message_writer& w) const;
    bool contains(std::uint16_t a) const;
};

} // namespace ferry::protocol
