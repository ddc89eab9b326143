// Batched UDP I/O for one worker thread: recvmmsg into a ring of fixed slots, and an outbox
// that sendmmsg flushes, grouped by socket. One instance per worker, shared by all of that
// worker's UDP sockets (only one is being serviced at a time), so the packet path allocates
// nothing. An outgoing datagram may point into a receive slot, so forwarding needs no copy.
// Consecutive datagrams to one destination of one size leave as a single UDP GSO send.
#pragma once

#include "ferry/protocol/address.hpp"

#include <array>
#include <cstdint>
#include <exception>
#include <netinet/in.h>
#include <optional>
#include <span>
#include <sys/socket.h>
#include <vector>

namespace ferry::server {

class udp_batch {
public:
    static constexpr std::size_t batch_size = 32;
    /// Largest datagram received whole: any UDP datagram (65,535 bytes less the UDP header).
    static constexpr std::size_t slot_size = 65536;
    /// Room for a TURN header in front of a slot's worth of payload.
    static constexpr std::size_t send_slot_size = slot_size + 64;
    /// The part of a slot that common traffic touches; the rest of each slot is address space
    /// whose pages exist only while a large datagram uses them (see flush()).
    static constexpr std::size_t common_size = 4096;

    udp_batch();
    ~udp_batch();
    udp_batch(const udp_batch&) = delete;
    udp_batch& operator=(const udp_batch&) = delete;

    /// Receives up to batch_size datagrams from `fd`; returns how many (0 when none waits).
    std::size_t receive(int fd);
    std::span<const std::uint8_t> payload(std::size_t i) const;
    /// True when the datagram did not fit a slot and was cut.
    bool truncated(std::size_t i) const { return (rx_hdr_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }
    const sockaddr_storage& source(std::size_t i) const { return rx_addr_[i]; }
    /// The datagram's destination address, from IP_PKTINFO / IPV6_PKTINFO (wildcard sockets).
    std::optional<protocol::ip_address> destination(std::size_t i) const;

    /// A free send buffer of send_slot_size bytes, or an empty span if the outbox is full.
    std::span<std::uint8_t> send_buffer();
    /// Queues `data` for `fd` to `to`. With `from` set, the datagram leaves from that local
    /// address (for wildcard sockets). `data` must stay valid until flush().
    void queue(int fd, const sockaddr_storage& to, std::span<const std::uint8_t> data,
               const std::optional<protocol::ip_address>& from = std::nullopt);
    bool outbox_full() const { return tx_count_ == batch_size; }
    /// Sends everything queued, one sendmmsg per run of the same socket. Datagrams the
    /// kernel refuses (buffer full) are dropped, as UDP would. Then closes the descriptors
    /// handed to close_after_flush.
    void flush();
    /// Forgets everything queued, unsent (after an exception left a batch half-built: what is
    /// queued may point into buffers that are no longer what they were).
    void discard();
    /// Closes `fd` once nothing queued can leave from it: at once when nothing is queued, else
    /// after the next flush. Until then its number cannot be reused by a new socket, so a
    /// datagram queued for it can never leave from another allocation's socket.
    void close_after_flush(int fd);

    std::uint64_t send_errors() const { return send_errors_; }
    /// UDP GSO on (the default) or off, for comparisons.
    void set_gso(bool on) { gso_ = on; }
    /// Sends that carried more than one datagram (GSO).
    std::uint64_t gso_sends() const { return gso_sends_; }

private:
    static constexpr std::size_t control_size = CMSG_SPACE(sizeof(in6_pktinfo));
    static constexpr std::size_t gso_control_size = control_size + CMSG_SPACE(sizeof(std::uint16_t));
    static constexpr std::size_t max_segments = 64; ///< the kernel's UDP_MAX_SEGMENTS
    static constexpr std::size_t max_gso_bytes = 65000;

    void send_run(int fd, std::size_t start, std::size_t end);
    bool mergeable(std::size_t a, std::size_t b) const;

    /// Pages of slot tails that a large datagram used go back to the kernel.
    void release_tails(std::uint8_t* base, std::size_t stride, std::size_t slot);

    // Slots in anonymous mappings: address space for every datagram size, memory only for
    // the pages written (a common datagram touches one or two pages of its slot).
    std::uint8_t* rx_data_ = nullptr;
    std::uint8_t* tx_data_ = nullptr;
    std::size_t rx_count_ = 0; ///< datagrams of the current receive
    bool rx_large_ = false;    ///< one of them went past common_size
    std::array<mmsghdr, batch_size> rx_hdr_{};
    std::array<iovec, batch_size> rx_iov_{};
    std::array<sockaddr_storage, batch_size> rx_addr_{};
    std::array<std::array<std::uint8_t, control_size>, batch_size> rx_control_{};

    std::array<mmsghdr, batch_size> tx_hdr_{};
    std::array<iovec, batch_size> tx_iov_{};
    std::array<sockaddr_storage, batch_size> tx_addr_{};
    std::array<std::array<std::uint8_t, control_size>, batch_size> tx_control_{};
    std::array<int, batch_size> tx_fd_{};
    std::array<mmsghdr, batch_size> gso_hdr_{};  ///< what one flush hands to sendmmsg
    std::array<std::array<std::uint8_t, gso_control_size>, batch_size> gso_control_{};
    std::array<std::size_t, batch_size> group_first_{};
    std::array<std::size_t, batch_size> group_size_{};
    bool gso_ = true;
    std::uint64_t gso_sends_ = 0;
    std::size_t tx_count_ = 0;
    std::size_t tx_buffers_used_ = 0;
    std::uint64_t send_errors_ = 0;
    std::vector<int> closing_; ///< descriptors to close after the flush
};

/// A block that queues datagrams pointing into buffers it owns: when the block ends normally
/// what it queued is sent (or at now()), and when an exception leaves it, dropped, so nothing
/// queued outlives the buffers it points into. Sink: anything with flush() and discard().
template <class Sink>
class send_scope {
public:
    explicit send_scope(Sink& sink) : sink_(sink) {}
    send_scope(const send_scope&) = delete;
    send_scope& operator=(const send_scope&) = delete;
    ~send_scope() {
        if (std::uncaught_exceptions() > exceptions_) sink_.discard();
        else sink_.flush();
    }
    void now() { sink_.flush(); }

private:
    Sink& sink_;
    int exceptions_ = std::uncaught_exceptions();
};

} // namespace ferry::server
