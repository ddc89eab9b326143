// ferry-probe stun and nat: one Binding request, and the RFC 5780 §4.3/§4.4 tests of NAT
// mapping and filtering behaviour.
#include "probe.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/writer.hpp"

#include <array>

namespace ferry::probe {
namespace {

using namespace ferry::protocol;

/// A Binding request with SOFTWARE and FINGERPRINT, and CHANGE-REQUEST when asked.
std::vector<std::uint8_t> binding_request(bool change_ip = false, bool change_port = false) {
    std::array<std::uint8_t, 128> buf{};
    const auto txid = random_transaction_id();
    message_writer w(buf, make_message_type(method::binding, message_class::request), txid);
    software{"ferry-probe"}.encode(w);
    if (change_ip || change_port) change_request{change_ip, change_port}.encode(w);
    w.append_fingerprint();
    const auto out = w.finish();
    return {out.begin(), out.end()};
}

std::optional<transport_address> mapped_of(const message_view& m) {
    if (auto a = m.get<xor_mapped_address>()) return a->address;
    if (auto a = m.get<mapped_address>()) return a->address;
    return std::nullopt;
}

} // namespace

int run_stun(const server_url& url, const options& o) {
    report r("stun", url_text(url), o.json);
    int failed = exit_ok;
    auto c = open_connection(r, url, o, failed);
    if (!c) return failed;
    const auto request = binding_request();
    auto start = now();
    const auto got = transact(*c, request, o.timeout);
    if (!got) {
        r.step("binding", false, ms_since(start), "no answer");
        return r.finish(exit_unreachable, no_answer_verdict(url, *c, o.timeout));
    }
    const double rtt = ms_since(start);
    message_view m;
    if (m.parse(*got) || m.klass() != message_class::success_response) {
        r.step("binding", false, rtt, error_text(*got));
        return r.finish(exit_refused, "the server refused a plain Binding request with " + error_text(*got));
    }
    const auto mapped = mapped_of(m);
    if (!mapped) {
        r.step("binding", false, rtt, "the answer has no (XOR-)MAPPED-ADDRESS");
        return r.finish(exit_refused, "the server answered without telling the mapped address");
    }
    r.step("binding", true, rtt, "mapped " + mapped->to_string());
    r.fact("mapped_address", mapped->to_string());
    r.fact("local_address", c->local().to_string());
    if (auto a = m.get<response_origin>()) r.fact("response_origin", a->address.to_string());
    if (auto a = m.get<other_address>()) r.fact("other_address", a->address.to_string());
    if (auto s = m.get<software>()) r.fact("software", std::string(s->value));
    r.fact("rtt_ms", std::to_string(rtt).substr(0, std::to_string(rtt).find('.') + 3));
    if (*mapped == c->local())
        return r.finish(exit_ok, "STUN works; the server sees your own address " + mapped->to_string() +
                                     ": no NAT between you and it");
    return r.finish(exit_ok, "STUN works; your address " + c->local().to_string() + " is seen as " +
                                 mapped->to_string() + " (a NAT or the host's public address)");
}

int run_nat(const server_url& url, const options& o) {
    report r("nat", url_text(url), o.json);
    failure why;
    // A connected UDP socket tells which local address the route to the server uses; the tests
    // themselves need an unconnected socket, since answers come from the server's other address.
    auto c = connection::open(url, o.timeout, o.ca, o.insecure, why);
    if (!c) {
        auto [code, verdict] = connect_verdict(url, why);
        return r.finish(code, verdict);
    }
    const auto server = c->remote();
    udp_socket s(c->local().ip);
    c.reset();
    if (!s.ok()) return r.finish(exit_refused, "cannot open a local UDP socket");

    struct answer {
        transport_address from;
        transport_address mapped;
        std::optional<transport_address> other;
    };
    auto binding = [&](const char* name, const transport_address& to, bool change_ip, bool change_port,
                       bool silence_is_a_result) -> std::optional<answer> {
        const auto request = binding_request(change_ip, change_port);
        const auto start = now();
        const auto got = transact(s, to, request, o.timeout);
        const double ms = ms_since(start);
        if (!got) {
            r.step(name, silence_is_a_result, ms, "no answer from " + to.to_string());
            return std::nullopt;
        }
        message_view m;
        const auto mapped = m.parse(got->bytes) ? std::nullopt : mapped_of(m);
        if (m.klass() != message_class::success_response || !mapped) {
            r.step(name, false, ms, error_text(got->bytes));
            return std::nullopt;
        }
        answer a{got->from, *mapped, std::nullopt};
        if (auto other = m.get<other_address>()) a.other = other->address;
        else if (auto changed = m.get<changed_address>()) a.other = changed->address;
        r.step(name, true, ms, "mapped " + mapped->to_string() + " (answer from " + got->from.to_string() + ")");
        return a;
    };

    // RFC 5780 §4.3, test I: the mapped address and the server's other address.
    const auto first = binding("test I", server, false, false, false);
    if (!first) {
        return r.finish(exit_unreachable, "no answer from " + server.to_string() +
                                              " over UDP: a firewall drops UDP to that port, or nothing listens there");
    }
    r.fact("local_address", s.local().to_string());
    r.fact("mapped_address", first->mapped.to_string());
    if (!first->other)
        return r.finish(exit_refused, "the server does not support RFC 5780 NAT discovery (no OTHER-ADDRESS "
                                      "in its answer); in ferry, set nat_discovery.alternate_address");
    const auto other = *first->other;
    r.fact("other_address", other.to_string());

    std::string mapping;
    if (first->mapped == s.local()) {
        mapping = "none";
        r.fact("mapping", "no NAT: the server sees your own address");
    } else {
        // Test II: the other IP, the primary port. Test III: the other IP and port.
        const auto second = binding("test II", {other.ip, server.port}, false, false, false);
        if (!second) return r.finish(exit_refused, "the server's other address " + other.ip.to_string() +
                                                       " does not answer; its RFC 5780 set-up is incomplete");
        if (second->mapped == first->mapped) {
            mapping = "endpoint-independent";
        } else {
            const auto third = binding("test III", other, false, false, false);
            if (!third) return r.finish(exit_refused, "the server's other address " + other.to_string() +
                                                          " does not answer; its RFC 5780 set-up is incomplete");
            mapping = third->mapped == second->mapped ? "address-dependent" : "address-and-port-dependent";
        }
        r.fact("mapping", mapping);
    }

    // RFC 5780 §4.4: ask for the answer from the other IP and port, then from the other port.
    std::string filtering;
    if (binding("filter II", server, true, true, true)) {
        filtering = "endpoint-independent";
    } else if (binding("filter III", server, false, true, true)) {
        filtering = "address-dependent";
    } else {
        filtering = "address-and-port-dependent";
    }
    r.fact("filtering", filtering);

    std::string words;
    if (mapping == "none")
        words = "no NAT: the server sees your own address " + first->mapped.to_string() + "; ";
    else if (mapping == "endpoint-independent")
        words = "endpoint-independent mapping: one public address per local port whatever the destination, so "
                "your server-reflexive candidate works toward peers too; ";
    else
        words = mapping + " mapping (a 'symmetric' NAT): your server-reflexive candidate only works toward this "
                          "server, so calls to peers behind NATs need the TURN relay; ";
    if (filtering == "endpoint-independent")
        words += "endpoint-independent filtering: any host may send to your mapped address";
    else if (filtering == "address-dependent")
        words += "address-dependent filtering: only hosts you have sent to may reach you";
    else
        words += "address-and-port-dependent filtering: only the exact addresses and ports you have sent to may "
                 "reach you";
    return r.finish(exit_ok, words);
}

} // namespace ferry::probe
