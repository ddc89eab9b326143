#include "ferry/protocol/attributes.hpp"

#include "ferry/protocol/wire.hpp"

#include <algorithm>

namespace ferry::protocol {

bool is_known_attribute(std::uint16_t type) {
    switch (static_cast<attribute_type>(type)) {
    case attribute_type::mapped_address:
    case attribute_type::change_request:
    case attribute_type::source_address:
    case attribute_type::changed_address:
    case attribute_type::username:
    case attribute_type::message_integrity:
    case attribute_type::error_code:
    case attribute_type::unknown_attributes:
    case attribute_type::channel_number:
    case attribute_type::lifetime:
    case attribute_type::xor_peer_address:
    case attribute_type::data:
    case attribute_type::realm:
    case attribute_type::nonce:
    case attribute_type::xor_relayed_address:
    case attribute_type::requested_address_family:
    case attribute_type::even_port:
    case attribute_type::requested_transport:
    case attribute_type::dont_fragment:
    case attribute_type::message_integrity_sha256:
    case attribute_type::password_algorithm:
    case attribute_type::userhash:
    case attribute_type::xor_mapped_address:
    case attribute_type::reservation_token:
    case attribute_type::padding:
    case attribute_type::response_port:
    case attribute_type::connection_id:
    case attribute_type::additional_address_family:
    case attribute_type::address_error_code:
    case attribute_type::password_algorithms:
    case attribute_type::alternate_domain:
    case attribute_type::icmp:
    case attribute_type::software:
    case attribute_type::alternate_server:
    case attribute_type::fingerprint:
    case attribute_type::response_origin:
    case attribute_type::other_address:
        return true;
    // RESPONSE-ADDRESS (RFC 3489) is deliberately unknown: honouring it would let anyone aim
    // our responses at a third party, so a request carrying it gets 420.
    case attribute_type::response_address:
        return false;
    }
    // ICE's PRIORITY (0x0024) and USE-CANDIDATE (0x0025) are comprehension-required but
    // harmless; clients that reuse their connectivity-check code send them to servers.
    return type == 0x0024 || type == 0x0025;
}

std::string_view default_reason(std::uint16_t code) {
    switch (code) {
    case error::try_alternate: return "Try Alternate";
    case error::bad_request: return "Bad Request";
    case error::unauthenticated: return "Unauthenticated";
    case error::forbidden: return "Forbidden";
    case error::mobility_forbidden: return "Mobility Forbidden";
    case error::unknown_attribute: return "Unknown Attribute";
    case error::allocation_mismatch: return "Allocation Mismatch";
    case error::stale_nonce: return "Stale Nonce";
    case error::address_family_not_supported: return "Address Family not Supported";
    case error::wrong_credentials: return "Wrong Credentials";
    case error::unsupported_transport_protocol: return "Unsupported Transport Protocol";
    case error::peer_address_family_mismatch: return "Peer Address Family Mismatch";
    case error::connection_already_exists: return "Connection Already Exists";
    case error::connection_timeout_or_failure: return "Connection Timeout or Failure";
    case error::allocation_quota_reached: return "Allocation Quota Reached";
    case error::role_conflict: return "Role Conflict";
    case error::server_error: return "Server Error";
    case error::insufficient_capacity: return "Insufficient Capacity";
    default: return "";
    }
}

std::optional<userhash> userhash::decode(std::span<const std::uint8_t> v, const message_view&) {
    if (v.size() != 32) return std::nullopt;
    userhash h;
    std::copy(v.begin(), v.end(), h.hash.begin());
    return h;
}
void userhash::encode(message_writer& w) const { w.append_bytes(type, hash); }

std::optional<reservation_token> reservation_token::decode(std::span<const std::uint8_t> v,
                                                           const message_view&) {
    if (v.size() != 8) return std::nullopt;
    reservation_token t;
    std::copy(v.begin(), v.end(), t.token.begin());
    return t;
}
void reservation_token::encode(message_writer& w) const { w.append_bytes(type, token); }

std::optional<lifetime> lifetime::decode(std::span<const std::uint8_t> v, const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return lifetime{load_u32(v.data())};
}

std::optional<connection_id> connection_id::decode(std::span<const std::uint8_t> v,
                                                   const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return connection_id{load_u32(v.data())};
}

std::optional<channel_number> channel_number::decode(std::span<const std::uint8_t> v,
                                                     const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return channel_number{load_u16(v.data())};
}
void channel_number::encode(message_writer& w) const {
    auto out = w.append(type, 4);
    if (!out.empty()) store_u16(out.data(), number);
}

std::optional<requested_transport> requested_transport::decode(std::span<const std::uint8_t> v,
                                                               const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return requested_transport{v[0]};
}
void requested_transport::encode(message_writer& w) const {
    auto out = w.append(type, 4);
    if (!out.empty()) out[0] = protocol;
}

std::optional<even_port> even_port::decode(std::span<const std::uint8_t> v, const message_view&) {
    if (v.size() != 1) return std::nullopt;
    return even_port{(v[0] & 0x80) != 0};
}
void even_port::encode(message_writer& w) const {
    auto out = w.append(type, 1);
    if (!out.empty()) out[0] = reserve ? 0x80 : 0x00;
}

std::optional<change_request> change_request::decode(std::span<const std::uint8_t> v,
                                                     const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return change_request{(v[3] & 0x04) != 0, (v[3] & 0x02) != 0};
}
void change_request::encode(message_writer& w) const {
    auto out = w.append(type, 4);
    if (!out.empty()) out[3] = static_cast<std::uint8_t>((change_ip ? 0x04 : 0) | (change_port ? 0x02 : 0));
}

std::optional<response_port> response_port::decode(std::span<const std::uint8_t> v,
                                                   const message_view&) {
    if (v.size() != 4) return std::nullopt;
    return response_port{load_u16(v.data())};
}
void response_port::encode(message_writer& w) const {
    auto out = w.append(type, 4);
    if (!out.empty()) store_u16(out.data(), port);
}

std::optional<icmp> icmp::decode(std::span<const std::uint8_t> v, const message_view&) {
    if (v.size() != 8) return std::nullopt;
    return icmp{v[2], v[3], load_u32(v.data() + 4)};
}
void icmp::encode(message_writer& w) const {
    auto out = w.append(type, 8);
    if (out.empty()) return;
    out[2] = icmp_type;
    out[3] = icmp_code;
    store_u32(out.data() + 4, error_data);
}

namespace {

// ERROR-CODE and ADDRESS-ERROR-CODE share their last three bytes' layout:
// class in the low 3 bits of byte 2, number (0..99) in byte 3, then the reason.
bool read_code(std::span<const std::uint8_t> v, std::uint16_t& code, std::string_view& reason) {
    if (v.size() < 4 || v.size() > 4 + 763) return false;
    const unsigned cls = v[2] & 0x07;
    const unsigned num = v[3];
    if (cls < 3 || cls > 6 || num > 99) return false;
    code = static_cast<std::uint16_t>(cls * 100 + num);
    reason = {reinterpret_cast<const char*>(v.data() + 4), v.size() - 4};
    return true;
}

void write_code(message_writer& w, attribute_type t, std::uint8_t first, std::uint16_t code,
                std::string_view reason) {
    if (reason.empty()) reason = default_reason(code);
    if (reason.size() > 763) reason = reason.substr(0, 763);
    auto out = w.append(t, 4 + reason.size());
    if (out.empty()) return;
    out[0] = first;
    out[2] = static_cast<std::uint8_t>(code / 100);
    out[3] = static_cast<std::uint8_t>(code % 100);
    std::copy(reason.begin(), reason.end(), out.begin() + 4);
}

} // namespace

std::optional<error_code> error_code::decode(std::span<const std::uint8_t> v,
                                             const message_view&) {
    error_code e;
    if (!read_code(v, e.code, e.reason)) return std::nullopt;
    return e;
}
void error_code::encode(message_writer& w) const { write_code(w, type, 0, code, reason); }

std::optional<address_error_code> address_error_code::decode(std::span<const std::uint8_t> v,
                                                             const message_view&) {
    address_error_code e;
    if (!read_code(v, e.code, e.reason)) return std::nullopt;
    e.family = v[0];
    return e;
}
void address_error_code::encode(message_writer& w) const {
    write_code(w, type, family, code, reason);
}

unknown_attributes unknown_attributes::of(std::span<const std::uint16_t> list) {
    unknown_attributes u;
    for (auto t : list) {
        if (u.count == max_types) break;
        u.types[u.count++] = t;
    }
    return u;
}

std::optional<unknown_attributes> unknown_attributes::decode(std::span<const std::uint8_t> v,
                                                             const message_view&) {
    if (v.size() % 2 != 0) return std::nullopt;
    unknown_attributes u;
    for (std::size_t i = 0; i + 1 < v.size() && u.count < max_types; i += 2)
        u.types[u.count++] = load_u16(v.data() + i);
    return u;
}
void unknown_attributes::encode(message_writer& w) const {
    auto out = w.append(type, 2 * count);
    if (out.empty()) return;
    for (std::size_t i = 0; i < count; ++i) store_u16(out.data() + 2 * i, types[i]);
}

std::optional<password_algorithm_attribute>
password_algorithm_attribute::decode(std::span<const std::uint8_t> v, const message_view&) {
    if (v.size() < 4) return std::nullopt;
    const auto params = load_u16(v.data() + 2);
    if (padded(params) != v.size() - 4 && params != v.size() - 4) return std::nullopt;
    return password_algorithm_attribute{load_u16(v.data())};
}
void password_algorithm_attribute::encode(message_writer& w) const {
    auto out = w.append(type, 4);
    if (out.empty()) return;
    store_u16(out.data(), algorithm);
    store_u16(out.data() + 2, 0); // no parameters
}

std::optional<password_algorithms> password_algorithms::decode(std::span<const std::uint8_t> v,
                                                               const message_view&) {
    password_algorithms p;
    std::size_t pos = 0;
    while (pos < v.size()) {
        if (v.size() - pos < 4) return std::nullopt;
        const auto alg = load_u16(v.data() + pos);
        const auto params = padded(load_u16(v.data() + pos + 2));
        if (params > v.size() - pos - 4) return std::nullopt;
        if (p.count < max_algorithms) p.algorithms[p.count++] = alg;
        pos += 4 + params;
    }
    return p;
}
void password_algorithms::encode(message_writer& w) const {
    auto out = w.append(type, 4 * count);
    if (out.empty()) return;
    for (std::size_t i = 0; i < count; ++i) {
        store_u16(out.data() + 4 * i, algorithms[i]);
        store_u16(out.data() + 4 * i + 2, 0); // no parameters
    }
}
bool password_algorithms::contains(std::uint16_t a) const {
    return std::find(algorithms.begin(), algorithms.begin() + count, a) !=
           algorithms.begin() + count;
}

} // namespace ferry::protocol
