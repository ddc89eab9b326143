// A TURN handler with fake sockets and a manual clock, and a client that signs its requests
// the way real clients do (401 first, then long-term credentials).
#pragma once

#include "hex.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/turn_handler.hpp"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <set>
#include <vector>

namespace ferry::test {

using namespace ferry::protocol;
using namespace ferry::server;

struct manual_clock final : turn_clock {
    steady_time mono = steady_time{} + std::chrono::hours(1000);
    std::int64_t unix = 1'800'000'000;
    steady_time now() const override { return mono; }
    std::int64_t unix_now() const override { return unix; }
    void advance(std::chrono::seconds s) {
        mono += s;
        unix += s.count();
    }
};

struct fake_relays final : relay_provider {
    int next_handle = 100;
    std::uint16_t next_port = 50000;
    std::map<int, transport_address> open_sockets;
    std::set<int> adopted;
    bool exhausted = false;

    std::optional<opened> open(const ip_address& ip, bool even, bool, bool = false) override {
        if (exhausted) return std::nullopt;
        if (even && next_port % 2 != 0) ++next_port;
        opened o{next_handle++, {ip, next_port}};
        next_port = static_cast<std::uint16_t>(next_port + 2);
        open_sockets[o.handle] = o.local;
        return o;
    }
    std::optional<opened> open_next(const opened& even_port) override {
        opened o{next_handle++, {even_port.local.ip, static_cast<std::uint16_t>(even_port.local.port + 1)}};
        open_sockets[o.handle] = o.local;
        return o;
    }
    void adopt(int handle) override { adopted.insert(handle); }
    void close(int handle) override {
        open_sockets.erase(handle);
        tcp_listeners.erase(handle);
    }

    // RFC 6062
    struct connect_call {
        int handle;
        transport_address peer;
        std::uint32_t id;
    };
    std::set<int> tcp_listeners;
    std::vector<connect_call> connects;
    std::vector<std::pair<std::uint32_t, int>> binds;
    std::set<std::uint32_t> closed_links;
    bool bind_ok = true;
    std::optional<opened> open_tcp(const ip_address& ip) override {
        if (exhausted) return std::nullopt;
        opened o{next_handle++, {ip, next_port}};
        next_port = static_cast<std::uint16_t>(next_port + 2);
        tcp_listeners.insert(o.handle);
        return o;
    }
    void connect_tcp(int handle, const transport_address& peer, std::uint32_t id) override {
        connects.push_back({handle, peer, id});
    }
    bool bind_tcp(std::uint32_t id, int stream) override {
        binds.emplace_back(id, stream);
        return bind_ok;
    }
    void close_tcp(std::uint32_t id) override { closed_links.insert(id); }
};

struct recording_sink final : packet_sink {
    struct packet {
        int relay = -1;
        transport_address to;
        std::vector<std::uint8_t> bytes;
    };
    std::vector<packet> to_peers;
    std::vector<packet> to_clients;
    std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(4200);

    std::span<std::uint8_t> buffer() override { return scratch; }
    void to_peer(int relay, const transport_address& peer, std::span<const std::uint8_t> b) override {
        to_peers.push_back({relay, peer, {b.begin(), b.end()}});
    }
    void to_client(const client_route& r, std::span<const std::uint8_t> b) override {
        to_clients.push_back({r.socket, r.remote, {b.begin(), b.end()}});
    }
};

struct turn_fixture {
    turn_settings settings;
    auth::credential_store credentials{"ferry"};
    auth::nonce_manager nonces{std::chrono::seconds(600), auth::nonce_manager::secret{42}};
    peer_policy policy;
    turn_shared shared;
    fake_relays relays;
    manual_clock clock;
    std::unique_ptr<turn_handler> turn;
    stun_handler stun{handler_settings{"ferry-test"}};
    recording_sink sink;

    request_context ctx;
    std::string user = "alice";
    std::string password = "wonderland";
    std::string nonce_text;
    std::vector<std::uint8_t> out = std::vector<std::uint8_t>(1500);
    message_view response;
    std::uint32_t txid_counter = 1;
    std::array<std::uint8_t, 12> last_txid{};

    turn_fixture() {
        credentials.add_user("alice", "wonderland");
        credentials.add_user("bob", "builder");
        ctx.via = transport::udp;
        ctx.local = *transport_address::from("198.51.100.1", 3478);
        ctx.remote = *transport_address::from("203.0.113.7", 40000);
        ctx.socket = 7;
        rebuild();
    }

    void rebuild() {
        turn = std::make_unique<turn_handler>(settings, credentials, nonces, policy, shared, relays, clock, "ferry-test");
        stun.attach(turn.get());
    }

    auth::key key() const { return auth::long_term_key(user, "ferry", password); }

    std::array<std::uint8_t, 12> next_txid() {
        std::array<std::uint8_t, 12> t{};
        store_u32(t.data() + 8, txid_counter++);
        return t;
    }

    /// Builds a request; `signed_` adds USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
    std::vector<std::uint8_t> build(method m, const std::function<void(message_writer&)>& attrs,
                                    bool signed_ = true, message_class c = message_class::request) {
        std::vector<std::uint8_t> buf(1500);
        last_txid = next_txid();
        message_writer w(buf, make_message_type(m, c), last_txid);
        attrs(w);
        if (signed_) {
            username{user}.encode(w);
            realm{"ferry"}.encode(w);
            nonce{nonce_text}.encode(w);
            w.append_message_integrity(key().view());
        }
        auto s = w.finish();
        REQUIRE_FALSE(s.empty());
        return {s.begin(), s.end()};
    }

    /// Sends through the STUN dispatcher; true if there was an answer (parsed into `response`).
    bool send(const std::vector<std::uint8_t>& bytes) {
        const auto r = stun.handle(ctx, bytes, out, &sink);
        if (r.size == 0) return false;
        REQUIRE_FALSE(response.parse(std::span(out).first(r.size)));
        return true;
    }

    /// A signed request, retried once with the fresh nonce on 438, as clients do.
    bool call(method m, const std::function<void(message_writer&)>& attrs) {
        if (!send(build(m, attrs))) return false;
        if (code() == 438) {
            nonce_text = std::string(response.get<nonce>()->value);
            return send(build(m, attrs));
        }
        return true;
    }

    std::uint16_t code() const {
        auto e = response.get<error_code>();
        return e ? e->code : 0;
    }

    /// Gets a nonce the way a client does: an unauthenticated Allocate and its 401.
    void get_nonce() {
        REQUIRE(send(build(method::allocate, [](message_writer& w) { requested_transport{}.encode(w); }, false)));
        REQUIRE(code() == 401);
        nonce_text = std::string(response.get<nonce>()->value);
    }

    /// The client moves to another source port (a new socket or a NAT's remapping): nonces are
    /// bound to the transport address, so it gets a fresh one first.
    void new_port(int delta = 1) {
        ctx.remote.port = static_cast<std::uint16_t>(ctx.remote.port + delta);
        get_nonce();
    }

    /// A full allocation for the current context; returns the relayed address.
    transport_address allocate(const std::function<void(message_writer&)>& extra = {},
                               std::uint8_t transport_protocol = transport_udp) {
        if (nonce_text.empty()) get_nonce();
        REQUIRE(send(build(method::allocate, [&](message_writer& w) {
            requested_transport{transport_protocol}.encode(w);
            if (extra) extra(w);
        })));
        REQUIRE(response.is(method::allocate, message_class::success_response));
        REQUIRE(verify_message_integrity(response, key().view()));
        return response.get<xor_relayed_address>()->address;
    }

    std::uint16_t create_permission(const std::vector<std::string>& peers) {
        call(method::create_permission, [&](message_writer& w) {
            for (const auto& p : peers) xor_peer_address{*transport_address::from(p, 9)}.encode(w);
        });
        return response.klass() == message_class::success_response ? 200 : code();
    }

    std::uint16_t channel_bind(std::uint16_t number, const std::string& peer, std::uint16_t port = 5000) {
        call(method::channel_bind, [&](message_writer& w) {
            channel_number{number}.encode(w);
            xor_peer_address{*transport_address::from(peer, port)}.encode(w);
        });
        return response.klass() == message_class::success_response ? 200 : code();
    }
};

} // namespace ferry::test
