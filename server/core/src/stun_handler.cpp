#include "ferry/server/stun_handler.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"
#include "ferry/server/turn_handler.hpp"

#include <algorithm>

namespace ferry::server {

using namespace ferry::protocol;

namespace {

bool is_turn_method(std::uint16_t m) {
    switch (static_cast<method>(m)) {
    case method::allocate:
    case method::refresh:
    case method::create_permission:
    case method::channel_bind:
    case method::connect:         // RFC 6062
    case method::connection_bind: return true;
    default: return false;
    }
}

} // namespace

namespace {

/// An answer to a Binding (which needs no authentication, so anyone can forge its source) is at
/// most this many times the size of the request; optional attributes give way first.
constexpr std::size_t binding_amplification = 3;

/// The bytes an attribute with a value of `length` takes.
constexpr std::size_t attribute_size(std::size_t length) { return 4 + padded(length); }

} // namespace

stun_handler::stun_handler(handler_settings settings)
    : settings_(std::move(settings)), classic_software_(settings_.software) {
    classic_software_.resize(padded(classic_software_.size()), ' ');
}

reply stun_handler::handle(const request_context& ctx, std::span<const std::uint8_t> in,
                           std::span<std::uint8_t> out, packet_sink* sink) {
    message_view req;
    if (auto ec = req.parse(in)) {
        ++stats_.dropped;
        garbage_log_.at(log_level::debug, "dropped {} bytes from {} over {}: {}", in.size(),
                        ctx.remote, to_string(ctx.via), ec.message());
        return {};
    }
    // RFC 8489 §7.3: a FINGERPRINT that does not match means this is not STUN; drop it silently.
    if (check_fingerprint(req) == fingerprint_status::invalid) {
        ++stats_.dropped;
        garbage_log_.at(log_level::debug, "dropped message from {}: bad FINGERPRINT",
                        ctx.remote);
        return {};
    }
    // Indications are never answered; a Send indication is relayed. Responses are dropped.
    if (req.klass() != message_class::request) {
        if (turn_ != nullptr && sink != nullptr && req.is(method::send, message_class::indication))
            turn_->handle_send(ctx, req, *sink);
        else
            ++stats_.dropped;
        return {};
    }
    ++stats_.requests;
    const auto r = dispatch(ctx, req, out, sink);
    count(req.method(), out.first(std::min(r.size, out.size())));
    return r;
}

void stun_handler::count(std::uint16_t method, std::span<const std::uint8_t> response) {
    std::size_t m = 0;
    while (m + 1 < counted_methods.size() && counted_methods[m] != method) ++m;
    std::uint16_t code = 0;
    if (response.size() >= header_size) {
        const auto type = load_u16(response.data());
        if (class_of(type) == message_class::success_response) {
            code = 200;
        } else {
            code = 999;
            // The ERROR-CODE attribute we wrote: class in the third byte, number in the fourth.
            for (std::size_t at = header_size; at + 4 <= response.size();) {
                const auto t = load_u16(response.data() + at);
                const auto len = load_u16(response.data() + at + 2);
                if (t == static_cast<std::uint16_t>(attribute_type::error_code) && len >= 4 &&
                    at + 8 <= response.size()) {
                    code = static_cast<std::uint16_t>((response[at + 6] & 0x07) * 100 + response[at + 7]);
                    break;
                }
                at += 4 + padded(len);
            }
        }
    }
    std::size_t c = 0;
    while (c + 1 < counted_codes.size() && counted_codes[c] != code) ++c;
    ++stats_.responses[m][c];
}

reply stun_handler::dispatch(const request_context& ctx, const message_view& req, std::span<std::uint8_t> out,
                             packet_sink* sink) {
    // TURN requests are authenticated before anything else, 420 included (RFC 8489 §6.3).
    // Without a sink (no relay path for this transport) TURN methods get 400 below.
    if (turn_ != nullptr && sink != nullptr && is_turn_method(req.method())) {
        reply r;
        if (ctx.nat != nullptr) { // answer from the socket of the set that was asked
            r.from_ip = ctx.nat->ip;
            r.from_port = ctx.nat->port;
        }
        r.size = turn_->handle_request(ctx, req, out);
        return r;
    }

    // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420 listing them.
    std::array<std::uint16_t, unknown_attributes::max_types> unknown{};
    if (auto n = req.unknown_required(unknown))
        return error_response(ctx, req, error::unknown_attribute, std::span(unknown).first(n), out);

    if (req.method() == static_cast<std::uint16_t>(method::binding))
        return handle_binding(ctx, req, out);

    log::debug("{} request from {}: method {:#05x} not served", to_string(ctx.via),
               ctx.remote, req.method());
    return error_response(ctx, req, error::bad_request, {}, out);
}

// RFC 8489 §6.3 and RFC 5780 §6: the success response carries the client's reflexive address,
// and, where an RFC 5780 set is configured, honours CHANGE-REQUEST, RESPONSE-PORT and PADDING.
reply stun_handler::handle_binding(const request_context& ctx, const message_view& req,
                                   std::span<std::uint8_t> out) {
    reply r;
    if (ctx.nat != nullptr) {
        r.from_ip = ctx.nat->ip;
        r.from_port = ctx.nat->port;
    }

    // RFC 5780 §7.2: CHANGE-REQUEST asks for the answer from another IP and/or port. Only a
    // UDP socket of a configured set can do that; elsewhere the attribute is not supported.
    if (req.has(attribute_type::change_request)) {
        auto cr = req.get<change_request>();
        if (!cr) return error_response(ctx, req, error::bad_request, {}, out);
        if (cr->change_ip || cr->change_port) {
            if (ctx.nat == nullptr) {
                const std::uint16_t attr = static_cast<std::uint16_t>(attribute_type::change_request);
                return error_response(ctx, req, error::unknown_attribute, {&attr, 1}, out);
            }
            r.from_ip ^= cr->change_ip ? 1u : 0u;
            r.from_port ^= cr->change_port ? 1u : 0u;
        }
    }
    // RFC 5780 §7.5: RESPONSE-PORT sends the answer to another port of the same IP.
    if (req.has(attribute_type::response_port)) {
        auto rp = req.get<response_port>();
        if (!rp) return error_response(ctx, req, error::bad_request, {}, out);
        if (ctx.nat == nullptr) {
            const std::uint16_t attr = static_cast<std::uint16_t>(attribute_type::response_port);
            return error_response(ctx, req, error::unknown_attribute, {&attr, 1}, out);
        }
        r.to_port = rp->port;
    }

    const transport_address origin =
        ctx.nat != nullptr ? ctx.nat->addresses[r.from_ip][r.from_port] : ctx.local;
    const transport_address* other =
        ctx.nat != nullptr ? &ctx.nat->addresses[ctx.nat->ip ^ 1][ctx.nat->port ^ 1] : nullptr;

    // What must go in: the mapped address, the echoed PADDING, FINGERPRINT when asked. What
    // may: OTHER-ADDRESS and RESPONSE-ORIGIN (RFC 5780), SOFTWARE, in that order, while the
    // answer stays within binding_amplification times the request.
    const std::size_t budget = binding_amplification * req.bytes().size();
    const auto pad = req.get<padding>();
    std::size_t size = header_size + attribute_size(address_value_size(ctx.remote.ip.family)) +
                       (pad ? attribute_size(pad->length) : 0) +
                       (req.has_magic_cookie() && req.has(attribute_type::fingerprint) ? 8 : 0);
    auto fits = [&](std::size_t more) {
        if (size + more > budget) return false;
        size += more;
        return true;
    };
    const bool with_other = other != nullptr && fits(attribute_size(address_value_size(other->ip.family)));
    const bool with_origin = fits(attribute_size(address_value_size(origin.ip.family)));

    message_writer w(out, make_message_type(method::binding, message_class::success_response), req);
    if (req.has_magic_cookie()) {
        xor_mapped_address{ctx.remote}.encode(w);
        if (with_origin) response_origin{origin}.encode(w);
        if (with_other) other_address{*other}.encode(w);
    } else {
        // RFC 3489 §11.2: classic clients read MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS.
        mapped_address{ctx.remote}.encode(w);
        if (with_origin) source_address{origin}.encode(w);
        if (with_other) changed_address{*other}.encode(w);
    }
    // RFC 5780 §7.6: answer PADDING with PADDING of the same length, so the response is no
    // larger than the request made it.
    if (pad) padding{pad->length}.encode(w);
    finish_response(w, req, budget);
    r.size = w.finish().size();
    log::debug("binding {} from {} -> {}", to_string(ctx.via), ctx.remote,
               origin);
    return r;
}

reply stun_handler::error_response(const request_context& ctx, const message_view& req,
                                   std::uint16_t code, std::span<const std::uint16_t> unknown,
                                   std::span<std::uint8_t> out) {
    ++stats_.errors_sent;
    message_writer w(out, make_message_type(req.method(), message_class::error_response), req);
    error_code{code, ""}.encode(w);
    if (!unknown.empty()) unknown_attributes::of(unknown).encode(w);
    finish_response(w, req, binding_amplification * req.bytes().size());
    log::debug("{} request from {}: error {}", to_string(ctx.via), ctx.remote, code);
    reply r;
    if (ctx.nat != nullptr) {
        r.from_ip = ctx.nat->ip;
        r.from_port = ctx.nat->port;
    }
    r.size = w.finish().size();
    return r;
}

void stun_handler::finish_response(message_writer& w, const message_view& req, std::size_t budget) const {
    const bool fingerprint = req.has_magic_cookie() && req.has(attribute_type::fingerprint);
    const std::string& name = req.has_magic_cookie() ? settings_.software : classic_software_;
    if (!name.empty() && w.size() + attribute_size(name.size()) + (fingerprint ? 8 : 0) <= budget)
        software{name}.encode(w);
    // RFC 8489 §7.3: answer with FINGERPRINT when the request carried one.
    if (fingerprint) w.append_fingerprint();
}

} // namespace ferry::server
