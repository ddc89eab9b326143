// Long-term credential keys (RFC 8489 §9.2.2) and USERHASH (§14.4). A key is derived once
// from user, realm and password; the server stores keys, never passwords.
#pragma once

#include "ferry/protocol/constants.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace ferry::auth {

/// A derived key: 16 bytes for MD5, 32 for SHA-256.
struct key {
    protocol::password_algorithm algorithm = protocol::password_algorithm::md5;
    std::array<std::uint8_t, 32> bytes{};
    std::size_t size = 0;

    std::span<const std::uint8_t> view() const { return {bytes.data(), size}; }
    friend bool operator==(const key&, const key&) = default;
};

/// key = MD5(username ":" realm ":" password), or SHA-256 of the same string (RFC 8489
/// §9.2.2). The password must already be SASLprep'd (OpaqueString); the caller's config holds
/// it in that form.
key long_term_key(std::string_view username, std::string_view realm, std::string_view password,
                  protocol::password_algorithm algorithm = protocol::password_algorithm::md5);

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
std::array<std::uint8_t, 32> user_hash(std::string_view username, std::string_view realm);

/// A 16-byte MD5 key written in hex, as coturn's `turnadmin -k` prints it ("0x" optional,
/// either case): from turn.users' `key` and from Redis's `.../key` values.
std::optional<std::array<std::uint8_t, 16>> parse_hex_key(std::string_view text);

} // namespace ferry::auth
