// ferry-probe: tests a STUN/TURN deployment from the outside.
//
//   ferry-probe stun URL                      mapped address and round-trip time
//   ferry-probe nat HOST[:PORT]               RFC 5780 mapping and filtering behaviour, in words
//   ferry-probe turn URL (--user U --password P | --secret S [--user NAME])
//                        [--peer IP:PORT] [--realm R]
//                                             Allocate, CreatePermission, ChannelBind, and data
//                                             both ways through the relay to an echo peer
// URL: stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT], as in a
// browser's iceServers. Common options: --timeout MS (3000), --json, --ca FILE, --insecure.
// Exit codes: 0 every step worked, 1 the server answered but refused or failed a step, 2 bad
// command line, 3 no answer (nothing listens, or a firewall drops the traffic).
#include "probe.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace ferry::probe;

int usage(const char* why = nullptr) {
    if (why != nullptr) std::fprintf(stderr, "ferry-probe: %s\n", why);
    std::fprintf(stderr,
                 "usage: ferry-probe stun URL [options]\n"
                 "       ferry-probe nat HOST[:PORT] [options]\n"
                 "       ferry-probe turn URL (--user U --password P | --secret S [--user NAME]) [options]\n"
                 "URL: stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT]\n"
                 "options:\n"
                 "  --timeout MS     how long to wait for each answer (3000)\n"
                 "  --json           one JSON object on stdout instead of text\n"
                 "  --ca FILE        trust this CA for turns: (besides the system's)\n"
                 "  --insecure       do not check the server's certificate\n"
                 "  --realm R        the realm you expect (turn)\n"
                 "  --peer IP:PORT   an external UDP echo peer instead of ferry-probe's own (turn)\n"
                 "  --ttl S          lifetime of credentials minted with --secret (3600)\n"
                 "  --userhash       SHA-256 credentials, naming the user by USERHASH (turn)\n"
                 "exit codes: 0 every step worked; 1 the server answered but refused or failed a step;\n"
                 "            2 bad command line; 3 no answer (nothing listens, or a firewall drops it)\n");
    return exit_usage;
}

bool number(std::string_view text, unsigned long max, unsigned long& out) {
    if (text.empty() || text.size() > 9) return false;
    out = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<unsigned long>(c - '0');
    }
    return out > 0 && out <= max;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string_view command = argv[1];
    if (command == "-h" || command == "--help") return usage();
    options o;
    for (int i = 3; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        unsigned long n = 0;
        if (arg == "--json") o.json = true;
        else if (arg == "--insecure") o.insecure = true;
        else if (arg == "--userhash") o.userhash = true;
        else if (arg == "--timeout" || arg == "--ttl") {
            const char* v = value();
            if (v == nullptr || !number(v, arg == "--ttl" ? 86400UL * 365 : 600000UL, n))
                return usage("--timeout wants milliseconds (1..600000), --ttl seconds");
            if (arg == "--timeout") o.timeout = std::chrono::milliseconds(n);
            else o.rest_ttl = static_cast<unsigned>(n);
        } else if (arg == "--user" || arg == "--password" || arg == "--secret" || arg == "--realm" ||
                   arg == "--peer" || arg == "--ca") {
            const char* v = value();
            if (v == nullptr) return usage((std::string(arg) + " wants a value").c_str());
            (arg == "--user"       ? o.user
             : arg == "--password" ? o.password
             : arg == "--secret"   ? o.secret
             : arg == "--realm"    ? o.realm
             : arg == "--peer"     ? o.peer
                                   : o.ca) = v;
        } else {
            return usage(("unknown option " + std::string(arg)).c_str());
        }
    }
    std::string why;
    const auto url = parse_url(argv[2], why);
    if (!url) return usage(("not a STUN/TURN URL: " + why).c_str());
    if (command == "stun") return run_stun(*url, o);
    if (command == "nat") {
        if (url->via != wire::udp) return usage("nat tests run over UDP only");
        return run_nat(*url, o);
    }
    if (command == "turn") {
        if (o.secret.empty() && (o.user.empty() != o.password.empty()))
            return usage("turn wants --user and --password together, or --secret");
        if (!o.secret.empty() && !o.password.empty()) return usage("--secret mints the password: drop --password");
        return run_turn(*url, o);
    }
    return usage(("unknown command " + std::string(command)).c_str());
}
