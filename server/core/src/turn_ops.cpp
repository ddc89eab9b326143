// What operations ask of the TURN handler: a reload's new runtime (and the revocations it
// brings), the gauges a scrape reads, authentication failures by reason, the signed 300 Try
// Alternate of a draining or full server, and the usage record of an ending allocation.
#include "ferry/server/turn_handler.hpp"

#include "turn_seal.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/server/log.hpp"

#include <algorithm>

namespace ferry::server {

using namespace ferry::protocol;

std::size_t turn_handler::reconfigure(std::shared_ptr<const turn_runtime> next) {
    runtime_ = std::move(next);
    settings_ = &runtime_->settings;
    credentials_ = &runtime_->credentials;
    policy_ = &runtime_->policy;
    // Revocation: an allocation lives on only while its credential still would authenticate.
    // A static user keeps it while configured (under its new key if the password changed); a
    // TURN REST one while one of the secrets still derives the key it signed with.
    const auto now = clock_.unix_now();
    std::vector<allocation*> revoked;
    table_.for_each([&](allocation& a) {
        a.capped = !settings_->limits.exempts(a.tuple.client.ip);
        const auto keys = credentials_->lookup(a.username, a.key.algorithm, now);
        const auto begin = keys.keys.begin();
        const auto end = begin + static_cast<long>(keys.count);
        if (keys.count == 0) revoked.push_back(&a);
        else if (std::find(begin, end, a.key) != end) return;
        else if (!a.credential_expires && keys.count == 1) a.key = keys.keys[0]; // a new password
        else revoked.push_back(&a);
    });
    for (auto* a : revoked) {
        a->ended = end_reason::revoked;
        ++stats_.revoked;
        table_.erase(*a);
    }
    return revoked.size();
}

void turn_handler::gauges(turn_gauges& g, bool per_user) const {
    table_.for_each([&](const allocation& a) {
        const auto family = a.relays[0].local.ip.family == address_family::ipv6 ? 1 : 0;
        ++g.allocations[static_cast<std::size_t>(a.tuple.via)][family];
        g.permissions += a.permissions.size();
        g.channels += a.channels.size();
        g.tcp_links += a.links.size();
        if (per_user) {
            auto& u = g.users[a.username];
            ++u.allocations;
            u.to_peer_bytes += a.counters.to_peer_bytes;
            u.to_client_bytes += a.counters.to_client_bytes;
        }
    });
}

void turn_handler::count_failure(const auth::auth_result& auth) {
    switch (auth.failure) {
    case auth::auth_failure::unknown_user: ++stats_.auth_unknown_user; break;
    case auth::auth_failure::bad_integrity: ++stats_.auth_bad_integrity; break;
    case auth::auth_failure::expired_credential: ++stats_.auth_expired; break;
    case auth::auth_failure::none: break;
    }
}

std::size_t turn_handler::try_alternate(const request_context& ctx, const message_view& req,
                                        const auth::auth_result& auth, std::span<std::uint8_t> out) {
    const auto& alternates = settings_->alternate_servers;
    const transport_address* pick = nullptr;
    // In a fleet, the least-loaded live instance that takes clients; else the configured list.
    // RFC 8489 §10: the alternate must be of the family the client used to reach us.
    std::optional<transport_address> from_fleet;
    if (shared_.fleet() != nullptr) from_fleet = shared_.fleet()->least_loaded(ctx.remote.ip.family);
    if (from_fleet) pick = &*from_fleet;
    for (std::size_t i = 0; i < alternates.size() && pick == nullptr; ++i) {
        const auto& a = alternates[(next_alternate_ + i) % alternates.size()];
        if (a.ip.family == ctx.remote.ip.family) {
            pick = &a;
            next_alternate_ = (next_alternate_ + i + 1) % alternates.size();
        }
    }
    if (pick == nullptr) return error(ctx, req, error::insufficient_capacity, out, &auth.signing_key, auth.sha256);
    ++stats_.redirected;
    // Sent only after the request authenticated, and signed: nobody can forge a redirect.
    message_writer w(out, make_message_type(req.method(), message_class::error_response), req);
    error_code{error::try_alternate, ""}.encode(w);
    alternate_server{*pick}.encode(w);
    // REALM and a fresh NONCE: a client sends its next Allocate, to the alternate, with these
    // (libwebrtc does). With turn.nonce_secret shared, the alternate accepts the nonce.
    realm{credentials_->realm()}.encode(w);
    nonce{nonces_.issue({ctx.remote, static_cast<std::uint8_t>(ctx.via)}, clock_.unix_now())}.encode(w);
    if ((ctx.via == transport::tls || ctx.via == transport::dtls) && !settings_->alternate_domain.empty())
        alternate_domain{settings_->alternate_domain}.encode(w);
    seal(w, req, software_, &auth.signing_key, auth.sha256);
    log_.at(log_level::debug, "{} Allocate from {}: 300, try {}", to_string(ctx.via), ctx.remote, *pick);
    return w.finish().size();
}

void turn_handler::on_removed(allocation& a) {
    for (const auto& r : a.relayed()) relays_.close(r.handle);
    // The port it reserved (EVEN-PORT R) goes with it, unless an Allocate has claimed it.
    if (a.reserved)
        if (const auto r = shared_.cancel(*a.reserved)) relays_.close(r->handle);
    for (const auto& l : a.links) {
        links_.erase(l.id);
        shared_.drop_connection(l.id);
        relays_.close_tcp(l.id);
    }
    shared_.release(a.username, a.quota_source);
    if (!log::enabled(log_level::info)) return;
    // The usage record: what operators bill from and investigate abuse with.
    const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - a.created).count();
    std::string relayed = a.relays[0].advertised.to_string();
    if (a.relay_count == 2) {
        relayed += ' ';
        relayed += a.relays[1].advertised.to_string();
    }
    log::event(log_level::info, "allocation ended",
               {log::field("user", a.username), log::field("client", a.tuple.client.to_string()),
                log::field("transport", to_string(a.tuple.via)), log::field("relayed", relayed),
                log::field("tcp_relay", a.tcp), log::field("start", log::timestamp(a.created_unix)),
                log::field("duration_s", static_cast<double>(lasted) / 1000.0),
                log::field("to_peer_packets", a.counters.to_peer_packets),
                log::field("to_peer_bytes", a.counters.to_peer_bytes),
                log::field("to_client_packets", a.counters.to_client_packets),
                log::field("to_client_bytes", a.counters.to_client_bytes),
                log::field("reason", to_string(a.ended))});
}

} // namespace ferry::server
