// Standard base64 (RFC 4648 §4, with padding): the TURN REST API password is base64 of an
// HMAC, and nonces carry base64 payloads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ferry::auth {

std::string base64_encode(std::span<const std::uint8_t> data);
/// Decodes exactly out.size() bytes; false if `text` is not that.
bool base64_decode(std::string_view text, std::span<std::uint8_t> out);

} // namespace ferry::auth
