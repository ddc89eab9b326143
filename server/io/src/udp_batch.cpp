#include "ferry/server/udp_batch.hpp"

#include <cerrno>
#include <netinet/udp.h>
#include <cstring>
#include <sys/mman.h>
#include <system_error>
#include <unistd.h>

namespace ferry::server {

namespace {

constexpr std::size_t page = 4096;

std::uint8_t* map_slots(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "cannot map the UDP batch buffers");
    return static_cast<std::uint8_t*>(p);
}

} // namespace

udp_batch::udp_batch()
    : rx_data_(map_slots(batch_size * slot_size)), tx_data_(map_slots(batch_size * send_slot_size)) {
    for (std::size_t i = 0; i < batch_size; ++i) {
        rx_iov_[i] = {rx_data_ + i * slot_size, slot_size};
    }
}

udp_batch::~udp_batch() {
    ::munmap(rx_data_, batch_size * slot_size);
    ::munmap(tx_data_, batch_size * send_slot_size);
}

void udp_batch::release_tails(std::uint8_t* base, std::size_t stride, std::size_t slot) {
    // From the first whole page past common_size to the last whole page of the slot.
    const auto begin = (reinterpret_cast<std::uintptr_t>(base + slot * stride + common_size) + page - 1) & ~(page - 1);
    const auto end = reinterpret_cast<std::uintptr_t>(base + (slot + 1) * stride) & ~(page - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::size_t udp_batch::receive(int fd) {
    if (rx_large_) {
        // The previous receive held a large datagram: its pages go back before this one.
        for (std::size_t i = 0; i < rx_count_; ++i)
            if (rx_hdr_[i].msg_len > common_size) release_tails(rx_data_, slot_size, i);
        rx_large_ = false;
    }
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
    rx_count_ = n > 0 ? static_cast<std::size_t>(n) : 0;
    for (std::size_t i = 0; i < rx_count_; ++i) rx_large_ |= rx_hdr_[i].msg_len > common_size;
    return rx_count_;
}

std::span<const std::uint8_t> udp_batch::payload(std::size_t i) const {
    return {rx_data_ + i * slot_size, rx_hdr_[i].msg_len};
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
    return {tx_data_ + tx_buffers_used_++ * send_slot_size, send_slot_size};
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

namespace {

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
    if (a.ss_family != b.ss_family) return false;
    if (a.ss_family == AF_INET) {
        const auto& x = reinterpret_cast<const sockaddr_in&>(a);
        const auto& y = reinterpret_cast<const sockaddr_in&>(b);
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0 &&
           x.sin6_scope_id == y.sin6_scope_id;
}

} // namespace

bool udp_batch::mergeable(std::size_t a, std::size_t b) const {
    const auto& x = tx_hdr_[a].msg_hdr;
    const auto& y = tx_hdr_[b].msg_hdr;
    return same_address(tx_addr_[a], tx_addr_[b]) && x.msg_controllen == y.msg_controllen &&
           (x.msg_controllen == 0 || std::memcmp(x.msg_control, y.msg_control, x.msg_controllen) == 0);
}

void udp_batch::flush() {
    std::size_t start = 0;
    while (start < tx_count_) {
        std::size_t end = start + 1;
        while (end < tx_count_ && tx_fd_[end] == tx_fd_[start]) ++end;
        send_run(tx_fd_[start], start, end);
        start = end;
    }
    // A send buffer that held a large datagram gives its extra pages back.
    for (std::size_t i = 0; i < tx_count_; ++i) {
        const auto* p = static_cast<const std::uint8_t*>(tx_iov_[i].iov_base);
        if (tx_iov_[i].iov_len > common_size && p >= tx_data_ && p < tx_data_ + batch_size * send_slot_size)
            release_tails(tx_data_, send_slot_size, static_cast<std::size_t>(p - tx_data_) / send_slot_size);
    }
    tx_count_ = 0;
    tx_buffers_used_ = 0;
    for (const int fd : closing_) ::close(fd);
    closing_.clear();
}

void udp_batch::discard() {
    tx_count_ = 0;
    tx_buffers_used_ = 0;
    for (const int fd : closing_) ::close(fd);
    closing_.clear();
}

void udp_batch::close_after_flush(int fd) {
    if (tx_count_ == 0) ::close(fd);
    else closing_.push_back(fd);
}

// Datagrams [start, end) all leave from `fd`. Consecutive ones to the same destination from the
// same source address, all of one size but the last (which may be shorter), go out as one UDP
// GSO send (UDP_SEGMENT): the kernel routes and builds them once and splits them on the way.
void udp_batch::send_run(int fd, std::size_t start, std::size_t end) {
    std::size_t groups = 0;
    for (std::size_t i = start; i < end;) {
        const std::size_t segment = tx_iov_[i].iov_len;
        std::size_t total = segment;
        std::size_t j = i + 1;
        if (gso_ && segment != 0) {
            while (j < end && j - i < max_segments && tx_iov_[j - 1].iov_len == segment &&
                   tx_iov_[j].iov_len != 0 && tx_iov_[j].iov_len <= segment && total + tx_iov_[j].iov_len <= max_gso_bytes &&
                   mergeable(i, j)) {
                total += tx_iov_[j].iov_len;
                ++j;
            }
        }
        auto& h = gso_hdr_[groups].msg_hdr;
        h = tx_hdr_[i].msg_hdr;
        group_first_[groups] = i;
        group_size_[groups] = j - i;
        if (j - i > 1) {
            auto& control = gso_control_[groups];
            std::size_t len = h.msg_controllen;
            if (len != 0) std::memcpy(control.data(), h.msg_control, len);
            auto* c = reinterpret_cast<cmsghdr*>(control.data() + len);
            c->cmsg_level = IPPROTO_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
            const auto size = static_cast<std::uint16_t>(segment);
            std::memcpy(CMSG_DATA(c), &size, sizeof size);
            h.msg_control = control.data();
            h.msg_controllen = len + CMSG_SPACE(sizeof(std::uint16_t));
            h.msg_iov = &tx_iov_[i];
            h.msg_iovlen = j - i;
        }
        ++groups;
        i = j;
    }
    std::size_t pos = 0;
    while (pos < groups) {
        const int n = ::sendmmsg(fd, &gso_hdr_[pos], static_cast<unsigned>(groups - pos), MSG_DONTWAIT);
        if (n > 0) {
            for (std::size_t k = pos; k < pos + static_cast<std::size_t>(n); ++k)
                if (group_size_[k] > 1) ++gso_sends_;
            pos += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (group_size_[pos] > 1 && (errno == EINVAL || errno == EIO || errno == EMSGSIZE || errno == ENOPROTOOPT)) {
            // No GSO for this one (a segment over the path MTU, or a kernel without it): one by one.
            for (std::size_t k = 0; k < group_size_[pos]; ++k)
                if (::sendmsg(fd, &tx_hdr_[group_first_[pos] + k].msg_hdr, MSG_DONTWAIT) < 0) ++send_errors_;
        } else {
            // EAGAIN (socket buffer full) or a per-destination error such as ECONNREFUSED or
            // EHOSTUNREACH: drop this datagram, as the network would, and go on with the rest.
            send_errors_ += group_size_[pos];
        }
        ++pos;
    }
}

} // namespace ferry::server
