#include "ferry/server/limits.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace ferry::server {

protocol::ip_address source_key(const protocol::ip_address& ip, unsigned ipv6_prefix) {
    const auto c = peer_policy::canonical(ip);
    if (c.family != protocol::address_family::ipv6) return c;
    protocol::ip_address key = c;
    for (unsigned bit = std::min(ipv6_prefix, 128u); bit < 128; ++bit)
        key.bytes[bit / 8] = static_cast<std::uint8_t>(key.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
    return key;
}

bool abuse_limits::exempts(const protocol::ip_address& source) const {
    const auto c = peer_policy::canonical(source);
    return std::any_of(exempt.begin(), exempt.end(), [&](const ip_range& r) { return r.contains(c); });
}

source_limiter::source_limiter() : slots_(new std::atomic<std::uint64_t>[slots]) {
    for (std::size_t i = 0; i < slots; ++i) slots_[i].store(0, std::memory_order_relaxed);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), sizeof key_) != 1) key_ = {0x9E3779B97F4A7C15ull, 1};
}

bool source_limiter::allow(const protocol::ip_address& source, double rate, double burst, unsigned ipv6_prefix,
                           steady_time now) {
    if (rate <= 0) return true;
    const auto k = source_key(source, ipv6_prefix);
    // A keyed mix of the 16 address bytes and the family (not cryptographic; the key is random
    // per process, so which sources share a slot cannot be chosen from outside).
    std::uint64_t words[2];
    std::memcpy(words, k.bytes.data(), sizeof words);
    std::uint64_t h = key_[0] ^ static_cast<std::uint64_t>(k.family);
    for (const auto w : words) {
        h ^= w + key_[1];
        h *= 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 32;
    }
    // The slot holds the theoretical arrival time (TAT): each answer moves it one interval on;
    // an answer is allowed while the TAT stays within `burst` intervals of now.
    const auto t = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
    const auto interval = static_cast<std::uint64_t>(1e9 / rate);
    const auto tolerance = static_cast<std::uint64_t>(std::max(burst, 1.0) * 1e9 / rate);
    auto& slot = slots_[h & (slots - 1)];
    std::uint64_t tat = slot.load(std::memory_order_relaxed);
    for (;;) {
        const std::uint64_t next = std::max(tat, t) + interval;
        if (next - t > tolerance) return false;
        if (slot.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
    }
}

} // namespace ferry::server
