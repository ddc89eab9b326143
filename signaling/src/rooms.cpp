#include "ferry/signaling/rooms.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/protocol/integrity.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

namespace ferry::signaling {

using json = nlohmann::json;

namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string base64url(std::span<const std::uint8_t> data) {
    auto s = auth::base64_encode(data);
    for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!s.empty() && s.back() == '=') s.pop_back();
    return s;
}

std::string token_mac(std::string_view secret, std::string_view room, std::int64_t expiry) {
    std::string input(room);
    input += '\n';
    input += std::to_string(expiry);
    std::array<std::uint8_t, protocol::hmac_sha256_size> mac{};
    protocol::hmac_sha256(bytes_of(secret), bytes_of(input), mac);
    return base64url(mac);
}

std::string new_member_id() {
    std::array<std::uint8_t, 6> b{};
    RAND_bytes(b.data(), static_cast<int>(b.size()));
    static constexpr char hex[] = "0123456789abcdef";
    std::string id;
    for (const auto x : b) {
        id += hex[x >> 4];
        id += hex[x & 15];
    }
    return id;
}

std::string error_text(std::string_view code, std::string_view message) {
    return json{{"type", "error"}, {"code", code}, {"message", message}}.dump();
}

/// `rate` a second, at most `burst` saved; starts full.
struct bucket {
    double tokens = -1;
    steady_time last{};
    bool take(double rate, double burst, steady_time now) {
        if (tokens < 0) tokens = burst;
        else tokens = std::min(burst, tokens + std::chrono::duration<double>(now - last).count() * rate);
        last = now;
        if (tokens < 1) return false;
        tokens -= 1;
        return true;
    }
};

} // namespace

std::string mint_join_token(std::string_view secret, std::string_view room, std::int64_t expiry) {
    return std::to_string(expiry) + "." + token_mac(secret, room, expiry);
}

token_verdict check_join_token(std::span<const std::string> secrets, std::string_view room, std::string_view token,
                               std::int64_t now) {
    if (token.empty()) return token_verdict::missing;
    const auto dot = token.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 18) return token_verdict::malformed;
    std::int64_t expiry = 0;
    const auto digits = token.substr(0, dot);
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), expiry);
    if (ec != std::errc{} || p != digits.data() + digits.size() || expiry < 0) return token_verdict::malformed;
    const auto mac = token.substr(dot + 1);
    bool good = false;
    for (const auto& secret : secrets) {
        const auto want = token_mac(secret, room, expiry);
        // Compared in constant time: a forger learns nothing from how long a refusal took.
        if (want.size() == mac.size() && CRYPTO_memcmp(want.data(), mac.data(), mac.size()) == 0) good = true;
    }
    if (!good) return token_verdict::forged;
    if (expiry < now) return token_verdict::expired;
    return token_verdict::ok;
}

bool valid_room_name(std::string_view room) {
    return !room.empty() && room.size() <= 64 && std::all_of(room.begin(), room.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

struct hub::state {
    policy p;
    struct member {
        std::string id;
        std::string room; ///< empty until joined
        bucket budget;
        steady_time last_refusal{}; ///< rate-limit errors go out at most once a second
        bool refused_once = false;
    };
    std::unordered_map<std::uint64_t, member> members;       ///< by connection
    std::map<std::string, std::set<std::uint64_t>> rooms;     ///< room -> connections
    std::unordered_map<std::string, std::uint64_t> by_id;    ///< member id -> connection

    void leave(std::uint64_t conn, effects& e) {
        auto it = members.find(conn);
        if (it == members.end() || it->second.room.empty()) return;
        auto& m = it->second;
        auto r = rooms.find(m.room);
        if (r != rooms.end()) {
            r->second.erase(conn);
            const auto left = json{{"type", "peer-left"}, {"id", m.id}}.dump();
            for (const auto other : r->second) e.sends.push_back({other, left});
            if (r->second.empty()) rooms.erase(r);
        }
        by_id.erase(m.id);
        m.room.clear();
    }

    void join(std::uint64_t conn, member& m, const json& msg, effects& e) {
        if (!m.room.empty()) {
            e.sends.push_back({conn, error_text("already-joined", "this connection is in room " + m.room)});
            return;
        }
        const auto room_it = msg.find("room");
        if (room_it == msg.end() || !room_it->is_string() || !valid_room_name(room_it->get_ref<const std::string&>())) {
            e.sends.push_back({conn, error_text("bad-room", "a room is 1-64 characters of A-Z a-z 0-9 . _ -")});
            return;
        }
        const auto& room = room_it->get_ref<const std::string&>();
        if (!p.token_secrets.empty()) {
            std::string token;
            if (const auto t = msg.find("token"); t != msg.end() && t->is_string()) token = t->get<std::string>();
            const auto v = check_join_token(p.token_secrets, room, token, p.unix_now ? p.unix_now() : 0);
            if (v != token_verdict::ok) {
                const char* why = v == token_verdict::missing   ? "this server needs a join token"
                                  : v == token_verdict::expired ? "the join token has expired"
                                                                : "the join token is not valid for this room";
                e.sends.push_back({conn, error_text("bad-token", why)});
                e.close = true;
                e.code = 1008; // policy violation
                e.reason = "join token refused";
                return;
            }
        }
        auto existing = rooms.find(room);
        if (existing == rooms.end() && rooms.size() >= p.limits.rooms) {
            e.sends.push_back({conn, error_text("server-full", "no room for another room; try again later")});
            e.close = true;
            e.code = 1013; // try again later
            e.reason = "too many rooms";
            return;
        }
        if (existing != rooms.end() && existing->second.size() >= p.limits.members_per_room) {
            e.sends.push_back({conn, error_text("room-full", "the room has " + std::to_string(p.limits.members_per_room) +
                                                                 " members already")});
            return;
        }
        auto& members_of = rooms[room];
        json peers = json::array();
        for (const auto other : members_of) peers.push_back({{"id", members.at(other).id}});
        const auto joined_note = json{{"type", "peer-joined"}, {"id", m.id}}.dump();
        for (const auto other : members_of) e.sends.push_back({other, joined_note});
        members_of.insert(conn);
        m.room = room;
        by_id[m.id] = conn;
        json answer{{"type", "joined"}, {"id", m.id}, {"room", room}, {"peers", peers}};
        if (p.ice_servers) {
            const auto servers = p.ice_servers(conn, m.id);
            if (!servers.empty()) answer["iceServers"] = json::parse(servers);
        }
        e.sends.push_back({conn, answer.dump()});
    }

    void relay(std::uint64_t conn, member& m, const json& msg, effects& e) {
        if (m.room.empty()) {
            e.sends.push_back({conn, error_text("not-joined", "join a room first")});
            return;
        }
        const auto data = msg.find("data");
        json out{{"type", "message"}, {"from", m.id}, {"data", data == msg.end() ? json() : *data}};
        const auto to = msg.find("to");
        if (to != msg.end() && !to->is_null()) {
            const auto target = to->is_string() ? by_id.find(to->get<std::string>()) : by_id.end();
            if (target == by_id.end() || members.at(target->second).room != m.room) {
                e.sends.push_back({conn, error_text("no-such-peer", "no member of this room has that id")});
                return;
            }
            e.sends.push_back({target->second, out.dump()});
            return;
        }
        const auto text = out.dump();
        for (const auto other : rooms.at(m.room))
            if (other != conn) e.sends.push_back({other, text});
    }
};

hub::hub(policy p) : s_(std::make_unique<state>()) { s_->p = std::move(p); }
hub::~hub() = default;

hub::effects hub::on_text(std::uint64_t id, std::string_view text, steady_time now) {
    effects e;
    auto [it, fresh] = s_->members.try_emplace(id);
    auto& m = it->second;
    if (fresh) m.id = new_member_id();
    if (!m.budget.take(s_->p.limits.messages_per_second, s_->p.limits.message_burst, now)) {
        // Past the rate the message is dropped; the sender hears so at most once a second.
        if (!m.refused_once || now - m.last_refusal >= std::chrono::seconds(1)) {
            m.refused_once = true;
            m.last_refusal = now;
            e.sends.push_back({id, error_text("rate-limited", "messages are arriving faster than " +
                                                                  std::to_string(static_cast<int>(s_->p.limits.messages_per_second)) +
                                                                  " a second; this one was dropped")});
        }
        return e;
    }
    const auto msg = json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object() || !msg.contains("type") || !msg["type"].is_string()) {
        e.sends.push_back({id, error_text("bad-message", "a message is a JSON object with a string \"type\"")});
        return e;
    }
    const auto& type = msg["type"].get_ref<const std::string&>();
    if (type == "join") s_->join(id, m, msg, e);
    else if (type == "message") s_->relay(id, m, msg, e);
    else if (type == "leave") s_->leave(id, e);
    else e.sends.push_back({id, error_text("unknown-type", "unknown message type \"" + type.substr(0, 32) + "\"")});
    return e;
}

hub::effects hub::on_close(std::uint64_t id) {
    effects e;
    s_->leave(id, e);
    s_->members.erase(id);
    return e;
}

std::size_t hub::rooms() const { return s_->rooms.size(); }
std::size_t hub::members() const { return s_->members.size(); }

} // namespace ferry::signaling
