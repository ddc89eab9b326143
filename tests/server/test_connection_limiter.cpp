// The connection caps: per source address and in total, with places given back on release.
#include "ferry/server/connection_limiter.hpp"

#include <doctest/doctest.h>

#include <vector>

using ferry::protocol::ip_address;
using ferry::server::connection_limiter;

TEST_CASE("connection caps per address and in total") {
    connection_limiter limiter(5, 2);
    const auto a = *ip_address::parse("192.0.2.1");
    const auto b = *ip_address::parse("2001:db8::1");
    std::vector<connection_limiter::ticket> held;
    held.push_back(limiter.admit(a));
    held.push_back(limiter.admit(a));
    CHECK(held[0]);
    CHECK(held[1]);
    CHECK_FALSE(limiter.admit(a)); // third from the same address
    held.push_back(limiter.admit(b));
    held.push_back(limiter.admit(b));
    held.push_back(limiter.admit(*ip_address::parse("192.0.2.2")));
    CHECK(limiter.total() == 5);
    CHECK_FALSE(limiter.admit(*ip_address::parse("192.0.2.3"))); // total reached
    CHECK(limiter.total() == 5);
    held.erase(held.begin()); // one of a's connections ends
    CHECK(limiter.total() == 4);
    auto again = limiter.admit(a);
    CHECK(again);
    connection_limiter::ticket moved = std::move(again);
    CHECK(moved);
    CHECK_FALSE(again);
    CHECK(limiter.total() == 5);
    held.clear();
    moved = {};
    CHECK(limiter.total() == 0);
}

TEST_CASE("IPv6 sources count per /64 (or the configured prefix), IPv4 per address") {
    auto ip = [](const char* s) { return *ferry::protocol::ip_address::parse(s); };
    SUBCASE("one /64 cannot take more than the per-address cap by varying its host bits") {
        connection_limiter limiter(100, 2);
        auto a = limiter.admit(ip("2001:db8:1:2::1"));
        auto b = limiter.admit(ip("2001:db8:1:2:ffff::7"));
        CHECK(a);
        CHECK(b);
        CHECK_FALSE(limiter.admit(ip("2001:db8:1:2:abcd:ef01:2345:6789")));
        CHECK(limiter.admit(ip("2001:db8:1:3::1"))); // the next /64 is someone else
    }
    SUBCASE("a /56 prefix") {
        connection_limiter limiter(100, 1, 56);
        auto a = limiter.admit(ip("2001:db8:1:200::1"));
        CHECK(a);
        CHECK_FALSE(limiter.admit(ip("2001:db8:1:2ff::1")));
        CHECK(limiter.admit(ip("2001:db8:1:300::1")));
    }
    SUBCASE("places come back when tickets end") {
        connection_limiter limiter(100, 1);
        { auto a = limiter.admit(ip("2001:db8::1")); CHECK(a); }
        CHECK(limiter.admit(ip("2001:db8::2")));
        CHECK(limiter.total() == 0);
    }
}
