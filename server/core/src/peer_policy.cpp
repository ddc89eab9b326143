#include "ferry/server/peer_policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace ferry::server {

using protocol::address_family;
using protocol::ip_address;

std::optional<ip_range> ip_range::parse(std::string_view text) {
    const auto slash = text.find('/');
    auto ip = ip_address::parse(text.substr(0, slash));
    if (!ip) return std::nullopt;
    const unsigned max = ip->family == address_family::ipv4 ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc{} || p != digits.data() + digits.size() || digits.empty() || prefix > max)
            return std::nullopt;
    }
    return ip_range{*ip, prefix};
}

bool ip_range::contains(const ip_address& a) const {
    if (a.family != base.family) return false;
    const unsigned full = prefix / 8;
    if (!std::equal(a.bytes.begin(), a.bytes.begin() + full, base.bytes.begin())) return false;
    const unsigned rest = prefix % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    return (a.bytes[full] & mask) == (base.bytes[full] & mask);
}

namespace {

ip_range range(const char* text) { return *ip_range::parse(text); }

// RFC 6890 and its successors: addresses no relay should reach on a client's behalf.
const std::vector<ip_range>& special_ranges() {
    static const std::vector<ip_range> ranges = {
        range("0.0.0.0/8"),       range("10.0.0.0/8"),      range("100.64.0.0/10"),
        range("127.0.0.0/8"),     range("169.254.0.0/16"),  range("172.16.0.0/12"),
        range("192.0.0.0/24"),    range("192.0.2.0/24"),    range("192.88.99.0/24"),
        range("192.168.0.0/16"),  range("198.18.0.0/15"),   range("198.51.100.0/24"),
        range("203.0.113.0/24"),  range("224.0.0.0/4"),     range("240.0.0.0/4"),
        range("::/96"),           // unspecified, loopback, IPv4-compatible
        range("::ffff:0:0/96"),   // IPv4-mapped (only reached when not canonicalised)
        range("64:ff9b:1::/48"),  // local-use NAT64
        range("100::/64"),        // discard-only
        range("2001::/23"),       // IETF protocol assignments, Teredo included
        range("2001:db8::/32"),   range("3fff::/20"), // documentation
        range("fc00::/7"),        // unique local
        range("fe80::/10"),       range("fec0::/10"), // link-local, old site-local
        range("ff00::/8"),        // multicast
    };
    return ranges;
}

bool any_contains(const std::vector<ip_range>& ranges, const ip_address& a) {
    return std::any_of(ranges.begin(), ranges.end(), [&](const ip_range& r) { return r.contains(a); });
}

ip_address v4_at(const ip_address& a, std::size_t offset) {
    return ip_address::v4(a.bytes[offset], a.bytes[offset + 1], a.bytes[offset + 2], a.bytes[offset + 3]);
}

} // namespace

ip_address peer_policy::canonical(const ip_address& a) {
    if (a.family != address_family::ipv6) return a;
    const auto& b = a.bytes;
    const bool first80_zero = std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; });
    if (first80_zero && b[10] == 0xFF && b[11] == 0xFF) return v4_at(a, 12); // ::ffff:a.b.c.d
    // ::a.b.c.d (IPv4-compatible), but not :: and ::1 themselves.
    if (first80_zero && b[10] == 0 && b[11] == 0 && (b[12] | b[13] | b[14]) != 0) return v4_at(a, 12);
    static const auto nat64 = range("64:ff9b::/96");
    if (nat64.contains(a)) return v4_at(a, 12);
    if (b[0] == 0x20 && b[1] == 0x02) return v4_at(a, 2); // 6to4: 2002:aabb:ccdd::/48
    return a;
}

bool peer_policy::is_special(const ip_address& a) { return any_contains(special_ranges(), a); }

bool peer_policy::permits(const ip_address& a) const {
    const auto c = canonical(a);
    if (any_contains(denied_, a) || any_contains(denied_, c)) return false;
    if (any_contains(allowed_, c) || any_contains(allowed_, a)) return true;
    return !is_special(c) && !is_special(a);
}

} // namespace ferry::server
