#include "probe.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/message.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace ferry::probe {
namespace {

using std::chrono::milliseconds;

milliseconds left_until(std::chrono::steady_clock::time_point deadline) {
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(deadline - now()));
}

bool same_transaction(std::span<const std::uint8_t> request, std::span<const std::uint8_t> answer) {
    protocol::message_view m;
    if (m.parse(answer)) return false;
    if (m.klass() != protocol::message_class::success_response &&
        m.klass() != protocol::message_class::error_response)
        return false;
    return std::equal(request.begin() + 8, request.begin() + 20, answer.begin() + 8);
}

} // namespace

std::optional<std::vector<std::uint8_t>> transact(connection& c, std::span<const std::uint8_t> request,
                                                  milliseconds timeout,
                                                  std::vector<std::vector<std::uint8_t>>* others) {
    const auto deadline = now() + timeout;
    auto rto = milliseconds(500);
    auto resend = now() + rto;
    if (!c.send(request)) return std::nullopt;
    for (;;) {
        const auto left = left_until(deadline);
        if (left.count() == 0) return std::nullopt;
        const auto wait = c.via() == wire::udp ? std::min(left, left_until(resend)) : left;
        if (auto got = c.receive(wait)) {
            if (same_transaction(request, *got)) return got;
            if (others != nullptr) others->push_back(std::move(*got));
            continue;
        }
        if (c.via() != wire::udp) {
            if (c.last_error() != 0) return std::nullopt; // the connection closed
            continue;
        }
        if (c.last_error() == ECONNREFUSED) return std::nullopt; // port unreachable came back
        if (now() >= resend) {
            c.send(request);
            rto *= 2;
            resend = now() + rto;
        }
    }
}

std::optional<udp_socket::datagram> transact(udp_socket& s, const protocol::transport_address& to,
                                             std::span<const std::uint8_t> request, milliseconds timeout) {
    const auto deadline = now() + timeout;
    auto rto = milliseconds(500);
    s.send_to(to, request);
    auto resend = now() + rto;
    for (;;) {
        const auto left = left_until(deadline);
        if (left.count() == 0) return std::nullopt;
        if (auto got = s.receive(std::min(left, left_until(resend)))) {
            if (same_transaction(request, got->bytes)) return got;
            continue;
        }
        if (now() >= resend) {
            s.send_to(to, request);
            rto *= 2;
            resend = now() + rto;
        }
    }
}

unsigned error_code_of(std::span<const std::uint8_t> response) {
    protocol::message_view m;
    if (m.parse(response) || m.klass() != protocol::message_class::error_response) return 0;
    const auto code = m.get<protocol::error_code>();
    return code ? code->code : 0;
}

std::string error_text(std::span<const std::uint8_t> response) {
    protocol::message_view m;
    if (m.parse(response)) return "an unparsable answer";
    const auto code = m.get<protocol::error_code>();
    if (!code) return "an error response without ERROR-CODE";
    return std::to_string(code->code) + " " + std::string(code->reason);
}

std::string url_text(const server_url& url) {
    const bool v6 = url.host.find(':') != std::string::npos;
    std::string out = url.scheme + ":" + (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
    if (url.via == wire::tcp) out += "?transport=tcp";
    return out;
}

std::pair<exit_code, std::string> connect_verdict(const server_url& url, const failure& why) {
    const auto where = to_string(url.via) == "udp" ? "UDP" : "TCP";
    const std::string target = url.host + ":" + std::to_string(url.port);
    if (why.what.find("Connection refused") != std::string::npos)
        return {exit_unreachable, std::string("nothing listens on ") + where + " " + target +
                                      " (connection refused): is the server running with a " +
                                      std::string(to_string(url.via)) + " listener on that port?"};
    if (why.what.find("TLS certificate") != std::string::npos && why.what.find("mismatch") != std::string::npos)
        return {exit_refused, why.what + ": the certificate does not name " + url.host +
                                  "; use a URL with a name the certificate holds (browsers fail the same way, "
                                  "with ICE error 701)"};
    if (why.what.find("TLS certificate") != std::string::npos)
        return {exit_refused, why.what + ": browsers will refuse it too; pass --ca FILE if a private CA signed "
                                         "it, or check its dates and chain (the file should hold the full chain)"};
    if (why.unreachable)
        return {exit_unreachable, why.what + ": a firewall drops the traffic, or the host is down"};
    return {exit_refused, why.what};
}

std::string no_answer_verdict(const server_url& url, const connection& c, milliseconds timeout) {
    const std::string target = c.remote().to_string();
    char seconds[16];
    std::snprintf(seconds, sizeof seconds, "%.1f", std::chrono::duration<double>(timeout).count());
    if (url.via == wire::udp) {
        if (c.last_error() == ECONNREFUSED)
            return "nothing listens on UDP " + target +
                   " (the host answered 'port unreachable'): is the server running with a udp listener there?";
        return "no answer from " + target + " over UDP within " + std::string(seconds) +
               " s: a firewall drops UDP to that port (inbound at the server or outbound here), or "
               "nothing listens there";
    }
    if (c.last_error() != 0)
        return "the server closed the " + std::string(to_string(url.via)) + " connection to " + target +
               " without answering: is it a STUN/TURN port, with the right transport (turns: for TLS)?";
    return "the " + std::string(to_string(url.via)) + " connection to " + target + " opened but no answer came within " +
           std::string(seconds) + " s: is this a STUN/TURN port, with the right transport (turns: for TLS)?";
}

std::unique_ptr<connection> open_connection(report& r, const server_url& url, const options& o, int& failed) {
    failure why;
    const auto start = now();
    auto c = connection::open(url, o.timeout, o.ca, o.insecure, why);
    if (!c) {
        r.step("connect", false, ms_since(start), why.what);
        const auto [code, verdict] = connect_verdict(url, why);
        failed = r.finish(code, verdict);
        return nullptr;
    }
    if (url.via != wire::udp) {
        const auto tls = c->tls_summary();
        r.step("connect", true, ms_since(start),
               c->local().to_string() + " -> " + c->remote().to_string() + (tls.empty() ? "" : ", " + tls));
    }
    return c;
}

} // namespace ferry::probe
