// Thin helpers over the BSD socket API that Asio does not offer: SO_REUSEPORT sockets (one per
// worker on the same address, so the kernel spreads clients over threads by 5-tuple), and
// conversions between sockaddr and the protocol layer's transport_address.
#pragma once

#include "ferry/protocol/address.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

namespace ferry::server::net {

/// Fills `out` and returns the length to pass to bind/sendto.
socklen_t to_sockaddr(const protocol::transport_address& a, sockaddr_storage& out);
protocol::transport_address from_sockaddr(const sockaddr_storage& s);
/// From an Asio endpoint's raw sockaddr (`data`, `size`).
protocol::transport_address from_raw(const void* data, std::size_t size);

/// Socket buffers asked for (a cap the kernel charges as datagrams queue, not memory taken up
/// front): a worker's listener socket carries every client of that worker, so a stall of a few
/// milliseconds under bursts of large datagrams must not overflow it; a relay socket carries
/// one allocation. Without CAP_NET_ADMIN, net.core.rmem_max / wmem_max cap them.
inline constexpr int udp_listener_buffer_bytes = 4 << 20;
inline constexpr int relay_buffer_bytes = 1 << 20;
/// The receive buffer a socket got (what the kernel accounts for payload).
int receive_buffer_bytes(int fd);

/// A non-blocking UDP socket bound to `a` with SO_REUSEPORT (IPV6_V6ONLY for IPv6). On a
/// wildcard address it also asks for IP_PKTINFO / IPV6_RECVPKTINFO, so replies leave from the
/// address the request arrived at. Throws std::system_error naming the address.
int bind_udp(const protocol::transport_address& a);
/// Fails (std::system_error, EADDRINUSE) if another process already holds `a`. SO_REUSEPORT
/// would otherwise let a second server join the first one's socket group and split its
/// traffic; a probe bound without it sees the other holder. `type` is SOCK_DGRAM or SOCK_STREAM.
void ensure_unused(const protocol::transport_address& a, int type);
/// A relay socket: a non-blocking UDP socket bound to exactly `a`, shared with no one (no
/// SO_REUSEPORT or SO_REUSEADDR), with DF set when asked (RFC 8656 §7.2 step 4). Never throws:
/// these are opened on a client's request. Returns -1 with errno set on any failure
/// (EADDRINUSE: the port is taken; EMFILE, ENOBUFS, EADDRNOTAVAIL...: the request gets 508).
int bind_relay(const protocol::transport_address& a, bool dont_fragment);
/// RFC 6062: a TCP allocation's relayed address, listening, exclusive at bind time; -1 with
/// errno on failure (EADDRINUSE when the port is taken). Never throws.
int listen_relay_tcp(const protocol::transport_address& a);
/// A TCP socket bound to a TCP allocation's relayed address `a`, for an outgoing connection
/// (Connect); -1 with errno on failure. Never throws.
int bind_relay_tcp_client(const protocol::transport_address& a);
/// A non-blocking listening TCP socket with SO_REUSEPORT. Throws std::system_error.
int listen_tcp(const protocol::transport_address& a, int backlog);

} // namespace ferry::server::net
