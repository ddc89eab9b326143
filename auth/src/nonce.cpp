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

nonce_manager::nonce_manager(std::chrono::seconds lifetime, const secret& initial)
    : lifetime_(lifetime), current_(initial), previous_(initial) {}

void nonce_manager::mac(const secret& key, std::uint8_t generation, std::uint32_t issued,
                        const protocol::transport_address& client,
                        std::span<std::uint8_t, mac_size> out) const {
    std::array<std::uint8_t, 1 + 4 + 1 + 16 + 2> input{};
    input[0] = generation;
    protocol::store_u32(input.data() + 1, issued);
    input[5] = static_cast<std::uint8_t>(client.ip.family);
    std::copy(client.ip.bytes.begin(), client.ip.bytes.end(), input.begin() + 6);
    protocol::store_u16(input.data() + 22, client.port);
    std::array<std::uint8_t, protocol::hmac_sha256_size> full{};
    protocol::hmac_sha256(key, input, full);
    std::copy_n(full.begin(), mac_size, out.begin());
}

std::string nonce_manager::issue(const protocol::transport_address& client, std::int64_t now) {
    if (rotated_at_ < 0) rotated_at_ = now;
    std::array<std::uint8_t, payload_size> payload{};
    payload[0] = generation_;
    protocol::store_u32(payload.data() + 1, static_cast<std::uint32_t>(now));
    mac(current_, generation_, static_cast<std::uint32_t>(now), client,
        std::span(payload).subspan<5, mac_size>());
    std::string out;
    out.reserve(cookie.size() + features.size() + 20);
    out.append(cookie).append(features).append(base64_encode(payload));
    return out;
}

nonce_manager::verdict nonce_manager::check(std::string_view nonce,
                                            const protocol::transport_address& client,
                                            std::int64_t now) const {
    const std::size_t head = cookie.size() + features.size();
    if (nonce.size() != head + 20 || nonce.substr(0, cookie.size()) != cookie) return verdict::stale;
    std::array<std::uint8_t, payload_size> payload{};
    if (!base64_decode(nonce.substr(head), payload)) return verdict::stale;
    const std::uint8_t generation = payload[0];
    const std::uint32_t issued = protocol::load_u32(payload.data() + 1);
    const secret* key = nullptr;
    if (generation == generation_) key = &current_;
    else if (generation == static_cast<std::uint8_t>(generation_ - 1)) key = &previous_;
    if (key == nullptr) return verdict::stale;
    if (static_cast<std::int64_t>(issued) > now + 5 ||
        static_cast<std::int64_t>(issued) + lifetime_.count() < now)
        return verdict::stale;
    std::array<std::uint8_t, mac_size> expected{};
    mac(*key, generation, issued, client, expected);
    return protocol::equal_constant_time(expected, std::span(payload).subspan<5, mac_size>())
               ? verdict::valid
               : verdict::stale;
}

void nonce_manager::rotate_if_due(std::int64_t now, const secret& fresh) {
    if (rotated_at_ < 0) rotated_at_ = now;
    if (now - rotated_at_ < lifetime_.count()) return;
    previous_ = current_;
    current_ = fresh;
    ++generation_;
    rotated_at_ = now;
}

} // namespace ferry::auth
