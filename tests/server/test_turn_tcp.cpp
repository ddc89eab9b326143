// RFC 6062 TCP allocations in the handler: Allocate's extra rules, Connect (permissions, peer
// policy, 446, 447), ConnectionBind (400s, one bind per connection, same user only), peer
// connections arriving on the relayed address, and the 30-second bind deadline.
#include "turn_fixture.hpp"

using namespace ferry::test;

namespace {

struct tcp_fixture : turn_fixture {
    tcp_fixture() {
        ctx.via = transport::tcp;
        ctx.socket = 11; // the control connection's stream id
    }

    transport_address allocate_tcp() { return allocate({}, transport_tcp); }

    std::uint16_t connect(const std::string& peer, std::uint16_t port = 8080) {
        if (!call(method::connect, [&](message_writer& w) {
                xor_peer_address{*transport_address::from(peer, port)}.encode(w);
            }))
            return 0; // no answer yet: the connection is being made
        return response.klass() == message_class::success_response ? 200 : code();
    }

    /// A ConnectionBind from a fresh TCP connection (`stream`); returns 200 or the error code.
    std::uint16_t connection_bind(std::uint32_t id, int stream = 21, std::uint16_t client_port = 41000) {
        const auto saved = ctx;
        ctx.remote.port = client_port;
        ctx.socket = stream;
        REQUIRE(call(method::connection_bind, [&](message_writer& w) { connection_id{id}.encode(w); }));
        ctx = saved;
        return response.klass() == message_class::success_response ? 200 : code();
    }

    /// The last message sent to the client, parsed.
    message_view last_to_client() {
        REQUIRE_FALSE(sink.to_clients.empty());
        message_view m;
        REQUIRE_FALSE(m.parse(sink.to_clients.back().bytes));
        return m;
    }
};

} // namespace

TEST_CASE("tcp allocate: only over TCP or TLS, and without UDP-only attributes") {
    tcp_fixture f;
    f.ctx.via = transport::udp;
    f.get_nonce();
    REQUIRE(f.call(method::allocate, [](message_writer& w) { requested_transport{transport_tcp}.encode(w); }));
    CHECK(f.code() == 400);
    f.ctx.via = transport::dtls;
    REQUIRE(f.call(method::allocate, [](message_writer& w) { requested_transport{transport_tcp}.encode(w); }));
    CHECK(f.code() == 400);

    f.ctx.via = transport::tcp;
    REQUIRE(f.call(method::allocate, [](message_writer& w) { requested_transport{99}.encode(w); }));
    CHECK(f.code() == 442);
    REQUIRE(f.call(method::allocate, [](message_writer& w) {
        requested_transport{transport_tcp}.encode(w);
        even_port{false}.encode(w);
    }));
    CHECK(f.code() == 400);
    REQUIRE(f.call(method::allocate, [](message_writer& w) {
        requested_transport{transport_tcp}.encode(w);
        w.append(attribute_type::dont_fragment, 0);
    }));
    CHECK(f.code() == 400);
    CHECK(f.relays.tcp_listeners.empty());

    const auto relayed = f.allocate_tcp();
    CHECK(f.relays.tcp_listeners.size() == 1);
    CHECK(f.relays.open_sockets.empty()); // no UDP relay socket
    CHECK(relayed.port != 0);
    // A TCP allocation has no channels.
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.channel_bind(0x4000, "8.8.8.8") == 400);
}

TEST_CASE("connect: needs a TCP allocation, a permission and the peer policy's consent") {
    tcp_fixture f;
    f.allocate();  // a UDP allocation over TCP
    CHECK(f.connect("8.8.8.8") == 400);
    f.ctx.remote.port = 40001;
    f.nonce_text.clear();
    f.allocate_tcp();
    CHECK(f.connect("8.8.8.8") == 403);  // no permission
    CHECK(f.relays.connects.empty());
    CHECK(f.connect("10.0.0.5") == 403);    // the default policy refuses private peers
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.connect("8.8.8.8") == 0);    // answered when the connection is made
    REQUIRE(f.relays.connects.size() == 1);
    const auto call = f.relays.connects[0];
    CHECK(call.peer == *transport_address::from("8.8.8.8", 8080));
    CHECK(f.relays.tcp_listeners.count(call.handle) == 1);
    // The same peer again: 446, whether pending or connected.
    CHECK(f.connect("8.8.8.8") == 446);

    f.sink.to_clients.clear();
    f.turn->tcp_connect_result(call.id, true, f.sink);
    REQUIRE(f.sink.to_clients.size() == 1);
    CHECK(f.sink.to_clients[0].to == f.ctx.remote);
    auto m = f.last_to_client();
    CHECK(m.is(method::connect, message_class::success_response));
    CHECK(verify_message_integrity(m, f.key().view()));
    REQUIRE(m.get<connection_id>());
    CHECK(m.get<connection_id>()->id == call.id);
    CHECK(f.connect("8.8.8.8") == 446);
    // A second answer for the same attempt is not sent.
    f.turn->tcp_connect_result(call.id, true, f.sink);
    CHECK(f.sink.to_clients.size() == 1);
}

TEST_CASE("connect: a failed connection is answered 447 and forgotten") {
    tcp_fixture f;
    f.allocate_tcp();
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.connect("8.8.8.8") == 0);
    const auto id = f.relays.connects.at(0).id;
    f.turn->tcp_connect_result(id, false, f.sink);
    auto m = f.last_to_client();
    CHECK(m.is(method::connect, message_class::error_response));
    CHECK(m.get<error_code>()->code == 447);
    CHECK(verify_message_integrity(m, f.key().view()));
    CHECK(f.connection_bind(id) == 400);    // nothing to bind
    CHECK(f.connect("8.8.8.8") == 0);    // and the peer may be tried again
    CHECK(f.relays.connects.size() == 2);
    CHECK(f.relays.connects[1].id != id);
}

TEST_CASE("connection bind: the right id, once, by the same user, over TCP or TLS only") {
    tcp_fixture f;
    f.allocate_tcp();
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.connect("8.8.8.8") == 0);
    const auto id = f.relays.connects.at(0).id;
    CHECK(f.connection_bind(id) == 400);  // not connected yet
    f.turn->tcp_connect_result(id, true, f.sink);

    CHECK(f.connection_bind(id + 1) == 400);
    // On the control connection itself (it has an allocation): 400.
    REQUIRE(f.call(method::connection_bind, [&](message_writer& w) { connection_id{id}.encode(w); }));
    CHECK(f.code() == 400);
    // Over UDP: 400.
    f.ctx.via = transport::udp;
    CHECK(f.connection_bind(id) == 400);
    f.ctx.via = transport::tcp;
    // Another user cannot take alice's connection.
    f.user = "bob";
    f.password = "builder";
    CHECK(f.connection_bind(id) == 400);
    f.user = "alice";
    f.password = "wonderland";
    CHECK(f.relays.binds.empty());

    CHECK(f.connection_bind(id, 21) == 200);
    CHECK(verify_message_integrity(f.response, f.key().view()));
    REQUIRE(f.relays.binds.size() == 1);
    CHECK(f.relays.binds[0] == std::pair<std::uint32_t, int>(id, 21));
    f.turn->tcp_link_bound(id);
    CHECK(f.connection_bind(id, 22, 41001) == 400);  // bound already

    // A bound connection outlives the 30-second bind deadline.
    f.clock.advance(std::chrono::seconds(60));
    f.turn->sweep();
    CHECK(f.relays.closed_links.count(id) == 0);
}

TEST_CASE("connection bind: a CONNECTION-ID after MESSAGE-INTEGRITY is not looked at") {
    tcp_fixture f;
    f.allocate_tcp();
    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    CHECK(f.connect("8.8.8.8") == 0);
    const auto id = f.relays.connects.at(0).id;
    f.turn->tcp_connect_result(id, true, f.sink);

    f.ctx.socket = 21;
    f.new_port(41000 - f.ctx.remote.port);
    auto bytes = f.build(method::connection_bind, [](message_writer&) {});
    const std::uint8_t trailer[] = {0x00, 0x2A, 0x00, 0x04, static_cast<std::uint8_t>(id >> 24),
                                    static_cast<std::uint8_t>(id >> 16), static_cast<std::uint8_t>(id >> 8),
                                    static_cast<std::uint8_t>(id)};
    bytes.insert(bytes.end(), std::begin(trailer), std::end(trailer));
    store_u16(bytes.data() + 2, static_cast<std::uint16_t>(bytes.size() - header_size));
    REQUIRE(f.send(bytes));
    CHECK(f.code() == 400);
    CHECK(f.relays.binds.empty());
}

TEST_CASE("a peer connecting to the relayed address: permitted peers are announced, others refused") {
    tcp_fixture f;
    f.allocate_tcp();
    const int listener = *f.relays.tcp_listeners.begin();
    const auto peer = *transport_address::from("8.8.8.8", 50123);
    CHECK(f.turn->tcp_peer_arrived(listener, peer, f.sink) == 0);  // no permission: close it
    CHECK(f.sink.to_clients.empty());
    CHECK(f.turn->tcp_peer_arrived(listener + 100, peer, f.sink) == 0);  // not a relay

    CHECK(f.create_permission({"8.8.8.8"}) == 200);
    const auto id = f.turn->tcp_peer_arrived(listener, peer, f.sink);
    REQUIRE(id != 0);
    auto m = f.last_to_client();
    CHECK(m.is(method::connection_attempt, message_class::indication));
    REQUIRE(m.get<xor_peer_address>());
    CHECK(m.get<xor_peer_address>()->address == peer);
    CHECK(m.get<connection_id>()->id == id);

    // Not bound within 30 s: closed, and no longer bindable.
    f.clock.advance(std::chrono::seconds(31));
    f.turn->sweep();
    CHECK(f.relays.closed_links.count(id) == 1);
    CHECK(f.connection_bind(id) == 400);
}

TEST_CASE("deleting a TCP allocation closes its listener and every peer connection") {
    tcp_fixture f;
    f.allocate_tcp();
    const int listener = *f.relays.tcp_listeners.begin();
    CHECK(f.create_permission({"8.8.8.8", "9.9.9.9"}) == 200);
    const auto a = f.turn->tcp_peer_arrived(listener, *transport_address::from("8.8.8.8", 1000), f.sink);
    CHECK(f.connect("9.9.9.9") == 0);
    const auto b = f.relays.connects.at(0).id;
    REQUIRE(a != 0);
    REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); }));
    CHECK(f.response.klass() == message_class::success_response);
    CHECK(f.relays.tcp_listeners.empty());
    CHECK(f.relays.closed_links.count(a) == 1);
    CHECK(f.relays.closed_links.count(b) == 1);
    // A late connection result for the deleted allocation is dropped.
    f.sink.to_clients.clear();
    f.turn->tcp_connect_result(b, true, f.sink);
    CHECK(f.sink.to_clients.empty());
}
