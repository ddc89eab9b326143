#include "ferry/server/allocation.hpp"

#include <algorithm>
#include <cstring>

namespace ferry::server {

std::string_view to_string(end_reason r) {
    switch (r) {
    case end_reason::expired: return "expired";
    case end_reason::deleted: return "deleted";
    case end_reason::connection_closed: return "connection closed";
    case end_reason::revoked: return "revoked";
    case end_reason::drained: return "drained";
    case end_reason::shutdown: return "shutdown";
    }
    return "expired";
}

std::size_t five_tuple_hash::operator()(const five_tuple& t) const noexcept {
    // The parts that vary (client address and port, server port, transport) folded into two
    // words and mixed with multiplies: a handful of instructions on every ChannelData from a
    // client, where a byte-at-a-time hash was a visible share of the lookup.
    std::uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, t.client.ip.bytes.data(), 8);
    std::memcpy(&lo, t.client.ip.bytes.data() + 8, 8);
    const std::uint64_t ports = (std::uint64_t{t.client.port} << 32) | (std::uint64_t{t.server.port} << 16) |
                                (std::uint64_t{static_cast<std::uint8_t>(t.via)} << 8) |
                                static_cast<std::uint8_t>(t.client.ip.family);
    std::uint64_t h = (hi ^ 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ lo ^ (h >> 31)) * 0x94D049BB133111EBull;
    h = (h ^ ports ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
    return static_cast<std::size_t>(h ^ (h >> 32));
}

const relay_endpoint* allocation::relay_for(protocol::address_family f) const {
    for (const auto& r : relayed())
        if (r.local.ip.family == f) return &r;
    return nullptr;
}

bool allocation::permits(const protocol::ip_address& peer, steady_time now) const {
    for (const auto& p : permissions)
        if (p.peer == peer) return p.expires > now;
    return false;
}

const channel_binding* allocation::channel_by_number(std::uint16_t n, steady_time now) const {
    for (const auto& c : channels)
        if (c.number == n) return c.expires > now ? &c : nullptr;
    return nullptr;
}

const channel_binding* allocation::channel_by_peer(const protocol::transport_address& p,
                                                   steady_time now) const {
    for (const auto& c : channels)
        if (c.peer == p) return c.expires > now ? &c : nullptr;
    return nullptr;
}

allocation* allocation_table::find(const five_tuple& t, steady_time now) {
    auto it = by_tuple_.find(t);
    if (it == by_tuple_.end()) return nullptr;
    if (it->second->expires <= now) {
        erase(*it->second);
        return nullptr;
    }
    return it->second.get();
}

allocation* allocation_table::find_by_relay(int handle, steady_time now) {
    if (handle < 0 || static_cast<std::size_t>(handle) >= by_relay_.size()) return nullptr;
    allocation* a = by_relay_[static_cast<std::size_t>(handle)];
    if (a == nullptr) return nullptr;
    if (a->expires <= now) {
        erase(*a);
        return nullptr;
    }
    for (const auto& r : a->relayed())
        if (r.handle == handle && r.expires <= now) return nullptr; // this family expired; sweep drops it
    return a;
}

void allocation_table::set_relay(int handle, allocation* a) {
    if (handle < 0) return;
    const auto i = static_cast<std::size_t>(handle);
    if (i >= by_relay_.size()) {
        if (a == nullptr) return;
        by_relay_.resize(i + 1 + i / 2, nullptr);
    }
    by_relay_[i] = a;
}

int allocation_table::drop_relay(allocation& a, std::size_t index) {
    const int handle = a.relays[index].handle;
    set_relay(handle, nullptr);
    for (std::size_t i = index; i + 1 < a.relay_count; ++i) a.relays[i] = a.relays[i + 1];
    --a.relay_count;
    return handle;
}

allocation& allocation_table::insert(std::unique_ptr<allocation> a) {
    auto& ref = *a;
    for (const auto& r : ref.relayed()) set_relay(r.handle, &ref);
    by_tuple_[ref.tuple] = std::move(a);
    return ref;
}

void allocation_table::erase(allocation& a) {
    if (on_remove) on_remove(a);
    for (const auto& r : a.relayed()) set_relay(r.handle, nullptr);
    by_tuple_.erase(a.tuple); // destroys `a`
}

void allocation_table::sweep(steady_time now) {
    std::vector<allocation*> expired;
    for (auto& [tuple, a] : by_tuple_) {
        if (a->expires <= now) {
            expired.push_back(a.get());
            continue;
        }
        for (std::size_t i = a->relay_count; i-- > 0;) {
            if (a->relay_count > 1 && a->relays[i].expires <= now) {
                const int handle = drop_relay(*a, i);
                if (on_relay_dropped) on_relay_dropped(*a, handle);
            }
        }
        std::erase_if(a->permissions, [now](const permission& p) { return p.expires <= now; });
        std::erase_if(a->channels, [now](const channel_binding& c) { return c.expires + channel_cooldown <= now; });
    }
    for (auto* a : expired) erase(*a);
}

} // namespace ferry::server
