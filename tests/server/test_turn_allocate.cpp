// Allocate and Refresh without sockets (RFC 8656 §7, §8), with authentication, lifetimes,
// expiry, retransmissions, address families, EVEN-PORT reservations and quotas.
#include "turn_fixture.hpp"

using namespace ferry::test;
using std::chrono::seconds;

TEST_CASE("an unauthenticated Allocate gets 401 with REALM, NONCE and PASSWORD-ALGORITHMS, and no state") {
    turn_fixture f;
    const auto req = f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); }, false);
    REQUIRE(f.send(req));
    CHECK(f.code() == 401);
    CHECK(f.response.get<realm>()->value == "ferry");
    CHECK(f.response.get<nonce>()->value.starts_with("obMatJos2"));
    CHECK(f.response.get<password_algorithms>()->count == 2);
    CHECK_FALSE(f.response.has(attribute_type::message_integrity));
    CHECK_FALSE(f.response.has(attribute_type::software));
    CHECK(f.turn->allocations() == 0);
    CHECK(f.relays.open_sockets.empty());
    // The answer to an unauthenticated request stays small: 28 bytes in, at most 4x out.
    CHECK(f.response.bytes().size() <= 4 * req.size());
}

TEST_CASE("wrong password and unknown user get the same 401, and create nothing") {
    turn_fixture f;
    f.get_nonce();
    f.password = "wrong";
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 401);
    std::vector<std::uint16_t> wrong_password_attrs;
    for (auto a : f.response.attributes()) wrong_password_attrs.push_back(a.type);
    f.user = "mallory";
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 401);
    std::vector<std::uint16_t> unknown_user_attrs;
    for (auto a : f.response.attributes()) unknown_user_attrs.push_back(a.type);
    CHECK(wrong_password_attrs == unknown_user_attrs);
    CHECK(f.turn->allocations() == 0);
    CHECK(f.relays.open_sockets.empty());
    CHECK(f.turn->stats().auth_failures == 2);
}

TEST_CASE("Allocate success: relayed and mapped addresses, default lifetime, signed") {
    turn_fixture f;
    const auto relayed = f.allocate();
    CHECK(relayed.ip.to_string() == "198.51.100.1"); // the address the client reached
    CHECK(relayed.port >= 49152);
    CHECK(f.response.get<xor_mapped_address>()->address == f.ctx.remote);
    CHECK(f.response.get<lifetime>()->seconds == 600);
    CHECK(f.response.get<software>()->value == "ferry-test");
    CHECK(f.turn->allocations() == 1);
    CHECK(f.relays.open_sockets.size() == 1);
}

TEST_CASE("a retransmitted Allocate gets the same answer; a new one on the same 5-tuple gets 437") {
    turn_fixture f;
    f.get_nonce();
    const auto req = f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); });
    REQUIRE(f.send(req));
    const std::vector<std::uint8_t> first(f.response.bytes().begin(), f.response.bytes().end());
    REQUIRE(f.send(req));
    CHECK(std::vector<std::uint8_t>(f.response.bytes().begin(), f.response.bytes().end()) == first);
    CHECK(f.relays.open_sockets.size() == 1);
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 437);
    CHECK(verify_message_integrity(f.response, f.key().view()));
}

TEST_CASE("REQUESTED-TRANSPORT: missing 400, SCTP 442, TCP over UDP 400 (RFC 6062)") {
    turn_fixture f;
    f.get_nonce();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer&) {})));
    CHECK(f.code() == 400);
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{132}.encode(w); })));
    CHECK(f.code() == 442);
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{transport_tcp}.encode(w); })));
    CHECK(f.code() == 400);
    CHECK(f.turn->allocations() == 0);
}

TEST_CASE("address families: 440, 400 and dual allocations") {
    turn_fixture f;
    f.get_nonce();
    auto try_alloc = [&](const std::function<void(message_writer&)>& extra) {
        REQUIRE(f.send(f.build(method::allocate, [&](message_writer& w) {
            requested_transport{}.encode(w);
            extra(w);
        })));
        return f.code();
    };
    SUBCASE("IPv6 requested, no IPv6 relay address: 440") {
        CHECK(try_alloc([](message_writer& w) { requested_address_family{2}.encode(w); }) == 440);
    }
    SUBCASE("an unknown family: 440") {
        CHECK(try_alloc([](message_writer& w) { requested_address_family{7}.encode(w); }) == 440);
    }
    SUBCASE("REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together: 400") {
        CHECK(try_alloc([](message_writer& w) {
                  requested_address_family{1}.encode(w);
                  additional_address_family{2}.encode(w);
              }) == 400);
    }
    SUBCASE("ADDITIONAL-ADDRESS-FAMILY IPv4: 400") {
        CHECK(try_alloc([](message_writer& w) { additional_address_family{1}.encode(w); }) == 400);
    }
    SUBCASE("dual allocation without IPv6: IPv4 plus ADDRESS-ERROR-CODE 440") {
        CHECK(try_alloc([](message_writer& w) { additional_address_family{2}.encode(w); }) == 0);
        CHECK(f.response.get<address_error_code>()->code == 440);
        CHECK(f.response.get<address_error_code>()->family == 2);
    }
    SUBCASE("dual allocation with configured relay addresses, advertised behind 1:1 NAT") {
        f.settings.relay_addresses = {{*ip_address::parse("10.0.0.5"), *ip_address::parse("198.51.100.50")},
                                      {*ip_address::parse("2001:db8::5"), *ip_address::parse("2001:db8::5")}};
        f.rebuild();
        CHECK(try_alloc([](message_writer& w) { additional_address_family{2}.encode(w); }) == 0);
        std::vector<std::string> relayed;
        for (const auto& a : f.response.attributes())
            if (a.type == static_cast<std::uint16_t>(attribute_type::xor_relayed_address))
                relayed.push_back(xor_relayed_address::decode(f.response.value(a), f.response)->address.ip.to_string());
        CHECK(relayed == std::vector<std::string>{"198.51.100.50", "2001:db8::5"});
        CHECK(f.relays.open_sockets.size() == 2);
    }
}

TEST_CASE("LIFETIME: below the default gets the default, above the maximum gets the maximum") {
    turn_fixture f;
    f.allocate([](message_writer& w) { lifetime{30}.encode(w); });
    CHECK(f.response.get<lifetime>()->seconds == 600);
    f.new_port();
    f.allocate([](message_writer& w) { lifetime{100000}.encode(w); });
    CHECK(f.response.get<lifetime>()->seconds == 3600);
    f.new_port();
    f.allocate([](message_writer& w) { lifetime{1200}.encode(w); });
    CHECK(f.response.get<lifetime>()->seconds == 1200);
}

TEST_CASE("Refresh extends, Refresh 0 deletes, and a missing allocation is 437") {
    turn_fixture f;
    f.allocate();
    f.clock.advance(seconds(500));
    REQUIRE(f.send(f.build(method::refresh, [](message_writer& w) { lifetime{900}.encode(w); })));
    CHECK(f.response.get<lifetime>()->seconds == 900);
    f.clock.advance(seconds(800)); // 1300 s after creation: alive only thanks to the refresh
    REQUIRE(f.call(method::refresh, [](message_writer&) {}));
    CHECK(f.response.get<lifetime>()->seconds == 600);
    REQUIRE(f.send(f.build(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); })));
    CHECK(f.response.klass() == message_class::success_response);
    CHECK(f.response.get<lifetime>()->seconds == 0);
    CHECK(f.turn->allocations() == 0);
    CHECK(f.relays.open_sockets.empty());
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.code() == 437);
}

TEST_CASE("an allocation expires after its lifetime; the sweep closes its relay") {
    turn_fixture f;
    f.allocate();
    f.clock.advance(seconds(599));
    f.turn->sweep();
    CHECK(f.turn->allocations() == 1);
    f.clock.advance(seconds(2));
    f.turn->sweep();
    CHECK(f.turn->allocations() == 0);
    CHECK(f.relays.open_sockets.empty());
    CHECK(f.turn->stats().allocations_expired == 1);
}

TEST_CASE("an expired allocation is gone even before the sweep (lazy expiry)") {
    turn_fixture f;
    f.allocate();
    f.clock.advance(seconds(601));
    f.get_nonce(); // the old nonce is stale by now
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.code() == 437);
    CHECK(f.relays.open_sockets.empty());
}

TEST_CASE("a stale nonce gets 438 with a fresh one, which then works") {
    turn_fixture f;
    f.allocate();
    f.clock.advance(seconds(590));
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.response.klass() == message_class::success_response);
    f.clock.advance(seconds(20)); // nonce issued 610 s ago
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.code() == 438);
    CHECK_FALSE(f.response.has(attribute_type::message_integrity));
    f.nonce_text = std::string(f.response.get<nonce>()->value);
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.response.klass() == message_class::success_response);
}

TEST_CASE("another user on the same 5-tuple gets 441") {
    turn_fixture f;
    f.allocate();
    f.user = "bob";
    f.password = "builder";
    REQUIRE(f.send(f.build(method::refresh, [](message_writer&) {})));
    CHECK(f.code() == 441);
}

TEST_CASE("attributes after MESSAGE-INTEGRITY cannot delete an allocation") {
    turn_fixture f;
    f.allocate();
    auto req = f.build(method::refresh, [](message_writer&) {});
    const std::uint8_t lifetime_zero[] = {0x00, 0x0D, 0x00, 0x04, 0, 0, 0, 0};
    req.insert(req.end(), std::begin(lifetime_zero), std::end(lifetime_zero));
    store_u16(req.data() + 2, static_cast<std::uint16_t>(req.size() - 20));
    REQUIRE(f.send(req));
    CHECK(f.response.get<lifetime>()->seconds == 600);
    CHECK(f.turn->allocations() == 1);
}

TEST_CASE("unknown comprehension-required attributes: 420 after authentication, signed") {
    turn_fixture f;
    f.allocate();
    REQUIRE(f.send(f.build(method::refresh, [](message_writer& w) { w.append(static_cast<attribute_type>(0x7ABC), 4); })));
    CHECK(f.code() == 420);
    CHECK(f.response.get<unknown_attributes>()->types[0] == 0x7ABC);
    CHECK(verify_message_integrity(f.response, f.key().view()));
}

TEST_CASE("EVEN-PORT and RESERVATION-TOKEN") {
    turn_fixture f;
    f.relays.next_port = 50001;
    const auto relayed = f.allocate([](message_writer& w) { even_port{true}.encode(w); });
    CHECK(relayed.port % 2 == 0);
    const auto token = f.response.get<reservation_token>();
    REQUIRE(token);

    SUBCASE("another client redeems the token for port N+1, once") {
        f.ctx.remote = *transport_address::from("203.0.113.8", 41000);
        f.nonce_text.clear();
        const auto second = f.allocate([&](message_writer& w) { token->encode(w); });
        CHECK(second.port == relayed.port + 1);
        CHECK(f.relays.adopted.size() == 1);
        f.new_port();
        REQUIRE(f.send(f.build(method::allocate, [&](message_writer& w) {
            requested_transport{}.encode(w);
            token->encode(w);
        })));
        CHECK(f.code() == 508);
    }
    SUBCASE("a token with EVEN-PORT is 400") {
        f.new_port();
        REQUIRE(f.send(f.build(method::allocate, [&](message_writer& w) {
            requested_transport{}.encode(w);
            token->encode(w);
            even_port{false}.encode(w);
        })));
        CHECK(f.code() == 400);
    }
    SUBCASE("an unredeemed reservation is released after 30 s") {
        CHECK(f.relays.open_sockets.size() == 2);
        f.clock.advance(seconds(31));
        f.turn->sweep();
        CHECK(f.relays.open_sockets.size() == 1);
    }
}

TEST_CASE("quotas: 486 per user, 508 for the whole server, 508 without ports") {
    turn_fixture f;
    f.settings.allocations_per_user = 2;
    f.settings.allocations_total = 3;
    f.rebuild();
    f.allocate();
    f.new_port();
    f.allocate();
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 486);
    f.user = "bob";
    f.password = "builder";
    f.allocate();
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 508);
    // Deleting one frees its place in both counts.
    f.new_port(-1);
    REQUIRE(f.send(f.build(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); })));
    CHECK(f.shared.total() == 2);
    f.relays.exhausted = true;
    f.new_port(5);
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 508);
    CHECK(f.shared.total() == 2);
}

TEST_CASE("a TURN request on a socket of an RFC 5780 set is answered from that socket") {
    turn_fixture f;
    nat_identity nat;
    for (unsigned i = 0; i < 2; ++i)
        for (unsigned p = 0; p < 2; ++p)
            nat.addresses[i][p] = *transport_address::from(i == 0 ? "198.51.100.1" : "198.51.100.2",
                                                           static_cast<std::uint16_t>(5000 + p));
    nat.ip = 1;
    nat.port = 1;
    f.ctx.nat = &nat;
    const auto r = f.stun.handle(f.ctx, f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); }, false),
                                 f.out, &f.sink);
    REQUIRE(r.size > 0);
    CHECK(r.from_ip == 1);
    CHECK(r.from_port == 1);
}
