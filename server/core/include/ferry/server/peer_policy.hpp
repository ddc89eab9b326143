// Which peers a client may reach through the relay (RFC 8656 §9.2, §17 security
// considerations: a relay must not become a way into the server's own networks). Safe by
// default: loopback, unspecified, private (RFC 1918, CGNAT, ULA), link-local (including the
// 169.254.169.254 metadata address), multicast, broadcast, documentation and other reserved
// ranges are refused (403) unless the operator allows them.
//
// Every address is canonicalised first: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
// (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002:aabb:ccdd::/48) forms are judged as the
// IPv4 address they carry, so "::ffff:127.0.0.1" is loopback. Order: denied_peer_ranges, then
// allowed_peer_ranges, then the built-in special-purpose list.
#pragma once

#include "ferry/protocol/address.hpp"

#include <optional>
#include <string_view>
#include <vector>

namespace ferry::server {

struct ip_range {
    protocol::ip_address base;
    unsigned prefix = 0;

    /// "10.0.0.0/8", "fe80::/10", or a bare address (a /32 or /128).
    static std::optional<ip_range> parse(std::string_view text);
    bool contains(const protocol::ip_address& a) const;
};

class peer_policy {
public:
    peer_policy() = default;
    peer_policy(std::vector<ip_range> allowed, std::vector<ip_range> denied)
        : allowed_(std::move(allowed)), denied_(std::move(denied)) {}

    /// The IPv4 address an IPv6 address stands for, or the address itself.
    static protocol::ip_address canonical(const protocol::ip_address& a);
    /// True for special-purpose addresses (before any operator ranges apply).
    static bool is_special(const protocol::ip_address& a);

    bool permits(const protocol::ip_address& a) const;

private:
    std::vector<ip_range> allowed_;
    std::vector<ip_range> denied_;
};

} // namespace ferry::server
