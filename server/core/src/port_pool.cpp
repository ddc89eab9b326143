#include "ferry/server/port_pool.hpp"

#include <algorithm>

namespace ferry::server {

port_pool::range& port_pool::range_for(const protocol::ip_address& ip, protocol_kind k) {
    for (auto& r : ranges_)
        if (r.kind == k && r.ip == ip) return r;
    const std::size_t n = static_cast<std::size_t>(max_ - min_) + 1;
    ranges_.push_back({ip, k, std::vector<std::uint64_t>((n + 63) / 64, 0), 0});
    return ranges_.back();
}

void port_pool::set(range& r, std::size_t i) {
    r.bits[i / 64] |= std::uint64_t{1} << (i % 64);
    ++r.used;
}

void port_pool::clear(range& r, std::size_t i) {
    r.bits[i / 64] &= ~(std::uint64_t{1} << (i % 64));
    --r.used;
}

std::optional<std::uint16_t> port_pool::take(const protocol::ip_address& ip, protocol_kind k, bool even, bool pair,
                                             std::uint32_t random) {
    std::lock_guard lock(mutex_);
    auto& r = range_for(ip, k);
    const std::size_t n = static_cast<std::size_t>(max_ - min_) + 1;
    if (r.used >= n) return std::nullopt;
    const std::size_t start = random % n;
    for (std::size_t step = 0; step < n; ++step) {
        const std::size_t i = (start + step) % n;
        // A full word of used ports is skipped whole.
        if (i % 64 == 0 && r.bits[i / 64] == ~std::uint64_t{0} && step + 64 <= n) {
            step += 63;
            continue;
        }
        if (test(r, i)) continue;
        const std::size_t port = min_ + i;
        if ((even || pair) && port % 2 != 0) continue;
        if (pair && (port + 1 > max_ || test(r, i + 1))) continue;
        set(r, i);
        if (pair) set(r, i + 1);
        return static_cast<std::uint16_t>(port);
    }
    return std::nullopt;
}

void port_pool::give_back(const protocol::ip_address& ip, protocol_kind k, std::uint16_t port) {
    if (port < min_ || port > max_) return;
    std::lock_guard lock(mutex_);
    auto& r = range_for(ip, k);
    const std::size_t i = port - min_;
    if (test(r, i)) clear(r, i);
}

void port_pool::held_elsewhere(const protocol::ip_address& ip, protocol_kind k, std::uint16_t port,
                               time_point now) {
    std::lock_guard lock(mutex_);
    foreign_.push_back({ip, k, port, now});
}

void port_pool::release_foreign(time_point now) {
    std::lock_guard lock(mutex_);
    std::erase_if(foreign_, [&](const foreign& f) {
        if (now - f.since < foreign_hold) return false;
        auto& r = range_for(f.ip, f.kind);
        const std::size_t i = f.port - min_;
        if (test(r, i)) clear(r, i);
        return true;
    });
}

std::size_t port_pool::used(const protocol::ip_address& ip, protocol_kind k) const {
    std::lock_guard lock(mutex_);
    for (const auto& r : ranges_)
        if (r.kind == k && r.ip == ip) return r.used;
    return 0;
}

} // namespace ferry::server
