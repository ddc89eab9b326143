#include "ferry/server/udp_batch.hpp"

#include <cerrno>
#include <cstring>

namespace ferry::server {

udp_batch::udp_batch() : rx_data_(batch_size * slot_size), tx_data_(batch_size * send_slot_size) {
    for (std::size_t i = 0; i < batch_size; ++i) {
        rx_iov_[i] = {rx_data_.data() + i * slot_size, slot_size};
    }
}

std::size_t udp_batch::receive(int fd) {
    for (std::size_t i = 0; i < batch_size; ++i) {
        auto& h = rx_hdr_[i].msg_hdr;
        h.msg_name = &rx_addr_[i];
        h.msg_namelen = sizeof(sockaddr_storage);
        h.msg_iov = &rx_iov_[i];
        h.msg_iovlen = 1;
        h.msg_control = rx_control_[i].data();
        h.msg_controllen = control_size;
        h.msg_flags = 0;
    }
    const int n = ::recvmmsg(fd, rx_hdr_.data(), batch_size, MSG_DONTWAIT, nullptr);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::span<const std::uint8_t> udp_batch::payload(std::size_t i) const {
    return {rx_data_.data() + i * slot_size, rx_hdr_[i].msg_len};
}

std::optional<protocol::ip_address> udp_batch::destination(std::size_t i) const {
    auto& h = const_cast<msghdr&>(rx_hdr_[i].msg_hdr);
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            protocol::ip_address a;
            std::memcpy(a.bytes.data(), &info.ipi_addr, 4);
            return a;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            protocol::ip_address a;
            a.family = protocol::address_family::ipv6;
            std::memcpy(a.bytes.data(), &info.ipi6_addr, 16);
            return a;
        }
    }
    return std::nullopt;
}

std::span<std::uint8_t> udp_batch::send_buffer() {
    if (tx_buffers_used_ == batch_size) return {};
    return {tx_data_.data() + tx_buffers_used_++ * send_slot_size, send_slot_size};
}

void udp_batch::queue(int fd, const sockaddr_storage& to, std::span<const std::uint8_t> data,
                      const std::optional<protocol::ip_address>& from) {
    if (tx_count_ == batch_size) flush();
    const std::size_t i = tx_count_++;
    tx_fd_[i] = fd;
    tx_addr_[i] = to;
    tx_iov_[i] = {const_cast<std::uint8_t*>(data.data()), data.size()};
    auto& h = tx_hdr_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &tx_addr_[i];
    h.msg_namelen = to.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    h.msg_iov = &tx_iov_[i];
    h.msg_iovlen = 1;
    if (from) {
        auto& control = tx_control_[i];
        std::memset(control.data(), 0, control.size());
        h.msg_control = control.data();
        cmsghdr* c = reinterpret_cast<cmsghdr*>(control.data());
        if (from->family == protocol::address_family::ipv4) {
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
            in_pktinfo info{};
            std::memcpy(&info.ipi_spec_dst, from->bytes.data(), 4);
            std::memcpy(CMSG_DATA(c), &info, sizeof info);
            h.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
        } else {
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
            in6_pktinfo info{};
            std::memcpy(&info.ipi6_addr, from->bytes.data(), 16);
            std::memcpy(CMSG_DATA(c), &info, sizeof info);
            h.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
        }
    }
}

void udp_batch::flush() {
    std::size_t start = 0;
    while (start < tx_count_) {
        std::size_t end = start + 1;
        while (end < tx_count_ && tx_fd_[end] == tx_fd_[start]) ++end;
        std::size_t pos = start;
        while (pos < end) {
            const int n = ::sendmmsg(tx_fd_[start], &tx_hdr_[pos], static_cast<unsigned>(end - pos),
                                     MSG_DONTWAIT);
            if (n > 0) {
                pos += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            // EAGAIN (socket buffer full) or a per-destination error such as ECONNREFUSED or
            // EHOSTUNREACH: drop this datagram, as the network would, and go on with the rest.
            ++send_errors_;
            ++pos;
        }
        start = end;
    }
    tx_count_ = 0;
    tx_buffers_used_ = 0;
}

} // namespace ferry::server
