// RFC 8656 §7.2 Receiving an Allocate Request, in the RFC's order: the request's checks
// (steps 2-9), the quotas (step 10), the relayed addresses, then the success response.
#include "ferry/server/turn_handler.hpp"

#include "turn_seal.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/wire.hpp"

#include <openssl/rand.h>

namespace ferry::server {

using namespace ferry::protocol;
using std::chrono::seconds;

std::size_t turn_handler::handle_allocate(const request_context& ctx, const message_view& req,
                                          const auth::auth_result& auth, std::span<std::uint8_t> out) {
    // 1. "...the server MUST require that the request be authenticated." Done by the caller.
    const auto now = clock_.now();
    auto fail = [&](std::uint16_t code) { return error(ctx, req, code, out, &auth.signing_key, auth.sha256); };

    allocate_plan plan;
    if (const auto code = check_allocate(ctx, req, now, plan)) return fail(code);

    // 10. The quotas; a draining or full server sends the client elsewhere.
    if (draining_) return try_alternate(ctx, req, auth, out);
    const std::string user(auth.username);
    const auto& limits = settings_->limits;
    const bool exempt = limits.exempts(ctx.remote.ip);
    const auto source = source_key(ctx.remote.ip, limits.ipv6_prefix);
    switch (take_quota(ctx, user, source, exempt)) {
    case turn_shared::quota::ok: break;
    case turn_shared::quota::user:
    case turn_shared::quota::ip: return fail(error::allocation_quota_reached);
    case turn_shared::quota::total: return try_alternate(ctx, req, auth, out);
    }

    // "If all the checks pass, the server creates the allocation."
    auto a = std::make_unique<allocation>();
    std::optional<std::array<std::uint8_t, 8>> new_token;
    auto undo = [&](std::uint16_t code) {
        for (const auto& r : a->relayed()) relays_.close(r.handle);
        if (a->reserved)
            if (const auto r = shared_.cancel(*a->reserved)) relays_.close(r->handle);
        shared_.release(user, source);
        return fail(code);
    };
    if (const auto code = open_relays(plan, user, now, *a, new_token)) return undo(code);

    // "The server determines the initial value of the time-to-expiry field as follows ..."
    auto life = lifetime_for(req);
    if (life.count() == 0) life = settings_->default_lifetime;
    life = within_credential(life, auth.expires);

    a->tuple = {ctx.remote, ctx.local, ctx.via};
    a->tcp = plan.tcp;
    a->route = {ctx.socket, ctx.wildcard, ctx.local, ctx.remote, ctx.via};
    a->username = user;
    a->quota_source = source;
    a->capped = !exempt;
    a->key = auth.signing_key;
    a->sha256 = auth.sha256;
    a->credential_expires = auth.expires;
    a->created = now;
    a->created_unix = clock_.unix_now();
    a->expires = now + life;
    for (std::size_t i = 0; i < a->relay_count; ++i) a->relays[i].expires = a->expires;

    const auto response = allocate_success(ctx, req, auth, *a, plan.partial, life, new_token, out);
    if (response.empty()) return undo(error::server_error);

    auto& stored = table_.insert(std::move(a));
    remember(stored, req, response);
    ++stats_.allocations_created;
    ++stats_.created_by[static_cast<std::size_t>(ctx.via)][plan.family == address_family::ipv6 ? 1 : 0];
    if (log::enabled(log_level::info))
        log::info("allocation created: user '{}' client {} over {}, {}relay {}{}, lifetime {}s", stored.username,
                  ctx.remote, to_string(ctx.via), stored.tcp ? "TCP " : "", stored.relays[0].advertised,
                  stored.relay_count == 2 ? " and " + stored.relays[1].advertised.to_string() : "", life.count());
    return response.size();
}

std::optional<relay_address> turn_handler::relay_ip_for(const request_context& ctx, address_family f) const {
    for (const auto& r : settings_->relay_addresses)
        if (r.bind.family == f) return r;
    if (settings_->relay_addresses.empty() && ctx.local.ip.family == f && !ctx.local.ip.is_unspecified())
        return relay_address{ctx.local.ip, ctx.local.ip};
    return std::nullopt;
}

// Steps 2-9: what the request asks for, in `p`, or the error code that refuses it (0: none).
std::uint16_t turn_handler::check_allocate(const request_context& ctx, const message_view& req, steady_time now,
                                           allocate_plan& p) {
    // 2. "The server checks if the 5-tuple is currently in use by an existing allocation. If
    //    yes, the server rejects the request with a 437 (Allocation Mismatch) error."
    if (table_.find({ctx.remote, ctx.local, ctx.via}, now) != nullptr) return error::allocation_mismatch;

    // 3. "...If the REQUESTED-TRANSPORT attribute is not included or is malformed, the server
    //    rejects the request with a 400 (Bad Request) error. Otherwise, if the attribute is
    //    included but specifies a protocol that is not supported by the server, the server
    //    rejects the request with a 442 (Unsupported Transport Protocol) error."
    const auto transport_attr = req.get<requested_transport>();
    if (!transport_attr) return error::bad_request;
    const bool tcp = p.tcp = transport_attr->protocol == transport_tcp;
    if (transport_attr->protocol != transport_udp && !tcp) return error::unsupported_transport_protocol;
    // RFC 6062 §5.1: "If the REQUESTED-TRANSPORT attribute is included and specifies a
    //  protocol other than UDP or TCP, the server MUST reject the request with a 442 ... If
    //  the client connection transport is not TCP or TLS, the server MUST reject the request
    //  with a 400 ... If the request contains the DONT-FRAGMENT, EVEN-PORT, or
    //  RESERVATION-TOKEN attribute, the server MUST reject the request with a 400." A TCP
    //  allocation here has one address family, so ADDITIONAL-ADDRESS-FAMILY is refused too.
    if (tcp && ((ctx.via != transport::tcp && ctx.via != transport::tls) || req.has(attribute_type::dont_fragment) ||
                req.has(attribute_type::even_port) || req.has(attribute_type::reservation_token) ||
                req.has(attribute_type::additional_address_family)))
        return error::bad_request;

    // 4. "The request may contain a DONT-FRAGMENT attribute. If it does, but the server does
    //    not support sending UDP datagrams with the DF bit set to 1 ... [420]." Linux can set
    //    DF on a socket (IP_PMTUDISC_DO), so it is supported.
    p.dont_fragment = req.has(attribute_type::dont_fragment);

    // 5. "The server checks if the request contains a RESERVATION-TOKEN attribute. If yes, and
    //    the request also contains an EVEN-PORT or REQUESTED-ADDRESS-FAMILY or
    //    ADDITIONAL-ADDRESS-FAMILY attribute, the server rejects the request with a 400 (Bad
    //    Request) error. Otherwise, it checks to see if the token is valid ... If the token is
    //    not valid for some reason, the server rejects the request with a 508."
    const bool has_token = req.has(attribute_type::reservation_token);
    const auto token = req.get<reservation_token>();
    if (token) p.token = token->token;
    const bool has_even = req.has(attribute_type::even_port);
    const auto even = req.get<even_port>();
    p.even = even.has_value();
    p.reserve_next = even && even->reserve;
    const bool has_family = req.has(attribute_type::requested_address_family);
    const auto family_attr = req.get<requested_address_family>();
    const bool has_additional = req.has(attribute_type::additional_address_family);
    const auto additional = req.get<additional_address_family>();
    if ((has_token && !token) || (has_even && !even) || (has_family && !family_attr) ||
        (has_additional && !additional) || (req.has(attribute_type::lifetime) && !req.get<lifetime>()))
        return error::bad_request;
    if (has_token && (has_even || has_family || has_additional)) return error::bad_request;

    // 6. "...both REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY ... 400."
    if (has_family && has_additional) return error::bad_request;

    // 7. "If the server does not support the address family requested by the client in
    //    REQUESTED-ADDRESS-FAMILY ... 440. If [it] is absent ... the server MUST allocate an
    //    IPv4 relayed transport address."
    auto relay_ip = [&](address_family f) { return relay_ip_for(ctx, f); };
    auto& family = p.family;
    if (family_attr) {
        if (family_attr->family == 0x02) family = address_family::ipv6;
        else if (family_attr->family != 0x01) return error::address_family_not_supported;
    } else if (!relay_ip(address_family::ipv4)) {
        // No IPv4 relay address (none configured, and the client came over IPv6): serve the
        // family the client reached us on rather than refuse an RFC 5766 client.
        family = ctx.local.ip.family;
    }
    const auto primary_ip = relay_ip(family);
    if (!primary_ip) return error::address_family_not_supported;
    p.primary = primary_ip->bind;

    // 8. "...EVEN-PORT attribute with the R bit set to 1 ... and ... ADDITIONAL-ADDRESS-FAMILY
    //    ... 400. Otherwise, the server checks if it can satisfy the request ... 508."
    if (even && even->reserve && has_additional) return error::bad_request;

    // 9. "...ADDITIONAL-ADDRESS-FAMILY ... value is 0x01 (IPv4 address family), then the server
    //    rejects the request with a 400 ... If the server can partially meet the request ...
    //    it includes ADDRESS-ERROR-CODE attribute in the success response."
    if (additional) {
        if (additional->family != 0x02) return error::bad_request;
        if (const auto v6 = relay_ip(address_family::ipv6)) p.additional = v6->bind;
        else p.partial = true;
    }
    return 0;
}

// Step 10: "...reject the request with a 486 (Allocation Quota Reached) error if ... the client
// is trying to exceed some locally defined allocation quota ... based on the username." Beside
// the user's quota, one on the client's address (limits.allocations_per_ip): 486 too, as coturn
// answers for its per-IP quota. The server as a whole full: the caller's 300 or 508.
turn_shared::quota turn_handler::take_quota(const request_context& ctx, const std::string& user,
                                            const ip_address& source, bool exempt) {
    const auto& limits = settings_->limits;
    const auto q = shared_.acquire(user, settings_->allocations_per_user, settings_->allocations_total, source,
                                   exempt ? 0 : limits.allocations_per_ip);
    if (q != turn_shared::quota::ok) ++stats_.quota_refused;
    if (q == turn_shared::quota::ip) {
        ++stats_.quota_ip_refused;
        log_.at(log_level::info, "Allocate from {}: its address holds {} allocations already (limits.allocations_per_ip)",
                ctx.remote, limits.allocations_per_ip);
    }
    return q;
}

// The relayed transport addresses: the reserved one (RESERVATION-TOKEN), an even port that
// reserves N+1 (EVEN-PORT with R), or any port of the range; a listening TCP socket for RFC
// 6062; and an IPv6 one beside when ADDITIONAL-ADDRESS-FAMILY asks (p.partial when it cannot
// be had). Returns the error code, or 0; what it opened is in `a` either way, for the caller
// to close on failure.
std::uint16_t turn_handler::open_relays(allocate_plan& p, const std::string& user, steady_time now, allocation& a,
                                        std::optional<std::array<std::uint8_t, 8>>& new_token) {
    auto advertised_for = [&](const transport_address& local) {
        for (const auto& r : settings_->relay_addresses)
            if (r.bind == local.ip) return transport_address{r.advertised, local.port};
        return local;
    };
    auto add_relay = [&](int handle, const transport_address& local) {
        a.relays[a.relay_count++] = {handle, local, advertised_for(local), {}};
    };

    if (p.tcp) {
        const auto opened = relays_.open_tcp(p.primary);
        if (!opened) return error::insufficient_capacity;
        add_relay(opened->handle, opened->local);
    } else if (p.token) {
        const auto reserved = shared_.take(*p.token, now);
        if (!reserved) return error::insufficient_capacity;
        relays_.adopt(reserved->handle);
        add_relay(reserved->handle, reserved->local);
    } else if (p.reserve_next) {
        for (int attempt = 0; attempt < 8 && a.relay_count == 0; ++attempt) {
            const auto first = relays_.open(p.primary, true, p.dont_fragment, true);
            if (!first) break;
            const auto next = relays_.open_next(*first);
            if (!next) {
                relays_.close(first->handle);
                continue;
            }
            std::array<std::uint8_t, 8> t{};
            RAND_bytes(t.data(), static_cast<int>(t.size()));
            // The reserved port counts against the quotas like an allocation of its own.
            const auto q = shared_.reserve(t, {next->handle, next->local, now + seconds(30), user},
                                           settings_->allocations_per_user, settings_->allocations_total);
            if (q != turn_shared::quota::ok) {
                relays_.close(next->handle);
                relays_.close(first->handle);
                return q == turn_shared::quota::user ? error::allocation_quota_reached : error::insufficient_capacity;
            }
            new_token = t;
            a.reserved = t;
            add_relay(first->handle, first->local);
        }
        if (a.relay_count == 0) return error::insufficient_capacity;
    } else {
        const auto opened = relays_.open(p.primary, p.even, p.dont_fragment);
        if (!opened) return error::insufficient_capacity;
        add_relay(opened->handle, opened->local);
    }
    if (p.additional) {
        const auto opened = relays_.open(*p.additional, false, p.dont_fragment);
        if (opened) add_relay(opened->handle, opened->local);
        else p.partial = true;
    }
    return 0;
}

// "...the server replies with a success response. The success response contains: an
//  XOR-RELAYED-ADDRESS attribute [or two] ..., a LIFETIME attribute ..., a RESERVATION-TOKEN
//  attribute (if a second relayed transport address was reserved), an XOR-MAPPED-ADDRESS
//  attribute containing the client's IP address and port." With ADDRESS-ERROR-CODE when an
//  additional family could not be met (step 9). Empty if it does not fit.
std::span<const std::uint8_t> turn_handler::allocate_success(const request_context& ctx, const message_view& req,
                                                             const auth::auth_result& auth, const allocation& a,
                                                             bool partial, seconds life,
                                                             const std::optional<std::array<std::uint8_t, 8>>& token,
                                                             std::span<std::uint8_t> out) {
    message_writer w(out, make_message_type(method::allocate, message_class::success_response), req);
    for (const auto& r : a.relayed()) xor_relayed_address{r.advertised}.encode(w);
    if (partial) address_error_code{0x02, error::address_family_not_supported, ""}.encode(w);
    lifetime{static_cast<std::uint32_t>(life.count())}.encode(w);
    if (token) reservation_token{*token}.encode(w);
    xor_mapped_address{ctx.remote}.encode(w);
    seal(w, req, software_, &auth.signing_key, auth.sha256);
    return w.finish();
}

} // namespace ferry::server
