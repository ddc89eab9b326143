// What operations ask of the TURN handler (issue 10): a reload swaps credentials and settings
// and revokes what they no longer allow; a draining or full server redirects new Allocates
// with a signed 300; requests and authentication failures are counted by what happened.
#include "turn_fixture.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/server/reload.hpp"

#include <algorithm>

using namespace ferry::test;
using std::chrono::seconds;

namespace {

/// A runtime like the fixture's, with the given users and settings.
std::shared_ptr<const turn_runtime> runtime_with(std::initializer_list<std::pair<const char*, const char*>> users,
                                                 turn_settings settings = {}, std::vector<std::string> secrets = {}) {
    auto rt = std::make_shared<turn_runtime>(turn_runtime{settings, ferry::auth::credential_store("ferry"), {}});
    for (const auto& [name, password] : users) rt->credentials.add_user(name, password);
    for (auto& s : secrets) rt->credentials.add_rest_secret(s);
    return rt;
}

std::uint16_t refresh(turn_fixture& f, std::uint32_t life = 600) {
    f.call(method::refresh, [&](message_writer& w) { lifetime{life}.encode(w); });
    return f.response.klass() == message_class::success_response ? 200 : f.code();
}

} // namespace

TEST_CASE("reload: removing the user ends its allocations at once, and nobody else's") {
    turn_fixture f;
    f.allocate();
    f.user = "bob";
    f.password = "builder";
    f.new_port();
    f.allocate();
    REQUIRE(f.turn->allocations() == 2);

    CHECK(f.turn->reconfigure(runtime_with({{"bob", "builder"}})) == 1);
    CHECK(f.turn->allocations() == 1);
    CHECK(f.turn->stats().revoked == 1);
    CHECK(f.relays.open_sockets.size() == 1); // alice's relay socket closed
    CHECK(refresh(f) == 200);                 // bob's allocation serves on
    // alice, gone from the configuration, cannot make a new one.
    f.user = "alice";
    f.password = "wonderland";
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 401);
}

TEST_CASE("reload: removing the last user ends every allocation, and answers every later Allocate 401") {
    turn_fixture f;
    f.allocate();
    REQUIRE(f.turn->allocations() == 1);
    CHECK(f.turn->reconfigure(runtime_with({})) == 1);
    CHECK(f.turn->allocations() == 0);
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 401);
}

TEST_CASE("reload: a changed password applies to the later requests of an existing allocation") {
    turn_fixture f;
    f.allocate();
    CHECK(f.turn->reconfigure(runtime_with({{"alice", "looking-glass"}, {"bob", "builder"}})) == 0);
    CHECK(f.turn->allocations() == 1);
    CHECK(refresh(f) == 401); // the old password no longer signs
    f.password = "looking-glass";
    CHECK(refresh(f) == 200);
    CHECK(verify_message_integrity(f.response, f.key().view()));
    CHECK(f.create_permission({"8.8.8.10"}) == 200);
}

TEST_CASE("reload: removing a REST secret ends the allocations it authenticated; a kept one keeps them") {
    turn_fixture f;
    f.credentials.add_rest_secret("first");
    f.credentials.add_rest_secret("second");
    f.rebuild();
    f.user = std::to_string(f.clock.unix_now() + 3600) + ":carol";
    std::array<std::uint8_t, 20> mac{};
    auto hmac_password = [&](std::string_view secret) {
        hmac_sha1({reinterpret_cast<const std::uint8_t*>(secret.data()), secret.size()},
                  {reinterpret_cast<const std::uint8_t*>(f.user.data()), f.user.size()}, mac);
        return ferry::auth::base64_encode(mac);
    };
    f.password = hmac_password("first");
    f.allocate();
    f.new_port();
    f.password = hmac_password("second");
    f.allocate();
    REQUIRE(f.turn->allocations() == 2);
    CHECK(f.turn->reconfigure(runtime_with({{"alice", "wonderland"}}, {}, {"second"})) == 1);
    CHECK(f.turn->allocations() == 1);
    CHECK(refresh(f) == 200); // the one signed with the kept secret
}

TEST_CASE("reload: new limits and peer policy apply to the next request") {
    turn_fixture f;
    f.allocate();
    REQUIRE(f.create_permission({"8.8.8.1", "8.8.8.2"}) == 200);
    turn_settings tight;
    tight.permissions_per_allocation = 2;
    f.turn->reconfigure(runtime_with({{"alice", "wonderland"}}, tight));
    CHECK(f.create_permission({"8.8.8.3"}) == 508);
    CHECK(f.turn->stats().quota_refused == 1);
    CHECK(f.create_permission({"8.8.8.1"}) == 200); // a refresh of one held is no new place

    auto closed = std::make_shared<turn_runtime>(*runtime_with({{"alice", "wonderland"}}));
    closed->policy = peer_policy({}, {*ip_range::parse("8.8.8.0/24")});
    f.turn->reconfigure(closed);
    CHECK(f.create_permission({"8.8.8.1"}) == 403);
    CHECK(f.create_permission({"8.8.4.4"}) == 200);
}

TEST_CASE("drain: an authenticated Allocate gets a signed 300 naming an alternate of its family") {
    turn_fixture f;
    turn_settings s;
    s.alternate_servers = {*transport_address::from("2001:db8::5", 3478), *transport_address::from("192.0.2.5", 3479)};
    s.alternate_domain = "turn2.example.com";
    f.turn->reconfigure(runtime_with({{"alice", "wonderland"}}, s));
    f.allocate(); // before the drain: served
    f.turn->start_drain();
    CHECK(refresh(f) == 200); // existing allocations go on

    f.new_port();
    // Unauthenticated: the usual 401 challenge, no redirect anybody could forge.
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); }, false)));
    CHECK(f.code() == 401);
    CHECK_FALSE(f.response.has(attribute_type::alternate_server));
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 300);
    CHECK(verify_message_integrity(f.response, f.key().view()));
    const auto alt = f.response.get<alternate_server>();
    REQUIRE(alt);
    CHECK(alt->address == *transport_address::from("192.0.2.5", 3479));
    CHECK_FALSE(f.response.has(attribute_type::alternate_domain)); // UDP: no TLS name to check
    CHECK(f.response.get<nonce>()); // for the client's next Allocate, at the alternate
    CHECK(f.response.get<realm>()->value == "ferry");
    CHECK(f.turn->allocations() == 1);
    CHECK(f.turn->stats().redirected == 1);

    // Over TLS the client also learns the name to verify the alternate's certificate by.
    f.ctx.via = transport::tls;
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 300);
    REQUIRE(f.response.get<alternate_domain>());
    CHECK(f.response.get<alternate_domain>()->value == "turn2.example.com");
}

TEST_CASE("drain without an alternate of the client's family: 508; a full server redirects too") {
    turn_fixture f;
    f.turn->start_drain();
    f.get_nonce();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 508);

    turn_fixture g;
    turn_settings s;
    s.allocations_total = 1;
    s.alternate_servers = {*transport_address::from("192.0.2.5", 3478)};
    g.turn->reconfigure(runtime_with({{"alice", "wonderland"}}, s));
    g.allocate();
    g.new_port();
    REQUIRE(g.send(g.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(g.code() == 300);
    CHECK(verify_message_integrity(g.response, g.key().view()));
}

TEST_CASE("requests are counted by method and result; failures by reason") {
    turn_fixture f;
    f.allocate(); // 401 then 200
    const auto& r = f.stun.stats().responses;
    const auto idx = [](auto& table, std::uint16_t v) {
        return static_cast<std::size_t>(std::find(table.begin(), table.end(), v) - table.begin());
    };
    const auto allocate = idx(counted_methods, 0x003);
    CHECK(r[allocate][idx(counted_codes, 401)] == 1);
    CHECK(r[allocate][idx(counted_codes, 200)] == 1);
    f.password = "wrong";
    CHECK(refresh(f) == 401);
    CHECK(f.turn->stats().auth_bad_integrity == 1);
    f.user = "mallory";
    CHECK(refresh(f) == 401);
    CHECK(f.turn->stats().auth_unknown_user == 1);
    CHECK(r[idx(counted_methods, 0x004)][idx(counted_codes, 401)] == 2);

    turn_gauges g;
    f.turn->gauges(g, true);
    CHECK(g.allocations[0][0] == 1);
    CHECK(g.users.at("alice").allocations == 1);
}

TEST_CASE("restart_needed names what a reload cannot change, and nothing else") {
    config a = parse_config("listen: [{address: 127.0.0.1, port: 3478}]\nturn: {users: [{name: a, password: b}]}\n");
    config b = a;
    b.limits.allocations_total = 5;
    b.turn.users.clear();
    b.turn.users.push_back({"c", "d", std::nullopt});
    b.log.level = log_level::debug;
    CHECK(restart_needed(a, b).empty());
    b.listen[0].port = 3479;
    b.threads = 3;
    const auto keys = restart_needed(a, b);
    CHECK(keys == std::vector<std::string>{"threads", "listen"});
    // Removing every credential applies live (it revokes everything); adding the first one to a
    // server started without TURN needs a restart, since no relay was set up.
    config none = a;
    none.turn.users.clear();
    CHECK(restart_needed(a, none).empty());
    CHECK(restart_needed(none, a).size() == 1);
    CHECK(restart_needed(none, a)[0].rfind("turn", 0) == 0);
}
