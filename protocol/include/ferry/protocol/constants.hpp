// Wire constants of STUN (RFC 8489), TURN (RFC 8656, RFC 6062), NAT behaviour discovery
// (RFC 5780) and the classic STUN of RFC 3489, each with the section that defines it.
// Values come from the RFCs and the IANA registry, not from other servers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ferry::protocol {

/// RFC 8489 §5: fixed value in bytes 4..7 of every RFC 5389/8489 message.
inline constexpr std::uint32_t magic_cookie = 0x2112A442;
/// RFC 8489 §5: the header is 20 bytes.
inline constexpr std::size_t header_size = 20;
/// RFC 8489 §5: 96-bit transaction id.
inline constexpr std::size_t transaction_id_size = 12;
/// RFC 8489 §14.7: FINGERPRINT is CRC-32 of the message XOR this value.
inline constexpr std::uint32_t fingerprint_xor = 0x5354554E;

/// STUN methods (RFC 8489 §18.2, RFC 8656 §17, RFC 6062 §6.1).
enum class method : std::uint16_t {
    binding = 0x001,
    allocate = 0x003,
    refresh = 0x004,
    send = 0x006,
    data = 0x007,
    create_permission = 0x008,
    channel_bind = 0x009,
    connect = 0x00A,
    connection_bind = 0x00B,
    connection_attempt = 0x00C,
};

/// RFC 8489 §5: the two class bits C1 C0.
enum class message_class : std::uint8_t {
    request = 0b00,
    indication = 0b01,
    success_response = 0b10,
    error_response = 0b11,
};

/// RFC 8489 §5, figure 3: the class bits sit at positions 4 and 8 of the 14-bit type,
/// interleaved with the 12 method bits.
///
///    0                 1
///    2  3  4 5 6 7 8 9 0 1 2 3 4 5
///   +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
///   |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
///   |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
///   +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
constexpr std::uint16_t make_message_type(std::uint16_t m, message_class c) {
    auto cls = static_cast<std::uint16_t>(c);
    return static_cast<std::uint16_t>((m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) |
                                      ((cls & 0x1) << 4) | ((cls & 0x2) << 7));
}
constexpr std::uint16_t make_message_type(method m, message_class c) {
    return make_message_type(static_cast<std::uint16_t>(m), c);
}
constexpr std::uint16_t method_of(std::uint16_t type) {
    return static_cast<std::uint16_t>((type & 0x000F) | ((type & 0x00E0) >> 1) |
                                      ((type & 0x3E00) >> 2));
}
constexpr message_class class_of(std::uint16_t type) {
    return static_cast<message_class>(((type >> 4) & 0x1) | ((type >> 7) & 0x2));
}

/// Attribute types (RFC 8489 §18.3, RFC 8656 §18, RFC 5780 §9, RFC 6062 §6.2,
/// RFC 3489 §11.2). Below 0x8000 comprehension-required, above comprehension-optional.
enum class attribute_type : std::uint16_t {
    mapped_address = 0x0001,          // RFC 8489 §14.1
    response_address = 0x0002,        // RFC 3489 §11.2.2 (deprecated, never honoured)
    change_request = 0x0003,          // RFC 5780 §7.2
    source_address = 0x0004,          // RFC 3489 §11.2.5
    changed_address = 0x0005,         // RFC 3489 §11.2.3
    username = 0x0006,                // RFC 8489 §14.3
    message_integrity = 0x0008,       // RFC 8489 §14.5
    error_code = 0x0009,              // RFC 8489 §14.8
    unknown_attributes = 0x000A,      // RFC 8489 §14.9
    channel_number = 0x000C,          // RFC 8656 §18.1
    lifetime = 0x000D,                // RFC 8656 §18.2
    xor_peer_address = 0x0012,        // RFC 8656 §18.3
    data = 0x0013,                    // RFC 8656 §18.4
    realm = 0x0014,                   // RFC 8489 §14.9
    nonce = 0x0015,                   // RFC 8489 §14.10
    xor_relayed_address = 0x0016,     // RFC 8656 §18.5
    requested_address_family = 0x0017, // RFC 8656 §18.6
    even_port = 0x0018,               // RFC 8656 §18.7
    requested_transport = 0x0019,     // RFC 8656 §18.8
    dont_fragment = 0x001A,           // RFC 8656 §18.9
    message_integrity_sha256 = 0x001C, // RFC 8489 §14.6
    password_algorithm = 0x001D,      // RFC 8489 §14.12
    userhash = 0x001E,                // RFC 8489 §14.4
    xor_mapped_address = 0x0020,      // RFC 8489 §14.2
    reservation_token = 0x0022,       // RFC 8656 §18.10
    padding = 0x0026,                 // RFC 5780 §7.4
    response_port = 0x0027,           // RFC 5780 §7.5
    connection_id = 0x002A,           // RFC 6062 §6.2.1
    additional_address_family = 0x8000, // RFC 8656 §18.11
    address_error_code = 0x8001,      // RFC 8656 §18.12
    password_algorithms = 0x8002,     // RFC 8489 §14.11
    alternate_domain = 0x8003,        // RFC 8489 §14.16
    icmp = 0x8004,                    // RFC 8656 §18.13
    software = 0x8022,                // RFC 8489 §14.14
    alternate_server = 0x8023,        // RFC 8489 §14.15
    fingerprint = 0x8028,             // RFC 8489 §14.7
    response_origin = 0x802B,         // RFC 5780 §7.3
    other_address = 0x802C,           // RFC 5780 §7.4
};

/// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required.
constexpr bool comprehension_required(std::uint16_t type) { return type < 0x8000; }

/// True for the attributes this codec understands; a request carrying a
/// comprehension-required attribute outside this set gets 420 (RFC 8489 §6.3.1).
bool is_known_attribute(std::uint16_t type);

/// Error codes (RFC 8489 §14.8, RFC 8656 §19, RFC 6062 §6.3).
namespace error {
inline constexpr std::uint16_t try_alternate = 300;
inline constexpr std::uint16_t bad_request = 400;
inline constexpr std::uint16_t unauthenticated = 401;
inline constexpr std::uint16_t forbidden = 403;
inline constexpr std::uint16_t mobility_forbidden = 405;
inline constexpr std::uint16_t unknown_attribute = 420;
inline constexpr std::uint16_t allocation_mismatch = 437;
inline constexpr std::uint16_t stale_nonce = 438;
inline constexpr std::uint16_t address_family_not_supported = 440;
inline constexpr std::uint16_t wrong_credentials = 441;
inline constexpr std::uint16_t unsupported_transport_protocol = 442;
inline constexpr std::uint16_t peer_address_family_mismatch = 443;
inline constexpr std::uint16_t connection_already_exists = 446;
inline constexpr std::uint16_t connection_timeout_or_failure = 447;
inline constexpr std::uint16_t allocation_quota_reached = 486;
inline constexpr std::uint16_t role_conflict = 487;
inline constexpr std::uint16_t server_error = 500;
inline constexpr std::uint16_t insufficient_capacity = 508;
} // namespace error

/// The reason phrase the RFCs suggest for an error code ("" if none is defined).
std::string_view default_reason(std::uint16_t code);

/// RFC 8489 §14.11/§18.5: PASSWORD-ALGORITHM values.
enum class password_algorithm : std::uint16_t { md5 = 0x0001, sha256 = 0x0002 };

/// RFC 8656 §18.6 (REQUESTED-ADDRESS-FAMILY) and §14.1 (address family of address attributes).
enum class address_family : std::uint8_t { ipv4 = 0x01, ipv6 = 0x02 };

/// IANA protocol numbers used by REQUESTED-TRANSPORT (RFC 8656 §18.8, RFC 6062 §6.1).
inline constexpr std::uint8_t transport_udp = 17;
inline constexpr std::uint8_t transport_tcp = 6;

} // namespace ferry::protocol
