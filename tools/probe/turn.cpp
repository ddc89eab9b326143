// ferry-probe turn: the steps a browser's ICE agent takes with a TURN server (RFC 8656), then
// data both ways through the relay to an echo peer the probe runs itself.
//
//   connect -> Allocate (401 challenge) -> signed Allocate -> CreatePermission -> Send/Data
//   round trip -> ChannelBind 0x4000 -> ChannelData round trip -> Refresh 0
#include "probe.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/auth/keys.hpp"
#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/writer.hpp"

#include <array>
#include <ctime>
#include <functional>

namespace ferry::probe {
namespace {

using namespace ferry::protocol;
using attrs_fn = std::function<void(message_writer&)>;

constexpr std::uint16_t probe_channel = 0x4000;

/// One TURN client: answers the long-term credential challenge once and signs every later
/// request (RFC 8489 §9.2); a 438 Stale Nonce is answered with the new nonce, once.
class session {
public:
    session(connection& c, std::chrono::milliseconds timeout, std::string user, std::string password,
            bool userhash = false)
        : c_(c), timeout_(timeout), user_(std::move(user)), password_(std::move(password)), userhash_(userhash) {}

    std::optional<std::vector<std::uint8_t>> request(method m, const attrs_fn& attrs,
                                                     std::vector<std::vector<std::uint8_t>>* others = nullptr) {
        for (int attempt = 0;; ++attempt) {
            auto got = transact(c_, build(m, attrs), timeout_, others);
            if (!got || attempt > 0 || error_code_of(*got) != 438 || !learn(*got)) return got;
        }
    }

    /// Takes REALM and NONCE from a 401 or 438; false when they are missing.
    bool learn(std::span<const std::uint8_t> challenge) {
        message_view m;
        if (m.parse(challenge)) return false;
        const auto r = m.get<realm>();
        const auto n = m.get<nonce>();
        if (!r || !n) return false;
        realm_ = std::string(r->value);
        nonce_ = std::string(n->value);
        if (userhash_) {
            // RFC 8489 §9.2.4: SHA-256 only when the server offers it; PASSWORD-ALGORITHMS is
            // echoed as it came.
            const auto offered = m.get<password_algorithms>();
            if (!offered) return false;
            algorithms_ = *offered;
            bool sha256 = false;
            for (std::size_t i = 0; i < offered->count; ++i)
                sha256 = sha256 || offered->algorithms[i] == static_cast<std::uint16_t>(password_algorithm::sha256);
            if (!sha256) return false;
            key_ = auth::long_term_key(user_, realm_, password_, password_algorithm::sha256);
        } else {
            key_ = auth::long_term_key(user_, realm_, password_);
        }
        return true;
    }
    bool signs() const { return !nonce_.empty(); }
    const std::string& realm_value() const { return realm_; }
    bool verify(const message_view& m) const {
        return userhash_ ? verify_message_integrity_sha256(m, key_.view()) : verify_message_integrity(m, key_.view());
    }

    bool send_raw(std::span<const std::uint8_t> bytes) { return c_.send(bytes); }

private:
    std::vector<std::uint8_t> build(method m, const attrs_fn& attrs) {
        std::vector<std::uint8_t> buf(2048);
        const auto txid = random_transaction_id();
        message_writer w(buf, make_message_type(m, message_class::request), txid);
        attrs(w);
        software{"ferry-probe"}.encode(w);
        if (signs() && userhash_) {
            userhash{auth::user_hash(user_, realm_)}.encode(w);
            realm{realm_}.encode(w);
            nonce{nonce_}.encode(w);
            password_algorithm_attribute{static_cast<std::uint16_t>(password_algorithm::sha256)}.encode(w);
            algorithms_.encode(w);
            w.append_message_integrity_sha256(key_.view());
        } else if (signs()) {
            username{user_}.encode(w);
            realm{realm_}.encode(w);
            nonce{nonce_}.encode(w);
            w.append_message_integrity(key_.view());
        }
        w.append_fingerprint();
        buf.resize(w.finish().size());
        return buf;
    }

    connection& c_;
    std::chrono::milliseconds timeout_;
    std::string user_;
    std::string password_;
    std::string realm_;
    std::string nonce_;
    bool userhash_ = false;
    password_algorithms algorithms_;
    auth::key key_;
};

std::vector<std::uint8_t> random_payload() {
    const auto id = random_transaction_id();
    std::string text = "ferry-probe ";
    static constexpr char hex[] = "0123456789abcdef";
    for (const auto b : id) {
        text += hex[b >> 4];
        text += hex[b & 15];
    }
    text.resize(36, '.'); // a multiple of 4: no ChannelData padding to reason about
    return {text.begin(), text.end()};
}

/// Why an Allocate was refused, in words, for the codes a deployment meets.
std::string allocate_refusal(unsigned code, const message_view& m, const session& s, const options& o) {
    const std::string realm = s.realm_value();
    switch (code) {
    case 401: {
        std::string out;
        if (!o.realm.empty() && o.realm != realm)
            out = "the server's realm is \"" + realm + "\", not \"" + o.realm + "\" as expected; ";
        if (!o.secret.empty())
            return out + "401 again after answering the challenge: the REST shared secret differs from the "
                         "server's (turn.rest_secrets), or this machine's clock is off by more than the "
                         "credential's lifetime";
        return out + "401 again after answering the challenge: the user name or password is wrong for realm \"" +
               realm + "\"";
    }
    case 300: {
        const auto alt = m.get<alternate_server>();
        const auto domain = m.get<alternate_domain>();
        return "300 Try Alternate: the server is draining or full and sends new allocations to " +
               (alt ? alt->address.to_string() : std::string("(no ALTERNATE-SERVER)")) +
               (domain ? " (" + std::string(domain->value) + ")" : std::string()) +
               (s.verify(m) ? "; the redirect's MESSAGE-INTEGRITY checks out" : "; the redirect is NOT signed");
    }
    case 403: return "403 Forbidden: the server refuses this client or user";
    case 437: return "437 Allocation Mismatch: an allocation already exists on this connection";
    case 440: return "440 Address Family not Supported: the server cannot relay this address family";
    case 442: return "442 Unsupported Transport Protocol";
    case 486: return "486 Allocation Quota Reached: this user holds as many allocations as the server allows";
    case 508: return "508 Insufficient Capacity: the server is full, or draining with no alternate configured";
    default: return "the server refused the Allocate with " + error_text(m.bytes());
    }
}

/// Waits for `payload` to come back to the client from `peer`, as a Data indication or as
/// ChannelData on `channel` (0: Data indication). Other traffic is skipped.
bool wait_for_echo(connection& c, std::vector<std::vector<std::uint8_t>>& early, std::span<const std::uint8_t> payload,
                   std::uint16_t channel, std::chrono::milliseconds timeout) {
    auto matches = [&](std::span<const std::uint8_t> bytes) {
        if (channel != 0) {
            const auto cd = parse_channel_data(bytes);
            return cd && cd->channel == channel && std::ranges::equal(cd->data, payload);
        }
        message_view m;
        if (m.parse(bytes) || !m.is(method::data, message_class::indication)) return false;
        const auto d = m.get<data>();
        return d && std::ranges::equal(d->bytes, payload);
    };
    for (const auto& e : early)
        if (matches(e)) return true;
    early.clear();
    const auto deadline = now() + timeout;
    while (now() < deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now());
        const auto got = c.receive(left);
        if (!got) {
            if (c.via() != wire::udp && c.last_error() != 0) return false;
            continue;
        }
        if (matches(*got)) return true;
    }
    return false;
}

} // namespace

int run_turn(const server_url& url, const options& o) {
    report r("turn", url_text(url), o.json);
    std::string user = o.user;
    std::string password = o.password;
    if (!o.secret.empty()) {
        // TURN REST credentials: "expiry:name", and base64(HMAC-SHA1(secret, username)).
        user = std::to_string(std::time(nullptr) + static_cast<std::time_t>(o.rest_ttl)) + ":" +
               (o.user.empty() ? "ferry-probe" : o.user);
        std::array<std::uint8_t, hmac_sha1_size> mac{};
        hmac_sha1({reinterpret_cast<const std::uint8_t*>(o.secret.data()), o.secret.size()},
                  {reinterpret_cast<const std::uint8_t*>(user.data()), user.size()}, mac);
        password = auth::base64_encode(mac);
        r.fact("rest_username", user);
    }

    int not_open = exit_ok;
    auto c = open_connection(r, url, o, not_open);
    if (!c) return not_open;
    auto start = now();
    session s(*c, o.timeout, user, password, o.userhash);
    r.fact("credentials", o.userhash ? "SHA-256, USERHASH" : "MD5, USERNAME");
    // A relay of our own family, so that our echo peer (on our address) can be its peer.
    const bool v6 = c->local().ip.family == address_family::ipv6;
    const attrs_fn udp_relay = [v6](message_writer& w) {
        requested_transport{}.encode(w);
        if (v6) requested_address_family{0x02}.encode(w);
    };

    // 1. An unsigned Allocate: the server answers 401 with its REALM and a NONCE.
    start = now();
    auto got = s.request(method::allocate, udp_relay);
    if (!got) {
        r.step("challenge", false, ms_since(start), "no answer");
        return r.finish(exit_unreachable, no_answer_verdict(url, *c, o.timeout));
    }
    message_view m;
    if (m.parse(*got)) {
        r.step("challenge", false, ms_since(start), "an unparsable answer");
        return r.finish(exit_refused, "the server's answer is not a STUN message: is this a TURN port?");
    }
    bool authenticated = true;
    if (m.klass() == message_class::success_response) {
        authenticated = false;
        r.step("challenge", true, ms_since(start), "none: the server relays without authentication");
    } else if (error_code_of(*got) == 401 && s.learn(*got)) {
        r.step("challenge", true, ms_since(start), "401 with realm \"" + s.realm_value() + "\"");
        r.fact("realm", s.realm_value());
        if (user.empty()) return r.finish(exit_usage, "the server wants credentials: pass --user and --password, or --secret");
        // 2. The same Allocate, signed.
        start = now();
        got = s.request(method::allocate, udp_relay);
        if (!got) {
            r.step("allocate", false, ms_since(start), "no answer");
            return r.finish(exit_unreachable, no_answer_verdict(url, *c, o.timeout));
        }
    } else {
        r.step("challenge", false, ms_since(start), error_text(*got));
        return r.finish(exit_refused, "the server answered the first Allocate with " + error_text(*got) +
                                          " instead of a 401 challenge with REALM and NONCE");
    }
    if (m.parse(*got) || m.klass() != message_class::success_response) {
        const auto code = error_code_of(*got);
        r.step("allocate", false, ms_since(start), error_text(*got));
        return r.finish(exit_refused, allocate_refusal(code, m, s, o));
    }
    const auto relayed = m.get<xor_relayed_address>();
    const auto mapped = m.get<xor_mapped_address>();
    const auto lifetime_s = m.get<lifetime>();
    if (!relayed) {
        r.step("allocate", false, ms_since(start), "no XOR-RELAYED-ADDRESS");
        return r.finish(exit_refused, "the Allocate succeeded without a relayed address");
    }
    if (authenticated && !s.verify(m)) {
        r.step("allocate", false, ms_since(start), "the answer's MESSAGE-INTEGRITY does not check out");
        return r.finish(exit_refused, "the server's answer is not signed with our key: something between us "
                                      "and the server altered it");
    }
    r.step("allocate", true, ms_since(start),
           "relayed " + relayed->address.to_string() + (mapped ? ", mapped " + mapped->address.to_string() : "") +
               (lifetime_s ? ", lifetime " + std::to_string(lifetime_s->seconds) + " s" : ""));
    r.fact("relayed_address", relayed->address.to_string());
    if (mapped) r.fact("mapped_address", mapped->address.to_string());

    // 3. The echo peer: ours, on this host, or the one given with --peer.
    std::unique_ptr<udp_socket> own;
    transport_address peer;
    start = now();
    if (!o.peer.empty()) {
        std::string bad;
        const auto u = parse_url(o.peer, bad);
        const auto a = u ? transport_address::from(u->host, u->port) : std::nullopt;
        if (!a) return r.finish(exit_usage, "--peer wants IP:PORT");
        peer = *a;
        r.step("peer", true, ms_since(start), "echo peer " + peer.to_string() + " (given)");
    } else {
        if (c->local().ip.family != relayed->address.ip.family)
            return r.finish(exit_usage, "the relayed address is of another family than ours: pass --peer IP:PORT");
        own = std::make_unique<udp_socket>(c->local().ip);
        if (!own->ok()) return r.finish(exit_refused, "cannot open the echo peer's UDP socket");
        peer = own->local();
        // Behind a NAT the relay must send to the peer's public address: ask the server's STUN
        // service (over UDP, on the URL's port) what it is.
        if (mapped && mapped->address.ip != c->local().ip) {
            std::array<std::uint8_t, 64> buf{};
            message_writer w(buf, make_message_type(method::binding, message_class::request), random_transaction_id());
            const auto req = w.finish();
            const transport_address stun_at{c->remote().ip, url.port};
            if (const auto a = transact(*own, stun_at, req, std::min(o.timeout, std::chrono::milliseconds(1500)))) {
                message_view b;
                if (!b.parse(a->bytes))
                    if (auto x = b.get<xor_mapped_address>()) peer = x->address;
            } else {
                peer = {mapped->address.ip, own->local().port};
            }
        }
        r.step("peer", true, ms_since(start), "echo peer " + own->local().to_string() +
                                                  (peer == own->local() ? "" : ", seen as " + peer.to_string()));
    }
    r.fact("peer_address", peer.to_string());

    // 4. CreatePermission for the peer's IP.
    start = now();
    got = s.request(method::create_permission, [&](message_writer& w) { xor_peer_address{peer}.encode(w); });
    if (!got) {
        r.step("permission", false, ms_since(start), "no answer");
        return r.finish(exit_unreachable, no_answer_verdict(url, *c, o.timeout));
    }
    if (const auto code = error_code_of(*got); code != 0) {
        r.step("permission", false, ms_since(start), error_text(*got));
        if (code == 403)
            return r.finish(exit_refused, "403 Forbidden for peer " + peer.ip.to_string() +
                                              ": the server's peer policy refuses that address (ferry refuses "
                                              "private, loopback and special ranges unless turn.allowed_peer_ranges "
                                              "opens them); try --peer with a public echo peer");
        return r.finish(exit_refused, "CreatePermission refused with " + error_text(*got));
    }
    r.step("permission", true, ms_since(start), "for " + peer.ip.to_string());

    // A first datagram from our peer opens its own NAT's filter toward the relay.
    if (own && peer != own->local()) own->send_to(relayed->address, random_payload());

    std::vector<std::vector<std::uint8_t>> early;
    // Relays one payload (a Send indication, or ChannelData) and waits for it to come back.
    auto round_trip = [&](const char* name, std::uint16_t channel) -> std::optional<std::string> {
        const auto payload = random_payload();
        std::vector<std::uint8_t> out(2048);
        if (channel == 0) {
            message_writer w(out, make_message_type(method::send, message_class::indication), random_transaction_id());
            xor_peer_address{peer}.encode(w);
            data{payload}.encode(w);
            out.resize(w.finish().size());
        } else {
            write_channel_data_header(std::span<std::uint8_t, channel_data_header_size>(out.data(), 4), channel,
                                      static_cast<std::uint16_t>(payload.size()));
            std::copy(payload.begin(), payload.end(), out.begin() + 4);
            out.resize(4 + payload.size());
        }
        const auto t = now();
        s.send_raw(out);
        if (own) {
            std::optional<udp_socket::datagram> d;
            const auto deadline = now() + o.timeout;
            while (now() < deadline) {
                d = own->receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now()));
                if (!d || d->bytes == payload) break;
            }
            if (!d || d->bytes != payload) {
                r.step(name, false, ms_since(t), "the peer received nothing");
                return "the server accepted the permission but relayed nothing to the peer " + peer.to_string() +
                       ": a firewall between the relay ports and the peer, or a peer policy that drops silently";
            }
            own->send_to(d->from, payload);
        }
        if (!wait_for_echo(*c, early, payload, channel, o.timeout)) {
            r.step(name, false, ms_since(t), "nothing came back");
            return std::string(own ? "the peer's answer did not come back through the relay: "
                                   : "no echo came back from " + peer.to_string() + ": is it an echo server? ") +
                   "a firewall in front of the server's relay ports (turn.relay_ports) drops it";
        }
        r.step(name, true, ms_since(t), std::to_string(payload.size()) + " bytes to the peer and back");
        return std::nullopt;
    };

    // 5. Data through the relay: Send indication out, Data indication back.
    if (auto failed = round_trip("send/data", 0)) return r.finish(exit_refused, *failed);

    // 6. ChannelBind, and ChannelData both ways.
    start = now();
    got = s.request(
        method::channel_bind,
        [&](message_writer& w) {
            channel_number{probe_channel}.encode(w);
            xor_peer_address{peer}.encode(w);
        },
        &early);
    if (!got || error_code_of(*got) != 0) {
        r.step("channel-bind", false, ms_since(start), got ? error_text(*got) : "no answer");
        if (!got) return r.finish(exit_unreachable, no_answer_verdict(url, *c, o.timeout));
        return r.finish(exit_refused, "ChannelBind refused with " + error_text(*got));
    }
    r.step("channel-bind", true, ms_since(start), "channel 0x4000 to " + peer.to_string());
    if (auto failed = round_trip("channel-data", probe_channel)) return r.finish(exit_refused, *failed);

    // 7. Release the allocation.
    start = now();
    got = s.request(method::refresh, [](message_writer& w) { lifetime{0}.encode(w); }, &early);
    if (!got || error_code_of(*got) != 0) {
        r.step("release", false, ms_since(start), got ? error_text(*got) : "no answer");
        return r.finish(got ? exit_refused : exit_unreachable, "Refresh with lifetime 0 failed");
    }
    r.step("release", true, ms_since(start), "Refresh lifetime 0");
    return r.finish(exit_ok, std::string("TURN works over ") + std::string(to_string(url.via)) +
                                 (authenticated ? "" : " (WITHOUT authentication: anyone may relay through it)") +
                                 ": relayed " + relayed->address.to_string() + ", data both ways by Send/Data and ChannelData");
}

} // namespace ferry::probe
