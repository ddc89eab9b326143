// Stateless nonces (RFC 8489 §9.2): the server keeps no record of the nonces it hands out.
// A nonce carries the time it was issued and a MAC over that time and the client's transport
// address, so it is valid only for that client and only for `lifetime`; an old or foreign one
// earns 438 (Stale Nonce) and a fresh nonce. The MAC key rotates every `lifetime`; nonces made
// with the previous key are still accepted, older ones are stale.
//
// Layout: "obMatJos2" (the RFC 8489 nonce cookie) + 4 characters of security features
// (base64 of 24 bits; bit 0 "password algorithms" is set) + base64 of
//   generation (1 byte) | issued, unix seconds (4) | HMAC-SHA256(key, gen|issued|client)[0..9]
#pragma once

#include "ferry/protocol/address.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ferry::auth {

class nonce_manager {
public:
    static constexpr std::size_t secret_size = 32;
    using secret = std::array<std::uint8_t, secret_size>;

    /// `initial` seeds the first key (tests pass a fixed one; the server a random one).
    nonce_manager(std::chrono::seconds lifetime, const secret& initial);

    /// A nonce for `client`, issued at `now` (unix seconds).
    std::string issue(const protocol::transport_address& client, std::int64_t now);

    enum class verdict { valid, stale };
    /// valid: made by us, for this client, within the lifetime. Anything else is stale.
    verdict check(std::string_view nonce, const protocol::transport_address& client,
                  std::int64_t now) const;

    /// Replaces the key when it is older than the lifetime; call now and then (the worker's
    /// sweep does). `fresh` is the next random key.
    void rotate_if_due(std::int64_t now, const secret& fresh);

    std::chrono::seconds lifetime() const { return lifetime_; }

private:
    static constexpr std::size_t mac_size = 10;
    void mac(const secret& key, std::uint8_t generation, std::uint32_t issued,
             const protocol::transport_address& client, std::span<std::uint8_t, mac_size> out) const;

    std::chrono::seconds lifetime_;
    secret current_{};
    secret previous_{};
    std::uint8_t generation_ = 0;
    std::int64_t rotated_at_ = -1;
};

/// A new random secret from OpenSSL's CSPRNG.
nonce_manager::secret random_secret();

} // namespace ferry::auth
