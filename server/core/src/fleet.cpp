#include "ferry/server/fleet.hpp"

#include "ferry/server/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <tuple>

namespace ferry::server {
namespace {

template <class T> std::optional<T> number(std::string_view s) {
    T v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

/// Splits off the text up to the next space; nullopt when there is none.
std::optional<std::string_view> word(std::string_view& rest) {
    const auto space = rest.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const auto w = rest.substr(0, space);
    rest.remove_prefix(space + 1);
    return w;
}

/// `s` with Redis's glob characters escaped, so it matches only itself in a pattern.
std::string glob_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

} // namespace

std::string encode_load(const instance_load& l) {
    std::string addresses;
    for (const auto& a : l.addresses) {
        if (!addresses.empty()) addresses += ',';
        addresses += a.to_string();
    }
    return fmt::format("{} {} {} {} {} {}", l.name, l.draining ? 1 : 0, l.allocations, l.capacity,
                       l.packets_per_second, addresses.empty() ? "-" : addresses);
}

std::optional<instance_load> decode_load(std::string_view text) {
    instance_load l;
    const auto name = word(text);
    const auto draining = word(text);
    const auto allocations = word(text);
    const auto capacity = word(text);
    const auto pps = word(text);
    if (!name || name->empty() || !draining || !allocations || !capacity || !pps || text.empty()) return std::nullopt;
    l.name = std::string(*name);
    if (*draining != "0" && *draining != "1") return std::nullopt;
    l.draining = *draining == "1";
    const auto a = number<std::uint64_t>(*allocations);
    const auto c = number<std::uint64_t>(*capacity);
    const auto p = number<std::uint64_t>(*pps);
    if (!a || !c || !p) return std::nullopt;
    l.allocations = *a;
    l.capacity = *c;
    l.packets_per_second = *p;
    if (text != "-") {
        while (!text.empty()) {
            const auto comma = text.find(',');
            const auto item = text.substr(0, comma);
            const auto e = parse_endpoint(item, default_port);
            if (!e) return std::nullopt;
            l.addresses.push_back(*e);
            if (comma == std::string_view::npos) break;
            text.remove_prefix(comma + 1);
        }
    }
    return l;
}

std::string encode_user_count(std::string_view instance, std::string_view user, unsigned count) {
    return fmt::format("U {} {} {}", instance, count, user);
}

std::string encode_bye(std::string_view instance) { return fmt::format("B {}", instance); }

std::optional<fleet_message> decode_fleet_message(std::string_view text) {
    fleet_message m;
    if (text.starts_with("L ")) {
        auto l = decode_load(text.substr(2));
        if (!l) return std::nullopt;
        m.what = fleet_message::kind::load;
        m.load = std::move(*l);
        return m;
    }
    if (text.starts_with("U ")) {
        text.remove_prefix(2);
        const auto instance = word(text);
        const auto count = word(text);
        if (!instance || instance->empty() || !count || text.empty()) return std::nullopt;
        const auto n = number<unsigned>(*count);
        if (!n) return std::nullopt;
        m.what = fleet_message::kind::user_count;
        m.instance = std::string(*instance);
        m.count = *n;
        m.user = std::string(text);
        return m;
    }
    if (text.starts_with("B ") && text.size() > 2 && text.find(' ', 2) == std::string_view::npos) {
        m.what = fleet_message::kind::bye;
        m.instance = std::string(text.substr(2));
        return m;
    }
    return std::nullopt;
}

redis_layout::redis_layout(std::string prefix, std::string realm)
    : prefix_(std::move(prefix)), realm_prefix_(prefix_ + "turn/realm/" + realm + "/") {}

std::optional<redis_layout::user_key> redis_layout::user_of(std::string_view key) const {
    if (!key.starts_with(realm_prefix_)) return std::nullopt;
    key.remove_prefix(realm_prefix_.size());
    if (!key.starts_with("user/")) return std::nullopt;
    key.remove_prefix(5);
    user_key u;
    if (key.ends_with("/key")) {
        key.remove_suffix(4);
    } else if (key.ends_with("/password")) {
        key.remove_suffix(9);
        u.password = true;
    } else {
        return std::nullopt;
    }
    if (key.empty() || key.size() > 513) return std::nullopt; // RFC 8489 §14.3: USERNAME < 513 bytes
    u.name = std::string(key);
    return u;
}

bool redis_layout::is_secret(std::string_view key) const {
    if (!key.starts_with(realm_prefix_)) return false;
    key.remove_prefix(realm_prefix_.size());
    return key.starts_with("secret/") && key.size() > 7;
}

std::string redis_layout::user_key_name(std::string_view user, bool password) const {
    return realm_prefix_ + "user/" + std::string(user) + (password ? "/password" : "/key");
}

std::string redis_layout::realm_pattern() const { return glob_escape(realm_prefix_) + "*"; }

void fleet_view::add_counts(const instance& i, int sign) {
    for (const auto& [user, n] : i.users) {
        if (sign > 0) {
            totals_[user] += n;
        } else if (auto it = totals_.find(user); it != totals_.end()) {
            it->second -= std::min(it->second, n);
            if (it->second == 0) totals_.erase(it);
        }
    }
}

void fleet_view::set_load(instance_load l, steady_time expires) {
    std::lock_guard lock(mutex_);
    auto& i = instances_[l.name];
    i.load = std::move(l);
    i.has_load = true;
    i.expires = expires;
}

void fleet_view::set_user_count(const std::string& name, const std::string& user, unsigned count) {
    std::lock_guard lock(mutex_);
    const auto it = instances_.find(name);
    // Counts of an instance not heard from yet wait for its load, which follows within a
    // third of the lease (or for the next full read of it).
    if (it == instances_.end()) return;
    auto& users = it->second.users;
    const unsigned before = users.count(user) ? users[user] : 0;
    if (count == 0) users.erase(user);
    else users[user] = count;
    auto& total = totals_[user];
    total = total - std::min(total, before) + count;
    if (total == 0) totals_.erase(user);
}

void fleet_view::replace(instance_load l, std::unordered_map<std::string, unsigned> users, steady_time expires) {
    std::lock_guard lock(mutex_);
    auto& i = instances_[l.name];
    add_counts(i, -1);
    i.load = std::move(l);
    i.has_load = true;
    i.users = std::move(users);
    i.expires = expires;
    add_counts(i, +1);
}

void fleet_view::forget(const std::string& name) {
    std::lock_guard lock(mutex_);
    const auto it = instances_.find(name);
    if (it == instances_.end()) return;
    add_counts(it->second, -1);
    instances_.erase(it);
}

std::vector<std::string> fleet_view::expire(steady_time now) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> gone;
    for (auto it = instances_.begin(); it != instances_.end();) {
        if (it->second.expires <= now) {
            gone.push_back(it->first);
            add_counts(it->second, -1);
            it = instances_.erase(it);
        } else {
            ++it;
        }
    }
    return gone;
}

void fleet_view::clear() {
    std::lock_guard lock(mutex_);
    instances_.clear();
    totals_.clear();
}

unsigned fleet_view::others(const std::string& user) const {
    std::lock_guard lock(mutex_);
    const auto it = totals_.find(user);
    return it == totals_.end() ? 0 : it->second;
}

std::optional<protocol::transport_address> fleet_view::least_loaded(protocol::address_family f) const {
    std::lock_guard lock(mutex_);
    const instance* best = nullptr;
    const protocol::transport_address* where = nullptr;
    auto rank = [](const instance& i) { return std::tie(i.load.allocations, i.load.packets_per_second, i.load.name); };
    for (const auto& [name, i] : instances_) {
        if (!i.has_load || i.load.draining || i.load.full()) continue;
        const auto a = std::find_if(i.load.addresses.begin(), i.load.addresses.end(),
                                    [&](const protocol::transport_address& t) { return t.ip.family == f; });
        if (a == i.load.addresses.end()) continue;
        if (best == nullptr || rank(i) < rank(*best)) {
            best = &i;
            where = &*a;
        }
    }
    if (where == nullptr) return std::nullopt;
    return *where;
}

std::size_t fleet_view::size() const {
    std::lock_guard lock(mutex_);
    return instances_.size();
}

std::vector<instance_load> fleet_view::loads() const {
    std::lock_guard lock(mutex_);
    std::vector<instance_load> out;
    for (const auto& [name, i] : instances_)
        if (i.has_load) out.push_back(i.load);
    return out;
}

} // namespace ferry::server
