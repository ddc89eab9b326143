// The STUN request handler: one function from a received message (and where it came from)
// to the bytes of the reply and where they go. No sockets here; the listeners send.
// Implements Binding (RFC 8489 §6.3, RFC 3489 §8.2 for classic clients) and RFC 5780's
// CHANGE-REQUEST, RESPONSE-PORT, PADDING, RESPONSE-ORIGIN and OTHER-ADDRESS.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/protocol/message.hpp"
#include "ferry/protocol/writer.hpp"
#include "ferry/server/log.hpp"
#include "ferry/server/request.hpp"

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace ferry::server {

class turn_handler;
class packet_sink;

/// What to send back. size 0 means send nothing (the request is dropped).
struct reply {
    std::size_t size = 0;
    unsigned from_ip = 0;         ///< with a nat set: which socket sends ([ip][port])
    unsigned from_port = 0;
    std::uint16_t to_port = 0;    ///< RESPONSE-PORT: the port to send to; 0 = the source port
};

struct handler_settings {
    std::string software; ///< SOFTWARE value; empty sends none
};

/// The methods and result codes requests are counted by (method 0: any other; code 0: no
/// answer, 200: success, 999: any other error).
inline constexpr std::array<std::uint16_t, 8> counted_methods = {0x001, 0x003, 0x004, 0x008, 0x009, 0x00A, 0x00B, 0};
inline constexpr std::array<std::uint16_t, 19> counted_codes = {0,   200, 300, 400, 401, 403, 420, 437, 438, 440,
                                                                441, 442, 443, 446, 447, 486, 500, 508, 999};

/// Counters one worker keeps; summed across workers on read.
struct handler_stats {
    std::uint64_t requests = 0;
    std::uint64_t dropped = 0; ///< malformed, bad FINGERPRINT, or a response or stray indication
    std::uint64_t errors_sent = 0;
    /// requests by [method][result], indexed as counted_methods and counted_codes
    std::array<std::array<std::uint64_t, counted_codes.size()>, counted_methods.size()> responses{};
};

class stun_handler {
public:
    explicit stun_handler(handler_settings settings);

    /// Serves TURN methods and Send indications with `turn` (none: TURN requests get 400).
    void attach(turn_handler* turn) { turn_ = turn; }

    /// Handles one datagram or stream record that classify() called STUN. Writes the reply
    /// into `out` (which should hold at least 1500 bytes). A Send indication is relayed
    /// through `sink`.
    reply handle(const request_context& ctx, std::span<const std::uint8_t> in,
                 std::span<std::uint8_t> out, packet_sink* sink = nullptr);

    const handler_stats& stats() const { return stats_; }

private:
    reply dispatch(const request_context& ctx, const protocol::message_view& req, std::span<std::uint8_t> out,
                   packet_sink* sink);
    /// Counts the answer `response` (empty: none) to a request of `method`.
    void count(std::uint16_t method, std::span<const std::uint8_t> response);
    reply handle_binding(const request_context& ctx, const protocol::message_view& req,
                         std::span<std::uint8_t> out);
    reply error_response(const request_context& ctx, const protocol::message_view& req,
                         std::uint16_t code, std::span<const std::uint16_t> unknown,
                         std::span<std::uint8_t> out);
    /// SOFTWARE (if it fits within `budget` bytes) and FINGERPRINT (if the request had one).
    void finish_response(protocol::message_writer& w, const protocol::message_view& req, std::size_t budget) const;

    handler_settings settings_;
    /// SOFTWARE for RFC 3489 requests (their SERVER attribute): space-padded to a multiple of
    /// four, since classic clients reject other lengths.
    std::string classic_software_;
    turn_handler* turn_ = nullptr;
    handler_stats stats_;
    log::throttle garbage_log_{5};
};

} // namespace ferry::server
