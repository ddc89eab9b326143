// IP addresses and transport addresses as the wire carries them, and the two address
// encodings of RFC 8489: plain (MAPPED-ADDRESS, §14.1) and XOR'd with the magic cookie and
// transaction id (XOR-MAPPED-ADDRESS, §14.2; TURN's XOR-PEER/RELAYED-ADDRESS use the same).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |0 0 0 0 0 0 0 0|    Family     |         (X-)Port              |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                 (X-)Address (32 bits or 128 bits)             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#pragma once

#include "ferry/protocol/constants.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ferry::protocol {

/// An IPv4 or IPv6 address in network byte order; IPv4 uses the first 4 bytes.
struct ip_address {
    address_family family = address_family::ipv4;
    std::array<std::uint8_t, 16> bytes{};

    static ip_address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);
    static ip_address v4(std::span<const std::uint8_t, 4> b);
    static ip_address v6(std::span<const std::uint8_t, 16> b);
    /// Parses dotted-quad or RFC 5952 text; nullopt if it is neither.
    static std::optional<ip_address> parse(std::string_view text);

    std::size_t size() const { return family == address_family::ipv4 ? 4 : 16; }
    std::span<const std::uint8_t> view() const { return {bytes.data(), size()}; }
    bool is_unspecified() const;
    std::string to_string() const;

    friend bool operator==(const ip_address&, const ip_address&) = default;
};

/// An IP address and a port: what RFC 8489 calls a transport address.
struct transport_address {
    ip_address ip;
    std::uint16_t port = 0;

    /// An address from IP text and a port; nullopt if the text is not an IP address.
    static std::optional<transport_address> from(std::string_view ip, std::uint16_t port);
    /// "192.0.2.1:3478" or "[2001:db8::1]:3478".
    std::string to_string() const;
    friend bool operator==(const transport_address&, const transport_address&) = default;
};

/// Bytes an address attribute's value takes: 8 for IPv4, 20 for IPv6.
constexpr std::size_t address_value_size(address_family f) {
    return f == address_family::ipv4 ? 8 : 20;
}

/// Decodes a plain address value (RFC 8489 §14.1); nullopt on a bad family or length.
std::optional<transport_address> decode_address(std::span<const std::uint8_t> value);
/// Writes a plain address value into `out` (address_value_size bytes).
void encode_address(const transport_address& a, std::span<std::uint8_t> out);

/// Decodes an XOR'd address value (RFC 8489 §14.2) using the message's transaction id.
std::optional<transport_address>
decode_xor_address(std::span<const std::uint8_t> value,
                   std::span<const std::uint8_t, transaction_id_size> txid);
/// Writes an XOR'd address value into `out` (address_value_size bytes).
void encode_xor_address(const transport_address& a,
                        std::span<const std::uint8_t, transaction_id_size> txid,
                        std::span<std::uint8_t> out);

} // namespace ferry::protocol
