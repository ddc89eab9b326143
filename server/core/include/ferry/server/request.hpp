// What both request handlers (STUN and TURN) and the allocation table know of a request: the
// transport it came over and where it came from and arrived at. Below both handlers, so
// neither calls up into the other for these.
#pragma once

#include "ferry/protocol/address.hpp"

#include <array>
#include <string_view>

namespace ferry::server {

enum class transport { udp, tcp, tls, dtls };
std::string_view to_string(transport t);

/// The four addresses of an RFC 5780 set, [ip][port], and which one a socket is bound to.
/// [0][0] is the primary address and port; [1][1] is what OTHER-ADDRESS names.
struct nat_identity {
    std::array<std::array<protocol::transport_address, 2>, 2> addresses;
    unsigned ip = 0;
    unsigned port = 0;
};

/// Where a request came from and arrived at.
struct request_context {
    transport via = transport::udp;
    protocol::transport_address local;  ///< the address the request was sent to
    protocol::transport_address remote; ///< the client's address as we see it
    const nat_identity* nat = nullptr;  ///< set on the UDP sockets of an RFC 5780 set
    int socket = -1;                    ///< the socket (or connection) it arrived on
    bool wildcard = false;              ///< that socket is bound to a wildcard address
};

} // namespace ferry::server
