// Abuse controls in the TURN handler: the rate of answers to sources that do not authenticate,
// allocations per client address, and the bandwidth caps, each exceeded by one client while
// another, within them, loses nothing.
#include "turn_fixture.hpp"

#include "ferry/protocol/channel_data.hpp"

using namespace ferry::test;
using std::chrono::seconds;

namespace {

std::vector<std::uint8_t> unsigned_allocate(turn_fixture& f) {
    return f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); }, false);
}

/// A ChannelData message of `size` bytes on `channel`.
std::vector<std::uint8_t> channel_data_of(std::uint16_t channel, std::size_t size) {
    std::vector<std::uint8_t> cd(4 + size, 0x5A);
    write_channel_data_header(std::span(cd).first<4>(), channel, static_cast<std::uint16_t>(size));
    return cd;
}

} // namespace

TEST_CASE("answers to a source that does not authenticate stop past its rate, and resume") {
    turn_fixture f;
    f.settings.limits.unauthenticated_rate = 5;
    f.settings.limits.unauthenticated_burst = 10;
    f.rebuild();
    f.get_nonce(); // one answer spent: a real client's first Allocate
    int answered = 1;
    for (int i = 0; i < 30; ++i) answered += f.send(unsigned_allocate(f)) ? 1 : 0;
    CHECK(answered == 10);
    CHECK(f.turn->stats().unauthenticated_limited == 21);

    SUBCASE("another port of the same address shares the budget; another address has its own") {
        f.ctx.remote.port++;
        CHECK_FALSE(f.send(unsigned_allocate(f)));
        f.ctx.remote = *transport_address::from("203.0.113.8", 40000);
        CHECK(f.send(unsigned_allocate(f)));
        CHECK(f.code() == 401);
    }
    SUBCASE("a client that holds a nonce still authenticates: only unauthenticated answers are limited") {
        f.allocate();
        CHECK(f.create_permission({"8.8.8.8"}) == 200);
    }
    SUBCASE("wrong credentials are limited too") {
        f.password = "guess";
        CHECK_FALSE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    }
    SUBCASE("the bucket refills at the rate") {
        f.clock.advance(seconds(1));
        int later = 0;
        for (int i = 0; i < 10; ++i) later += f.send(unsigned_allocate(f)) ? 1 : 0;
        CHECK(later == 5);
    }
    SUBCASE("streams have proven their address: not limited") {
        f.ctx.via = transport::tcp;
        CHECK(f.send(unsigned_allocate(f)));
    }
}

TEST_CASE("the unauthenticated-answer limit counts an IPv6 /64 as one source and spares exempt sources") {
    turn_fixture f;
    f.settings.limits.unauthenticated_rate = 1;
    f.settings.limits.unauthenticated_burst = 2;
    f.settings.limits.exempt = {*ip_range::parse("192.0.2.0/24")};
    f.rebuild();
    f.ctx.remote = *transport_address::from("2001:db8:1:2::1", 40000);
    CHECK(f.send(unsigned_allocate(f)));
    f.ctx.remote = *transport_address::from("2001:db8:1:2::ffff", 40000);
    CHECK(f.send(unsigned_allocate(f)));
    f.ctx.remote = *transport_address::from("2001:db8:1:2:aaaa::1", 40000);
    CHECK_FALSE(f.send(unsigned_allocate(f))); // same /64
    f.ctx.remote = *transport_address::from("2001:db8:1:3::1", 40000);
    CHECK(f.send(unsigned_allocate(f))); // the next /64
    f.ctx.remote = *transport_address::from("192.0.2.9", 40000);
    for (int i = 0; i < 20; ++i) REQUIRE(f.send(unsigned_allocate(f)));
    f.ctx.remote = *transport_address::from("::ffff:192.0.2.9", 40000); // the same, mapped
    CHECK(f.send(unsigned_allocate(f)));
}

TEST_CASE("the per-source table has a fixed size and no source gets more than its own budget") {
    source_limiter l;
    const auto t = steady_time{} + seconds(5);
    // Far more sources than slots: the table does not grow, and each source is still limited.
    for (unsigned i = 0; i < 3 * source_limiter::slots; ++i) {
        const auto ip = ip_address::v4(10, static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8),
                                       static_cast<std::uint8_t>(i));
        l.allow(ip, 1, 1, 64, t);
    }
    const auto one = ip_address::v4(198, 51, 100, 1);
    int allowed = 0;
    for (int i = 0; i < 10; ++i) allowed += l.allow(one, 1, 3, 64, t) ? 1 : 0;
    CHECK(allowed <= 3);
}

TEST_CASE("allocations per client address: 486 past the limit, room again when one ends") {
    turn_fixture f;
    f.settings.limits.allocations_per_ip = 2;
    f.rebuild();
    f.allocate();
    f.new_port();
    f.allocate();
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 486);
    CHECK(f.turn->stats().quota_ip_refused == 1);

    // Another user at the same address is refused too; another address is not.
    f.user = "bob";
    f.password = "builder";
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 486);
    f.ctx.remote = *transport_address::from("203.0.113.99", 40000);
    f.get_nonce();
    f.allocate();

    // The second allocation at 203.0.113.7 ends: its place is given back.
    f.user = "alice";
    f.password = "wonderland";
    f.ctx.remote = *transport_address::from("203.0.113.7", 40001);
    f.get_nonce();
    REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); }));
    REQUIRE(f.response.klass() == message_class::success_response);
    f.new_port(5);
    f.allocate();
}

TEST_CASE("allocations per client address: an exempt source is not counted against it") {
    turn_fixture f;
    f.settings.limits.allocations_per_ip = 1;
    f.ctx.remote = *transport_address::from("127.0.0.1", 40000);
    f.rebuild();
    for (int i = 0; i < 3; ++i) {
        f.allocate();
        f.new_port();
    }
    CHECK(f.turn->allocations() == 3);
}

TEST_CASE("an allocation's bandwidth cap drops what exceeds it, each direction apart") {
    turn_fixture f;
    f.settings.limits.allocation_bytes_per_second = 100'000;
    f.rebuild();
    f.allocate();
    REQUIRE(f.channel_bind(0x4001, "8.8.8.8", 6000) == 200);
    const auto cd = channel_data_of(0x4001, 1000);
    for (int i = 0; i < 150; ++i) f.turn->handle_channel_data(f.ctx, cd, f.sink);
    CHECK(f.sink.to_peers.size() == 100); // a second's worth, then nothing
    CHECK(f.turn->stats().bandwidth_dropped == 50);
    CHECK(f.turn->stats().bandwidth_dropped_bytes == 50'000);

    // The other direction has its own budget.
    const int relay = f.relays.open_sockets.begin()->first;
    const std::vector<std::uint8_t> payload(1000, 1);
    const auto peer = *transport_address::from("8.8.8.8", 6000);
    for (int i = 0; i < 120; ++i) f.turn->handle_peer(relay, peer, payload, f.sink);
    CHECK(f.sink.to_clients.size() == 100);

    // Half a second later, half a second's worth more.
    f.clock.mono += std::chrono::milliseconds(500);
    for (int i = 0; i < 80; ++i) f.turn->handle_channel_data(f.ctx, cd, f.sink);
    CHECK(f.sink.to_peers.size() == 150);
}

TEST_CASE("a client within the cap loses nothing; the worker's total cap is shared") {
    turn_fixture f;
    f.settings.limits.allocation_bytes_per_second = 100'000;
    f.settings.limits.relay_bytes_per_second = 150'000;
    f.rebuild();
    f.allocate();
    REQUIRE(f.channel_bind(0x4001, "8.8.8.8", 6000) == 200);
    const auto cd = channel_data_of(0x4001, 1000);
    // 50 kB/s for 4 s, sent in 10 bursts a second: within both caps.
    for (int tick = 0; tick < 40; ++tick) {
        for (int i = 0; i < 5; ++i) f.turn->handle_channel_data(f.ctx, cd, f.sink);
        f.clock.mono += std::chrono::milliseconds(100);
    }
    CHECK(f.sink.to_peers.size() == 200);
    CHECK(f.turn->stats().bandwidth_dropped == 0);

    // A second allocation takes what the worker has left: 150 kB saved up, 100 kB of it per allocation.
    const auto first = f.ctx;
    f.new_port();
    f.allocate();
    REQUIRE(f.channel_bind(0x4001, "8.8.4.4", 6000) == 200);
    f.clock.mono += seconds(2);
    for (int i = 0; i < 100; ++i) f.turn->handle_channel_data(f.ctx, cd, f.sink);
    for (int i = 0; i < 100; ++i) f.turn->handle_channel_data(first, cd, f.sink);
    CHECK(f.sink.to_peers.size() == 200 + 150);
}

TEST_CASE("bandwidth caps spare exempt sources") {
    turn_fixture f;
    f.settings.limits.allocation_bytes_per_second = 1000;
    f.ctx.remote = *transport_address::from("127.0.0.1", 40000);
    f.rebuild();
    f.allocate();
    REQUIRE(f.channel_bind(0x4001, "8.8.8.8", 6000) == 200);
    const auto cd = channel_data_of(0x4001, 1000);
    for (int i = 0; i < 200; ++i) f.turn->handle_channel_data(f.ctx, cd, f.sink);
    CHECK(f.sink.to_peers.size() == 200);
}
