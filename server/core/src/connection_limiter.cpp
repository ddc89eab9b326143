#include "ferry/server/connection_limiter.hpp"

#include "ferry/server/limits.hpp"

namespace ferry::server {

std::size_t connection_limiter::ip_hash::operator()(const protocol::ip_address& a) const noexcept {
    std::size_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < a.size(); ++i) h = (h ^ a.bytes[i]) * 1099511628211ull;
    return h;
}

protocol::ip_address connection_limiter::key_of(const protocol::ip_address& ip) const {
    return source_key(ip, ipv6_prefix_);
}

connection_limiter::ticket connection_limiter::admit(const protocol::ip_address& source) {
    const auto ip = key_of(source);
    if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total_.load(std::memory_order_relaxed)) {
        total_.fetch_sub(1, std::memory_order_relaxed);
        return {};
    }
    std::lock_guard lock(mutex_);
    auto& n = per_ip_[ip];
    if (n >= max_per_ip_) {
        if (n == 0) per_ip_.erase(ip);
        total_.fetch_sub(1, std::memory_order_relaxed);
        return {};
    }
    ++n;
    return ticket(this, ip);
}

void connection_limiter::set_limits(unsigned max_total, unsigned max_per_ip) {
    max_total_.store(max_total, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    max_per_ip_ = max_per_ip;
}

void connection_limiter::release(const protocol::ip_address& ip) {
    {
        std::lock_guard lock(mutex_);
        auto it = per_ip_.find(ip);
        if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
    }
    total_.fetch_sub(1, std::memory_order_relaxed);
}

} // namespace ferry::server
