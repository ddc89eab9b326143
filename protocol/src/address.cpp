#include "ferry/protocol/address.hpp"

#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <arpa/inet.h>

namespace ferry::protocol {

ip_address ip_address::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    ip_address ip;
    ip.bytes[0] = a;
    ip.bytes[1] = b;
    ip.bytes[2] = c;
    ip.bytes[3] = d;
    return ip;
}

ip_address ip_address::v4(std::span<const std::uint8_t, 4> b) {
    ip_address ip;
    std::copy(b.begin(), b.end(), ip.bytes.begin());
    return ip;
}

ip_address ip_address::v6(std::span<const std::uint8_t, 16> b) {
    ip_address ip;
    ip.family = address_family::ipv6;
    std::copy(b.begin(), b.end(), ip.bytes.begin());
    return ip;
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
    if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN] = {};
    std::copy(text.begin(), text.end(), buf);
    ip_address ip;
    if (::inet_pton(AF_INET, buf, ip.bytes.data()) == 1) return ip;
    if (::inet_pton(AF_INET6, buf, ip.bytes.data()) == 1) {
        ip.family = address_family::ipv6;
        return ip;
    }
    return std::nullopt;
}

bool ip_address::is_unspecified() const {
    auto v = view();
    return std::all_of(v.begin(), v.end(), [](std::uint8_t b) { return b == 0; });
}

std::string ip_address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family == address_family::ipv4 ? AF_INET : AF_INET6, bytes.data(), buf,
                sizeof buf);
    return buf;
}

std::optional<transport_address> transport_address::from(std::string_view ip, std::uint16_t port) {
    if (auto a = ip_address::parse(ip)) return transport_address{*a, port};
    return std::nullopt;
}

std::string transport_address::to_string() const {
    if (ip.family == address_family::ipv6) return "[" + ip.to_string() + "]:" + std::to_string(port);
    return ip.to_string() + ":" + std::to_string(port);
}

namespace {

// Shared by the plain and XOR decoders: family byte, port, and the right length.
std::optional<transport_address> read_address(std::span<const std::uint8_t> value) {
    if (value.size() < 4) return std::nullopt;
    transport_address a;
    if (value[1] == static_cast<std::uint8_t>(address_family::ipv4) && value.size() == 8) {
        a.ip.family = address_family::ipv4;
    } else if (value[1] == static_cast<std::uint8_t>(address_family::ipv6) && value.size() == 20) {
        a.ip.family = address_family::ipv6;
    } else {
        return std::nullopt;
    }
    a.port = load_u16(value.data() + 2);
    std::copy(value.begin() + 4, value.end(), a.ip.bytes.begin());
    return a;
}

void write_address(const transport_address& a, std::span<std::uint8_t> out) {
    out[0] = 0;
    out[1] = static_cast<std::uint8_t>(a.ip.family);
    store_u16(out.data() + 2, a.port);
    std::copy_n(a.ip.bytes.begin(), a.ip.size(), out.begin() + 4);
}

// RFC 8489 §14.2: port XOR the cookie's top 16 bits; address XOR cookie (IPv4) or
// cookie || transaction id (IPv6). XOR is its own inverse, so one function serves both ways.
void apply_xor(transport_address& a, std::span<const std::uint8_t, transaction_id_size> txid) {
    a.port ^= static_cast<std::uint16_t>(magic_cookie >> 16);
    std::array<std::uint8_t, 16> pad{};
    store_u32(pad.data(), magic_cookie);
    std::copy(txid.begin(), txid.end(), pad.begin() + 4);
    for (std::size_t i = 0; i < a.ip.size(); ++i) a.ip.bytes[i] ^= pad[i];
}

} // namespace

std::optional<transport_address> decode_address(std::span<const std::uint8_t> value) {
    return read_address(value);
}

void encode_address(const transport_address& a, std::span<std::uint8_t> out) {
    write_address(a, out);
}

std::optional<transport_address>
decode_xor_address(std::span<const std::uint8_t> value,
                   std::span<const std::uint8_t, transaction_id_size> txid) {
    auto a = read_address(value);
    if (a) apply_xor(*a, txid);
    return a;
}

void encode_xor_address(const transport_address& a,
                        std::span<const std::uint8_t, transaction_id_size> txid,
                        std::span<std::uint8_t> out) {
    transport_address x = a;
    apply_xor(x, txid);
    write_address(x, out);
}

} // namespace ferry::protocol
