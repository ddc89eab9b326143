#include "ferry/auth/keys.hpp"

#include "ferry/protocol/integrity.hpp"

#include <openssl/crypto.h>

#include <charconv>
#include <string>

namespace ferry::auth {
namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

} // namespace

key long_term_key(std::string_view username, std::string_view realm, std::string_view password,
                  protocol::password_algorithm algorithm) {
    std::string input;
    input.reserve(username.size() + realm.size() + password.size() + 2);
    input.append(username).append(":").append(realm).append(":").append(password);
    key k;
    k.algorithm = algorithm;
    if (algorithm == protocol::password_algorithm::sha256) {
        protocol::sha256(bytes_of(input), std::span(k.bytes).first<protocol::sha256_size>());
        k.size = protocol::sha256_size;
    } else {
        protocol::md5(bytes_of(input), std::span(k.bytes).first<protocol::md5_size>());
        k.size = protocol::md5_size;
    }
    // The string held the password; do not leave it in freed memory.
    OPENSSL_cleanse(input.data(), input.size());
    return k;
}

std::array<std::uint8_t, 32> user_hash(std::string_view username, std::string_view realm) {
    std::string input;
    input.append(username).append(":").append(realm);
    std::array<std::uint8_t, 32> out{};
    protocol::sha256(bytes_of(input), out);
    return out;
}

std::optional<std::array<std::uint8_t, 16>> parse_hex_key(std::string_view text) {
    if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
    if (text.size() != 32) return std::nullopt;
    std::array<std::uint8_t, 16> k{};
    for (std::size_t i = 0; i < 16; ++i) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(text.data() + 2 * i, text.data() + 2 * i + 2, v, 16);
        if (ec != std::errc{} || end != text.data() + 2 * i + 2) return std::nullopt;
        k[i] = static_cast<std::uint8_t>(v);
    }
    return k;
}

} // namespace ferry::auth
