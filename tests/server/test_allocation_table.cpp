// allocation_table: the open-addressing 5-tuple index and the relay-handle index, checked
// against a plain model through inserts, lookups, expiry and erases in shuffled order.
#include "ferry/server/allocation.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

using namespace ferry;
using namespace ferry::server;

namespace {

five_tuple tuple_for(int i) {
    five_tuple t;
    // Few distinct addresses and ports: many tuples share a prefix, and home slots collide.
    t.client = {protocol::ip_address::v4(10, 0, static_cast<std::uint8_t>(i % 3), 1),
                static_cast<std::uint16_t>(40000 + i)};
    t.server = {protocol::ip_address::v4(127, 0, 0, 1), 3478};
    t.via = i % 5 == 0 ? transport::tcp : transport::udp;
    return t;
}

std::unique_ptr<allocation> make(int i, steady_time expires) {
    auto a = std::make_unique<allocation>();
    a->tuple = tuple_for(i);
    a->expires = expires;
    a->relay_count = 1;
    a->relays[0].handle = 1000 + i;
    a->relays[0].expires = expires;
    return a;
}

} // namespace

TEST_CASE("allocation_table: every live allocation is found by 5-tuple and by relay through shuffled erases") {
    allocation_table table;
    const steady_time now{std::chrono::seconds(100)};
    std::vector<int> removed;
    table.on_remove = [&](allocation& a) { removed.push_back(a.relays[0].handle - 1000); };
    constexpr int n = 3000;
    for (int i = 0; i < n; ++i) table.insert(make(i, now + std::chrono::seconds(60)));
    CHECK(table.size() == n);

    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    std::mt19937 rng(7);
    std::shuffle(order.begin(), order.end(), rng);
    std::map<int, bool> live;
    for (int i = 0; i < n; ++i) live[i] = true;

    // Erase two thirds in random order; after each batch everything left must still be found.
    for (std::size_t k = 0; k < order.size() * 2 / 3; ++k) {
        const int i = order[k];
        allocation* a = table.find(tuple_for(i), now);
        REQUIRE(a != nullptr);
        table.erase(*a);
        live[i] = false;
        if (k % 250 == 0) {
            for (const auto& [j, alive] : live) {
                allocation* found = table.find(tuple_for(j), now);
                CHECK((found != nullptr) == alive);
                if (found) CHECK(found->tuple == tuple_for(j));
                CHECK((table.find_by_relay(1000 + j, now) == found));
            }
        }
    }
    CHECK(table.size() == static_cast<std::size_t>(n - n * 2 / 3));
    CHECK(removed.size() == static_cast<std::size_t>(n * 2 / 3));

    // Reinsert some of the erased ones: the table grows and shrinks its runs correctly.
    for (std::size_t k = 0; k < 500; ++k) table.insert(make(order[k], now + std::chrono::seconds(60)));
    std::size_t counted = 0;
    table.for_each([&](allocation&) { ++counted; });
    CHECK(counted == table.size());
    for (std::size_t k = 0; k < 500; ++k) CHECK(table.find(tuple_for(order[k]), now) != nullptr);
    CHECK(table.find_by_relay(-1, now) == nullptr);
    CHECK(table.find_by_relay(1 << 20, now) == nullptr);
}

TEST_CASE("allocation_table: an expired allocation is not found and leaves the table; sweep drops the rest") {
    allocation_table table;
    const steady_time now{std::chrono::seconds(100)};
    int removed = 0;
    table.on_remove = [&](allocation&) { ++removed; };
    for (int i = 0; i < 40; ++i)
        table.insert(make(i, now + std::chrono::seconds(i % 2 == 0 ? -1 : 60)));
    CHECK(table.find(tuple_for(0), now) == nullptr); // expired: erased on lookup
    CHECK(removed == 1);
    CHECK(table.size() == 39);
    CHECK(table.find_by_relay(1000 + 2, now) == nullptr); // expired too
    table.sweep(now);
    CHECK(table.size() == 20);
    for (int i = 1; i < 40; i += 2) CHECK(table.find(tuple_for(i), now) != nullptr);
    for (int i = 0; i < 40; i += 2) CHECK(table.find_by_relay(1000 + i, now) == nullptr);
}

TEST_CASE("allocation_table: a second allocation on the same 5-tuple replaces the first, which leaves through on_remove") {
    allocation_table table;
    const steady_time now{std::chrono::seconds(100)};
    std::vector<int> removed;
    table.on_remove = [&](allocation& a) { removed.push_back(a.relays[0].handle); };
    table.insert(make(1, now + std::chrono::seconds(60)));
    auto second = make(1, now + std::chrono::seconds(60));
    second->relays[0].handle = 2001;
    table.insert(std::move(second));
    CHECK(table.size() == 1);
    CHECK(removed == std::vector<int>{1001});
    CHECK(table.find_by_relay(1001, now) == nullptr); // the first one's relay no longer maps
    REQUIRE(table.find_by_relay(2001, now) != nullptr);
    CHECK(table.find(tuple_for(1), now) == table.find_by_relay(2001, now));
}
