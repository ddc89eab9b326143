#include "ferry/server/turn_handler.hpp"

#include <openssl/rand.h>

#include <algorithm>

namespace ferry::server {

using std::chrono::seconds;

// turn_shared: what the workers share (quotas, EVEN-PORT reservations, RFC 6062 connection ids),
// behind one mutex touched only when allocations and connections come and go.

turn_shared::quota turn_shared::acquire(const std::string& user, unsigned per_user, unsigned total,
                                        const std::optional<protocol::ip_address>& source, unsigned per_ip) {
    std::lock_guard lock(mutex_);
    return acquire_locked(user, per_user, total, source, per_ip);
}

turn_shared::quota turn_shared::acquire_locked(const std::string& user, unsigned per_user, unsigned total,
                                               const std::optional<protocol::ip_address>& source, unsigned per_ip) {
    if (total != 0 && total_ >= total) return quota::total;
    const auto user_it = per_user_.find(user);
    if (per_user != 0) {
        // With a fleet, the user's allocations on the other instances count too (as last heard).
        const unsigned here = user_it != per_user_.end() ? user_it->second : 0;
        if (here + (fleet_ != nullptr ? fleet_->others(user) : 0) >= per_user) return quota::user;
    }
    if (source) {
        const ip_key k{source->family, source->bytes};
        const auto ip_it = per_ip_.find(k);
        if (per_ip != 0 && ip_it != per_ip_.end() && ip_it->second >= per_ip) return quota::ip;
        ++per_ip_[k];
    }
    ++per_user_[user];
    ++total_;
    if (on_user_change_) on_user_change_(user);
    return quota::ok;
}

void turn_shared::release(const std::string& user, const std::optional<protocol::ip_address>& source) {
    std::lock_guard lock(mutex_);
    release_locked(user, source);
}

void turn_shared::release_locked(const std::string& user, const std::optional<protocol::ip_address>& source) {
    auto it = per_user_.find(user);
    if (it != per_user_.end() && --it->second == 0) per_user_.erase(it);
    if (on_user_change_) on_user_change_(user);
    if (source) {
        auto ip_it = per_ip_.find({source->family, source->bytes});
        if (ip_it != per_ip_.end() && --ip_it->second == 0) per_ip_.erase(ip_it);
    }
    if (total_ > 0) --total_;
}

void turn_shared::join_fleet(const fleet_view* fleet, std::function<void(const std::string&)> on_user_change) {
    std::lock_guard lock(mutex_);
    fleet_ = fleet;
    on_user_change_ = std::move(on_user_change);
}

unsigned turn_shared::count_of(const std::string& user) const {
    std::lock_guard lock(mutex_);
    const auto it = per_user_.find(user);
    return it == per_user_.end() ? 0 : it->second;
}

std::vector<std::pair<std::string, unsigned>> turn_shared::user_counts() const {
    std::lock_guard lock(mutex_);
    return {per_user_.begin(), per_user_.end()};
}

std::size_t turn_shared::total() const {
    std::lock_guard lock(mutex_);
    return total_;
}

turn_shared::quota turn_shared::reserve(const std::array<std::uint8_t, 8>& token, reservation r, unsigned per_user,
                                        unsigned total) {
    std::lock_guard lock(mutex_);
    const auto q = acquire_locked(r.user, per_user, total);
    if (q == quota::ok) reservations_[token] = std::move(r);
    return q;
}

std::optional<turn_shared::reservation> turn_shared::take(const std::array<std::uint8_t, 8>& token,
                                                          steady_time now) {
    std::lock_guard lock(mutex_);
    auto it = reservations_.find(token);
    if (it == reservations_.end() || it->second.expires <= now) return std::nullopt;
    auto r = std::move(it->second);
    reservations_.erase(it);
    release_locked(r.user);
    return r;
}

std::optional<turn_shared::reservation> turn_shared::cancel(const std::array<std::uint8_t, 8>& token) {
    std::lock_guard lock(mutex_);
    auto it = reservations_.find(token);
    if (it == reservations_.end()) return std::nullopt;
    auto r = std::move(it->second);
    reservations_.erase(it);
    release_locked(r.user);
    return r;
}

std::vector<turn_shared::reservation> turn_shared::expire(steady_time now) {
    std::lock_guard lock(mutex_);
    std::vector<reservation> out;
    for (auto it = reservations_.begin(); it != reservations_.end();) {
        if (it->second.expires <= now) {
            release_locked(it->second.user);
            out.push_back(std::move(it->second));
            it = reservations_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::uint32_t turn_shared::add_connection(const std::string& user, bool ready) {
    std::lock_guard lock(mutex_);
    std::uint32_t id = 0;
    while (id == 0 || connections_.count(id) != 0)
        RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id);
    connections_[id] = {user, ready, false};
    return id;
}

void turn_shared::ready_connection(std::uint32_t id) {
    std::lock_guard lock(mutex_);
    if (auto it = connections_.find(id); it != connections_.end()) it->second.ready = true;
}

bool turn_shared::claim_connection(std::uint32_t id, std::string_view user) {
    std::lock_guard lock(mutex_);
    auto it = connections_.find(id);
    if (it == connections_.end() || !it->second.ready || it->second.claimed || it->second.user != user)
        return false;
    it->second.claimed = true;
    return true;
}

void turn_shared::drop_connection(std::uint32_t id) {
    std::lock_guard lock(mutex_);
    connections_.erase(id);
}

std::int64_t system_turn_clock::unix_now() const {
    return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace ferry::server
