// The YAML configuration: defaults, every key, and errors that name the line.
#include "ferry/server/config.hpp"

#include <doctest/doctest.h>
#include <algorithm>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace ferry::server;

namespace {

std::string error_of(const std::string& yaml) {
    try {
        parse_config(yaml, "test.yaml");
    } catch (const config_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("an empty file gives the defaults") {
    auto c = parse_config("", "test.yaml");
    CHECK(c.threads == 0);
    CHECK(c.software == "ferry");
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].address.to_string() == "0.0.0.0");
    CHECK(c.listen[1].address.to_string() == "::");
    CHECK(c.listen[0].port == default_port);
    CHECK(c.listen[0].udp);
    CHECK(c.listen[0].tcp);
    CHECK_FALSE(c.nat_discovery.alternate_address);
    CHECK(c.limits.tcp_idle_timeout == std::chrono::seconds(30));
    CHECK(c.log.level == log_level::info);
}

TEST_CASE("every key is read") {
    auto c = parse_config(R"(
threads: 3
software: "my server"
listen:
  - address: 127.0.0.1
    port: 5000
    transports: [udp]
  - address: "::1"
    transports: [tcp]
nat_discovery:
  alternate_address: 127.0.0.2
  alternate_port: 5001
limits:
  tcp_idle_timeout: 7
log:
  level: debug
)");
    CHECK(c.threads == 3);
    CHECK(c.software == "my server");
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].port == 5000);
    CHECK(c.listen[0].udp);
    CHECK_FALSE(c.listen[0].tcp);
    CHECK(c.listen[1].port == default_port);
    CHECK_FALSE(c.listen[1].udp);
    CHECK(c.nat_discovery.alternate_address->to_string() == "127.0.0.2");
    CHECK(c.nat_discovery.alternate_port == 5001);
    CHECK(c.limits.tcp_idle_timeout == std::chrono::seconds(7));
    CHECK(c.log.level == log_level::debug);
}

TEST_CASE("software can be turned off") {
    CHECK(parse_config("software: false").software.empty());
    CHECK(parse_config("software: \"\"").software.empty());
    CHECK(parse_config("software: ~").software.empty());
}

TEST_CASE("the shipped example config is valid and matches the defaults") {
    auto shipped = load_config(FERRY_SOURCE_DIR "/conf/ferry.yaml");
    auto defaults = parse_config("");
    CHECK(shipped.threads == defaults.threads);
    CHECK(shipped.software == defaults.software);
    REQUIRE(shipped.listen.size() == defaults.listen.size());
    for (std::size_t i = 0; i < shipped.listen.size(); ++i) {
        CHECK(shipped.listen[i].address == defaults.listen[i].address);
        CHECK(shipped.listen[i].port == defaults.listen[i].port);
    }
    CHECK(shipped.limits.tcp_idle_timeout == defaults.limits.tcp_idle_timeout);
    CHECK(shipped.log.level == defaults.log.level);
}

TEST_CASE("errors are one line naming the file and line") {
    CHECK(error_of("threads: 2\nbogus: 1\n") == "test.yaml:2: unknown key 'bogus'");
    CHECK(error_of("log:\n  level: loud\n").starts_with("test.yaml:2: 'log.level' must be one of"));
    CHECK(error_of("threads: many\n").starts_with("test.yaml:1: 'threads' must be a whole number"));
    CHECK(error_of("threads: 0\n").starts_with("test.yaml:1: 'threads' must be between"));
    CHECK(error_of("listen:\n  - address: 300.1.1.1\n") ==
          "test.yaml:2: 'listen.address' is not an IP address: '300.1.1.1'");
    CHECK(error_of("listen:\n  - address: 1.2.3.4\n    port: 70000\n")
              .starts_with("test.yaml:3: 'listen.port' must be between 1 and 65535"));
    CHECK(error_of("listen:\n  - address: 1.2.3.4\n    transports: [sctp]\n")
              .starts_with("test.yaml:3: unknown transport 'sctp'"));
    CHECK(error_of("listen:\n  - port: 1\n").starts_with("test.yaml:2: a listener needs an 'address'"));
    CHECK(error_of("listen: []\n").starts_with("test.yaml:1: 'listen' names no listener"));
    CHECK(error_of("limits:\n  tcp_idle_timeout: -1\n").starts_with("test.yaml:2:"));
    CHECK(error_of("threads: [1\n").starts_with("test.yaml:"));
    CHECK(error_of("listen:\n  - address: 0.0.0.0\nnat_discovery:\n  alternate_address: 127.0.0.2\n")
              .find("needs a UDP listener on a concrete address") != std::string::npos);
    CHECK(error_of("nat_discovery:\n  alternate_addr: 1.2.3.4\n") ==
          "test.yaml:2: unknown key 'alternate_addr' in 'nat_discovery'");
}

TEST_CASE("a missing file is an error naming it") {
    CHECK_THROWS_WITH_AS(load_config("/nonexistent/ferry.yaml"),
                         "/nonexistent/ferry.yaml: cannot open the file", config_error);
}

TEST_CASE("the turn section") {
    auto c = parse_config(R"(
turn:
  realm: example.org
  users:
    - name: alice
      password: secret
    - name: bob
      key: 0x0123456789abcdef0123456789ABCDEF
  static_auth_secrets: [one, two]
  relay_addresses:
    - address: 10.0.0.5
      advertised: 203.0.113.5
    - address: "2001:db8::5"
  relay_port_min: 50000
  relay_port_max: 50100
  max_lifetime: 1800
  nonce_lifetime: 300
  allowed_peer_ranges: [10.0.0.0/8]
  denied_peer_ranges: ["10.9.0.0/16", "fd00::/8"]
limits:
  allocations_per_user: 3
  allocations_total: 100
  permissions_per_allocation: 8
  channels_per_allocation: 9
)");
    CHECK(c.turn.enabled());
    CHECK(c.turn.realm == "example.org");
    REQUIRE(c.turn.users.size() == 2);
    CHECK(c.turn.users[0].password == "secret");
    REQUIRE(c.turn.users[1].key);
    CHECK((*c.turn.users[1].key)[15] == 0xEF);
    CHECK(c.turn.static_auth_secrets.size() == 2);
    REQUIRE(c.turn.relay_addresses.size() == 2);
    CHECK(c.turn.relay_addresses[0].advertised.to_string() == "203.0.113.5");
    CHECK(c.turn.relay_addresses[1].advertised.to_string() == "2001:db8::5");
    CHECK(c.turn.relay_port_min == 50000);
    CHECK(c.turn.relay_port_max == 50100);
    CHECK(c.turn.max_lifetime == std::chrono::seconds(1800));
    CHECK(c.turn.nonce_lifetime == std::chrono::seconds(300));
    CHECK(c.turn.allowed_peer_ranges.size() == 1);
    CHECK(c.turn.denied_peer_ranges.size() == 2);
    CHECK(c.limits.allocations_per_user == 3);
    CHECK(c.limits.allocations_total == 100);
    CHECK(c.limits.permissions_per_allocation == 8);
    CHECK(c.limits.channels_per_allocation == 9);
}

TEST_CASE("TURN is off without credentials, and the shipped file keeps it off") {
    CHECK_FALSE(parse_config("").turn.enabled());
    const auto shipped = load_config(FERRY_SOURCE_DIR "/conf/ferry.yaml");
    const auto defaults = parse_config("");
    CHECK_FALSE(shipped.turn.enabled());
    CHECK(shipped.turn.realm == defaults.turn.realm);
    CHECK(shipped.turn.relay_port_min == defaults.turn.relay_port_min);
    CHECK(shipped.turn.relay_port_max == defaults.turn.relay_port_max);
    CHECK(shipped.turn.max_lifetime == defaults.turn.max_lifetime);
    CHECK(shipped.turn.nonce_lifetime == defaults.turn.nonce_lifetime);
    CHECK(shipped.limits.max_tcp_connections == defaults.limits.max_tcp_connections);
    CHECK(shipped.limits.max_tcp_connections_per_ip == defaults.limits.max_tcp_connections_per_ip);
    CHECK(shipped.limits.tcp_buffer_bytes == defaults.limits.tcp_buffer_bytes);
    CHECK(shipped.limits.tls_handshake_timeout == defaults.limits.tls_handshake_timeout);
    CHECK(shipped.tls.certificate.empty());
    CHECK(shipped.limits.allocations_per_user == defaults.limits.allocations_per_user);
    CHECK(shipped.limits.allocations_total == defaults.limits.allocations_total);
    CHECK(shipped.limits.permissions_per_allocation == defaults.limits.permissions_per_allocation);
    CHECK(shipped.limits.channels_per_allocation == defaults.limits.channels_per_allocation);
}

TEST_CASE("turn section errors name the line") {
    CHECK(error_of("turn:\n  users:\n    - name: a\n") ==
          "test.yaml:3: user 'a' needs a 'password' or a 'key'");
    CHECK(error_of("turn:\n  users:\n    - name: a\n      key: 0x12\n")
              .starts_with("test.yaml:4: 'key' must be 32 hex digits"));
    CHECK(error_of("turn:\n  allowed_peer_ranges: [10.0.0.0/40]\n")
              .starts_with("test.yaml:2: 'turn.allowed_peer_ranges': '10.0.0.0/40' is not an address range"));
    CHECK(error_of("turn:\n  relay_addresses:\n    - address: 0.0.0.0\n")
              .starts_with("test.yaml:3: a relay address must be concrete"));
    CHECK(error_of("turn:\n  relay_port_min: 60000\n  relay_port_max: 50000\n")
              .starts_with("test.yaml:2: 'turn.relay_port_min' is above"));
    CHECK(error_of("turn:\n  relay_port_min: 80\n").starts_with("test.yaml:2: 'turn.relay_port_min' must be between 1024"));
    CHECK(error_of("turn:\n  static_auth_secret: x\n") == "test.yaml:2: unknown key 'static_auth_secret' in 'turn'");
}

TEST_CASE("tls listeners and the tls section") {
    auto c = parse_config(R"(
listen:
  - address: 0.0.0.0
    port: 5349
    transports: [tls]
tls:
  certificate: /etc/ferry/cert.pem
  private_key: /etc/ferry/key.pem
limits:
  tls_handshake_timeout: 5
)");
    REQUIRE(c.listen.size() == 1);
    CHECK(c.listen[0].tls);
    CHECK_FALSE(c.listen[0].tcp);
    CHECK_FALSE(c.listen[0].udp);
    CHECK(c.tls.certificate == "/etc/ferry/cert.pem");
    CHECK(c.tls.private_key == "/etc/ferry/key.pem");
    CHECK(c.limits.tls_handshake_timeout == std::chrono::seconds(5));
    CHECK_FALSE(c.listen[0].dtls);
    const auto d = parse_config("listen:\n  - address: 0.0.0.0\n    port: 5349\n    transports: [tls, dtls]\n"
                                "tls:\n  certificate: a\n  private_key: b\n");
    REQUIRE(d.listen.size() == 1);
    CHECK(d.listen[0].tls);
    CHECK(d.listen[0].dtls);
    CHECK_FALSE(d.listen[0].udp);
    CHECK(error_of("listen:\n  - address: 0.0.0.0\n    transports: [tls]\n")
              .starts_with("test.yaml:2: a 'tls' or 'dtls' listener needs tls.certificate and tls.private_key"));
    CHECK(error_of("listen:\n  - address: 0.0.0.0\n    transports: [dtls]\n")
              .starts_with("test.yaml:2: a 'tls' or 'dtls' listener needs tls.certificate and tls.private_key"));
    CHECK(error_of("listen:\n  - address: 0.0.0.0\n    transports: [udp, dtls]\ntls:\n  certificate: a\n  private_key: b\n")
              .find("cannot serve both udp and dtls") != std::string::npos);
    CHECK(error_of("listen:\n  - address: 0.0.0.0\n    transports: [quic]\n")
              .find("unknown transport 'quic' (udp, tcp, tls or dtls)") != std::string::npos);
    const auto mixed = parse_config("listen:\n  - address: 0.0.0.0\n    transports: [tcp, tls]\ntls:\n  certificate: a\n  private_key: b\n");
    CHECK(mixed.listen[0].tcp);
    CHECK(mixed.listen[0].tls);
    CHECK(parse_config("").limits.tls_handshake_timeout == std::chrono::seconds(10));
}

TEST_CASE("operations keys: admin, drain_timeout, alternate servers, log format") {
    const auto c = parse_config(R"(
turn:
  users: [{name: a, password: b}]
  alternate_servers: ["192.0.2.10:3479", "[2001:db8::10]:5349", 192.0.2.11]
  alternate_domain: turn2.example.com
admin:
  address: "::1"
  port: 9700
  per_user_metrics: true
drain_timeout: 30
log:
  format: json
)");
    REQUIRE(c.turn.alternate_servers.size() == 3);
    CHECK(c.turn.alternate_servers[0] == *ferry::protocol::transport_address::from("192.0.2.10", 3479));
    CHECK(c.turn.alternate_servers[1] == *ferry::protocol::transport_address::from("2001:db8::10", 5349));
    CHECK(c.turn.alternate_servers[2] == *ferry::protocol::transport_address::from("192.0.2.11", 3478));
    CHECK(c.turn.alternate_domain == "turn2.example.com");
    CHECK(c.admin.enabled);
    CHECK(c.admin.address == *ferry::protocol::ip_address::parse("::1"));
    CHECK(c.admin.port == 9700);
    CHECK(c.admin.per_user_metrics);
    CHECK(c.drain_timeout == std::chrono::seconds(30));
    CHECK(c.log.format == log_format::json);

    const auto defaults = parse_config("");
    CHECK(defaults.admin.enabled);
    CHECK(defaults.admin.address == *ferry::protocol::ip_address::parse("127.0.0.1"));
    CHECK(defaults.admin.port == 9641);
    CHECK_FALSE(defaults.admin.per_user_metrics);
    CHECK(defaults.drain_timeout == std::chrono::seconds(300));
    CHECK(parse_config("admin: ~\n").admin.enabled == false);

    auto message = [](const std::string& yaml) {
        try {
            parse_config(yaml, "f.yaml");
        } catch (const config_error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(message("turn:\n  alternate_servers: [\"0.0.0.0:3478\"]\n").find("f.yaml:2:") == 0);
    CHECK(message("turn:\n  alternate_servers: [\"192.0.2.1:0\"]\n").find("is not an address") != std::string::npos);
    CHECK(message("log:\n  format: xml\n").find("f.yaml:2: 'log.format' must be text or json") == 0);
    CHECK(message("admin:\n  color: red\n").find("unknown key 'color' in 'admin'") != std::string::npos);
    CHECK(message("listen: [{address: 127.0.0.1, port: 9641, transports: [tcp]}]\n").find("TURN listener") !=
          std::string::npos);
}

TEST_CASE("config_keys lists every key the loader accepts, and the loader refuses any other") {
    const auto keys = config_keys();
    CHECK(std::find(keys.begin(), keys.end(), "limits.allocations_total") != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "turn.users.password") != keys.end());
    for (const auto key : keys) CHECK(key.find(' ') == std::string_view::npos);
}

namespace {

// The keys conf/ferry.yaml shows, set or in commented-out examples: "key:" at the start of a
// line (after its indentation, a "# " that comments it out, or a list item's "- "), nested by
// column. Prose comments do not match: their words are not lower-case identifiers.
std::set<std::string> keys_in_yaml(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::set<std::string> keys;
    std::vector<std::pair<std::size_t, std::string>> parents; // column, key
    std::string line;
    while (std::getline(in, line)) {
        const auto first = line.find_first_not_of(' ');
        if (first == std::string::npos) continue;
        if (line[first] == '#') line.erase(first, line.compare(first, 2, "# ") == 0 ? 2 : 1);
        else if (const auto hash = line.find(" #"); hash != std::string::npos) line.resize(hash);
        auto col = line.find_first_not_of(' ');
        if (col == std::string::npos) continue;
        if (line.compare(col, 2, "- ") == 0) col = line.find_first_not_of(' ', col + 2);
        const auto colon = line.find(':', col);
        if (col == std::string::npos || colon == std::string::npos || colon == col) continue;
        if (colon + 1 < line.size() && line[colon + 1] != ' ') continue;
        const auto key = line.substr(col, colon - col);
        if (!std::all_of(key.begin(), key.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }))
            continue;
        while (!parents.empty() && parents.back().first >= col) parents.pop_back();
        std::string dotted;
        for (const auto& p : parents) dotted += p.second + ".";
        keys.insert(dotted + key);
        parents.emplace_back(col, key);
    }
    return keys;
}

// The keys of the README's configuration reference: the first `code` of each table row in the
// section "## Configuration reference".
std::set<std::string> keys_in_readme(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::set<std::string> keys;
    std::string line;
    bool inside = false;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0) inside = line == "## Configuration reference";
        if (!inside || line.rfind("| `", 0) != 0) continue;
        const auto end = line.find('`', 3);
        if (end != std::string::npos) keys.insert(line.substr(3, end - 3));
    }
    return keys;
}

} // namespace

TEST_CASE("every key the loader knows is in conf/ferry.yaml and in the README's reference, and no other") {
    const auto keys = config_keys();
    const std::set<std::string> loader(keys.begin(), keys.end());
    for (const auto& [what, documented] :
         {std::pair{std::string("conf/ferry.yaml"), keys_in_yaml(FERRY_SOURCE_DIR "/conf/ferry.yaml")},
          std::pair{std::string("README.md"), keys_in_readme(FERRY_SOURCE_DIR "/README.md")}}) {
        for (const auto& key : loader) {
            INFO(what, " lacks ", key);
            CHECK(documented.count(key) == 1);
        }
        for (const auto& key : documented) {
            INFO(what, " documents ", key, ", which the loader does not know");
            CHECK(loader.count(key) == 1);
        }
    }
}

TEST_CASE("signaling: off by default, on with its section, checked") {
    CHECK_FALSE(parse_config("threads: 1\n").signaling.enabled);
    const auto c = parse_config(R"(
signaling:
  address: 127.0.0.1
  port: 9443
  token_secrets: [a-secret-of-16-chars]
  public_host: turn.example.org
  members_per_room: 4
  idle_timeout: 30
)");
    CHECK(c.signaling.enabled);
    CHECK(c.signaling.port == 9443);
    CHECK(c.signaling.token_secrets.size() == 1);
    CHECK(c.signaling.public_host == "turn.example.org");
    CHECK(c.signaling.members_per_room == 4);
    CHECK(c.signaling.idle_timeout == std::chrono::seconds(30));
    CHECK(c.signaling.max_message == 65536);
    CHECK_THROWS_WITH_AS(parse_config("signaling:\n  token_secrets: [short]\n"),
                         doctest::Contains("at least 16 characters"), config_error);
    CHECK_THROWS_WITH_AS(parse_config("signaling:\n  tls: true\n"), doctest::Contains("tls.certificate"), config_error);
    CHECK_THROWS_WITH_AS(parse_config("listen:\n  - address: 0.0.0.0\n    port: 8443\nsignaling:\n  port: 8443\n"),
                         doctest::Contains("TURN listener's port"), config_error);
    CHECK_THROWS_WITH_AS(parse_config("signaling:\n  colour: blue\n"), doctest::Contains("unknown key"), config_error);
}

TEST_CASE("config: ${NAME} takes an environment variable's value (a pod's node address), outside comments") {
    ::setenv("FERRY_TEST_NODE_IP", "192.0.2.44", 1);
    ::unsetenv("FERRY_TEST_UNSET");
    const auto c = parse_config("# ${FERRY_TEST_UNSET} in a comment is left alone\n"
                                "redis:\n  advertise: [\"${FERRY_TEST_NODE_IP}:3478\"]\n");
    REQUIRE(c.redis.advertise.size() == 1);
    CHECK(c.redis.advertise[0] == *ferry::protocol::transport_address::from("192.0.2.44", 3478));
    CHECK(expand_environment("a: $x b: $${FERRY_TEST_NODE_IP}", "f") == "a: $x b: $192.0.2.44");
    try {
        parse_config("turn:\n  realm: ${FERRY_TEST_UNSET}\n", "ferry.yaml");
        FAIL("an unset variable was accepted");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()) == "ferry.yaml:2: the environment variable FERRY_TEST_UNSET is not set");
    }
    CHECK_THROWS_AS(parse_config("turn:\n  realm: ${1X}\n"), config_error);
    CHECK_THROWS_AS(parse_config("turn:\n  realm: ${unclosed\n"), config_error);
}
