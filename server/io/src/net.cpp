#include "ferry/server/net.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <system_error>
#include <unistd.h>

namespace ferry::server::net {

using protocol::address_family;
using protocol::transport_address;

socklen_t to_sockaddr(const transport_address& a, sockaddr_storage& out) {
    std::memset(&out, 0, sizeof out);
    if (a.ip.family == address_family::ipv4) {
        auto* s = reinterpret_cast<sockaddr_in*>(&out);
        s->sin_family = AF_INET;
        s->sin_port = htons(a.port);
        std::memcpy(&s->sin_addr, a.ip.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&out);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(a.port);
    std::memcpy(&s->sin6_addr, a.ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

transport_address from_raw(const void* data, std::size_t size) {
    sockaddr_storage ss{};
    std::memcpy(&ss, data, std::min(size, sizeof ss));
    return from_sockaddr(ss);
}

transport_address from_sockaddr(const sockaddr_storage& s) {
    transport_address a;
    if (s.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&s);
        std::memcpy(a.ip.bytes.data(), &in->sin_addr, 4);
        a.port = ntohs(in->sin_port);
    } else if (s.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&s);
        a.ip.family = address_family::ipv6;
        std::memcpy(a.ip.bytes.data(), &in6->sin6_addr, 16);
        a.port = ntohs(in6->sin6_port);
    }
    return a;
}

namespace {

[[noreturn]] void fail(int err, const char* what, const transport_address& a) {
    throw std::system_error(err, std::generic_category(),
                            fmt::format("{} {}", what, a.to_string()));
}

int open_socket(const transport_address& a, int type, bool reuse_port = true) {
    const int family = a.ip.family == address_family::ipv4 ? AF_INET : AF_INET6;
    const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(errno, "cannot open a socket for", a);
    const int one = 1;
    // TCP only: lets a restarted server rebind past TIME_WAIT. On UDP it would let another
    // socket share the port.
    if (type == SOCK_STREAM) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        const int err = errno;
        ::close(fd);
        fail(err, "cannot set SO_REUSEPORT on", a);
    }
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_storage ss;
    const auto len = to_sockaddr(a, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        const int err = errno;
        ::close(fd);
        fail(err, "cannot bind", a);
    }
    return fd;
}

/// Closes `fd` and returns -1 with errno as the failed call left it.
int close_keeping_errno(int fd) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
}

/// Asks for `bytes` of receive and send buffer: SO_*BUFFORCE where ferry may (CAP_NET_ADMIN),
/// else as much as net.core.rmem_max / wmem_max allow. Best effort; never fails.
void size_buffers(int fd, int bytes) {
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

} // namespace

int receive_buffer_bytes(int fd) {
    int value = 0;
    socklen_t len = sizeof value;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &len);
    return value / 2; // the kernel reports twice what it accounts for payload
}

void ensure_unused(const transport_address& a, int type) {
    ::close(open_socket(a, type, false));
}

int bind_udp(const transport_address& a) {
    const int fd = open_socket(a, SOCK_DGRAM);
    size_buffers(fd, udp_listener_buffer_bytes);
    if (a.ip.is_unspecified()) {
        const int one = 1;
        if (a.ip.family == address_family::ipv4)
            ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
        else
            ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    }
    return fd;
}

int bind_relay(const transport_address& a, bool dont_fragment) {
    const int family = a.ip.family == address_family::ipv4 ? AF_INET : AF_INET6;
    const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (dont_fragment) {
        if (family == AF_INET) {
            const int mode = IP_PMTUDISC_DO;
            ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode);
        } else {
            ::setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof one);
        }
    }
    size_buffers(fd, relay_buffer_bytes);
    sockaddr_storage ss;
    const auto len = to_sockaddr(a, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return close_keeping_errno(fd);
    return fd;
}

namespace {

int open_relay_tcp(const transport_address& a) {
    const int family = a.ip.family == address_family::ipv4 ? AF_INET : AF_INET6;
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    return fd;
}

} // namespace

int listen_relay_tcp(const transport_address& a) {
    const int fd = open_relay_tcp(a);
    if (fd < 0) return -1;
    sockaddr_storage ss;
    const auto len = to_sockaddr(a, ss);
    // Bound without SO_REUSEPORT, so a port in use is refused; the option is set afterwards so
    // that the allocation's own outgoing connections (Connect) can bind the same address.
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return close_keeping_errno(fd);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::listen(fd, 64) != 0) return close_keeping_errno(fd);
    return fd;
}

int bind_relay_tcp_client(const transport_address& a) {
    const int fd = open_relay_tcp(a);
    if (fd < 0) return -1;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_storage ss;
    const auto len = to_sockaddr(a, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

int listen_tcp(const transport_address& a, int backlog) {
    const int fd = open_socket(a, SOCK_STREAM);
    if (::listen(fd, backlog) != 0) {
        const int err = errno;
        ::close(fd);
        fail(err, "cannot listen on", a);
    }
    return fd;
}

} // namespace ferry::server::net
