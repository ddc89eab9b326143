#include "ferry/server/redis_client.hpp"

#include "ferry/server/log.hpp"
#include "ferry/server/spawn.hpp"

#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>

#include <algorithm>

namespace ferry::server {

using namespace std::chrono_literals;

namespace {

constexpr auto connect_timeout = 5s;
constexpr auto answer_timeout = 5s;   ///< a command unanswered this long: the connection is dead
constexpr auto backoff_first = 100ms;
constexpr auto backoff_most = 2s;

redis_reply convert(const redisReply* r) {
    redis_reply out;
    switch (r->type) {
    case REDIS_REPLY_STRING: out.kind = redis_reply::type::string; break;
    case REDIS_REPLY_ARRAY: out.kind = redis_reply::type::array; break;
    case REDIS_REPLY_INTEGER: out.kind = redis_reply::type::integer; break;
    case REDIS_REPLY_STATUS: out.kind = redis_reply::type::status; break;
    case REDIS_REPLY_ERROR: out.kind = redis_reply::type::error; break;
    default: out.kind = redis_reply::type::nil; break;
    }
    if (r->str != nullptr) out.str.assign(r->str, r->len);
    out.integer = r->integer;
    for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
    return out;
}

/// Pub/sub traffic on a subscriber connection: ["message", ...], ["pmessage", ...] and the
/// confirmations of (p)subscribe.
bool is_push(const redis_reply& r) {
    if (r.kind != redis_reply::type::array || r.elements.empty()) return false;
    const auto& k = r.elements[0].str;
    return k == "message" || k == "pmessage" || k == "subscribe" || k == "psubscribe" || k == "unsubscribe" ||
           k == "punsubscribe" || k == "pong";
}

/// Dead peers show within about 25 s even when nothing is sent (a host gone without a reset).
void keep_alive(asio::ip::tcp::socket& s) {
    s.set_option(asio::socket_base::keep_alive(true));
    const int idle = 10, interval = 5, count = 3;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    s.set_option(asio::ip::tcp::no_delay(true));
}

} // namespace

std::string describe(const redis_reply& r) {
    switch (r.kind) {
    case redis_reply::type::nil: return "(nil)";
    case redis_reply::type::integer: return std::to_string(r.integer);
    case redis_reply::type::array: return fmt::format("({} elements)", r.elements.size());
    default: return r.str;
    }
}

/// The open connection: a reader coroutine and a writer coroutine over one stream, both
/// holding the session, so the stream outlives whichever of them ends last.
class redis_client::session : public std::enable_shared_from_this<session> {
public:
    virtual ~session() = default;
    virtual void wake() = 0;
    virtual void close() = 0;
    /// Runs until the connection ends; returns why.
    virtual asio::awaitable<std::string> serve(redis_client& c) = 0;
};

template <class Stream> class redis_client::stream_session final : public redis_client::session {
public:
    template <class... A> explicit stream_session(asio::io_context& io, A&&... a)
        : stream_(std::forward<A>(a)...), wake_(io) {
        wake_.expires_at(asio::steady_timer::time_point::max());
    }
    Stream& stream() { return stream_; }

    void wake() override { wake_.cancel(); }
    void close() override {
        closed_ = true;
        std::error_code ignored;
        stream_.lowest_layer().close(ignored);
        wake_.cancel();
    }

    asio::awaitable<std::string> serve(redis_client& c) override {
        auto self = std::static_pointer_cast<stream_session>(shared_from_this());
        auto alive = c.alive_;
        spawn(stream_.get_executor(), "redis writer", [self, &c, alive]() { return self->write_loop(c, alive); },
              [self] { self->close(); });
        std::array<char, 16384> buf;
        std::string why;
        while (!closed_) {
            auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf), use_tuple);
            if (ec) {
                why = ec == asio::error::eof ? "closed by the server" : ec.message();
                break;
            }
            if (!*alive) co_return "stopped";
            if (redisReaderFeed(c.reader_, buf.data(), n) != REDIS_OK) {
                why = "unreadable reply";
                break;
            }
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(c.reader_, &raw) != REDIS_OK) {
                    why = fmt::format("protocol error: {}", c.reader_->errstr);
                    close();
                    break;
                }
                if (raw == nullptr) break;
                auto reply = convert(static_cast<redisReply*>(raw));
                freeReplyObject(raw);
                c.dispatch(std::move(reply));
                if (!*alive || closed_) break;
            }
        }
        close();
        co_return why.empty() ? std::string("closed") : why;
    }

private:
    asio::awaitable<void> write_loop(redis_client& c, std::shared_ptr<bool> alive) {
        std::string sending;
        while (!closed_ && *alive) {
            if (c.out_.empty()) {
                co_await wake_.async_wait(use_tuple);
                wake_.expires_at(asio::steady_timer::time_point::max());
                continue;
            }
            sending.clear();
            std::swap(sending, c.out_);
            auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(sending), use_tuple);
            if (ec) {
                close();
                co_return;
            }
        }
    }

    Stream stream_;
    asio::steady_timer wake_;
    bool closed_ = false;
};

redis_client::redis_client(asio::io_context& io, const redis_config& cfg, std::string name, bool subscriber,
                           callbacks cb)
    : io_(io), cfg_(cfg), name_(std::move(name)), subscriber_(subscriber), cb_(std::move(cb)), backoff_timer_(io),
      stuck_timer_(io) {
    if (cfg_.tls) {
        tls_ = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        tls_->set_verify_mode(asio::ssl::verify_peer);
        if (cfg_.tls_ca.empty()) tls_->set_default_verify_paths();
        else tls_->load_verify_file(cfg_.tls_ca); // throws, naming nothing: the caller adds the key
    }
}

redis_client::~redis_client() {
    stop();
    if (reader_ != nullptr) redisReaderFree(reader_);
}

void redis_client::start() {
    spawn(io_.get_executor(), "redis " + name_, [this] { return run(); }, [] {});
    check_stuck();
}

void redis_client::stop() {
    if (stopped_) return;
    stopped_ = true;
    *alive_ = false;
    backoff_timer_.cancel();
    stuck_timer_.cancel();
    if (session_) session_->close();
    session_.reset();
    up_ = false;
}

void redis_client::reconnect() {
    if (session_) session_->close();
}

void redis_client::command(std::vector<std::string> args, handler h) {
    if (!up_) {
        if (h) asio::post(io_, [h = std::move(h)] { h(redis_reply::failure("not connected")); });
        return;
    }
    enqueue(args);
    waiting_.push_back({std::move(h), std::chrono::steady_clock::now()});
}

void redis_client::push_command(std::vector<std::string> args) {
    if (up_) enqueue(args);
}

void redis_client::enqueue(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (n < 0 || cmd == nullptr) return;
    out_.append(cmd, static_cast<std::size_t>(n));
    redisFreeCommand(cmd);
    if (session_) session_->wake();
}

void redis_client::dispatch(redis_reply r) {
    if (subscriber_ && is_push(r)) {
        if (cb_.on_push) cb_.on_push(r);
        return;
    }
    if (waiting_.empty()) {
        log::debug("redis {}: a reply nobody waits for: {}", name_, describe(r));
        return;
    }
    auto w = std::move(waiting_.front());
    waiting_.pop_front();
    if (w.h) w.h(r);
}

// A connection is dead when a command waits for its answer over answer_timeout (a server
// that stopped, or a path that lost its packets without a reset).
void redis_client::check_stuck() {
    if (stopped_) return;
    if (session_ && !waiting_.empty() && std::chrono::steady_clock::now() - waiting_.front().sent > answer_timeout) {
        log::debug("redis {}: no answer within {} s; reconnecting", name_, answer_timeout.count());
        session_->close();
    }
    stuck_timer_.expires_after(1s);
    stuck_timer_.async_wait([this, alive = alive_](const std::error_code& ec) {
        if (!ec && *alive) check_stuck();
    });
}

void redis_client::lost(const std::string& why) {
    const bool was_up = up_;
    up_ = false;
    session_.reset();
    out_.clear();
    auto failed = std::move(waiting_);
    waiting_.clear();
    for (auto& w : failed)
        if (w.h) w.h(redis_reply::failure("connection lost: " + why));
    // Said once per outage: every failed attempt after it says the same.
    if (was_up || down_why_.empty()) {
        down_why_ = why;
        if (cb_.on_down) cb_.on_down(why);
    }
}

asio::awaitable<std::shared_ptr<redis_client::session>> redis_client::connect(std::string& why) {
    auto ex = io_.get_executor();
    asio::steady_timer deadline(io_);
    deadline.expires_after(connect_timeout);
    if (!cfg_.unix_socket.empty()) {
        auto s = std::make_shared<stream_session<asio::local::stream_protocol::socket>>(io_, io_);
        deadline.async_wait([s](const std::error_code& ec) {
            if (!ec) s->close();
        });
        auto [ec] = co_await s->stream().async_connect(asio::local::stream_protocol::endpoint(cfg_.unix_socket), use_tuple);
        if (ec) {
            why = fmt::format("unix:{}: {}", cfg_.unix_socket, ec.message());
            co_return nullptr;
        }
        co_return s;
    }
    asio::ip::tcp::resolver resolver(io_);
    auto [rec, results] = co_await resolver.async_resolve(cfg_.host, std::to_string(cfg_.port), use_tuple);
    if (rec) {
        why = fmt::format("{}: {}", cfg_.host, rec.message());
        co_return nullptr;
    }
    auto open_tcp = [&](asio::ip::tcp::socket& sock) -> asio::awaitable<std::error_code> {
        auto [ec, ep] = co_await asio::async_connect(sock, results, use_tuple);
        if (!ec) keep_alive(sock);
        co_return ec;
    };
    const auto where = fmt::format("{}:{}", cfg_.host, cfg_.port);
    if (!tls_) {
        auto s = std::make_shared<stream_session<asio::ip::tcp::socket>>(io_, io_);
        deadline.async_wait([s](const std::error_code& ec) {
            if (!ec) s->close();
        });
        if (auto ec = co_await open_tcp(s->stream())) {
            why = fmt::format("{}: {}", where, ec.message());
            co_return nullptr;
        }
        co_return s;
    }
    auto s = std::make_shared<stream_session<asio::ssl::stream<asio::ip::tcp::socket>>>(io_, io_, *tls_);
    deadline.async_wait([s](const std::error_code& ec) {
        if (!ec) s->close();
    });
    if (auto ec = co_await open_tcp(s->stream().next_layer())) {
        why = fmt::format("{}: {}", where, ec.message());
        co_return nullptr;
    }
    const auto& name = cfg_.tls_server_name.empty() ? cfg_.host : cfg_.tls_server_name;
    SSL_set_tlsext_host_name(s->stream().native_handle(), name.c_str());
    // The certificate must name the server (an address is checked as an address).
    asio::error_code not_ip;
    (void)asio::ip::make_address(name, not_ip);
    if (!not_ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->stream().native_handle()), name.c_str());
    else SSL_set1_host(s->stream().native_handle(), name.c_str());
    auto [hec] = co_await s->stream().async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hec) {
        why = fmt::format("{}: TLS: {}", where, hec.message());
        co_return nullptr;
    }
    co_return s;
}

asio::awaitable<void> redis_client::run() {
    auto alive = alive_;
    auto backoff = backoff_first;
    while (*alive && !stopped_) {
        std::string why;
        auto s = co_await connect(why);
        if (!*alive) co_return;
        if (s) {
            if (reader_ != nullptr) redisReaderFree(reader_);
            reader_ = redisReaderCreate();
            session_ = s;
            // AUTH and SELECT go first; the client is up once the PING behind them is answered.
            auto refuse = [this, s](const char* what) {
                return [this, s, what](const redis_reply& r) {
                    if (r.error() && session_ == s) {
                        log::error("redis {}: {} refused: {}", name_, what, r.str);
                        s->close();
                    }
                };
            };
            if (!cfg_.password.empty()) {
                if (cfg_.username.empty()) enqueue({"AUTH", cfg_.password});
                else enqueue({"AUTH", cfg_.username, cfg_.password});
                waiting_.push_back({refuse("AUTH"), std::chrono::steady_clock::now()});
            }
            if (cfg_.database != 0) {
                enqueue({"SELECT", std::to_string(cfg_.database)});
                waiting_.push_back({refuse("SELECT"), std::chrono::steady_clock::now()});
            }
            enqueue({"PING"});
            waiting_.push_back({[this, s, &backoff](const redis_reply& r) {
                                    if (r.error() || session_ != s) return;
                                    up_ = true;
                                    down_why_.clear();
                                    backoff = backoff_first;
                                    if (cb_.on_up) cb_.on_up();
                                },
                                std::chrono::steady_clock::now()});
            why = co_await s->serve(*this);
            if (!*alive) co_return;
        }
        lost(why);
        backoff_timer_.expires_after(backoff);
        co_await backoff_timer_.async_wait(use_tuple);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, backoff_most);
    }
}

} // namespace ferry::server
