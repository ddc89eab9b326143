// The signaling rooms: joining, the peers each side learns of, messages to one or all, leaving,
// join tokens, and every limit's defined answer.
#include "ferry/signaling/rooms.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace ferry::signaling;
using json = nlohmann::json;

namespace {

const auto t0 = steady_time{} + std::chrono::hours(1);

struct fixture {
    hub::policy p;
    std::unique_ptr<hub> h;
    std::int64_t now = 1'800'000'000;

    explicit fixture(room_limits l = {}, std::vector<std::string> secrets = {}) {
        p.limits = l;
        p.token_secrets = std::move(secrets);
        p.unix_now = [this] { return now; };
        p.ice_servers = [](std::uint64_t, std::string_view member) {
            return json::array({{{"urls", json::array({"turn:turn.example.org:3478"})},
                                 {"username", "1800003600:" + std::string(member)},
                                 {"credential", "x"}}})
                .dump();
        };
        h = std::make_unique<hub>(p);
    }

    /// The messages `conn` sent causes, parsed, for each receiver.
    std::vector<std::pair<std::uint64_t, json>> send(std::uint64_t conn, const json& msg, hub::effects* e = nullptr) {
        auto effects = h->on_text(conn, msg.dump(), t0);
        std::vector<std::pair<std::uint64_t, json>> out;
        for (const auto& s : effects.sends) out.emplace_back(s.to, json::parse(s.text));
        if (e != nullptr) *e = effects;
        return out;
    }
    std::string join(std::uint64_t conn, const std::string& room) {
        const auto out = send(conn, {{"type", "join"}, {"room", room}});
        for (const auto& [to, m] : out)
            if (to == conn && m["type"] == "joined") return m["id"];
        return "";
    }
};

} // namespace

TEST_CASE("two members join a room, see each other, and exchange messages") {
    fixture f;
    const auto a = f.join(1, "lobby");
    REQUIRE(!a.empty());
    const auto out = f.send(2, {{"type", "join"}, {"room", "lobby"}});
    REQUIRE(out.size() == 2);
    CHECK(out[0].first == 1);
    CHECK(out[0].second["type"] == "peer-joined");
    const auto b = out[0].second["id"].get<std::string>();
    CHECK(out[1].first == 2);
    CHECK(out[1].second["type"] == "joined");
    CHECK(out[1].second["peers"] == json::array({{{"id", a}}}));
    CHECK(out[1].second["iceServers"][0]["username"] == "1800003600:" + b);

    // A message to one member, and one to all but the sender; the data is passed as it came.
    const json offer{{"sdp", "v=0..."}, {"kind", "offer"}};
    auto got = f.send(1, {{"type", "message"}, {"to", b}, {"data", offer}});
    REQUIRE(got.size() == 1);
    CHECK(got[0].first == 2);
    CHECK(got[0].second == json{{"type", "message"}, {"from", a}, {"data", offer}});
    f.join(3, "lobby");
    got = f.send(2, {{"type", "message"}, {"data", {{"candidate", "..."}}}});
    REQUIRE(got.size() == 2);
    CHECK(got[0].first != 2);
    CHECK(got[1].first != 2);

    // Leaving, by message or by closing, tells those who stay.
    got = f.send(3, {{"type", "leave"}});
    REQUIRE(got.size() == 2);
    CHECK(got[0].second["type"] == "peer-left");
    const auto closed = f.h->on_close(2);
    REQUIRE(closed.sends.size() == 1);
    CHECK(closed.sends[0].to == 1);
    CHECK(f.h->rooms() == 1);
    f.h->on_close(1);
    CHECK(f.h->rooms() == 0);
}

TEST_CASE("bad and out-of-place messages get a defined error, and the connection stays") {
    fixture f;
    auto error_code_of = [&](std::uint64_t conn, const std::string& text) {
        const auto e = f.h->on_text(conn, text, t0);
        REQUIRE(e.sends.size() == 1);
        CHECK_FALSE(e.close);
        return json::parse(e.sends[0].text)["code"].get<std::string>();
    };
    CHECK(error_code_of(1, "not json") == "bad-message");
    CHECK(error_code_of(1, "[1,2]") == "bad-message");
    CHECK(error_code_of(1, R"({"type": 7})") == "bad-message");
    CHECK(error_code_of(1, R"({"type": "dance"})") == "unknown-type");
    CHECK(error_code_of(1, R"({"type": "message", "data": 1})") == "not-joined");
    CHECK(error_code_of(1, R"({"type": "join", "room": "no spaces"})") == "bad-room");
    CHECK(error_code_of(1, R"({"type": "join", "room": ""})") == "bad-room");
    CHECK(error_code_of(1, R"({"type": "join", "room": 5})") == "bad-room");
    f.join(1, "r");
    CHECK(error_code_of(1, R"({"type": "join", "room": "r2"})") == "already-joined");
    CHECK(error_code_of(1, R"({"type": "message", "to": "nobody", "data": 1})") == "no-such-peer");
    // A member of another room cannot be reached.
    const auto other = f.join(2, "elsewhere");
    CHECK(error_code_of(1, json{{"type", "message"}, {"to", other}, {"data", 1}}.dump()) == "no-such-peer");
}

TEST_CASE("limits: a full room, too many rooms, and a flood") {
    room_limits l;
    l.members_per_room = 2;
    l.rooms = 2;
    l.messages_per_second = 10;
    l.message_burst = 20;
    fixture f(l);
    f.join(1, "a");
    f.join(2, "a");
    hub::effects e;
    auto out = f.send(3, {{"type", "join"}, {"room", "a"}}, &e);
    REQUIRE(out.size() == 1);
    CHECK(out[0].second["code"] == "room-full");
    CHECK_FALSE(e.close);
    f.join(3, "b");
    out = f.send(4, {{"type", "join"}, {"room", "c"}}, &e);
    CHECK(out[0].second["code"] == "server-full");
    CHECK(e.close);
    CHECK(e.code == 1013);

    // 100 messages at once: the burst passes, the rest are dropped with one error.
    int delivered = 0, refused = 0;
    for (int i = 0; i < 100; ++i) {
        for (const auto& [to, m] : f.send(1, {{"type", "message"}, {"data", i}})) {
            if (to == 2) ++delivered;
            if (to == 1 && m["code"] == "rate-limited") ++refused;
        }
    }
    CHECK(delivered == 19); // the join took one of the 20
    CHECK(refused == 1);
}

TEST_CASE("join tokens: minted for a room, checked, refused when expired or forged") {
    const std::vector<std::string> secrets{"old-secret", "new-secret"};
    const std::int64_t now = 1'800'000'000;
    const auto token = mint_join_token("new-secret", "standup", now + 60);
    CHECK(check_join_token(secrets, "standup", token, now) == token_verdict::ok);
    CHECK(check_join_token(secrets, "standup", mint_join_token("old-secret", "standup", now + 60), now) == token_verdict::ok);
    CHECK(check_join_token(secrets, "other-room", token, now) == token_verdict::forged);
    CHECK(check_join_token(secrets, "standup", token, now + 61) == token_verdict::expired);
    CHECK(check_join_token(secrets, "standup", mint_join_token("guess", "standup", now + 60), now) == token_verdict::forged);
    CHECK(check_join_token(secrets, "standup", "", now) == token_verdict::missing);
    CHECK(check_join_token(secrets, "standup", "tomorrow.abc", now) == token_verdict::malformed);
    CHECK(check_join_token(secrets, "standup", "123", now) == token_verdict::malformed);
    // A later expiry with the old MAC does not verify.
    CHECK(check_join_token(secrets, "standup", std::to_string(now + 9999) + token.substr(token.find('.')), now) ==
          token_verdict::forged);

    fixture f({}, secrets);
    f.now = now;
    hub::effects e;
    auto out = f.send(1, {{"type", "join"}, {"room", "standup"}}, &e);
    CHECK(out[0].second["code"] == "bad-token");
    CHECK(e.close);
    CHECK(e.code == 1008);
    out = f.send(2, {{"type", "join"}, {"room", "standup"}, {"token", token}}, &e);
    CHECK(out.back().second["type"] == "joined");
    CHECK_FALSE(e.close);
}
