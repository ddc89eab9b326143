// The load generator's TURN client: sets up allocations with long-term credentials (401, then
// a signed Allocate), binds channels or permissions, and builds the data messages. Set-up is
// synchronous per socket (poll with a deadline); the data phase is the workload's own loop.
#pragma once

#include "ferry/auth/keys.hpp"
#include "ferry/protocol/address.hpp"
#include "ferry/protocol/writer.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <sys/socket.h>

namespace ferry::load {

struct credentials {
    std::string user = "load";
    std::string password = "load";
};

/// sockaddr for a transport address; returns the length.
socklen_t to_sockaddr(const protocol::transport_address& a, sockaddr_storage& out);
protocol::transport_address from_sockaddr(const sockaddr_storage& s);
/// A connected, non-blocking UDP socket towards `server` (-1 on failure).
int open_client(const protocol::transport_address& server);
/// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_fd_limit();

class stream_link;

class turn_session {
public:
    /// Over a connected UDP socket.
    explicit turn_session(int fd) : fd_(fd) {}
    /// Over a TCP or TLS connection (no retransmissions).
    explicit turn_session(stream_link& stream);
    int fd() const { return fd_; }

    /// 401 round, then a signed Allocate. False on any failure (the reason in error()).
    bool allocate(const credentials& c, std::chrono::milliseconds timeout);
    /// ChannelBind `channel` to `peer` (also installs the permission).
    bool channel_bind(std::uint16_t channel, const protocol::transport_address& peer,
                      std::chrono::milliseconds timeout);
    bool create_permission(const protocol::transport_address& peer, std::chrono::milliseconds timeout);
    /// Refresh with LIFETIME 0: deletes the allocation.
    bool release(std::chrono::milliseconds timeout);

    const protocol::transport_address& relayed() const { return relayed_; }
    const std::string& error() const { return error_; }

    /// Writes a Send indication carrying `payload` to `peer` into `out`; returns its size.
    static std::size_t send_indication(std::span<std::uint8_t> out, const protocol::transport_address& peer,
                                       std::span<const std::uint8_t> payload, std::uint64_t id);

private:
    /// Sends `request` and waits for the response with its transaction id into `response_`.
    bool transact(std::span<const std::uint8_t> request, std::span<const std::uint8_t, 12> txid,
                  std::chrono::milliseconds timeout);
    std::size_t signed_request(std::uint16_t type, const std::function<void(protocol::message_writer&)>& attrs);

    int fd_;
    stream_link* stream_ = nullptr;
    credentials creds_;
    std::string realm_;
    std::string nonce_;
    auth::key key_{};
    protocol::transport_address relayed_;
    std::array<std::uint8_t, 1500> request_{};
    std::array<std::uint8_t, 1500> response_{};
    std::size_t response_size_ = 0;
    std::uint32_t counter_ = 0;
    std::string error_;
};

} // namespace ferry::load
