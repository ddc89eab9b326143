// CreatePermission, ChannelBind and the relay in both directions, without sockets
// (RFC 8656 §9-§12), and the peer policy under the default configuration.
#include "turn_fixture.hpp"

#include "ferry/protocol/channel_data.hpp"

using namespace ferry::test;
using std::chrono::seconds;

TEST_CASE("CreatePermission installs permissions; 400 without a peer; 443 for the other family") {
    turn_fixture f;
    f.allocate();
    CHECK(f.create_permission({"8.8.8.8", "1.1.1.1"}) == 200);
    CHECK(f.create_permission({}) == 400);
    CHECK(f.create_permission({"2001:4860::8888"}) == 443);
}

TEST_CASE("the default policy refuses every forbidden peer class with 403") {
    turn_fixture f;
    f.allocate();
    for (const char* peer : {"127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "10.1.2.3", "172.16.0.1",
                             "172.31.255.255", "192.168.1.1", "100.64.0.1", "169.254.169.254", "169.254.1.1",
                             "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1",
                             "198.18.0.1", "198.51.100.9", "203.0.113.1", "192.0.0.8"}) {
        CAPTURE(peer);
        CHECK(f.create_permission({peer}) == 403);
    }
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.turn->stats().peer_refused == 20);
}

TEST_CASE("IPv6 peers: special ranges and IPv4 in disguise are refused") {
    turn_fixture f;
    f.settings.relay_addresses = {{*ip_address::parse("2001:db8::5"), *ip_address::parse("2001:db8::5")}};
    f.rebuild();
    f.allocate([](message_writer& w) { requested_address_family{2}.encode(w); });
    for (const char* peer : {"::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
                             "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
                             "2002:7f00:1::1", "2002:c0a8:101::1", "2001:db8::1", "2001::1", "fec0::1",
                             "64:ff9b:1::1", "100::1"}) {
        CAPTURE(peer);
        CHECK(f.create_permission({peer}) == 403);
    }
    CHECK(f.create_permission({"2606:4700:4700::1111"}) == 200);
    CHECK(f.create_permission({"64:ff9b::808:808"}) == 200); // NAT64 of a public address
    CHECK(f.create_permission({"8.8.8.8"}) == 443);
}

TEST_CASE("allowed_peer_ranges opens a range; denied_peer_ranges wins over it") {
    turn_fixture f;
    f.policy = peer_policy({*ip_range::parse("127.0.0.0/8"), *ip_range::parse("10.0.0.0/8")},
                           {*ip_range::parse("10.9.0.0/16"), *ip_range::parse("8.8.8.8")});
    f.rebuild();
    f.allocate();
    CHECK(f.create_permission({"127.0.0.1"}) == 200);
    CHECK(f.create_permission({"10.1.1.1"}) == 200);
    CHECK(f.create_permission({"10.9.1.1"}) == 403);
    CHECK(f.create_permission({"8.8.8.8"}) == 403);
    CHECK(f.create_permission({"192.168.0.1"}) == 403);
}

TEST_CASE("a client cannot hold more permissions than the limit") {
    turn_fixture f;
    f.settings.permissions_per_allocation = 4;
    f.rebuild();
    f.allocate();
    CHECK(f.create_permission({"1.0.0.1", "1.0.0.2", "1.0.0.3"}) == 200);
    CHECK(f.create_permission({"1.0.0.4", "1.0.0.5"}) == 508);
    CHECK(f.create_permission({"1.0.0.1", "1.0.0.4"}) == 200); // refresh + one new: fits
    CHECK(f.create_permission({"1.0.0.9"}) == 508);
    f.clock.advance(seconds(301)); // all expired: room again
    CHECK(f.create_permission({"1.0.0.9"}) == 200);
}

TEST_CASE("ChannelBind: range, conflicts, refresh, capacity and the cool-down") {
    turn_fixture f;
    f.settings.channels_per_allocation = 3;
    f.rebuild();
    f.allocate([](message_writer& w) { lifetime{3600}.encode(w); });
    CHECK(f.channel_bind(0x3FFF, "8.8.8.8") == 400);
    CHECK(f.channel_bind(0x8000, "8.8.8.8") == 400);
    CHECK(f.channel_bind(0x4000, "8.8.8.8") == 200);
    CHECK(f.channel_bind(0x7FFF, "8.8.4.4") == 200); // RFC 5766 client range
    CHECK(f.channel_bind(0x4000, "8.8.8.8") == 200); // refresh
    CHECK(f.channel_bind(0x4000, "1.1.1.1") == 400); // number bound to another peer
    CHECK(f.channel_bind(0x4001, "8.8.8.8") == 400); // peer bound to another number
    CHECK(f.channel_bind(0x4002, "8.8.8.8", 5001) == 200); // same IP, other port: another peer
    CHECK(f.channel_bind(0x4003, "1.1.1.1") == 508);
    CHECK(f.channel_bind(0x4003, "127.0.0.1") == 403);
    CHECK(f.channel_bind(0x4003, "2001:4860::1") == 443);
    REQUIRE(f.send(f.build(method::channel_bind, [](message_writer& w) { channel_number{0x4004}.encode(w); })));
    CHECK(f.code() == 400);

    // Expired at 600 s, but number and peer stay reserved for 300 s more.
    f.clock.advance(seconds(601));
    CHECK(f.channel_bind(0x4000, "1.1.1.1") == 400);
    f.clock.advance(seconds(300));
    CHECK(f.channel_bind(0x4000, "1.1.1.1") == 200);
}

TEST_CASE("Send indication: relayed with a permission, dropped without") {
    turn_fixture f;
    f.allocate();
    auto send_to = [&](const char* peer) {
        f.send(f.build(method::send, [&](message_writer& w) {
            xor_peer_address{*transport_address::from(peer, 7777)}.encode(w);
            const std::uint8_t payload[] = {'h', 'i'};
            data{payload}.encode(w);
        }, false, message_class::indication));
    };
    send_to("8.8.8.8");
    CHECK(f.sink.to_peers.empty());
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    send_to("8.8.8.8");
    REQUIRE(f.sink.to_peers.size() == 1);
    CHECK(f.sink.to_peers[0].to.to_string() == "8.8.8.8:7777");
    CHECK(f.sink.to_peers[0].bytes == std::vector<std::uint8_t>{'h', 'i'});
    CHECK(f.relays.open_sockets.count(f.sink.to_peers[0].relay) == 1);
    f.clock.advance(seconds(301));
    send_to("8.8.8.8");
    CHECK(f.sink.to_peers.size() == 1); // permission expired
}

TEST_CASE("ChannelData from the client goes to the bound peer only") {
    turn_fixture f;
    f.allocate();
    REQUIRE(f.channel_bind(0x4001, "8.8.8.8", 6000) == 200);
    std::vector<std::uint8_t> cd(4 + 5);
    write_channel_data_header(std::span(cd).first<4>(), 0x4001, 5);
    std::copy_n("hello", 5, cd.begin() + 4);
    f.turn->handle_channel_data(f.ctx, cd, f.sink);
    REQUIRE(f.sink.to_peers.size() == 1);
    CHECK(f.sink.to_peers[0].to.to_string() == "8.8.8.8:6000");
    CHECK(f.sink.to_peers[0].bytes == std::vector<std::uint8_t>{'h', 'e', 'l', 'l', 'o'});

    write_channel_data_header(std::span(cd).first<4>(), 0x4002, 5); // unbound channel
    f.turn->handle_channel_data(f.ctx, cd, f.sink);
    write_channel_data_header(std::span(cd).first<4>(), 0x4001, 9); // claims more than sent
    f.turn->handle_channel_data(f.ctx, cd, f.sink);
    auto stranger = f.ctx;
    stranger.remote.port++;
    write_channel_data_header(std::span(cd).first<4>(), 0x4001, 5);
    f.turn->handle_channel_data(stranger, cd, f.sink); // no allocation on that 5-tuple
    CHECK(f.sink.to_peers.size() == 1);
}

TEST_CASE("peer data reaches the client as a Data indication, or ChannelData once bound") {
    turn_fixture f;
    const auto relayed = f.allocate();
    const int relay = f.relays.open_sockets.begin()->first;
    (void)relayed;
    const std::vector<std::uint8_t> payload = {1, 2, 3, 4, 5, 6, 7};
    const auto peer = *transport_address::from("8.8.8.8", 6000);

    f.turn->handle_peer(relay, peer, payload, f.sink);
    CHECK(f.sink.to_clients.empty()); // no permission: silently dropped

    REQUIRE(f.create_permission({"8.8.8.8"}) == 200);
    f.turn->handle_peer(relay, peer, payload, f.sink);
    REQUIRE(f.sink.to_clients.size() == 1);
    CHECK(f.sink.to_clients[0].to == f.ctx.remote);
    message_view ind;
    REQUIRE_FALSE(ind.parse(f.sink.to_clients[0].bytes));
    CHECK(ind.is(method::data, message_class::indication));
    CHECK(ind.get<xor_peer_address>()->address == peer);
    auto d = ind.get<data>();
    CHECK(std::vector<std::uint8_t>(d->bytes.begin(), d->bytes.end()) == payload);

    REQUIRE(f.channel_bind(0x4005, "8.8.8.8", 6000) == 200);
    f.turn->handle_peer(relay, peer, payload, f.sink);
    REQUIRE(f.sink.to_clients.size() == 2);
    auto cd = parse_channel_data(f.sink.to_clients[1].bytes);
    REQUIRE(cd);
    CHECK(cd->channel == 0x4005);
    CHECK(std::vector<std::uint8_t>(cd->data.begin(), cd->data.end()) == payload);
    CHECK(f.sink.to_clients[1].bytes.size() == 4 + payload.size()); // no padding over UDP

    // Another port of the same peer IP: permitted (permissions are per IP), not on the channel.
    f.turn->handle_peer(relay, *transport_address::from("8.8.8.8", 6001), payload, f.sink);
    REQUIRE(f.sink.to_clients.size() == 3);
    CHECK(f.sink.to_clients[2].bytes[0] == 0x00); // a Data indication

    f.turn->handle_peer(relay + 1000, peer, payload, f.sink); // no such relay
    CHECK(f.sink.to_clients.size() == 3);
}

TEST_CASE("peer_policy canonicalises before it judges") {
    CHECK(peer_policy::canonical(*ip_address::parse("::ffff:127.0.0.1")).to_string() == "127.0.0.1");
    CHECK(peer_policy::canonical(*ip_address::parse("::7f00:1")).to_string() == "127.0.0.1");
    CHECK(peer_policy::canonical(*ip_address::parse("64:ff9b::a00:1")).to_string() == "10.0.0.1");
    CHECK(peer_policy::canonical(*ip_address::parse("2002:c0a8:101::")).to_string() == "192.168.1.1");
    CHECK(peer_policy::canonical(*ip_address::parse("::1")).to_string() == "::1");
    CHECK(peer_policy::canonical(*ip_address::parse("2001:db8::1")).to_string() == "2001:db8::1");
    CHECK_FALSE(ip_range::parse("10.0.0.0/33"));
    CHECK_FALSE(ip_range::parse("10.0.0/8"));
    CHECK_FALSE(ip_range::parse("fe80::/129"));
    CHECK(ip_range::parse("fe80::/10")->contains(*ip_address::parse("febf::1")));
    CHECK_FALSE(ip_range::parse("fe80::/10")->contains(*ip_address::parse("fec0::1")));
    CHECK(ip_range::parse("100.64.0.0/10")->contains(*ip_address::parse("100.127.255.255")));
    CHECK_FALSE(ip_range::parse("100.64.0.0/10")->contains(*ip_address::parse("100.128.0.0")));
}

TEST_CASE("a sink that ends the client while taking its data does not pull the allocation away") {
    // A TCP client over its buffer cap is closed from inside to_client, in the middle of
    // handle_peer; the handler must not touch the allocation after handing the data over.
    turn_fixture f;
    f.allocate();
    REQUIRE(f.create_permission({"8.8.8.8"}) == 200);
    struct closing_sink final : packet_sink {
        turn_handler* turn = nullptr;
        five_tuple tuple;
        std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(4200);
        int delivered = 0;
        std::span<std::uint8_t> buffer() override { return scratch; }
        void to_peer(int, const transport_address&, std::span<const std::uint8_t>) override {}
        void to_client(const client_route&, std::span<const std::uint8_t>) override {
            ++delivered;
            turn->client_closed(tuple);
        }
    } sink;
    sink.turn = f.turn.get();
    sink.tuple = {f.ctx.remote, f.ctx.local, f.ctx.via};
    const int relay = f.relays.open_sockets.begin()->first;
    const std::vector<std::uint8_t> payload(100, 7);
    f.turn->handle_peer(relay, *transport_address::from("8.8.8.8", 6000), payload, sink);
    CHECK(sink.delivered == 1);
    CHECK(f.turn->allocations() == 0);
    f.turn->handle_peer(relay, *transport_address::from("8.8.8.8", 6000), payload, sink);
    CHECK(sink.delivered == 1); // gone: dropped
}
