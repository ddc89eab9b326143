// ferry-probe: tests a STUN/TURN deployment from the outside, the way a browser's ICE agent
// uses it. Each command runs its steps in order, prints each with its result and time, and ends
// with a verdict that names the likely cause when a step fails.
#pragma once

#include "transport.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace ferry::probe {

/// Exit codes (documented in the README and in --help).
enum exit_code : int {
    exit_ok = 0,          ///< every step worked
    exit_refused = 1,     ///< the server answered, but a step failed or was refused
    exit_usage = 2,       ///< bad command line
    exit_unreachable = 3, ///< no answer: nothing listens there, or a firewall drops the traffic
};

struct options {
    std::chrono::milliseconds timeout{3000};
    bool json = false;
    std::string user;
    std::string password;
    std::string secret;       ///< TURN REST shared secret: mint the credentials
    unsigned rest_ttl = 3600; ///< seconds a minted credential lives
    std::string realm;        ///< the realm the caller expects, if any
    std::string peer;         ///< an external echo peer IP:PORT instead of our own
    std::string ca;
    bool insecure = false;
    /// RFC 8489 SHA-256 credentials, the user named by USERHASH (§14.4) instead of USERNAME
    bool userhash = false;
};

/// What a command found, step by step. In text mode each step is printed as it finishes; in
/// JSON mode the whole report is printed once at the end.
class report {
public:
    report(std::string command, std::string target, bool json);
    void step(std::string name, bool ok, double ms, std::string detail);
    void fact(std::string key, std::string value);
    /// Ends the report with a verdict and returns the exit code to use.
    int finish(exit_code code, std::string verdict);

private:
    struct entry {
        std::string name;
        bool ok;
        double ms;
        std::string detail;
    };
    std::string command_;
    std::string target_;
    bool json_;
    std::vector<entry> steps_;
    std::vector<std::pair<std::string, std::string>> facts_;
};

int run_stun(const server_url& url, const options& o);
int run_nat(const server_url& url, const options& o);
int run_turn(const server_url& url, const options& o);

/// A transaction id from the OS's random source.
std::array<std::uint8_t, 12> random_transaction_id();

} // namespace ferry::probe

namespace ferry::probe {

/// Sends a request and waits for the response with its transaction id. Over UDP the request is
/// retransmitted (RTO 500 ms, doubling, RFC 8489 §6.2.1) until `timeout`. Other messages that
/// arrive meanwhile (Data indications, ChannelData) are appended to `others` when given.
std::optional<std::vector<std::uint8_t>> transact(connection& c, std::span<const std::uint8_t> request,
                                                  std::chrono::milliseconds timeout,
                                                  std::vector<std::vector<std::uint8_t>>* others = nullptr);
/// The same from an unconnected UDP socket to `to`; the answer may come from another address.
std::optional<udp_socket::datagram> transact(udp_socket& s, const protocol::transport_address& to,
                                             std::span<const std::uint8_t> request,
                                             std::chrono::milliseconds timeout);

/// "401 Unauthorized" from an error response's ERROR-CODE, or "error response without ERROR-CODE".
std::string error_text(std::span<const std::uint8_t> response);
/// The error code of a response, 0 for a success or when absent.
unsigned error_code_of(std::span<const std::uint8_t> response);

/// The verdict when a connection could not be opened, and the exit code that goes with it.
std::pair<exit_code, std::string> connect_verdict(const server_url& url, const failure& why);
/// The verdict when a request got no answer at all.
std::string no_answer_verdict(const server_url& url, const connection& c, std::chrono::milliseconds timeout);

std::string url_text(const server_url& url);

/// Opens the connection for a command, reporting a "connect" step for TCP and TLS. On failure
/// the report is finished with the verdict, its exit code is left in `failed`, and nullptr
/// comes back.
std::unique_ptr<connection> open_connection(report& r, const server_url& url, const options& o, int& failed);

} // namespace ferry::probe
