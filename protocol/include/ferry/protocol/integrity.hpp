// Message integrity and fingerprint: HMAC-SHA1 MESSAGE-INTEGRITY (RFC 8489 §14.5),
// HMAC-SHA256 MESSAGE-INTEGRITY-SHA256 (§14.6), the CRC-32 FINGERPRINT (§14.7), and the
// digests that long-term keys and USERHASH are made of (§9.2.2, §14.4). OpenSSL does the
// cryptography; each thread keeps its own MAC contexts, so nothing here allocates per message.
#pragma once

#include "ferry/protocol/message.hpp"

#include <cstdint>
#include <span>

namespace ferry::protocol {

inline constexpr std::size_t hmac_sha1_size = 20;
inline constexpr std::size_t hmac_sha256_size = 32;
inline constexpr std::size_t md5_size = 16;
inline constexpr std::size_t sha256_size = 32;

void hmac_sha1(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
               std::span<std::uint8_t, hmac_sha1_size> out);
void hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
                 std::span<std::uint8_t, hmac_sha256_size> out);
void md5(std::span<const std::uint8_t> data, std::span<std::uint8_t, md5_size> out);
void sha256(std::span<const std::uint8_t> data, std::span<std::uint8_t, sha256_size> out);

/// CRC-32 as in ISO/IEC 13239 (the zlib/Ethernet polynomial), as FINGERPRINT uses it.
std::uint32_t crc32(std::span<const std::uint8_t> data);

/// Constant-time equality of two byte strings of the same length (CRYPTO_memcmp).
bool equal_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

/// Checks the message's MESSAGE-INTEGRITY with `key`. False if absent or wrong.
bool verify_message_integrity(const message_view& msg, std::span<const std::uint8_t> key);
/// Checks MESSAGE-INTEGRITY-SHA256 (which may be truncated to 16..32 bytes, §14.6).
bool verify_message_integrity_sha256(const message_view& msg, std::span<const std::uint8_t> key);

enum class fingerprint_status { absent, valid, invalid };
fingerprint_status check_fingerprint(const message_view& msg);

} // namespace ferry::protocol
