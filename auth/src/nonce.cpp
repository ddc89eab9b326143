#include "ferry/auth/nonce.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <openssl/rand.h>
#include <stdexcept>

namespace ferry::auth {
namespace {

constexpr std::string_view cookie = "obMatJos2";
// 24-bit security feature set, bit 0 (password algorithms) set: base64 of {0x80, 0x00, 0x00}.
constexpr std::string_view features = "gAAA";
constexpr std::size_t payload_size = 1 + 4 + 10;

} // namespace

nonce_manager::secret random_secret() {
    nonce_manager::secret s{};
    if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1)
        throw std::runtime_error("OpenSSL: no random bytes for the nonce key");
    return s;
}

nonce_manager::nonce_manager(std::chrono::seconds lifetime, const secret& master)
    : lifetime_(lifetime.count() > 0 ? lifetime : std::chrono::seconds(1)), master_(master) {}

nonce_manager::secret nonce_manager::key_for(std::int64_t period) const {
    std::array<std::uint8_t, 8> p{};
    protocol::store_u32(p.data(), static_cast<std::uint32_t>(static_cast<std::uint64_t>(period) >> 32));
    protocol::store_u32(p.data() + 4, static_cast<std::uint32_t>(period));
    secret k{};
    protocol::hmac_sha256(master_, p, k);
    return k;
}

void nonce_manager::mac(const secret& key, std::uint8_t period, std::uint32_t issued, const client_identity& client,
                        std::span<std::uint8_t, mac_size> out) const {
    std::array<std::uint8_t, 1 + 4 + 1 + 16 + 2 + 1> input{};
    input[0] = period;
    protocol::store_u32(input.data() + 1, issued);
    input[5] = static_cast<std::uint8_t>(client.address.ip.family);
    std::copy(client.address.ip.bytes.begin(), client.address.ip.bytes.end(), input.begin() + 6);
    protocol::store_u16(input.data() + 22, client.address.port);
    input[24] = client.transport;
    std::array<std::uint8_t, protocol::hmac_sha256_size> full{};
    protocol::hmac_sha256(key, input, full);
    std::copy_n(full.begin(), mac_size, out.begin());
}

std::string nonce_manager::issue(const client_identity& client, std::int64_t now) const {
    const std::int64_t period = now / lifetime_.count();
    std::array<std::uint8_t, payload_size> payload{};
    payload[0] = static_cast<std::uint8_t>(period);
    protocol::store_u32(payload.data() + 1, static_cast<std::uint32_t>(now));
    mac(key_for(period), payload[0], static_cast<std::uint32_t>(now), client,
        std::span(payload).subspan<5, mac_size>());
    std::string out;
    out.reserve(cookie.size() + features.size() + 20);
    out.append(cookie).append(features).append(base64_encode(payload));
    return out;
}

nonce_manager::verdict nonce_manager::check(std::string_view nonce, const client_identity& client,
                                            std::int64_t now) const {
    const std::size_t head = cookie.size() + features.size();
    if (nonce.size() != head + 20 || nonce.substr(0, cookie.size()) != cookie) return verdict::stale;
    std::array<std::uint8_t, payload_size> payload{};
    if (!base64_decode(nonce.substr(head), payload)) return verdict::stale;
    const std::uint32_t issued = protocol::load_u32(payload.data() + 1);
    if (static_cast<std::int64_t>(issued) > now + 5 ||
        static_cast<std::int64_t>(issued) + lifetime_.count() < now)
        return verdict::stale;
    // The period is the one of the issue time, which must be this one or the previous one.
    const std::int64_t period = static_cast<std::int64_t>(issued) / lifetime_.count();
    if (period < now / lifetime_.count() - 1 || static_cast<std::uint8_t>(period) != payload[0])
        return verdict::stale;
    std::array<std::uint8_t, mac_size> expected{};
    mac(key_for(period), payload[0], issued, client, expected);
    return protocol::equal_constant_time(expected, std::span(payload).subspan<5, mac_size>())
               ? verdict::valid
               : verdict::stale;
}

} // namespace ferry::auth
