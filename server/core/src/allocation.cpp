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

std::size_t allocation_table::index_of(const five_tuple& t, std::uint64_t hash) const {
    if (slots_.empty()) return 0;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const auto& s = slots_[i];
        if (!s.owned) return slots_.size();
        if (s.hash == hash && s.owned->tuple == t) return i;
    }
}

allocation* allocation_table::find(const five_tuple& t, steady_time now) {
    const auto i = index_of(t, five_tuple_hash{}(t));
    if (i >= slots_.size()) return nullptr;
    allocation* a = slots_[i].owned.get();
    if (a->expires <= now) {
        erase(*a);
        return nullptr;
    }
    return a;
}

void allocation_table::place(std::uint64_t hash, std::unique_ptr<allocation> a) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    while (slots_[i].owned) i = (i + 1) & mask;
    slots_[i].hash = hash;
    slots_[i].owned = std::move(a);
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
    const std::uint64_t hash = five_tuple_hash{}(ref.tuple);
    // One allocation per 5-tuple (callers look first): one already there leaves the way every
    // allocation leaves, so nothing keeps pointing at it.
    if (const auto i = index_of(ref.tuple, hash); i < slots_.size()) erase(*slots_[i].owned);
    for (const auto& r : ref.relayed()) set_relay(r.handle, &ref);
    if ((count_ + 1) * 2 > slots_.size()) {
        std::vector<slot> old(std::max<std::size_t>(16, slots_.size() * 2));
        old.swap(slots_);
        for (auto& s : old)
            if (s.owned) place(s.hash, std::move(s.owned));
    }
    place(hash, std::move(a));
    ++count_;
    return ref;
}

void allocation_table::erase(allocation& a) {
    if (on_remove) on_remove(a);
    for (const auto& r : a.relayed()) set_relay(r.handle, nullptr);
    std::size_t hole = index_of(a.tuple, five_tuple_hash{}(a.tuple));
    if (hole >= slots_.size() || slots_[hole].owned.get() != &a) return; // not in this table
    const auto gone = std::move(slots_[hole].owned); // destroys `a` when this function returns
    --count_;
    // Backward shift: each following entry of the run moves into the hole unless its home slot
    // lies cyclically after the hole (then it is already where a lookup finds it).
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = (hole + 1) & mask; slots_[j].owned; j = (j + 1) & mask) {
        const std::size_t home = slots_[j].hash & mask;
        const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays) continue;
        slots_[hole] = std::move(slots_[j]);
        hole = j;
    }
    slots_[hole].owned.reset();
}

void allocation_table::sweep(steady_time now) {
    std::vector<allocation*> expired;
    for (auto& s : slots_) {
        if (!s.owned) continue;
        allocation* a = s.owned.get();
        if (a->expires <= now) {
            expired.push_back(a);
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
