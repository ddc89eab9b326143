// The HTTP side of the signaling listener, as pure code: a request head (RFC 9112) read into
// what the listener needs, the WebSocket opening handshake's checks (RFC 6455 §4.2.1) and its
// 101 answer, and plain responses for the demo page and errors.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::signaling {

struct http_head {
    std::string method;
    std::string target; ///< path and query as sent
    std::string path;   ///< without the query
    std::string host;   ///< the Host header, as sent (may carry a port)
    std::string origin;
    std::string upgrade;    ///< the Upgrade header, lower-cased
    std::string connection; ///< the Connection header, lower-cased
    std::string ws_key;     ///< Sec-WebSocket-Key
    std::string ws_version; ///< Sec-WebSocket-Version
};

/// Parses a request head up to its blank line; nullopt when it is not an HTTP/1.1 request.
std::optional<http_head> parse_head(std::string_view head);

/// Why a request is not a valid WebSocket opening handshake (RFC 6455 §4.2.1), or empty when
/// it is one. `is_websocket` says whether it tried (an Upgrade: websocket header).
std::string handshake_problem(const http_head& h);
bool is_websocket(const http_head& h);

/// The 101 Switching Protocols answer to a valid handshake.
std::string switching_protocols(const http_head& h);
/// A complete response with Connection: close.
std::string http_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers = {});

/// The host part of a Host header ("example.org:8443" -> "example.org", "[::1]:80" -> "::1").
std::string host_without_port(std::string_view host);

} // namespace ferry::signaling
