// Findings of the conformance and safety review (issue 9) at the handler: each test failed
// before its fix. Nonces bound to the client's port, TURN REST expiry, the algorithms offered,
// dual-stack Refresh by family, Send indications with unknown attributes, EVEN-PORT
// reservations under the quotas, and what unauthenticated requests can make the server send.
#include "turn_fixture.hpp"

#include "ferry/auth/base64.hpp"

using namespace ferry::test;
using std::chrono::seconds;

namespace {

std::vector<std::uint8_t> bare(method m, turn_fixture& f, const std::function<void(message_writer&)>& attrs = {}) {
    return f.build(m, [&](message_writer& w) { if (attrs) attrs(w); }, false);
}

std::string rest_password(std::string_view secret, std::string_view user) {
    std::array<std::uint8_t, 20> mac{};
    hmac_sha1({reinterpret_cast<const std::uint8_t*>(secret.data()), secret.size()},
              {reinterpret_cast<const std::uint8_t*>(user.data()), user.size()}, mac);
    return ferry::auth::base64_encode(mac);
}

} // namespace

TEST_CASE("a signed Allocate replayed from another port of the same IP gets 438, not an allocation") {
    turn_fixture f;
    f.get_nonce();
    const auto signed_request = f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); });
    f.ctx.remote.port++;
    REQUIRE(f.send(signed_request));
    CHECK(f.code() == 438);
    CHECK(f.turn->allocations() == 0);
    // The same bytes from the port the nonce was issued to are served.
    f.ctx.remote.port--;
    REQUIRE(f.send(signed_request));
    CHECK(f.response.is(method::allocate, message_class::success_response));
}

TEST_CASE("a TURN REST credential bounds its allocation and is refused once expired") {
    turn_fixture f;
    f.credentials.add_rest_secret("s3cret");
    f.user = std::to_string(f.clock.unix + 3) + ":bob";
    f.password = rest_password("s3cret", f.user);
    f.allocate();
    CHECK(f.response.get<lifetime>()->seconds == 3); // capped at the credential's expiry
    f.clock.advance(seconds(5));
    // The allocation has expired with its credential; a Refresh finds none.
    CHECK_FALSE(f.turn->has_allocation({f.ctx.remote, f.ctx.local, f.ctx.via}));

    SUBCASE("a Refresh cannot extend past it, and after it the credential is refused") {
        f.clock.advance(seconds(-5));
        f.user = std::to_string(f.clock.unix + 100) + ":carol";
        f.password = rest_password("s3cret", f.user);
        f.new_port();
        f.allocate();
        REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{3600}.encode(w); }));
        CHECK(f.response.get<lifetime>()->seconds == 100);
        f.clock.advance(seconds(50));
        REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{3600}.encode(w); }));
        CHECK(f.response.get<lifetime>()->seconds == 50);
        f.clock.unix += 60; // the credential has expired; the allocation's clock has not
        REQUIRE(f.call(method::create_permission, [](message_writer& w) {
            xor_peer_address{*transport_address::from("8.8.8.8", 1)}.encode(w);
        }));
        CHECK(f.code() == 401);
    }
}

TEST_CASE("a key-only user makes the server offer MD5 alone, and authenticates with it") {
    turn_fixture f;
    f.credentials.add_user_key("dave", ferry::auth::long_term_key("dave", "ferry", "pw"));
    f.rebuild();
    REQUIRE(f.send(bare(method::allocate, f, [](message_writer& w) { requested_transport{}.encode(w); })));
    const auto offered = f.response.get<password_algorithms>();
    REQUIRE(offered);
    REQUIRE(offered->count == 1);
    CHECK(offered->algorithms[0] == 1);
    // An RFC 8489 client echoes the list and takes its first entry.
    f.nonce_text = std::string(f.response.get<nonce>()->value);
    f.user = "dave";
    f.password = "pw";
    REQUIRE(f.send(f.build(method::allocate, [&](message_writer& w) {
        requested_transport{}.encode(w);
        password_algorithm_attribute{1}.encode(w);
        offered->encode(w);
    })));
    CHECK(f.response.is(method::allocate, message_class::success_response));
}

TEST_CASE("dual-stack Refresh with REQUESTED-ADDRESS-FAMILY touches that family only") {
    turn_fixture f;
    f.settings.relay_addresses = {{*ip_address::parse("198.51.100.1"), *ip_address::parse("198.51.100.1")},
                                  {*ip_address::parse("2001:db8::5"), *ip_address::parse("2001:db8::5")}};
    f.rebuild();
    f.allocate([](message_writer& w) { additional_address_family{2}.encode(w); });
    REQUIRE(f.relays.open_sockets.size() == 2);
    REQUIRE(f.call(method::refresh, [](message_writer& w) {
        requested_address_family{2}.encode(w);
        lifetime{0}.encode(w);
    }));
    CHECK(f.response.is(method::refresh, message_class::success_response));
    CHECK(f.turn->allocations() == 1); // the IPv4 half lives on
    REQUIRE(f.relays.open_sockets.size() == 1);
    CHECK(f.relays.open_sockets.begin()->second.ip.family == address_family::ipv4);
    CHECK(f.create_permission({"2001:db8::77"}) == 443);
    CHECK(f.create_permission({"8.8.8.8"}) == 200);

    SUBCASE("a refresh of one family leaves the other to expire on its own") {
        f.rebuild();
        f.new_port();
        f.allocate([](message_writer& w) { additional_address_family{2}.encode(w); });
        f.clock.advance(seconds(500));
        REQUIRE(f.call(method::refresh, [](message_writer& w) {
            requested_address_family{1}.encode(w);
            lifetime{600}.encode(w);
        }));
        f.clock.advance(seconds(200)); // the IPv6 relay's 600 s are over, the IPv4 one's are not
        f.turn->sweep();
        CHECK(f.turn->allocations() == 1);
        CHECK(f.create_permission({"2001:db8::77"}) == 443);
    }
}

TEST_CASE("a Send indication with an unknown comprehension-required attribute is discarded") {
    turn_fixture f;
    f.allocate();
    REQUIRE(f.create_permission({"8.8.8.8"}) == 200);
    const std::vector<std::uint8_t> payload{1, 2, 3};
    auto send = [&](bool unknown) {
        return f.build(method::send, [&](message_writer& w) {
            xor_peer_address{*transport_address::from("8.8.8.8", 53)}.encode(w);
            data{payload}.encode(w);
            if (unknown) w.append(static_cast<attribute_type>(0x0077), 4);
        }, false, message_class::indication);
    };
    f.send(send(true));
    CHECK(f.sink.to_peers.empty());
    f.send(send(false));
    CHECK(f.sink.to_peers.size() == 1);
}

TEST_CASE("an EVEN-PORT reservation counts against the quotas and ends with its allocation") {
    turn_fixture f;
    f.settings.allocations_per_user = 3;
    f.rebuild();
    f.allocate([](message_writer& w) { even_port{true}.encode(w); });
    CHECK(f.shared.total() == 2); // the allocation and its reserved port
    REQUIRE(f.relays.open_sockets.size() == 2);
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) {
        requested_transport{}.encode(w);
        even_port{true}.encode(w);
    })));
    CHECK(f.code() == 486); // 2 + 2 > 3
    CHECK(f.shared.total() == 2);
    CHECK(f.relays.open_sockets.size() == 2);
    // Deleting the allocation releases the reservation at once, socket and quota.
    f.new_port(-1);
    REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); }));
    CHECK(f.shared.total() == 0);
    CHECK(f.relays.open_sockets.empty());
    // Many reserve-and-delete cycles leave nothing behind.
    for (int i = 0; i < 50; ++i) {
        f.new_port();
        f.allocate([](message_writer& w) { even_port{true}.encode(w); });
        REQUIRE(f.call(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); }));
    }
    CHECK(f.shared.total() == 0);
    CHECK(f.relays.open_sockets.empty());
}

TEST_CASE("no unauthenticated TURN answer is more than four times its request") {
    turn_fixture f;
    SUBCASE("Refresh, CreatePermission, ChannelBind without an allocation: a bare 437") {
        for (auto m : {method::refresh, method::create_permission, method::channel_bind}) {
            const auto req = bare(m, f);
            REQUIRE(f.send(req));
            CHECK(f.code() == 437);
            CHECK_FALSE(f.response.has(attribute_type::nonce));
            CHECK(f.response.bytes().size() <= 4 * req.size());
        }
    }
    SUBCASE("a header-only Allocate gets nothing; with REQUESTED-TRANSPORT, a 401 within 4x") {
        CHECK_FALSE(f.send(bare(method::allocate, f)));
        CHECK(f.turn->stats().amplification_dropped == 1);
        const auto req = bare(method::allocate, f, [](message_writer& w) { requested_transport{}.encode(w); });
        REQUIRE(f.send(req));
        CHECK(f.code() == 401);
        CHECK(f.response.bytes().size() <= 4 * req.size());
    }
    SUBCASE("over TCP, whose source cannot be forged, a header-only Allocate still gets its 401") {
        f.ctx.via = transport::tcp;
        REQUIRE(f.send(bare(method::allocate, f)));
        CHECK(f.code() == 401);
    }
    SUBCASE("a Refresh on an allocated 5-tuple without credentials: no answer larger than 4x") {
        f.allocate();
        const auto req = bare(method::refresh, f);
        if (f.send(req)) CHECK(f.response.bytes().size() <= 4 * req.size());
    }
}
