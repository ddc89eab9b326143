// The signaling service's rooms, as pure code: one function from a client's text message to the
// messages it causes, and the limits that keep a room and a server bounded. The WebSocket
// connection (and its size limit, pings and idle timeout) is the I/O layer's; this sees a
// connection as an id. The protocol is in docs/signaling.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::signaling {

using steady_time = std::chrono::steady_clock::time_point;

struct room_limits {
    unsigned members_per_room = 16;
    unsigned rooms = 10000;
    double messages_per_second = 50; ///< per connection, after a burst
    double message_burst = 200;
};

/// A join token binds a room and an expiry: "<expiry unix seconds>.<base64url of
/// HMAC-SHA256(secret, room "\n" expiry)>", minted by the application's backend.
std::string mint_join_token(std::string_view secret, std::string_view room, std::int64_t expiry);

enum class token_verdict { ok, missing, malformed, expired, forged };
/// Checks `token` for `room` against each secret (several, for rotation).
token_verdict check_join_token(std::span<const std::string> secrets, std::string_view room, std::string_view token,
                               std::int64_t now);

/// A room name: 1-64 characters of A-Z a-z 0-9 . _ -
bool valid_room_name(std::string_view room);

class hub {
public:
    struct policy {
        room_limits limits;
        std::vector<std::string> token_secrets; ///< empty: no token needed to join
        /// The `iceServers` JSON array handed to member `member` on connection `conn` when it
        /// joins (TURN credentials of its own); empty text: none.
        std::function<std::string(std::uint64_t conn, std::string_view member)> ice_servers;
        std::function<std::int64_t()> unix_now;
    };
    /// What a message from a connection causes: text to send to connections (its own answer
    /// included), and whether to close it afterwards, with which code and reason.
    struct effects {
        struct send {
            std::uint64_t to;
            std::string text;
        };
        std::vector<send> sends;
        bool close = false;
        std::uint16_t code = 0;
        std::string reason;
    };

    explicit hub(policy p);
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    /// A text message from connection `id`.
    effects on_text(std::uint64_t id, std::string_view text, steady_time now);
    /// Connection `id` is gone: its room hears that it left.
    effects on_close(std::uint64_t id);

    std::size_t rooms() const;
    std::size_t members() const;

private:
    struct state;
    std::unique_ptr<state> s_;
};

} // namespace ferry::signaling
