#include "ferry/server/allocation.hpp"

#include <algorithm>

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
    // FNV-1a over the parts that vary: the client address and port, the server port, transport.
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
    for (std::size_t i = 0; i < t.client.ip.size(); ++i) mix(t.client.ip.bytes[i]);
    mix(static_cast<std::uint8_t>(t.client.port >> 8));
    mix(static_cast<std::uint8_t>(t.client.port));
    mix(static_cast<std::uint8_t>(t.server.port >> 8));
    mix(static_cast<std::uint8_t>(t.server.port));
    mix(static_cast<std::uint8_t>(t.via));
    return static_cast<std::size_t>(h);
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
    auto it = by_relay_.find(handle);
    if (it == by_relay_.end()) return nullptr;
    if (it->second->expires <= now) {
        erase(*it->second);
        return nullptr;
    }
    for (const auto& r : it->second->relayed())
        if (r.handle == handle && r.expires <= now) return nullptr; // this family expired; sweep drops it
    return it->second;
}

int allocation_table::drop_relay(allocation& a, std::size_t index) {
    const int handle = a.relays[index].handle;
    by_relay_.erase(handle);
    for (std::size_t i = index; i + 1 < a.relay_count; ++i) a.relays[i] = a.relays[i + 1];
    --a.relay_count;
    return handle;
}

allocation& allocation_table::insert(std::unique_ptr<allocation> a) {
    auto& ref = *a;
    for (const auto& r : ref.relayed()) by_relay_[r.handle] = &ref;
    by_tuple_[ref.tuple] = std::move(a);
    return ref;
}

void allocation_table::erase(allocation& a) {
    if (on_remove) on_remove(a);
    for (const auto& r : a.relayed()) by_relay_.erase(r.handle);
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
