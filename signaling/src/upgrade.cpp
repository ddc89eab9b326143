#include "ferry/signaling/upgrade.hpp"

#include "ferry/signaling/websocket.hpp"

#include <algorithm>
#include <cctype>

namespace ferry::signaling {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

/// True if the comma-separated `list` holds `token` (case-insensitive; `list` is lower-cased).
bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        if (trim(list.substr(0, comma)) == token) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

std::string_view reason_of(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

} // namespace

std::optional<http_head> parse_head(std::string_view head) {
    http_head h;
    const auto line_end = head.find("\r\n");
    if (line_end == std::string_view::npos) return std::nullopt;
    const auto line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return std::nullopt;
    if (line.substr(sp2 + 1) != "HTTP/1.1") return std::nullopt; // WebSocket needs 1.1 (§4.1)
    h.method = std::string(line.substr(0, sp1));
    h.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    if (h.target.empty() || h.target.front() != '/') return std::nullopt;
    h.path = h.target.substr(0, h.target.find('?'));
    auto rest = head.substr(line_end + 2);
    while (!rest.empty()) {
        const auto end = rest.find("\r\n");
        const auto field = rest.substr(0, end);
        if (field.empty()) break;
        const auto colon = field.find(':');
        if (colon == std::string_view::npos || colon == 0) return std::nullopt;
        const auto name = lower(field.substr(0, colon));
        const auto value = trim(field.substr(colon + 1));
        if (name == "host") h.host = std::string(value);
        else if (name == "origin") h.origin = std::string(value);
        else if (name == "upgrade") h.upgrade = lower(value);
        else if (name == "connection") h.connection = lower(value);
        else if (name == "sec-websocket-key") h.ws_key = std::string(value);
        else if (name == "sec-websocket-version") h.ws_version = std::string(value);
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end + 2);
    }
    return h;
}

bool is_websocket(const http_head& h) { return has_token(h.upgrade, "websocket"); }

std::string handshake_problem(const http_head& h) {
    if (h.method != "GET") return "a WebSocket handshake is a GET";
    if (h.host.empty()) return "no Host header";
    if (!is_websocket(h)) return "no Upgrade: websocket";
    if (!has_token(h.connection, "upgrade")) return "no Connection: Upgrade";
    if (!ws::valid_client_key(h.ws_key)) return "no valid Sec-WebSocket-Key";
    if (h.ws_version != "13") return "Sec-WebSocket-Version must be 13";
    return {};
}

std::string switching_protocols(const http_head& h) {
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
           ws::accept_key(h.ws_key) + "\r\n\r\n";
}

std::string http_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_of(status)) + "\r\n";
    out += "Content-Type: " + std::string(content_type) + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n";
    out += extra_headers;
    out += "\r\n";
    out += body;
    return out;
}

std::string host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        const auto close = host.find(']');
        return std::string(host.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
    }
    return std::string(host.substr(0, host.find(':')));
}

} // namespace ferry::signaling
