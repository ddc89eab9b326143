#include "ferry/server/turn_handler.hpp"

#include "turn_seal.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace ferry::server {

using namespace ferry::protocol;
using std::chrono::seconds;

// --- helpers --------------------------------------------------------------------------------

namespace {

constexpr std::size_t max_cached_response = 512;
/// The largest unauthenticated answer, as a multiple of the request that caused it.
constexpr std::size_t max_amplification = 4;

auth::client_identity client_of(const request_context& ctx) {
    return {ctx.remote, static_cast<std::uint8_t>(ctx.via)};
}

std::string_view method_name(std::uint16_t m) {
    switch (static_cast<method>(m)) {
    case method::allocate: return "Allocate";
    case method::refresh: return "Refresh";
    case method::create_permission: return "CreatePermission";
    case method::channel_bind: return "ChannelBind";
    case method::connect: return "Connect";
    case method::connection_bind: return "ConnectionBind";
    default: return "request";
    }
}

} // namespace

turn_handler::turn_handler(const turn_settings& settings, const auth::credential_store& credentials,
                           const auth::nonce_manager& nonces, const peer_policy& policy, turn_shared& shared,
                           relay_provider& relays, const turn_clock& clock, std::string software)
    : settings_(&settings), credentials_(&credentials), nonces_(nonces), policy_(&policy), shared_(shared),
      relays_(relays), clock_(clock), software_(std::move(software)) {
    table_.on_remove = [this](allocation& a) { on_removed(a); };
    table_.on_relay_dropped = [this](allocation&, int handle) { relays_.close(handle); };
}

turn_handler::~turn_handler() { clear(); }

void turn_handler::clear(end_reason why) {
    std::vector<allocation*> all;
    table_.for_each([&](allocation& a) { all.push_back(&a); });
    for (auto* a : all) {
        a->ended = why;
        table_.erase(*a);
    }
    const auto far = clock_.now() + std::chrono::hours(24 * 365);
    table_.sweep(far); // reservations and whatever else remains
}

std::chrono::seconds turn_handler::lifetime_for(const message_view& req) const {
    const auto lt = req.get<lifetime>();
    if (!lt) return settings_->default_lifetime;
    if (lt->seconds == 0) return seconds(0);
    const auto wanted = std::min(seconds(lt->seconds), settings_->max_lifetime);
    return wanted > settings_->default_lifetime ? wanted : settings_->default_lifetime;
}

std::chrono::seconds turn_handler::within_credential(std::chrono::seconds life,
                                                     std::optional<std::int64_t> expires) const {
    // A TURN REST credential's expiry bounds what it can buy (as coturn does): the allocation
    // ends with it, and a later Refresh would be refused anyway.
    if (!expires || life.count() == 0) return life;
    const auto left = std::max<std::int64_t>(*expires - clock_.unix_now(), 1);
    return std::min(life, seconds(left));
}

std::size_t turn_handler::empty_success(allocation& a, const message_view& req, std::span<std::uint8_t> out) {
    message_writer w(out, make_message_type(req.method(), message_class::success_response), req);
    seal(w, req, software_, &a.key, a.sha256);
    const auto response = w.finish();
    remember(a, req, response);
    return response.size();
}

bool turn_handler::peer_permitted(const allocation& a, const transport_address& peer, std::string_view what) {
    if (policy_->permits(peer.ip)) return true;
    ++stats_.peer_refused;
    log_.at(log_level::info, "user '{}': {} to {} refused by the peer policy", a.username, what, peer);
    return false;
}

void turn_handler::remember(allocation& a, const message_view& req, std::span<const std::uint8_t> response) {
    std::copy(req.transaction_id().begin(), req.transaction_id().end(), a.last_txid.begin());
    if (response.size() <= max_cached_response) a.last_response.assign(response.begin(), response.end());
    else a.last_response.clear();
}

std::size_t turn_handler::error(const request_context& ctx, const message_view& req, std::uint16_t code,
                                std::span<std::uint8_t> out, const auth::key* signing, bool sha256,
                                bool challenge, std::span<const std::uint16_t> unknown) {
    message_writer w(out, make_message_type(req.method(), message_class::error_response), req);
    error_code{code, ""}.encode(w);
    if (!unknown.empty()) unknown_attributes::of(unknown).encode(w);
    if (challenge) {
        // RFC 8489 §9.2.4: REALM and a fresh NONCE; the nonce's feature bit promises
        // PASSWORD-ALGORITHMS. No SOFTWARE: an unauthenticated answer stays small.
        realm{credentials_->realm()}.encode(w);
        const auto fresh = nonces_.issue(client_of(ctx), clock_.unix_now());
        nonce{fresh}.encode(w);
        password_algorithms pa;
        for (const auto a : credentials_->offered_algorithms()) pa.algorithms[pa.count++] = static_cast<std::uint16_t>(a);
        pa.encode(w);
        if (req.has(attribute_type::fingerprint)) w.append_fingerprint();
        // Anyone can send a UDP request with a forged source address: an answer to one that has
        // not authenticated must not amplify. Past max_amplification times the request, none is
        // sent (a real client's first Allocate carries REQUESTED-TRANSPORT and is answered).
        // Streams and DTLS sessions have proven their address with a handshake.
        if (ctx.via == transport::udp && w.finish().size() > max_amplification * req.bytes().size()) {
            ++stats_.amplification_dropped;
            log_.at(log_level::debug, "{} {} from {}: {}-byte request left unanswered (a challenge would be {} bytes)",
                    to_string(ctx.via), method_name(req.method()), ctx.remote, req.bytes().size(), w.finish().size());
            return 0;
        }
    } else {
        seal(w, req, software_, signing, sha256);
    }
    log::debug("{} {} from {}: {}", to_string(ctx.via), method_name(req.method()), ctx.remote, code);
    return w.finish().size();
}

// --- requests -------------------------------------------------------------------------------

std::size_t turn_handler::handle_request(const request_context& ctx, const message_view& req,
                                         std::span<std::uint8_t> out) {
    const auto now = clock_.now();
    const five_tuple tuple{ctx.remote, ctx.local, ctx.via};
    allocation* existing = table_.find(tuple, now);

    // RFC 8489 §6.3: a retransmission gets the answer the original got.
    if (existing != nullptr && !existing->last_response.empty() &&
        std::equal(req.transaction_id().begin(), req.transaction_id().end(), existing->last_txid.begin()) &&
        existing->last_response.size() <= out.size()) {
        std::copy(existing->last_response.begin(), existing->last_response.end(), out.begin());
        return existing->last_response.size();
    }

    // RFC 8656 §5: a request other than Allocate (or RFC 6062's ConnectionBind, which arrives
    // on a new connection) on a 5-tuple without an allocation gets 437. Answered before the
    // authentication, bare (28 bytes): it tells a sender nothing it did not know, and a forged
    // source gets no challenge five times the size of its request. Nothing else of the request
    // is looked at.
    if (existing == nullptr && req.method() != static_cast<std::uint16_t>(method::allocate) &&
        req.method() != static_cast<std::uint16_t>(method::connection_bind)) {
        message_writer w(out, make_message_type(req.method(), message_class::error_response), req);
        error_code{error::allocation_mismatch, ""}.encode(w);
        log::debug("{} {} from {}: 437, no allocation", to_string(ctx.via), method_name(req.method()), ctx.remote);
        return w.finish().size();
    }

    // RFC 8656 §5 and RFC 8489 §9.2.4: every TURN request is authenticated with long-term
    // credentials before anything else is looked at; nothing is kept for a client that fails.
    const auto auth = auth::authenticate(req, client_of(ctx), *credentials_, nonces_, clock_.unix_now(),
                                         existing != nullptr ? &existing->key : nullptr,
                                         existing != nullptr ? std::string_view(existing->username) : "");
    // An answer to a request that did not authenticate, over UDP where the source may be forged,
    // costs its source a token (limits.unauthenticated_rate); with none left, no answer.
    if (auth.status != auth::auth_status::ok && ctx.via == transport::udp) {
        const auto& limits = settings_->limits;
        if (!limits.exempts(ctx.remote.ip) &&
            !shared_.unauthenticated.allow(ctx.remote.ip, limits.unauthenticated_rate, limits.unauthenticated_burst,
                                    limits.ipv6_prefix, now)) {
            ++stats_.unauthenticated_limited;
            log_.at(log_level::info, "{} {} from {}: unauthenticated answers to this source are over "
                    "limits.unauthenticated_rate; not answered", to_string(ctx.via), method_name(req.method()), ctx.remote);
            return 0;
        }
    }
    switch (auth.status) {
    case auth::auth_status::ok: break;
    case auth::auth_status::challenge: return error(ctx, req, error::unauthenticated, out, nullptr, false, true);
    case auth::auth_status::bad_request: return error(ctx, req, error::bad_request, out);
    case auth::auth_status::stale_nonce:
        ++stats_.auth_stale_nonce;
        return error(ctx, req, error::stale_nonce, out, nullptr, false, true);
    case auth::auth_status::unauthorized:
        ++stats_.auth_failures;
        count_failure(auth);
        log_.at(log_level::info, "{} {} from {}: wrong credentials for user '{}'", to_string(ctx.via),
                method_name(req.method()), ctx.remote,
                req.get<username>() ? req.get<username>()->value : "");
        return error(ctx, req, error::unauthenticated, out, nullptr, false, true);
    }
    const auth::key* key = &auth.signing_key;

    // RFC 8489 §6.3.1, after authentication: unknown comprehension-required attributes -> 420.
    std::array<std::uint16_t, unknown_attributes::max_types> unknown{};
    if (const auto n = req.unknown_required(unknown))
        return error(ctx, req, error::unknown_attribute, out, key, auth.sha256, false, std::span(unknown).first(n));

    if (req.method() == static_cast<std::uint16_t>(method::allocate))
        return handle_allocate(ctx, req, auth, out);
    if (req.method() == static_cast<std::uint16_t>(method::connection_bind))
        return handle_connection_bind(ctx, req, auth, out);

    // RFC 8656 §5: any other request needs an allocation on this 5-tuple (437), made by the
    // same user (441).
    if (existing == nullptr) return error(ctx, req, error::allocation_mismatch, out, key, auth.sha256);
    if (auth.username != existing->username)
        return error(ctx, req, error::wrong_credentials, out, key, auth.sha256);
    existing->sha256 = auth.sha256;
    existing->credential_expires = auth.expires;

    switch (static_cast<method>(req.method())) {
    case method::refresh: return handle_refresh(*existing, req, out);
    case method::create_permission: return handle_create_permission(*existing, req, out);
    case method::channel_bind:
        // RFC 6062 §5.1: TCP allocations have no channels.
        if (existing->tcp) return error(ctx, req, error::bad_request, out, key, auth.sha256);
        return handle_channel_bind(*existing, req, out);
    case method::connect: return handle_connect(*existing, req, out);
    default: return error(ctx, req, error::bad_request, out, key, auth.sha256);
    }
}

// RFC 8656 §8.2 Receiving a Refresh Request.
std::size_t turn_handler::handle_refresh(allocation& a, const message_view& req, std::span<std::uint8_t> out) {
    const auto now = clock_.now();
    const auth::key key = a.key;
    const bool sha256 = a.sha256;
    const request_context ctx{a.tuple.via, a.tuple.server, a.tuple.client};
    if (req.has(attribute_type::lifetime) && !req.get<lifetime>())
        return error(ctx, req, error::bad_request, out, &key, sha256);

    // "If the server receives a Refresh Request with a REQUESTED-ADDRESS-FAMILY attribute and
    //  the attribute value does not match the address family of the allocation, the server
    //  MUST reply with a 443 (Peer Address Family Mismatch) Refresh error response."
    // In a dual-stack allocation the attribute selects the one relayed address the Refresh
    // is about (RFC 8656 §7.3, §8): refreshed, or deleted with a zero lifetime.
    std::optional<std::size_t> only;
    if (req.has(attribute_type::requested_address_family)) {
        const auto f = req.get<requested_address_family>();
        if (!f) return error(ctx, req, error::bad_request, out, &key, sha256);
        const auto* relay = a.relay_for(static_cast<address_family>(f->family));
        if (relay == nullptr) return error(ctx, req, error::peer_address_family_mismatch, out, &key, sha256);
        only = static_cast<std::size_t>(relay - a.relays.data());
    }

    // "The server computes a value called the 'desired lifetime' ..."
    const auto desired = within_credential(lifetime_for(req), a.credential_expires);

    message_writer w(out, make_message_type(method::refresh, message_class::success_response), req);
    lifetime{static_cast<std::uint32_t>(desired.count())}.encode(w);
    seal(w, req, software_, &key, sha256);
    const auto response = w.finish();

    if (desired.count() == 0 && (!only || a.relay_count == 1)) {
        // "If the 'desired lifetime' is zero, then the request succeeds and the allocation is
        //  deleted." A retransmission will find no allocation and get 437, which RFC 8656 §8.3
        //  tells the client to read as success.
        a.ended = end_reason::deleted;
        table_.erase(a);
        return response.size();
    }
    if (desired.count() == 0) {
        // One family of a dual-stack allocation goes; the other stays as it was.
        relays_.close(table_.drop_relay(a, *only));
    } else {
        // "...the allocation's time-to-expiry is set to the 'desired lifetime'."
        for (std::size_t i = 0; i < a.relay_count; ++i)
            if (!only || i == *only) a.relays[i].expires = now + desired;
    }
    a.expires = now;
    for (const auto& r : a.relayed()) a.expires = std::max(a.expires, r.expires);
    remember(a, req, response);
    return response.size();
}

// RFC 8656 §10.2 Receiving a CreatePermission Request.
std::size_t turn_handler::handle_create_permission(allocation& a, const message_view& req,
                                                   std::span<std::uint8_t> out) {
    const auto now = clock_.now();
    const request_context ctx{a.tuple.via, a.tuple.server, a.tuple.client};
    auto fail = [&](std::uint16_t code) { return error(ctx, req, code, out, &a.key, a.sha256); };

    // "The CreatePermission request MUST contain at least one XOR-PEER-ADDRESS attribute and
    //  MAY contain multiple such attributes. If no such attribute exists, or if any of these
    //  attributes are invalid, then a 400 (Bad Request) error is returned. If the request is
    //  valid, but the server is unable to satisfy the request due to some capacity limit or
    //  similar, then a 508 (Insufficient Capacity) error is returned."
    std::array<ip_address, message_view::max_attributes> peers{};
    std::size_t count = 0;
    for (const auto& attr : req.attributes()) {
        if (attr.type != static_cast<std::uint16_t>(attribute_type::xor_peer_address)) continue;
        const auto peer = xor_peer_address::decode(req.value(attr), req);
        if (!peer) return fail(error::bad_request);
        // "If an XOR-PEER-ADDRESS attribute contains an address of an address family that is
        //  not the same as that of a relayed transport address for the allocation, the server
        //  MUST generate an error response with the 443 (Peer Address Family Mismatch)."
        if (a.relay_for(peer->address.ip.family) == nullptr) return fail(error::peer_address_family_mismatch);
        // "The server MAY impose restrictions on the IP address allowed ... 403 (Forbidden)."
        if (!peer_permitted(a, peer->address, "permission")) return fail(error::forbidden);
        peers[count++] = peer->address.ip;
    }
    if (count == 0) return fail(error::bad_request);

    std::erase_if(a.permissions, [now](const permission& p) { return p.expires <= now; });
    std::size_t added = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const bool known = std::any_of(a.permissions.begin(), a.permissions.end(),
                                       [&](const permission& p) { return p.peer == peers[i]; });
        const bool repeated = std::find(peers.begin(), peers.begin() + static_cast<long>(i), peers[i]) !=
                              peers.begin() + static_cast<long>(i);
        if (!known && !repeated) ++added;
    }
    if (a.permissions.size() + added > settings_->permissions_per_allocation) {
        ++stats_.quota_refused;
        return fail(error::insufficient_capacity);
    }

    // "...the server installs or refreshes a permission for the IP address contained in each
    //  XOR-PEER-ADDRESS attribute ... The port portion of each attribute is ignored."
    for (std::size_t i = 0; i < count; ++i) {
        auto it = std::find_if(a.permissions.begin(), a.permissions.end(),
                               [&](const permission& p) { return p.peer == peers[i]; });
        if (it != a.permissions.end()) it->expires = now + permission_lifetime;
        else a.permissions.push_back({peers[i], now + permission_lifetime});
    }

    // "The server then responds with a CreatePermission success response. There are no
    //  mandatory attributes in the success response."
    return empty_success(a, req, out);
}

// RFC 8656 §12.2 Receiving a ChannelBind Request.
std::size_t turn_handler::handle_channel_bind(allocation& a, const message_view& req,
                                              std::span<std::uint8_t> out) {
    const auto now = clock_.now();
    const request_context ctx{a.tuple.via, a.tuple.server, a.tuple.client};
    auto fail = [&](std::uint16_t code) { return error(ctx, req, code, out, &a.key, a.sha256); };

    // "The server checks the following:
    //  - The request contains both a CHANNEL-NUMBER and an XOR-PEER-ADDRESS attribute;
    //  - The channel number is in the range 0x4000 through 0x4FFF (inclusive);
    //  - The channel number is not currently bound to a different transport address (same
    //    transport address is OK);
    //  - The transport address is not currently bound to a different channel number.
    //  If any of these tests fail, the server replies with a 400 (Bad Request) error."
    // RFC 5766 clients (coturn 4.6's turnutils_uclient among them) use 0x4000-0x7FFF; the
    // upper part is accepted for them, as the demultiplexer already does.
    const auto number = req.get<channel_number>();
    const auto peer_attr = req.get<xor_peer_address>();
    if (!number || !peer_attr) return fail(error::bad_request);
    if (!is_channel_number(number->number)) return fail(error::bad_request);
    const auto& peer = peer_attr->address;
    for (const auto& c : a.channels) {
        if (c.expires + channel_cooldown <= now) continue; // free again (RFC 8656 §12)
        if (c.number == number->number && c.peer != peer) return fail(error::bad_request);
        if (c.peer == peer && c.number != number->number) return fail(error::bad_request);
    }
    // "If the XOR-PEER-ADDRESS attribute contains an address of an address family that is not
    //  the same as that of a relayed transport address for the allocation, the server MUST
    //  generate an error response with the 443 (Peer Address Family Mismatch) response code."
    if (a.relay_for(peer.ip.family) == nullptr) return fail(error::peer_address_family_mismatch);
    // "The server MAY impose restrictions on the IP address and port values allowed in the
    //  XOR-PEER-ADDRESS attribute; if a value is not allowed, the server rejects the request
    //  with a 403 (Forbidden) error."
    if (!peer_permitted(a, peer, "channel")) return fail(error::forbidden);

    // "If the request is valid, but the server is unable to fulfill the request due to some
    //  capacity limit or similar, the server replies with a 508 (Insufficient Capacity) error."
    std::erase_if(a.channels, [now](const channel_binding& c) { return c.expires + channel_cooldown <= now; });
    std::erase_if(a.permissions, [now](const permission& p) { return p.expires <= now; });
    auto channel = std::find_if(a.channels.begin(), a.channels.end(),
                                [&](const channel_binding& c) { return c.number == number->number; });
    auto perm = std::find_if(a.permissions.begin(), a.permissions.end(),
                             [&](const permission& p) { return p.peer == peer.ip; });
    if ((channel == a.channels.end() && a.channels.size() >= settings_->channels_per_allocation) ||
        (perm == a.permissions.end() && a.permissions.size() >= settings_->permissions_per_allocation)) {
        ++stats_.quota_refused;
        return fail(error::insufficient_capacity);
    }

    // "...the server creates or refreshes the channel binding using the channel number in the
    //  CHANNEL-NUMBER attribute and the transport address in the XOR-PEER-ADDRESS attribute.
    //  The server also installs or refreshes a permission for the IP address in the
    //  XOR-PEER-ADDRESS attribute as described in Section 9."
    if (channel != a.channels.end()) channel->expires = now + channel_lifetime;
    else a.channels.push_back({number->number, peer, now + channel_lifetime});
    if (perm != a.permissions.end()) perm->expires = now + permission_lifetime;
    else a.permissions.push_back({peer.ip, now + permission_lifetime});

    // "Otherwise, the server replies with a ChannelBind success response. There are no
    //  required attributes in a successful ChannelBind response."
    return empty_success(a, req, out);
}

// --- relaying -------------------------------------------------------------------------------

// RFC 8656 §11.2 Receiving a Send Indication.
void turn_handler::handle_send(const request_context& ctx, const message_view& ind, packet_sink& sink) {
    const auto now = clock_.now();
    allocation* a = table_.find({ctx.remote, ctx.local, ctx.via}, now);
    if (a == nullptr || a->tcp) return; // indications are never answered: drop
    // "The Send indication MUST contain both an XOR-PEER-ADDRESS attribute and a DATA
    //  attribute. If one of these attributes is missing or invalid, then the message is
    //  discarded."
    const auto peer = ind.get<xor_peer_address>();
    const auto payload = ind.find_value(attribute_type::data);
    if (!peer || !payload) return;
    // RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute is
    // discarded.
    std::array<std::uint16_t, 1> unknown{};
    if (ind.unknown_required(unknown) != 0) return;
    const auto* relay = a->relay_for(peer->address.ip.family);
    if (relay == nullptr) return;
    // "The server also checks that there is a permission installed for the IP address
    //  contained in the XOR-PEER-ADDRESS attribute. If no such permission exists, the message
    //  is discarded."
    if (!a->permits(peer->address.ip, now)) {
        ++stats_.dropped_no_permission;
        return;
    }
    if (!within_bandwidth(*a, a->to_peer_budget, payload->size(), now)) return;
    sink.to_peer(relay->handle, peer->address, *payload);
    ++a->counters.to_peer_packets;
    a->counters.to_peer_bytes += payload->size();
    ++stats_.relayed_to_peer;
    stats_.relayed_to_peer_bytes += payload->size();
}

// RFC 8656 §12.6 Receiving a ChannelData Message.
void turn_handler::handle_channel_data(const request_context& ctx, std::span<const std::uint8_t> bytes,
                                       packet_sink& sink) {
    const auto now = clock_.now();
    // "If the ChannelData message is received in a UDP datagram, and if the UDP datagram is too
    //  short to contain the claimed length of the ChannelData message ... silently discarded."
    const auto cd = parse_channel_data(bytes);
    if (!cd) return;
    allocation* a = table_.find({ctx.remote, ctx.local, ctx.via}, now);
    if (a == nullptr) return;
    // "If the ChannelData message is received on a channel that is not bound to any peer, then
    //  the message is silently discarded." "...the receipt of a ChannelData message MUST NOT
    //  refresh either the channel binding or the permission towards the peer."
    const auto* ch = a->channel_by_number(cd->channel, now);
    if (ch == nullptr) return;
    if (!a->permits(ch->peer.ip, now)) {
        ++stats_.dropped_no_permission;
        return;
    }
    const auto* relay = a->relay_for(ch->peer.ip.family);
    if (relay == nullptr) return;
    if (!within_bandwidth(*a, a->to_peer_budget, cd->data.size(), now)) return;
    sink.to_peer(relay->handle, ch->peer, cd->data);
    ++a->counters.to_peer_packets;
    a->counters.to_peer_bytes += cd->data.size();
    ++stats_.relayed_to_peer;
    stats_.relayed_to_peer_bytes += cd->data.size();
}

// RFC 8656 §11.3 Receiving a UDP Datagram, and §12.7 Relaying Data from the Peer.
void turn_handler::handle_peer(int handle, const transport_address& peer, std::span<const std::uint8_t> payload,
                               packet_sink& sink) {
    const auto now = clock_.now();
    allocation* a = table_.find_by_relay(handle, now);
    if (a == nullptr) return;
    // §9: "If no match is found, relaying is not permitted and the server silently discards
    //  the UDP datagram."
    if (!a->permits(peer.ip, now)) {
        ++stats_.dropped_no_permission;
        return;
    }
    if (!within_bandwidth(*a, a->to_client_budget, payload.size(), now)) return;
    auto buf = sink.buffer();
    if (buf.empty()) return;
    std::span<const std::uint8_t> message;
    if (const auto* ch = a->channel_by_peer(peer, now)) {
        // §12.5: "...the server MUST use the ChannelData message if a channel has been bound to
        //  the peer." Over streams (TCP, TLS) it is padded to a multiple of four.
        const bool stream = a->route.via == transport::tcp || a->route.via == transport::tls;
        const std::size_t padded_size = stream ? protocol::padded(payload.size()) : payload.size();
        if (channel_data_header_size + padded_size > buf.size() || payload.size() > 0xFFFF) return;
        write_channel_data_header(buf.first<channel_data_header_size>(), ch->number,
                                  static_cast<std::uint16_t>(payload.size()));
        std::memcpy(buf.data() + channel_data_header_size, payload.data(), payload.size());
        std::memset(buf.data() + channel_data_header_size + payload.size(), 0, padded_size - payload.size());
        message = buf.first(channel_data_header_size + padded_size);
    } else {
        // §11.3: "...the server forms and sends a Data indication. The Data indication MUST
        //  contain both an XOR-PEER-ADDRESS and a DATA attribute."
        std::array<std::uint8_t, transaction_id_size> txid{};
        const auto n = ++indication_counter_;
        std::memcpy(txid.data(), &n, sizeof n);
        std::memcpy(txid.data() + sizeof n, &handle, sizeof(std::uint32_t));
        message_writer w(buf, make_message_type(method::data, message_class::indication), txid);
        xor_peer_address{peer}.encode(w);
        data{payload}.encode(w);
        message = w.finish();
        if (message.empty()) return;
    }
    ++a->counters.to_client_packets;
    a->counters.to_client_bytes += payload.size();
    ++stats_.relayed_to_client;
    stats_.relayed_to_client_bytes += payload.size();
    // Last: handing the message over may end the client's connection (a reader over its
    // buffer cap), so nothing touches the allocation after this.
    sink.to_client(a->route, message);
}

// limits.allocation_bytes_per_second (each direction of each allocation) and this worker's
// share of limits.relay_bytes_per_second; application data bytes are counted.
bool turn_handler::within_bandwidth(allocation& a, token_bucket& budget, std::size_t bytes, steady_time now) {
    if (!a.capped) return true;
    const auto& limits = settings_->limits;
    // A second's worth may be saved up, and always one datagram of the largest size.
    constexpr double largest = 65535;
    const double per_allocation = limits.allocation_bytes_per_second;
    const double total = limits.relay_bytes_per_second;
    const auto n = static_cast<double>(bytes);
    if (budget.take(n, per_allocation, std::max(per_allocation, largest), now) &&
        worker_budget_.take(n, total, std::max(total, largest), now))
        return true;
    ++stats_.bandwidth_dropped;
    stats_.bandwidth_dropped_bytes += bytes;
    log_.at(log_level::info, "user '{}' client {}: a {}-byte packet over the bandwidth cap dropped", a.username,
            a.tuple.client, bytes);
    return false;
}

void turn_handler::client_closed(const five_tuple& tuple) {
    if (allocation* a = table_.find(tuple, clock_.now())) {
        a->ended = end_reason::connection_closed;
        table_.erase(*a);
    }
}

bool turn_handler::has_allocation(const five_tuple& tuple) { return table_.find(tuple, clock_.now()) != nullptr; }

void turn_handler::sweep() {
    const auto now = clock_.now();
    const auto before = table_.size();
    table_.sweep(now);
    stats_.allocations_expired += before - table_.size();
    // RFC 6062 §5.3: "If the client does not send a ConnectionBind ... within 30 seconds, the
    //  server MUST close the peer data connection."
    std::vector<std::pair<allocation*, std::uint32_t>> stale;
    for (const auto& [id, a] : links_)
        for (const auto& l : a->links)
            if (l.id == id && l.st != tcp_link::state::bound && l.expires <= now) stale.emplace_back(a, id);
    for (const auto& [a, id] : stale) drop_link(*a, id, true);
    for (const auto& r : shared_.expire(now)) relays_.close(r.handle);
}

} // namespace ferry::server
