#include "turn_client.hpp"

#include "stream_link.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/wire.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

namespace ferry::load {

using namespace ferry::protocol;
using clock = std::chrono::steady_clock;

socklen_t to_sockaddr(const transport_address& a, sockaddr_storage& out) {
    std::memset(&out, 0, sizeof out);
    if (a.ip.family == address_family::ipv4) {
        auto* s = reinterpret_cast<sockaddr_in*>(&out);
        s->sin_family = AF_INET;
        s->sin_port = htons(a.port);
        std::memcpy(&s->sin_addr, a.ip.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&out);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(a.port);
    std::memcpy(&s->sin6_addr, a.ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

transport_address from_sockaddr(const sockaddr_storage& s) {
    transport_address a;
    if (s.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&s);
        std::memcpy(a.ip.bytes.data(), &in->sin_addr, 4);
        a.port = ntohs(in->sin_port);
    } else {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&s);
        a.ip.family = address_family::ipv6;
        std::memcpy(a.ip.bytes.data(), &in6->sin6_addr, 16);
        a.port = ntohs(in6->sin6_port);
    }
    return a;
}

int open_client(const transport_address& server) {
    sockaddr_storage ss;
    const auto len = to_sockaddr(server, ss);
    const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::uint64_t raise_fd_limit() {
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
    return r.rlim_cur;
}

turn_session::turn_session(stream_link& stream) : fd_(stream.fd()), stream_(&stream) {}

bool turn_session::transact(std::span<const std::uint8_t> request, std::span<const std::uint8_t, 12> txid,
                            std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    if (stream_ != nullptr) {
        if (!stream_->send(request)) {
            error_ = "send failed";
            return false;
        }
        for (;;) {
            for (auto m = stream_->next(); !m.empty(); m = stream_->next()) {
                message_view v;
                if (m.size() > response_.size() || v.parse(m)) continue;
                if (!std::equal(txid.begin(), txid.end(), v.transaction_id().begin())) continue;
                std::copy(m.begin(), m.end(), response_.begin());
                response_size_ = m.size();
                return true;
            }
            const auto now = clock::now();
            if (now >= deadline || stream_->bad()) {
                error_ = stream_->bad() ? "not a TURN stream" : "timed out";
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1);
            if (!stream_->fill()) {
                error_ = "connection closed";
                return false;
            }
        }
    }
    auto next_send = clock::now();
    for (;;) {
        const auto now = clock::now();
        if (now >= deadline) {
            error_ = "timed out";
            return false;
        }
        if (now >= next_send) {
            ::send(fd_, request.data(), request.size(), 0);
            next_send = now + std::chrono::milliseconds(250); // retransmit, as STUN over UDP does
        }
        pollfd p{fd_, POLLIN, 0};
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, next_send) - now);
        if (::poll(&p, 1, static_cast<int>(wait.count()) + 1) <= 0) continue;
        const auto n = ::recv(fd_, response_.data(), response_.size(), 0);
        if (n <= 0) continue;
        message_view m;
        if (m.parse({response_.data(), static_cast<std::size_t>(n)})) continue;
        if (!std::equal(txid.begin(), txid.end(), m.transaction_id().begin())) continue; // data, or late
        response_size_ = static_cast<std::size_t>(n);
        return true;
    }
}

std::size_t turn_session::signed_request(std::uint16_t type, const std::function<void(message_writer&)>& attrs) {
    std::array<std::uint8_t, 12> txid{};
    store_u32(txid.data(), static_cast<std::uint32_t>(fd_));
    store_u32(txid.data() + 8, ++counter_);
    message_writer w(request_, type, txid);
    attrs(w);
    if (!nonce_.empty()) {
        username{creds_.user}.encode(w);
        realm{realm_}.encode(w);
        nonce{nonce_}.encode(w);
        w.append_message_integrity(key_.view());
    }
    return w.finish().size();
}

bool turn_session::allocate(const credentials& c, std::chrono::milliseconds timeout) {
    creds_ = c;
    auto attrs = [](message_writer& w) { requested_transport{}.encode(w); };
    for (int attempt = 0; attempt < 3; ++attempt) {
        const auto size = signed_request(make_message_type(method::allocate, message_class::request), attrs);
        std::array<std::uint8_t, 12> txid{};
        std::copy_n(request_.begin() + 8, 12, txid.begin());
        if (!transact({request_.data(), size}, txid, timeout)) return false;
        message_view m;
        if (m.parse({response_.data(), response_size_})) return false;
        if (m.is(method::allocate, message_class::success_response)) {
            auto r = m.get<xor_relayed_address>();
            if (!r) {
                error_ = "no XOR-RELAYED-ADDRESS";
                return false;
            }
            relayed_ = r->address;
            return true;
        }
        const auto code = m.get<error_code>();
        if (code && (code->code == 401 || code->code == 438) && m.get<nonce>() && m.get<realm>()) {
            nonce_ = std::string(m.get<nonce>()->value);
            realm_ = std::string(m.get<realm>()->value);
            key_ = auth::long_term_key(creds_.user, realm_, creds_.password);
            continue;
        }
        error_ = "Allocate failed: " + std::to_string(code ? code->code : 0);
        return false;
    }
    error_ = "Allocate: too many challenges";
    return false;
}

namespace {

bool success_of(std::span<const std::uint8_t> bytes, std::string& error) {
    message_view m;
    if (m.parse(bytes)) {
        error = "unparsable response";
        return false;
    }
    if (m.klass() == message_class::success_response) return true;
    const auto code = m.get<error_code>();
    error = "error " + std::to_string(code ? code->code : 0);
    return false;
}

} // namespace

bool turn_session::channel_bind(std::uint16_t channel, const transport_address& peer, std::chrono::milliseconds timeout) {
    const auto size = signed_request(make_message_type(method::channel_bind, message_class::request), [&](message_writer& w) {
        channel_number{channel}.encode(w);
        xor_peer_address{peer}.encode(w);
    });
    std::array<std::uint8_t, 12> txid{};
    std::copy_n(request_.begin() + 8, 12, txid.begin());
    return transact({request_.data(), size}, txid, timeout) && success_of({response_.data(), response_size_}, error_);
}

bool turn_session::create_permission(const transport_address& peer, std::chrono::milliseconds timeout) {
    const auto size = signed_request(make_message_type(method::create_permission, message_class::request),
                                     [&](message_writer& w) { xor_peer_address{peer}.encode(w); });
    std::array<std::uint8_t, 12> txid{};
    std::copy_n(request_.begin() + 8, 12, txid.begin());
    return transact({request_.data(), size}, txid, timeout) && success_of({response_.data(), response_size_}, error_);
}

bool turn_session::release(std::chrono::milliseconds timeout) {
    const auto size = signed_request(make_message_type(method::refresh, message_class::request),
                                     [](message_writer& w) { lifetime{0}.encode(w); });
    std::array<std::uint8_t, 12> txid{};
    std::copy_n(request_.begin() + 8, 12, txid.begin());
    return transact({request_.data(), size}, txid, timeout) && success_of({response_.data(), response_size_}, error_);
}

std::size_t turn_session::send_indication(std::span<std::uint8_t> out, const transport_address& peer,
                                          std::span<const std::uint8_t> payload, std::uint64_t id) {
    std::array<std::uint8_t, 12> txid{};
    std::memcpy(txid.data(), &id, sizeof id);
    message_writer w(out, make_message_type(method::send, message_class::indication), txid);
    xor_peer_address{peer}.encode(w);
    data{payload}.encode(w);
    return w.finish().size();
}

} // namespace ferry::load
