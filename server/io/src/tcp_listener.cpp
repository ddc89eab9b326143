#include "ferry/server/tcp_listener.hpp"

#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/framer.hpp"
#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/server/stream_poller.hpp"
#include "ferry/server/udp_batch.hpp"
#include "ferry/server/tcp_relay.hpp"
#include "ferry/server/tls_socket.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <sys/socket.h>
#include <type_traits>
#include <chrono>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

namespace ferry::server {
namespace {

using clock = std::chrono::steady_clock;

/// Largest frame a peer may declare: a STUN message of the maximum length (a padded
/// ChannelData record is smaller).
constexpr std::size_t max_frame = protocol::header_size + 0xFFFC;
constexpr std::size_t initial_buffer = 4096;

protocol::transport_address to_address(const asio::ip::tcp::endpoint& e) { return net::from_raw(e.data(), e.size()); }

using tls_stream = tls_socket;

// Says once per process whether OpenSSL handed TLS records to the kernel (kTLS), so that an
// operator who loaded the `tls` module sees it took effect, and one who did not knows why not.
void report_kernel_tls(const tls_socket& s) {
    static std::atomic<bool> said{false};
    if (said.exchange(true)) return;
    if (s.kernel_send())
        log::info("TURN over TLS: kernel TLS in use (sending{})", s.kernel_receive() ? " and receiving" : "");
    else
        log::info("TURN over TLS: records are built in user space (kernel TLS is not available here: it "
                  "needs the kernel's tls module and a cipher it supports)");
}

// One client connection over plain TCP (Stream = tcp::socket) or TLS (Stream = tls_stream).
template <class Stream>
class stream_connection final : public stream_client,
                                  public splice_end,
                                  public stream_reader,
                                  public std::enable_shared_from_this<stream_connection<Stream>> {
    static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

public:
    stream_connection(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls, stun_handler& handler,
                      turn_handler* turn, packet_sink& sink, stream_registry& streams, stream_poller& poller,
                      const limits_config& limits, connection_limiter::ticket ticket)
        : tls_(std::move(tls)), socket_(make_stream(std::move(socket), tls_.get())), timer_(socket_.get_executor()),
          handler_(handler), turn_(turn), sink_(sink), streams_(streams), poller_(poller), limits_(limits),
          ticket_(std::move(ticket)), in_(initial_buffer) {}

    void start() {
        std::error_code ec;
        auto& tcp = lowest();
        const auto local = tcp.local_endpoint(ec);
        const auto remote = tcp.remote_endpoint(ec);
        if (ec) return; // already gone
        ctx_.via = is_tls ? transport::tls : transport::tcp;
        ctx_.local = to_address(local);
        ctx_.remote = to_address(remote);
        tcp.set_option(asio::ip::tcp::no_delay(true), ec);
        id_ = streams_.add(this->weak_from_this());
        ctx_.socket = id_;
        // A TLS client must finish its handshake first, and sooner.
        deadline_ = clock::now() + (is_tls ? limits_.tls_handshake_timeout : limits_.tcp_idle_timeout);
        auto self = this->shared_from_this();
        // The watchdog's coroutine owns the connection until it closes; the poller and the
        // registry only find it.
        spawn(socket_.get_executor(), describe("watchdog"), [self] { return self->watchdog(); }, [self] { self->close(); });
        if constexpr (is_tls)
            spawn(socket_.get_executor(), describe("handshake"), [self] { return self->begin_tls(); },
                  [self] { self->close(); });
        else
            watch();
    }

    // stream_reader: the socket has bytes (the worker's stream_poller calls). Reads until the
    // socket is drained and handles every complete frame, for at most a few reads per pass.
    bool readable() override {
        std::array<std::uint8_t, 2048> reply_buffer;
        for (int round = 0; round < 4; ++round) {
            if (closed_ || partner_) return true;
            const auto r = read_now(in_.data() + used_, in_.size() - used_);
            if (r.failed) {
                close();
                return true;
            }
            if (r.bytes == 0) return true; // drained: the next bytes bring a new edge
            used_ += r.bytes;
            const auto f = handle_frames(used_, reply_buffer);
            if (f.bad) {
                log_.at(log_level::debug, "{} {}: closing, the stream is not STUN framing", to_string(ctx_.via),
                        ctx_.remote);
                close();
                return true;
            }
            if (partner_ && !closed_) {
                begin_splice(f);
                return true;
            }
            used_ = keep_unread(used_, f);
            if (!r.more) return true;
        }
        return false;
    }
    void abort() override { close(); }

    // Everything this connection sends passes here: answers and relayed data, in order.
    void deliver(std::span<const std::uint8_t> bytes) override {
        if (closed_) return;
        if (!send_now(bytes)) return;
        queue(bytes);
    }

    // RFC 6062: this connection became a client data connection (ConnectionBind). The read loop
    // sees it after the current message and turns to raw bytes.
    std::shared_ptr<splice_end> splice_to(std::shared_ptr<splice_end> partner) override {
        if (closed_ || partner_) return nullptr;
        partner_ = std::move(partner);
        return this->shared_from_this();
    }

    // splice_end: called by the peer connection's worker, maybe another thread.
    void push(std::span<const std::uint8_t> bytes) override {
        auto copy = std::make_shared<std::vector<std::uint8_t>>(bytes.begin(), bytes.end());
        unsent_.fetch_add(copy->size(), std::memory_order_relaxed);
        asio::post(socket_.get_executor(), [self = this->shared_from_this(), copy] {
            self->unsent_.fetch_sub(copy->size(), std::memory_order_relaxed);
            self->deliver(*copy);
        });
    }
    void hang_up() override {
        asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->close(); });
    }
    std::size_t backlog() const override { return unsent_.load(std::memory_order_relaxed); }
    void resume() override {
        asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->pause_.cancel(); });
    }

private:
    // Plain TCP: with nothing queued and no writer, the socket takes the bytes now (it nearly
    // always has room), without a writer coroutine or an Asio operation. Not for an RFC 6062
    // data connection: its partner pauses on the backlog and only the writer resumes it.
    // Returns false when nothing is left to queue (all sent, or the connection failed), else
    // leaves in `bytes` what the socket did not take.
    bool send_now(std::span<const std::uint8_t>& bytes) {
        if (writing_ || !pending_.empty() || partner_) return true;
        if constexpr (is_tls) {
            // One record, now. If the socket took only part of it, OpenSSL keeps the rest and
            // the writer offers the same message again when there is room.
            const auto s = socket_.write_now(bytes);
            if (s.what == tls_socket::step::done) return false;
            if (s.what == tls_socket::step::failed) {
                close();
                return false;
            }
            return true;
        }
        const auto n = ::send(lowest().native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(bytes.size())) return false;
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            close(); // the reader sees the error too; nothing more can be sent
            return false;
        }
        return true;
    }

    // Queues `bytes` for the writer (started if idle); a client that lets more than
    // tcp_buffer_bytes pile up is cut off.
    void queue(std::span<const std::uint8_t> bytes) {
        if (pending_.size() + bytes.size() > limits_.tcp_buffer_bytes) {
            log_.at(log_level::warn, "{} {}: client reads too slowly ({} bytes queued), closing", to_string(ctx_.via),
                    ctx_.remote, pending_.size());
            close();
            return;
        }
        pending_.insert(pending_.end(), bytes.begin(), bytes.end());
        if constexpr (is_tls) pending_ends_.push_back(pending_.size());
        unsent_.fetch_add(bytes.size(), std::memory_order_relaxed);
        if (!writing_) {
            writing_ = true;
            auto self = this->shared_from_this();
            spawn(socket_.get_executor(), describe("writer"), [self] { return self->write_loop(); }, [self] {
                self->writing_ = false;
                self->close();
            });
        }
    }

    std::string describe(std::string_view what) const {
        return fmt::format("{} {} {}", to_string(ctx_.via), ctx_.remote, what);
    }
    static Stream make_stream(asio::ip::tcp::socket socket, asio::ssl::context* tls) {
        if constexpr (is_tls) return Stream(std::move(socket), *tls);
        else return socket; // a by-value parameter: moved implicitly
    }
    // What an RFC 6062 data connection's splice loop awaits (the poller reads every other
    // connection): Asio's own read over TCP, tls_socket's over TLS; both give (error, bytes).
    auto read_some(std::uint8_t* into, std::size_t size) {
        if constexpr (is_tls) return socket_.read_some({into, size});
        else return socket_.async_read_some(asio::buffer(into, size), use_tuple);
    }
    asio::ip::tcp::socket& lowest() {
        if constexpr (is_tls) return socket_.next_layer();
        else return socket_;
    }

    asio::awaitable<void> write_loop() {
        while (!pending_.empty() && !closed_) {
            std::swap(pending_, sending_);
            std::error_code ec;
            if constexpr (is_tls) {
                // One TLS record per message (or per spliced read): clients such as coturn's
                // turnutils_uclient take each SSL_read as one message, so two messages in one
                // record would lose the second for them. One SSL_write each.
                std::swap(pending_ends_, sending_ends_);
                std::size_t begin = 0;
                for (const auto end : sending_ends_) {
                    ec = co_await socket_.write({sending_.data() + begin, end - begin});
                    if (ec) break;
                    begin = end;
                }
                sending_ends_.clear();
            } else {
                std::tie(ec, std::ignore) = co_await asio::async_write(socket_, asio::buffer(sending_), use_tuple);
            }
            unsent_.fetch_sub(sending_.size(), std::memory_order_relaxed);
            sending_.clear();
            if (partner_ && backlog() <= splice_high_water) partner_->resume();
            if (ec) {
                close();
                break;
            }
        }
        writing_ = false;
    }

    struct frames {
        std::size_t off = 0;    ///< bytes of in_ handled
        std::size_t wanted = 0; ///< the size of an incomplete frame at `off`
        bool bad = false;       ///< not STUN framing
    };

    // From now on the poller reads this connection.
    void watch() {
        if (closed_) return;
        if (!poller_.add(lowest().native_handle(), this->weak_from_this())) {
            log_.at(log_level::warn, "{} {}: cannot watch the connection: {}", to_string(ctx_.via), ctx_.remote,
                    std::error_code(errno, std::system_category()).message());
            close();
        }
    }

    // TLS: the handshake, then the poller reads. Read-ahead may already hold the client's first
    // records, which no edge on the socket will announce: they are read here.
    asio::awaitable<void> begin_tls() {
        const bool ok = co_await handshake();
        if (!ok) co_return;
        watch();
        co_await read_backlog();
    }

    // Reads until the socket is drained, a pass at a time. A coroutine of its own: written as a
    // loop inside begin_tls, after its `co_await handshake()`, GCC 12 built a frame that was
    // resumed in a state it did not have (SIGILL at the first resume).
    asio::awaitable<void> read_backlog() {
        for (;;) {
            if (closed_ || readable()) co_return;
            co_await asio::post(socket_.get_executor(), asio::use_awaitable);
        }
    }

    struct read_result {
        std::size_t bytes = 0; ///< 0: nothing there now
        bool more = false;     ///< another read may find more (the last one filled what it asked)
        bool failed = false;   ///< the stream ended or broke
    };

    // One non-blocking read into [into, into + size).
    read_result read_now(std::uint8_t* into, std::size_t size) {
        read_result r;
        if constexpr (is_tls) {
            const auto s = socket_.read_now({into, size});
            if (s.what == tls_socket::step::done) {
                r.bytes = s.bytes;
                r.more = socket_.may_have_more();
            } else if (s.what == tls_socket::step::want_write) {
                // TLS 1.3 can need a write to go on reading (a key update's answer): wait for
                // room, then read again.
                auto self = this->shared_from_this();
                spawn(socket_.get_executor(), describe("reader"), [self] { return self->read_after_write(); },
                      [self] { self->close(); });
            } else if (s.what == tls_socket::step::failed) {
                if (s.error != asio::error::eof)
                    log_.at(log_level::debug, "tls {}: {}", ctx_.remote, s.error.message());
                r.failed = true;
            }
            return r;
        } else {
            for (;;) {
                const auto n = ::recv(socket_.native_handle(), into, size, MSG_DONTWAIT);
                if (n > 0) {
                    r.bytes = static_cast<std::size_t>(n);
                    r.more = r.bytes == size;
                } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                    if (n < 0 && errno == EINTR) continue;
                    r.failed = true;
                }
                return r;
            }
        }
    }

    asio::awaitable<void> read_after_write() {
        auto [ec] = co_await lowest().async_wait(asio::socket_base::wait_write, use_tuple);
        if (!ec) co_await read_backlog();
    }

    // RFC 6062: the poller no longer reads this connection; a coroutine moves its raw bytes.
    void begin_splice(const frames& f) {
        // Whatever followed the ConnectionBind is already the client's data.
        if (used_ > f.off) partner_->push({in_.data() + f.off, used_ - f.off});
        used_ = 0;
        poller_.remove(lowest().native_handle());
        auto self = this->shared_from_this();
        spawn(socket_.get_executor(), describe("splice"), [self] { return self->spliced(); }, [self] { self->close(); });
    }

    asio::awaitable<void> spliced() {
        co_await splice_loop();
        close();
    }

    asio::awaitable<bool> handshake() {
        if constexpr (is_tls) {
            const auto ec = co_await socket_.handshake();
            if (ec) {
                log_.at(log_level::debug, "tls {}: handshake failed: {}", ctx_.remote, ec.message());
                close();
                co_return false;
            }
            deadline_ = clock::now() + limits_.tcp_idle_timeout;
            report_kernel_tls(socket_);
        }
        co_return true;
    }

    // Every complete frame in in_[0, used): ChannelData to the relay, STUN to the handler (its
    // answer delivered), until one is incomplete or the connection closes or is spliced.
    frames handle_frames(std::size_t used, std::span<std::uint8_t> reply_buffer) {
        frames f;
        // Relayed payloads are queued as pointers into in_: whatever happens below, they
        // leave (or are dropped) before in_ can move, grow or be read into again.
        send_scope flushed(sink_);
        for (;;) {
            const auto r = protocol::next_frame({in_.data() + f.off, used - f.off}, max_frame);
            if (r.kind == protocol::frame_result::invalid) {
                f.bad = true;
                break;
            }
            if (r.kind == protocol::frame_result::need_more) {
                f.wanted = r.size;
                break;
            }
            const std::span<const std::uint8_t> frame(in_.data() + f.off, r.size);
            f.off += r.size;
            deadline_ = clock::now() + limits_.tcp_idle_timeout;
            if (protocol::classify(frame[0]) == protocol::packet_kind::channel_data) {
                if (turn_ != nullptr) turn_->handle_channel_data(ctx_, frame, sink_);
                continue;
            }
            const reply rep = handler_.handle(ctx_, frame, reply_buffer, &sink_);
            if (rep.size != 0) deliver({reply_buffer.data(), rep.size});
            if (closed_ || partner_) break;
        }
        flushed.now();
        return f;
    }

    // Moves the unread tail of in_ to its front and sizes in_ for the next frame: grown only to
    // what the frame declared (never past max_frame), and only now that nothing queued points
    // into in_; back to the initial size when empty. Returns the bytes kept.
    std::size_t keep_unread(std::size_t used, const frames& f) {
        std::memmove(in_.data(), in_.data() + f.off, used - f.off);
        used -= f.off;
        if (f.wanted > in_.size()) in_.resize(f.wanted);
        if (used == 0 && in_.size() > initial_buffer) {
            in_.resize(initial_buffer);
            in_.shrink_to_fit();
        }
        return used;
    }

    // Raw bytes from the client to the peer connection, pausing while the peer is behind.
    asio::awaitable<void> splice_loop() {
        in_.resize(16384);
        while (!closed_) {
            if (partner_->backlog() > splice_high_water) {
                const auto partner = partner_; // close() resets partner_ while we wait
                if (!co_await wait_for_partner(pause_, *partner)) {
                    log_.at(log_level::info, "{} {}: the peer read nothing for {} s, closing the splice",
                            to_string(ctx_.via), ctx_.remote, splice_stall_timeout.count());
                    break;
                }
                continue;
            }
            auto [ec, n] = co_await read_some(in_.data(), in_.size());
            if (ec || closed_) break;
            partner_->push({in_.data(), n});
        }
    }

    // Closes a connection that completed no message for tcp_idle_timeout, unless it carries an
    // allocation (then the allocation's own lifetime decides) or is spliced to a peer.
    asio::awaitable<void> watchdog() {
        while (!closed_) {
            timer_.expires_at(deadline_);
            co_await timer_.async_wait(use_tuple);
            if (closed_) break;
            if (clock::now() < deadline_) continue;
            if (partner_ || (turn_ != nullptr && turn_->has_allocation({ctx_.remote, ctx_.local, ctx_.via}))) {
                deadline_ = clock::now() + limits_.tcp_idle_timeout;
                continue;
            }
            log::debug("{} {}: idle, closing", to_string(ctx_.via), ctx_.remote);
            close();
        }
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        streams_.remove(id_);
        poller_.remove(lowest().native_handle()); // before the descriptor can be reused
        if (partner_) partner_->hang_up();
        partner_.reset();
        // RFC 8656 §7: the allocation lives on this connection and ends with it. Not here and
        // now: close() can run inside the relay path (deliver() from handle_peer), which is
        // still using that allocation. The worker's loop ends it next.
        if (turn_ != nullptr)
            asio::post(socket_.get_executor(), [turn = turn_, tuple = five_tuple{ctx_.remote, ctx_.local, ctx_.via}] {
                turn->client_closed(tuple);
            });
        if constexpr (is_tls) {
            socket_.close();
        } else {
            std::error_code ec;
            socket_.shutdown(asio::socket_base::shutdown_both, ec);
            socket_.close(ec);
        }
        timer_.cancel();
        pause_.cancel();
    }

    std::shared_ptr<asio::ssl::context> tls_; ///< kept while the connection lives (SIGHUP swaps)
    Stream socket_;
    asio::steady_timer timer_;
    asio::steady_timer pause_{socket_.get_executor()}; ///< RFC 6062: the spliced reader waits on it
    stun_handler& handler_;
    turn_handler* turn_;
    packet_sink& sink_;
    stream_registry& streams_;
    stream_poller& poller_;
    const limits_config& limits_;
    connection_limiter::ticket ticket_; ///< our place under the connection caps
    request_context ctx_;
    int id_ = 0;
    clock::time_point deadline_;
    std::vector<std::uint8_t> in_;
    std::size_t used_ = 0;              ///< bytes read into in_ and not yet handled
    std::vector<std::uint8_t> pending_; ///< queued to send
    std::vector<std::uint8_t> sending_; ///< being written now
    // TLS: where each queued message ends in pending_ / sending_, so each becomes its own record.
    std::vector<std::size_t> pending_ends_;
    std::vector<std::size_t> sending_ends_;
    std::shared_ptr<splice_end> partner_; ///< RFC 6062: the peer connection this one is spliced to
    std::atomic<std::size_t> unsent_{0};  ///< queued bytes, for the partner's reader
    bool writing_ = false;
    bool closed_ = false;
    inline static thread_local log::throttle log_{5};
};

} // namespace

tcp_listener::tcp_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                           stun_handler& handler, const limits_config& limits, connection_limiter& limiter,
                           turn_handler* turn, packet_sink& sink, stream_registry& streams,
                           stream_poller& poller, connection_counts& counts, tls_context_holder* tls,
                           bool plain_too)
    : acceptor_(io), bound_(bound), handler_(handler), limits_(limits), limiter_(limiter), counts_(counts),
      turn_(turn), sink_(sink), streams_(streams), poller_(poller), tls_(tls),
      plain_too_(tls != nullptr && plain_too) {
    acceptor_.assign(bound.ip.family == protocol::address_family::ipv4 ? asio::ip::tcp::v4()
                                                                       : asio::ip::tcp::v6(),
                     fd);
}

void tcp_listener::start() {
    spawn_restarting(acceptor_.get_executor(), fmt::format("{} listener {}", kind(), bound_),
                     [this] { return accept_loop(); });
}

asio::awaitable<void> tcp_listener::accept_loop() {
    asio::steady_timer backoff(acceptor_.get_executor());
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            // EMFILE/ENFILE and friends: say so, back off briefly, keep serving.
            log_.at(log_level::warn, "tcp {}: accept failed: {}", bound_, ec.message());
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        // Over the total or per-address cap: close at once, before reading a byte.
        std::error_code pec;
        const auto peer = socket.remote_endpoint(pec);
        if (pec) continue;
        auto ticket = limiter_.admit(to_address(peer).ip);
        if (!ticket) {
            ++counts_.refused[tls_ == nullptr ? connection_counts::tcp : connection_counts::tls];
            log_.at(log_level::warn, "{} {}: refusing a connection from {}: connection limit reached", kind(), bound_,
                    to_address(peer));
            socket.close(pec);
            continue;
        }
        if (plain_too_)
            spawn(acceptor_.get_executor(), fmt::format("{} listener {}: first byte", kind(), bound_),
                  [&] { return sniff(std::move(socket), std::move(ticket)); }, [] {});
        else
            serve(std::move(socket), tls_ != nullptr, std::move(ticket));
    }
}

void tcp_listener::serve(asio::ip::tcp::socket socket, bool tls, connection_limiter::ticket ticket) {
    ticket.count_in(counts_.open[tls ? connection_counts::tls : connection_counts::tcp]);
    if (tls)
        std::make_shared<stream_connection<tls_stream>>(std::move(socket), tls_->current(), handler_, turn_, sink_,
                                                        streams_, poller_, limits_, std::move(ticket))
            ->start();
    else
        std::make_shared<stream_connection<asio::ip::tcp::socket>>(std::move(socket), nullptr, handler_, turn_, sink_,
                                                                   streams_, poller_, limits_, std::move(ticket))
            ->start();
}

asio::awaitable<void> tcp_listener::sniff(asio::ip::tcp::socket socket, connection_limiter::ticket ticket) {
    // A client that sends nothing is held no longer than a TLS handshake may take. The
    // deadline's handler may already be queued when the first byte arrives (cancel() cannot
    // withdraw it then), and this frame is gone by the time it runs: it shares the socket's
    // ownership and a flag, never a reference into this frame.
    struct waiting {
        explicit waiting(asio::ip::tcp::socket s) : socket(std::move(s)) {}
        asio::ip::tcp::socket socket;
        bool done = false;
    };
    auto state = std::make_shared<waiting>(std::move(socket));
    asio::steady_timer deadline(state->socket.get_executor());
    deadline.expires_after(limits_.tls_handshake_timeout);
    deadline.async_wait([state](const std::error_code& e) {
        std::error_code ignored;
        if (!e && !state->done) state->socket.cancel(ignored);
    });
    auto [ec] = co_await state->socket.async_wait(asio::socket_base::wait_read, use_tuple);
    state->done = true;
    deadline.cancel();
    std::uint8_t first = 0;
    if (ec || ::recv(state->socket.native_handle(), &first, 1, MSG_PEEK) != 1) {
        std::error_code ignored;
        state->socket.close(ignored);
        co_return;
    }
    // RFC 7983: 22 is a TLS handshake record; STUN starts with 0 or 1, ChannelData with 0x40-0x7F.
    serve(std::move(state->socket), first == 22, std::move(ticket));
}

} // namespace ferry::server
