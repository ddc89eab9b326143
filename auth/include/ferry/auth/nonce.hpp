// Stateless nonces (RFC 8489 §9.2): the server keeps no record of the nonces it hands out.
// A nonce carries the time it was issued and a MAC over that time and the client's transport
// address (IP and port) and transport, so it is valid only from that 5-tuple's client side and
// only for `lifetime`: a captured signed request replayed from another port fails. An old or
// foreign nonce earns 438 (Stale Nonce) and a fresh one; a client whose NAT remapped its port,
// or that reuses a nonce from another socket, pays one round trip.
//
// The MAC key rotates every `lifetime`: the key of period g is HMAC-SHA256(master, g), with
// g = unix time / lifetime. Nonces of the current and the previous period verify. Every worker
// derives the same keys from the same master, so the manager is immutable and shared.
//
// Layout: "obMatJos2" (the RFC 8489 nonce cookie) + 4 characters of security features
// (base64 of 24 bits; bit 0 "password algorithms" is set) + base64 of
//   period (1 byte) | issued, unix seconds (4) |
//   HMAC-SHA256(key, period|issued|family|client IP|port|transport)[0..9]
#pragma once

#include "ferry/protocol/address.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ferry::auth {

/// Whom a nonce is for: the client's transport address and the transport it came over (any
/// small number the server uses for its transports).
struct client_identity {
    client_identity(const protocol::transport_address& a, std::uint8_t t = 0) : address(a), transport(t) {}
    protocol::transport_address address;
    std::uint8_t transport = 0;
};

class nonce_manager {
public:
    static constexpr std::size_t secret_size = 32;
    using secret = std::array<std::uint8_t, secret_size>;

    /// `master` keys every period (tests pass a fixed one; the server a random one).
    nonce_manager(std::chrono::seconds lifetime, const secret& master);

    /// A nonce for `client`, issued at `now` (unix seconds).
    std::string issue(const client_identity& client, std::int64_t now) const;

    enum class verdict { valid, stale };
    /// valid: made by us, for this client (address, port, transport), within the lifetime.
    /// Anything else is stale.
    verdict check(std::string_view nonce, const client_identity& client, std::int64_t now) const;

    std::chrono::seconds lifetime() const { return lifetime_; }

private:
    static constexpr std::size_t mac_size = 10;
    secret key_for(std::int64_t period) const;
    void mac(const secret& key, std::uint8_t period, std::uint32_t issued, const client_identity& client,
             std::span<std::uint8_t, mac_size> out) const;

    std::chrono::seconds lifetime_;
    secret master_{};
};

/// A new random secret from OpenSSL's CSPRNG.
nonce_manager::secret random_secret();

} // namespace ferry::auth
