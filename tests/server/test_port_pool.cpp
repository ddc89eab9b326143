// The relay port pool: every free port is found however full the range, even ports and pairs,
// and ports another process holds come back after a while.
#include "ferry/server/port_pool.hpp"

#include <doctest/doctest.h>

#include <random>
#include <set>

using ferry::server::port_pool;

namespace {
const auto ip = *ferry::protocol::ip_address::parse("192.0.2.1");
constexpr auto udp = port_pool::protocol_kind::udp;
} // namespace

TEST_CASE("at 99% occupancy every take still finds a free port, and a full range says so") {
    port_pool pool(50000, 50999);
    std::mt19937 rng(7);
    std::set<std::uint16_t> taken;
    for (int i = 0; i < 990; ++i) {
        const auto p = pool.take(ip, udp, false, false, static_cast<std::uint32_t>(rng()));
        REQUIRE(p);
        CHECK(taken.insert(*p).second);
    }
    // With random bind attempts, about half of these would have failed.
    for (int i = 0; i < 10; ++i) REQUIRE(pool.take(ip, udp, false, false, static_cast<std::uint32_t>(rng())));
    CHECK(pool.used(ip, udp) == 1000);
    CHECK_FALSE(pool.take(ip, udp, false, false, 1));
    pool.give_back(ip, udp, 50500);
    CHECK(pool.take(ip, udp, false, false, 3) == 50500);
}

TEST_CASE("even ports, and pairs whose N+1 is free too") {
    port_pool pool(50000, 50009);
    for (int i = 0; i < 5; ++i) {
        const auto p = pool.take(ip, udp, false, true, static_cast<std::uint32_t>(i * 3));
        REQUIRE(p);
        CHECK(*p % 2 == 0);
    }
    CHECK(pool.used(ip, udp) == 10);
    CHECK_FALSE(pool.take(ip, udp, true, false, 0));
}

TEST_CASE("the pools of two relay addresses and of UDP and TCP are apart") {
    port_pool pool(50000, 50000);
    const auto other = *ferry::protocol::ip_address::parse("192.0.2.2");
    CHECK(pool.take(ip, udp, false, false, 0));
    CHECK(pool.take(other, udp, false, false, 0));
    CHECK(pool.take(ip, port_pool::protocol_kind::tcp, false, false, 0));
    CHECK_FALSE(pool.take(ip, udp, false, false, 0));
}

TEST_CASE("a port held by another process stays out for a minute") {
    port_pool pool(50000, 50000);
    const auto now = std::chrono::steady_clock::now();
    REQUIRE(pool.take(ip, udp, false, false, 0) == 50000);
    pool.held_elsewhere(ip, udp, 50000, now);
    pool.release_foreign(now + std::chrono::seconds(30));
    CHECK_FALSE(pool.take(ip, udp, false, false, 0));
    pool.release_foreign(now + std::chrono::seconds(61));
    CHECK(pool.take(ip, udp, false, false, 0) == 50000);
}
