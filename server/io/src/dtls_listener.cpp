#include "ferry/server/dtls_listener.hpp"

#include "ferry/protocol/channel_data.hpp"
#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <vector>

namespace ferry::server {
namespace {

using clock = std::chrono::steady_clock;

/// How often handshake retransmissions and deadlines are checked. DTLS's first retransmission
/// waits a second, so this is fine-grained enough.
constexpr std::chrono::milliseconds tick{250};

/// A ClientHello in epoch 0: a client starting a new handshake (RFC 6347 §4.2.8).
bool is_initial_client_hello(std::span<const std::uint8_t> d) {
    return d.size() > 13 && d[0] == 22 && d[3] == 0 && d[4] == 0 && d[13] == 1;
}

} // namespace

std::size_t transport_address_hash::operator()(const protocol::transport_address& a) const noexcept {
    std::uint64_t h = 1469598103934665603ull; // FNV-1a
    auto mix = [&h](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
    for (std::size_t i = 0; i < a.ip.size(); ++i) mix(a.ip.bytes[i]);
    mix(static_cast<std::uint8_t>(a.port >> 8));
    mix(static_cast<std::uint8_t>(a.port));
    return static_cast<std::size_t>(h);
}

// One client's DTLS session: the stream_client its allocation's data reaches it through.
class dtls_session final : public stream_client, public datagram_out {
public:
    dtls_session(dtls_listener& listener, const request_context& ctx, connection_limiter::ticket ticket, ssl_ptr ssl,
                 std::shared_ptr<SSL_CTX> tls)
        : listener_(listener), ctx_(ctx), ticket_(std::move(ticket)),
          channel_(std::move(ssl), std::move(tls), *this, ctx.remote) {}

    void deliver(std::span<const std::uint8_t> bytes) override { channel_.send(bytes); }
    void send_datagram(const protocol::transport_address& to, std::span<const std::uint8_t> bytes) override {
        listener_.queue(to, ctx_.local.ip, bytes);
    }

    // One record's plaintext: a STUN message or ChannelData, as a UDP datagram would carry.
    void on_record(std::span<const std::uint8_t> record) {
        if (record.empty()) return;
        // Relayed payloads point into the record's buffer, which the next record reuses: sent
        // when this one is done.
        send_scope sent(listener_.sink_);
        deadline = clock::now() + listener_.limits_.tcp_idle_timeout;
        const auto kind = protocol::classify(record[0]);
        if (kind == protocol::packet_kind::channel_data) {
            if (listener_.turn_ != nullptr) listener_.turn_->handle_channel_data(ctx_, record, listener_.sink_);
        } else if (kind == protocol::packet_kind::stun) {
            std::array<std::uint8_t, 2048> reply_buffer;
            const reply r = listener_.handler_.handle(ctx_, record, reply_buffer, &listener_.sink_);
            if (r.size != 0) deliver({reply_buffer.data(), r.size});
        }
    }

    dtls_listener& listener_;
    request_context ctx_;
    connection_limiter::ticket ticket_;
    dtls_channel channel_;
    clock::time_point deadline;
    bool ended = false;
};

dtls_listener::dtls_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                             stun_handler& handler, const limits_config& limits, connection_limiter& limiter,
                             turn_handler* turn, udp_batch& batch, packet_sink& sink, stream_registry& streams,
                             tls_context_holder& tls, connection_counts& counts)
    : socket_(io), timer_(io), bound_(bound), wildcard_(bound.ip.is_unspecified()), current_local_(bound.ip),
      handler_(handler), limits_(limits), limiter_(limiter), counts_(counts), turn_(turn), batch_(batch), sink_(sink),
      streams_(streams), tls_(tls), gate_(*this) {
    socket_.assign(bound.ip.family == protocol::address_family::ipv4 ? asio::ip::udp::v4() : asio::ip::udp::v6(), fd);
}

dtls_listener::~dtls_listener() {
    for (auto& [addr, s] : sessions_) streams_.remove(s->ctx_.socket);
}

void dtls_listener::start() {
    spawn_restarting(socket_.get_executor(), fmt::format("dtls listener {}", bound_), [this] { return receive_loop(); });
    spawn_restarting(socket_.get_executor(), fmt::format("dtls listener {}: timers", bound_),
                     [this] { return timer_loop(); });
}

void dtls_listener::queue(const protocol::transport_address& to, const protocol::ip_address& local,
                          std::span<const std::uint8_t> bytes) {
    auto buf = batch_.send_buffer();
    if (buf.empty()) {
        batch_.flush();
        buf = batch_.send_buffer();
    }
    if (bytes.size() > buf.size()) {
        log_.at(log_level::warn, "dtls {}: dropped a {}-byte datagram to {}: too large", bound_, bytes.size(), to);
        return;
    }
    std::memcpy(buf.data(), bytes.data(), bytes.size());
    sockaddr_storage sa;
    net::to_sockaddr(to, sa);
    batch_.queue(socket_.native_handle(), sa, buf.first(bytes.size()),
                 wildcard_ ? std::optional<protocol::ip_address>(local) : std::nullopt);
}

void dtls_listener::send_datagram(const protocol::transport_address& to, std::span<const std::uint8_t> bytes) {
    queue(to, current_local_, bytes);
}

asio::awaitable<void> dtls_listener::receive_loop() {
    for (;;) {
        auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_tuple);
        if (ec) co_return; // closed on shutdown
        while (!service()) co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    }
}

bool dtls_listener::service() {
    constexpr int rounds = 4;
    const int fd = socket_.native_handle();
    for (int round = 0; round < rounds; ++round) {
        const std::size_t n = batch_.receive(fd);
        if (n == 0) return true;
        send_scope sent(batch_);
        for (std::size_t i = 0; i < n; ++i) {
            if (batch_.truncated(i)) continue;
            protocol::ip_address local = bound_.ip;
            if (wildcard_)
                if (const auto d = batch_.destination(i)) local = *d;
            on_datagram(net::from_sockaddr(batch_.source(i)), local, batch_.payload(i));
        }
        sent.now();
        if (n < udp_batch::batch_size) return true;
    }
    return false;
}

void dtls_listener::on_datagram(const protocol::transport_address& from, const protocol::ip_address& local,
                                std::span<const std::uint8_t> bytes) {
    if (auto it = sessions_.find(from); it != sessions_.end()) {
        const auto s = it->second; // keeps it alive through end()
        if (s->channel_.current() == dtls_channel::state::open && is_initial_client_hello(bytes)) {
            // The client lost its session and starts over from the same address. It passes the
            // cookie exchange like a stranger before the old session gives way.
            current_local_ = local;
            auto ctx = tls_.current_dtls();
            if (auto ssl = gate_.offer(ctx, from, bytes)) {
                end(s, "replaced by a new handshake");
                admit(from, local, std::move(ssl), std::move(ctx));
            }
            return;
        }
        const bool was_open = s->channel_.current() == dtls_channel::state::open;
        const auto st = s->channel_.receive(bytes, [&s](std::span<const std::uint8_t> r) { s->on_record(r); });
        if (st == dtls_channel::state::closed) {
            end(s, s->channel_.error());
        } else if (st == dtls_channel::state::open && !was_open) {
            s->deadline = clock::now() + limits_.tcp_idle_timeout;
            log::debug("dtls {}: session with {} established", bound_, from);
        }
        return;
    }
    if (!looks_like_dtls(bytes)) {
        log_.at(log_level::trace, "dtls {}: dropped {} bytes from {} that are not DTLS", bound_, bytes.size(), from);
        return;
    }
    current_local_ = local;
    auto ctx = tls_.current_dtls();
    if (auto ssl = gate_.offer(ctx, from, bytes)) admit(from, local, std::move(ssl), std::move(ctx));
}

void dtls_listener::admit(const protocol::transport_address& from, const protocol::ip_address& local, ssl_ptr ssl,
                          std::shared_ptr<SSL_CTX> ctx) {
    // Only a source that returned our cookie gets here, so a spoofed flood cannot fill the caps.
    auto ticket = limiter_.admit(from.ip);
    if (!ticket) {
        ++counts_.refused[connection_counts::dtls];
        log_.at(log_level::warn, "dtls {}: refusing a session from {}: connection limit reached", bound_, from);
        return;
    }
    ticket.count_in(counts_.open[connection_counts::dtls]);
    request_context rc;
    rc.via = transport::dtls;
    rc.remote = from;
    rc.local = {local, bound_.port};
    auto s = std::make_shared<dtls_session>(*this, rc, std::move(ticket), std::move(ssl), std::move(ctx));
    s->ctx_.socket = streams_.add(s);
    s->deadline = clock::now() + limits_.tls_handshake_timeout;
    sessions_[from] = s;
    if (s->channel_.start() == dtls_channel::state::closed) end(s, s->channel_.error());
}

void dtls_listener::end(const std::shared_ptr<dtls_session>& s, std::string_view why) {
    if (s->ended) return;
    s->ended = true;
    log::debug("dtls {}: session with {} ended: {}", bound_, s->ctx_.remote, why);
    s->channel_.close();
    streams_.remove(s->ctx_.socket);
    if (auto it = sessions_.find(s->ctx_.remote); it != sessions_.end() && it->second == s) sessions_.erase(it);
    // RFC 8656 §7: the allocation lives on this session and ends with it; not now, as this
    // may run inside the relay path.
    if (turn_ != nullptr)
        asio::post(socket_.get_executor(), [turn = turn_, tuple = five_tuple{s->ctx_.remote, s->ctx_.local, transport::dtls}] {
            turn->client_closed(tuple);
        });
}

asio::awaitable<void> dtls_listener::timer_loop() {
    std::vector<std::pair<std::shared_ptr<dtls_session>, const char*>> ending;
    for (;;) {
        timer_.expires_after(tick);
        auto [ec] = co_await timer_.async_wait(use_tuple);
        if (ec || !socket_.is_open()) co_return;
        const auto now = clock::now();
        for (auto& [addr, s] : sessions_) {
            if (s->channel_.current() == dtls_channel::state::handshaking) {
                if (now >= s->deadline) ending.emplace_back(s, "handshake not finished in time");
                else if (s->channel_.on_timer() == dtls_channel::state::closed)
                    ending.emplace_back(s, "handshake retransmissions exhausted");
            } else if (now >= s->deadline) {
                // Idle: closed unless it carries an allocation, whose own lifetime then decides.
                if (turn_ != nullptr && turn_->has_allocation({s->ctx_.remote, s->ctx_.local, transport::dtls}))
                    s->deadline = now + limits_.tcp_idle_timeout;
                else
                    ending.emplace_back(s, "idle");
            }
        }
        for (auto& [s, why] : ending) end(s, why);
        ending.clear();
        batch_.flush();
    }
}

} // namespace ferry::server
