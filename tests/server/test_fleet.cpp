// A fleet through Redis (issue 14), its pure half: what instances publish and how it is read
// back, the coturn key layout, what this instance knows of the others (fleet_view: leases,
// per-user totals, the least-loaded pick), Redis's users merged into the file's runtime, the
// redis: config section, and the handler using all of it (486 across the fleet, 300 to the
// least-loaded instance).
#include "turn_fixture.hpp"

#include "ferry/server/config.hpp"
#include "ferry/server/fleet.hpp"
#include "ferry/server/reload.hpp"

using namespace ferry::test;
using std::chrono::seconds;

namespace {

instance_load load_of(std::string name, std::uint64_t allocations, std::vector<std::string> addresses = {},
                      bool draining = false, std::uint64_t capacity = 0, std::uint64_t pps = 0) {
    instance_load l;
    l.name = std::move(name);
    for (const auto& a : addresses) l.addresses.push_back(*parse_endpoint(a, 3478));
    l.allocations = allocations;
    l.capacity = capacity;
    l.packets_per_second = pps;
    l.draining = draining;
    return l;
}

const steady_time t0{};

} // namespace

TEST_CASE("fleet: a load goes out and comes back whole, addresses of both families included") {
    const auto l = load_of("eu-1", 12, {"192.0.2.1:3478", "[2001:db8::1]:3479"}, true, 500, 9000);
    const auto text = encode_load(l);
    CHECK(text == "eu-1 1 12 500 9000 192.0.2.1:3478,[2001:db8::1]:3479");
    const auto back = decode_load(text);
    REQUIRE(back);
    CHECK(back->name == "eu-1");
    CHECK(back->draining);
    CHECK(back->allocations == 12);
    CHECK(back->capacity == 500);
    CHECK(back->packets_per_second == 9000);
    REQUIRE(back->addresses.size() == 2);
    CHECK(back->addresses[1] == *transport_address::from("2001:db8::1", 3479));

    const auto none = decode_load(encode_load(load_of("x", 0)));
    REQUIRE(none);
    CHECK(none->addresses.empty());
}

TEST_CASE("fleet: unreadable loads and messages are refused, not half-read") {
    for (const char* bad : {"", "eu-1", "eu-1 2 0 0 0 -", "eu-1 0 x 0 0 -", "eu-1 0 1 0 0 not-an-address",
                            "eu-1 0 1 0 0 192.0.2.1:99999", "eu-1 0 -1 0 0 -", " 0 1 0 0 -"})
        CHECK_MESSAGE(!decode_load(bad), bad);
    for (const char* bad : {"", "X eu-1", "U eu-1", "U eu-1 3", "U eu-1 three alice", "B ", "B a b", "L eu-1"})
        CHECK_MESSAGE(!decode_fleet_message(bad), bad);

    const auto u = decode_fleet_message(encode_user_count("eu-1", "alice smith", 3));
    REQUIRE(u);
    CHECK(u->what == fleet_message::kind::user_count);
    CHECK(u->instance == "eu-1");
    CHECK(u->user == "alice smith"); // a user name may hold spaces: it comes last
    CHECK(u->count == 3);
    const auto b = decode_fleet_message(encode_bye("eu-1"));
    REQUIRE(b);
    CHECK(b->what == fleet_message::kind::bye);
    CHECK(b->instance == "eu-1");
    const auto l = decode_fleet_message("L " + encode_load(load_of("eu-2", 4)));
    REQUIRE(l);
    CHECK(l->load.allocations == 4);
}

TEST_CASE("fleet: coturn's key layout, under a prefix, for one realm only") {
    const redis_layout plain("", "north.gov");
    auto u = plain.user_of("turn/realm/north.gov/user/gorst/key");
    REQUIRE(u);
    CHECK(u->name == "gorst");
    CHECK_FALSE(u->password);
    u = plain.user_of("turn/realm/north.gov/user/ninefingers/password");
    REQUIRE(u);
    CHECK(u->password);
    CHECK_FALSE(plain.user_of("turn/realm/crinna.org/user/whirrun/key")); // another realm
    CHECK_FALSE(plain.user_of("turn/user/gorst/password"));                // short-term: not ours
    CHECK_FALSE(plain.user_of("turn/realm/north.gov/user//key"));
    CHECK_FALSE(plain.user_of("turn/realm/north.gov/user/gorst/other"));
    CHECK(plain.is_secret("turn/realm/north.gov/secret/1368426581"));
    CHECK_FALSE(plain.is_secret("turn/realm/north.gov/secret/"));
    CHECK(plain.user_key_name("gorst", false) == "turn/realm/north.gov/user/gorst/key");

    const redis_layout prefixed("prod:", "a*b");
    CHECK(prefixed.user_of("prod:turn/realm/a*b/user/x/key"));
    CHECK_FALSE(prefixed.user_of("turn/realm/a*b/user/x/key"));
    CHECK(prefixed.realm_pattern() == "prod:turn/realm/a\\*b/*"); // the realm matches only itself
    CHECK(prefixed.instance_key("eu-1") == "prod:ferry/instance/eu-1");
    CHECK(prefixed.fleet_channel() == "prod:ferry/fleet");
}

TEST_CASE("fleet: a hex key as coturn stores it") {
    const auto k = ferry::auth::parse_hex_key("7da2270ccfa49786e0115366d3a3d14d"); // gorst:north.gov:hero
    REQUIRE(k);
    CHECK((*k)[0] == 0x7d);
    CHECK((*k)[15] == 0x4d);
    CHECK(ferry::auth::parse_hex_key("7DA2270CCFA49786E0115366D3A3D14D"));
    CHECK_FALSE(ferry::auth::parse_hex_key("7da2270ccfa49786e0115366d3a3d14"));
    CHECK_FALSE(ferry::auth::parse_hex_key("7da2270ccfa49786e0115366d3a3d14g"));
    CHECK_FALSE(ferry::auth::parse_hex_key(""));
}

TEST_CASE("fleet_view: per-user totals follow counts, replacements and departures") {
    fleet_view v;
    v.set_load(load_of("a", 1), t0 + seconds(10));
    v.set_load(load_of("b", 1), t0 + seconds(10));
    v.set_user_count("a", "alice", 2);
    v.set_user_count("b", "alice", 1);
    v.set_user_count("b", "bob", 4);
    v.set_user_count("nobody-knows", "alice", 7); // an instance not heard from yet: ignored
    CHECK(v.others("alice") == 3);
    CHECK(v.others("bob") == 4);
    v.set_user_count("a", "alice", 1); // a count replaces, never adds
    CHECK(v.others("alice") == 2);
    v.set_user_count("b", "bob", 0);
    CHECK(v.others("bob") == 0);

    v.replace(load_of("a", 5), {{"alice", 5}, {"carol", 1}}, t0 + seconds(10));
    CHECK(v.others("alice") == 6);
    CHECK(v.others("carol") == 1);
    v.forget("a");
    CHECK(v.others("alice") == 1);
    CHECK(v.others("carol") == 0);
    CHECK(v.size() == 1);
}

TEST_CASE("fleet_view: an instance not renewed within its lease drops out, with its counts") {
    fleet_view v;
    v.set_load(load_of("dead", 1), t0 + seconds(10));
    v.set_load(load_of("live", 1), t0 + seconds(10));
    v.set_user_count("dead", "alice", 2);
    v.set_user_count("live", "alice", 1);
    v.set_load(load_of("live", 1), t0 + seconds(13)); // renewed
    CHECK(v.expire(t0 + seconds(9)).empty());
    const auto gone = v.expire(t0 + seconds(10));
    REQUIRE(gone.size() == 1);
    CHECK(gone[0] == "dead");
    CHECK(v.others("alice") == 1);
    CHECK(v.size() == 1);
    v.clear();
    CHECK(v.others("alice") == 0);
}

TEST_CASE("fleet_view: the least-loaded live instance that takes clients, of the client's family") {
    fleet_view v;
    const auto at = t0 + seconds(10);
    CHECK_FALSE(v.least_loaded(address_family::ipv4));
    v.set_load(load_of("busy", 90, {"192.0.2.1:3478"}), at);
    v.set_load(load_of("quiet", 10, {"192.0.2.2:3478"}, false, 0, 500), at);
    v.set_load(load_of("quieter-but-draining", 0, {"192.0.2.3:3478"}, true), at);
    v.set_load(load_of("quieter-but-full", 5, {"192.0.2.4:3478"}, false, 5), at);
    v.set_load(load_of("quiet-v6-only", 1, {"[2001:db8::9]:3478"}), at);
    v.set_load(load_of("nowhere", 0), at); // advertises no address: never a target
    CHECK(v.least_loaded(address_family::ipv4) == *transport_address::from("192.0.2.2", 3478));
    CHECK(v.least_loaded(address_family::ipv6) == *transport_address::from("2001:db8::9", 3478));
    // Equal allocations: fewer packets a second wins.
    v.set_load(load_of("as-quiet-less-traffic", 10, {"192.0.2.5:3478"}, false, 0, 100), at);
    CHECK(v.least_loaded(address_family::ipv4) == *transport_address::from("192.0.2.5", 3478));
}

TEST_CASE("with_redis_users: Redis's users and secrets join the file's; the file's keys win") {
    turn_runtime base{turn_settings{}, ferry::auth::credential_store("north.gov"), {}};
    base.credentials.add_user("gorst", "from-the-file");
    base.credentials.add_rest_secret("file-secret");
    const auto derived = [](const char* user, const char* password) {
        return ferry::auth::user_keys{ferry::auth::long_term_key(user, "north.gov", password, password_algorithm::md5),
                                      ferry::auth::long_term_key(user, "north.gov", password, password_algorithm::sha256)};
    };
    std::map<std::string, redis_user> users;
    users["gorst"].from_password = derived("gorst", "from-redis");
    users["ninefingers"].from_password = derived("ninefingers", "youhavetoberealistic");
    users["hexed"].key = ferry::auth::parse_hex_key("7da2270ccfa49786e0115366d3a3d14d");
    const auto rt = with_redis_users(base, users, {"redis-secret"});
    const auto now = 1'700'000'000;
    auto keys = rt->credentials.lookup("gorst", password_algorithm::md5, now);
    REQUIRE(keys.count == 1);
    CHECK(keys.keys[0] == ferry::auth::long_term_key("gorst", "north.gov", "from-the-file"));
    keys = rt->credentials.lookup("ninefingers", password_algorithm::md5, now);
    REQUIRE(keys.count == 1);
    CHECK(keys.keys[0] == ferry::auth::long_term_key("ninefingers", "north.gov", "youhavetoberealistic"));
    keys = rt->credentials.lookup("hexed", password_algorithm::md5, now);
    REQUIRE(keys.count == 1);
    CHECK(keys.keys[0].bytes[0] == 0x7d);
    CHECK(rt->credentials.secret_count() == 2);
    CHECK_FALSE(base.credentials.has_user("ninefingers")); // the base is left as it was

    std::vector<std::string> many(10, "s");
    std::size_t left_out = 0;
    const auto capped = with_redis_users(base, {}, many, &left_out);
    CHECK(capped->credentials.secret_count() == ferry::auth::credential_store::max_secrets);
    CHECK(left_out == 10 - (ferry::auth::credential_store::max_secrets - 1));
}

TEST_CASE("config: the redis section") {
    const auto c = parse_config(R"(
redis:
  address: "[::1]:6380"
  username: ferry
  password: hunter2-hunter2
  database: 2
  key_prefix: "prod:"
  lease: 6
  resync_interval: 30
  instance: eu-1
  advertise: ["192.0.2.10:3478", "[2001:db8::10]:3478"]
)");
    CHECK(c.redis.enabled);
    CHECK(c.turn.enabled()); // TURN serves Redis's users even with none in the file
    CHECK(c.redis.host == "::1");
    CHECK(c.redis.port == 6380);
    CHECK(c.redis.username == "ferry");
    CHECK(c.redis.database == 2);
    CHECK(c.redis.key_prefix == "prod:");
    CHECK(c.redis.lease == seconds(6));
    CHECK(c.redis.resync_interval == seconds(30));
    CHECK(c.redis.instance == "eu-1");
    CHECK(c.redis.advertise.size() == 2);
    CHECK(c.redis.configure_notifications);
    CHECK_FALSE(parse_config("redis:\n  configure_notifications: false\n").redis.configure_notifications);

    const auto u = parse_config("redis:\n  address: unix:/run/redis/redis.sock\n");
    CHECK(u.redis.unix_socket == "/run/redis/redis.sock");
    const auto d = parse_config("redis:\n  address: redis.internal\n");
    CHECK(d.redis.host == "redis.internal");
    CHECK(d.redis.port == 6379);
    CHECK_FALSE(parse_config("turn:\n  realm: x\n").redis.enabled);

    for (const char* bad : {"redis:\n  address: host:0\n", "redis:\n  address: host:x\n", "redis:\n  address: unix:\n",
                            "redis:\n  username: u\n", "redis:\n  lease: 1\n", "redis:\n  key_prefix: 'a*'\n",
                            "redis:\n  instance: 'two words'\n", "redis:\n  advertise: [0.0.0.0]\n",
                            "redis:\n  address: unix:/x\n  tls: true\n", "redis:\n  colour: red\n"})
        CHECK_THROWS_AS_MESSAGE(parse_config(bad), config_error, bad);
}

TEST_CASE("reload: the redis section and the realm (with redis) need a restart") {
    auto a = parse_config("redis:\n  address: 127.0.0.1:6379\nturn:\n  realm: one\n");
    auto b = parse_config("redis:\n  address: 127.0.0.1:6380\nturn:\n  realm: two\n");
    const auto keys = restart_needed(a, b);
    CHECK(std::find(keys.begin(), keys.end(), "redis") != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "turn.realm (with redis: its keys are the realm's)") != keys.end());
}

TEST_CASE("fleet quota: a user's allocations on the other instances count; 486 once the fleet holds N") {
    // Declared before the fixture: its handler releases (and tells `changed`) as it goes.
    fleet_view fleet;
    std::vector<std::string> changed;
    turn_fixture f;
    f.shared.join_fleet(&fleet, [&](const std::string& user) { changed.push_back(user); });
    f.settings.allocations_per_user = 3;
    f.rebuild();
    fleet.set_load(load_of("other", 2), f.clock.now() + seconds(10));
    fleet.set_user_count("other", "alice", 2);

    f.allocate(); // 2 elsewhere + 1 here = 3
    CHECK(changed == std::vector<std::string>{"alice"}); // published at once
    CHECK(f.shared.count_of("alice") == 1);
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 486);
    CHECK(f.shared.count_of("alice") == 1);

    // The other instance's lease runs out (it died): its two stop counting.
    fleet.expire(f.clock.now() + seconds(10));
    f.new_port();
    f.allocate();
    CHECK(f.shared.count_of("alice") == 2);
    REQUIRE(f.shared.user_counts().size() == 1);
    CHECK(f.shared.user_counts()[0] == std::pair<std::string, unsigned>{"alice", 2});
}

TEST_CASE("fleet redirect: a draining instance names the least-loaded live one, before the fixed list") {
    fleet_view fleet;
    turn_fixture f;
    f.shared.join_fleet(&fleet, [](const std::string&) {});
    f.settings.alternate_servers = {*transport_address::from("192.0.2.99", 3478)};
    f.rebuild();
    fleet.set_load(load_of("busy", 50, {"192.0.2.1:3478"}), f.clock.now() + seconds(10));
    fleet.set_load(load_of("quiet", 3, {"192.0.2.2:3478"}), f.clock.now() + seconds(10));
    f.turn->start_drain();
    f.get_nonce();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 300);
    CHECK(verify_message_integrity(f.response, f.key().view()));
    REQUIRE(f.response.get<alternate_server>());
    CHECK(f.response.get<alternate_server>()->address == *transport_address::from("192.0.2.2", 3478));

    // The fleet has nobody left who takes clients: the configured list.
    fleet.set_load(load_of("quiet", 3, {"192.0.2.2:3478"}, true), f.clock.now() + seconds(10));
    fleet.set_load(load_of("busy", 50, {"192.0.2.1:3478"}, true), f.clock.now() + seconds(10));
    f.new_port();
    REQUIRE(f.send(f.build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); })));
    CHECK(f.code() == 300);
    CHECK(f.response.get<alternate_server>()->address == *transport_address::from("192.0.2.99", 3478));
}
