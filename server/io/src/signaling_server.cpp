#include "ferry/server/signaling_server.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/protocol/integrity.hpp"
#include "ferry/server/limits.hpp"
#include "ferry/server/log.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/signaling/demo_page.hpp"
#include "ferry/signaling/rooms.hpp"
#include "ferry/signaling/upgrade.hpp"
#include "ferry/signaling/websocket.hpp"

#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <ctime>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

// gcc 12 at -O1 reports -Wmismatched-new-delete for some coroutine frames here: Asio's
// awaitable_frame_base both allocates and frees them with its own operators, so the report is
// about code gcc inlined, not about this file; other files' coroutines happen not to trip it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace ferry::server {

namespace {

using tcp = asio::ip::tcp;
namespace ws = signaling::ws;
using json = nlohmann::json;
using clock = std::chrono::steady_clock;

constexpr std::size_t max_head = 8192;
constexpr auto head_deadline = std::chrono::seconds(5);
constexpr std::size_t max_queued = 1 << 20; ///< unsent bytes before a slow reader is cut off
constexpr std::string_view websocket_path = "/ws";

std::string url_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

} // namespace

struct signaling_server::impl : std::enable_shared_from_this<impl> {
    struct connection;

    impl(asio::io_context& io_, const config& c, std::shared_ptr<asio::ssl::context> tls_)
        : io(io_), cfg(c.signaling), listen(c.listen), turn_secrets(c.turn.static_auth_secrets),
          ipv6_prefix(c.limits.ipv6_prefix_length), tls(std::move(tls_)),
          acceptor(io_, tcp::endpoint(asio::ip::make_address(c.signaling.address.to_string()), c.signaling.port)),
          hub(policy()) {}

    signaling::hub::policy policy() {
        signaling::hub::policy p;
        p.limits.members_per_room = cfg.members_per_room;
        p.limits.rooms = cfg.rooms;
        p.limits.messages_per_second = cfg.messages_per_second;
        p.limits.message_burst = 4.0 * cfg.messages_per_second;
        p.token_secrets = cfg.token_secrets;
        p.unix_now = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
        p.ice_servers = [this](std::uint64_t conn, std::string_view member) { return ice_servers(conn, member); };
        return p;
    }

    /// The iceServers a member is given: the STUN and TURN URLs ferry serves, with TURN REST
    /// credentials of its own (RFC 8489 long-term, minted from the first static_auth_secret).
    std::string ice_servers(std::uint64_t conn, std::string_view member);

    asio::awaitable<void> accept_loop();
    void dispatch(const signaling::hub::effects& e, std::uint64_t from);
    /// A connection closed: its room hears it left, and its places under the limits are free.
    void forget(const connection& c);

    asio::io_context& io;
    signaling_config cfg;
    std::vector<listen_config> listen;
    std::vector<std::string> turn_secrets;
    unsigned ipv6_prefix;
    std::shared_ptr<asio::ssl::context> tls;
    tcp::acceptor acceptor;
    signaling::hub hub;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection>> conns;
    std::map<std::pair<protocol::address_family, std::array<std::uint8_t, 16>>, unsigned> per_ip;
    std::uint64_t next_id = 1;
    counters stats;
    bool stopped = false;
    log::throttle log_{5};
};

struct signaling_server::impl::connection : std::enable_shared_from_this<connection> {
    connection(std::shared_ptr<impl> o, tcp::socket s, std::uint64_t i, protocol::ip_address k)
        : owner(std::move(o)), plain(std::move(s)), timer(owner->io), id(i), key(k), reader(owner->cfg.max_message) {
        std::error_code ec;
        const auto ep = plain.remote_endpoint(ec);
        if (!ec) remote = fmt::format("{}:{}", ep.address().to_string(), ep.port());
        if (owner->tls) ssl.emplace(std::move(plain), *owner->tls);
    }

    tcp::socket& lowest() { return ssl ? ssl->next_layer() : plain; }

    /// Queues bytes for the writer; a reader that lets max_queued pile up is cut off.
    void deliver(std::string bytes) {
        if (closed || closing) return;
        if (queued + bytes.size() > max_queued) {
            owner->log_.at(log_level::info, "signaling {}: reads too slowly ({} bytes queued), closing", remote, queued);
            close();
            return;
        }
        queued += bytes.size();
        out.push_back(std::move(bytes));
        if (!writing) {
            writing = true;
            auto self = shared_from_this();
            spawn(owner->io.get_executor(), "signaling writer", [self] { return self->write_loop(); }, [self] {
                self->writing = false;
                self->close();
            });
        }
    }
    /// A close frame, then the connection ends once it is written.
    void close_with(std::uint16_t code, std::string_view reason) {
        if (closed || closing) return;
        deliver(ws::close_frame(code, reason));
        closing = true;
    }

    asio::awaitable<void> write_loop() {
        while (!out.empty() && !closed) {
            auto bytes = std::move(out.front());
            out.pop_front();
            std::error_code ec;
            if (ssl) std::tie(ec, std::ignore) = co_await asio::async_write(*ssl, asio::buffer(bytes), use_tuple);
            else std::tie(ec, std::ignore) = co_await asio::async_write(plain, asio::buffer(bytes), use_tuple);
            queued -= bytes.size();
            if (ec) {
                close();
                break;
            }
        }
        writing = false;
        if (closing && out.empty()) close();
    }

    /// Everything from the first byte to the last frame.
    asio::awaitable<void> run() {
        last_activity = clock::now();
        deadline = clock::now() + head_deadline;
        auto self = shared_from_this();
        spawn(owner->io.get_executor(), "signaling watchdog", [self] { return self->watchdog(); }, [self] { self->close(); });
        if (ssl) {
            auto [ec] = co_await ssl->async_handshake(asio::ssl::stream_base::server, use_tuple);
            if (ec) {
                close();
                co_return;
            }
        }
        // The request head.
        std::string head;
        std::array<char, 2048> buf{};
        std::size_t end = std::string::npos;
        while ((end = head.find("\r\n\r\n")) == std::string::npos) {
            if (head.size() > max_head) {
                respond(400, "request head too large\n");
                co_return;
            }
            std::error_code ec;
            std::size_t n = 0;
            if (ssl) std::tie(ec, n) = co_await ssl->async_read_some(asio::buffer(buf), use_tuple);
            else std::tie(ec, n) = co_await plain.async_read_some(asio::buffer(buf), use_tuple);
            if (ec) {
                close();
                co_return;
            }
            head.append(buf.data(), n);
        }
        const auto h = signaling::parse_head(std::string_view(head).substr(0, end + 4));
        if (!h) {
            respond(400, "not an HTTP/1.1 request\n");
            co_return;
        }
        if ((h->path == "/" || h->path == "/index.html") && !signaling::is_websocket(*h)) {
            if (h->method != "GET") {
                respond(405, "GET only\n", "Allow: GET\r\n");
                co_return;
            }
            // The demo page; it loads nothing from elsewhere, so a strict policy costs nothing.
            auto answer = signaling::http_response(
                200, "text/html; charset=utf-8", signaling::demo_page(),
                "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:\r\n");
            deliver(std::move(answer));
            closing = true;
            co_return;
        }
        if (h->path != websocket_path) {
            respond(404, "not found; the demo page is at /, the WebSocket endpoint at /ws\n");
            co_return;
        }
        if (!signaling::is_websocket(*h)) {
            respond(426, "this endpoint speaks WebSocket only\n", "Upgrade: websocket\r\n");
            co_return;
        }
        if (const auto why = signaling::handshake_problem(*h); !why.empty()) {
            respond(400, why + "\n");
            co_return;
        }
        host = signaling::host_without_port(h->host);
        deadline = {};
        upgraded = true;
        deliver(signaling::switching_protocols(*h));
        // Bytes that came with the head are the first frames.
        pending.assign(head.begin() + static_cast<std::ptrdiff_t>(end + 4), head.end());
        co_await frames();
    }

    void respond(int status, std::string body, std::string_view extra = {}) {
        deliver(signaling::http_response(status, "text/plain; charset=utf-8", body, extra));
        closing = true;
    }

    asio::awaitable<void> frames() {
        std::array<std::uint8_t, 4096> buf{};
        bool done = false;
        while (!done) {
            done = take_frames();
            if (done) break;
            std::error_code ec;
            std::size_t n = 0;
            if (ssl) std::tie(ec, n) = co_await ssl->async_read_some(asio::buffer(buf), use_tuple);
            else std::tie(ec, n) = co_await plain.async_read_some(asio::buffer(buf), use_tuple);
            if (ec) {
                close();
                break;
            }
            pending.insert(pending.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        }
    }

    /// Every complete frame in what has arrived; true when the connection is done.
    bool take_frames() {
        for (;;) {
            ws::reader::event ev;
            const auto used = reader.feed(pending, ev);
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
            if (ev.what == ws::reader::event::kind::none) return closed || closing;
            last_activity = clock::now();
            if (!handle(ev)) return true;
        }
    }

    /// One event from the client; false when the connection is done.
    bool handle(const ws::reader::event& ev) {
        using kind = ws::reader::event::kind;
        switch (ev.what) {
        case kind::message:
            if (ev.type != ws::opcode::text) {
                close_with(ws::close_code::unsupported_data, "messages are JSON text");
                return false;
            }
            ++owner->stats.messages;
            owner->dispatch(owner->hub.on_text(id, ev.data, clock::now()), id);
            return !(closed || closing);
        case kind::ping: deliver(ws::frame(ws::opcode::pong, ev.data)); return true;
        case kind::pong: return true;
        case kind::close:
            // §5.5.1: answer with a close frame (echoing the code), then end.
            close_with(ev.code == ws::close_code::no_status ? ws::close_code::normal : ev.code, "");
            return false;
        case kind::error:
            ++owner->stats.protocol_errors;
            owner->log_.at(log_level::debug, "signaling {}: {}", remote, ev.data);
            close_with(ev.code, ev.data);
            return false;
        case kind::none: return true;
        }
        return true;
    }

    /// The head's deadline, then pings: a connection that sends nothing (not even a pong) for
    /// idle_timeout is closed.
    asio::awaitable<void> watchdog() {
        const auto idle = owner->cfg.idle_timeout;
        while (!closed) {
            timer.expires_after(upgraded ? idle / 3 : std::chrono::milliseconds(250));
            co_await timer.async_wait(use_tuple);
            if (closed) break;
            const auto now = clock::now();
            if (!upgraded) {
                if (deadline != clock::time_point{} && now > deadline) {
                    owner->log_.at(log_level::debug, "signaling {}: no request within {} s", remote, head_deadline.count());
                    close();
                }
                continue;
            }
            if (now - last_activity > idle) {
                close_with(ws::close_code::going_away, "idle");
                break;
            }
            if (now - last_activity > idle / 3) deliver(ws::frame(ws::opcode::ping, ""));
        }
    }

    void close() {
        if (closed) return;
        closed = true;
        std::error_code ec;
        lowest().shutdown(asio::socket_base::shutdown_both, ec);
        lowest().close(ec);
        timer.cancel();
        owner->forget(*this);
    }

    std::shared_ptr<impl> owner;
    tcp::socket plain;
    std::optional<asio::ssl::stream<tcp::socket>> ssl;
    asio::steady_timer timer;
    std::uint64_t id;
    protocol::ip_address key; ///< counted under this address (connections_per_ip)
    std::string remote;
    std::string host; ///< the Host the client used (for iceServers URLs)
    ws::reader reader;
    std::vector<std::uint8_t> pending; ///< bytes read, not yet a whole frame
    std::deque<std::string> out;
    std::size_t queued = 0;
    bool writing = false;
    bool closing = false;
    bool closed = false;
    bool upgraded = false;
    clock::time_point last_activity;
    clock::time_point deadline;
};

std::string signaling_server::impl::ice_servers(std::uint64_t conn, std::string_view member) {
    std::string host = cfg.public_host;
    if (host.empty())
        if (const auto it = conns.find(conn); it != conns.end())
            if (const auto c = it->second.lock()) host = c->host;
    if (host.empty()) return {};
    std::set<std::string> stun, turn;
    for (const auto& l : listen) {
        const auto where = url_host(host) + ":" + std::to_string(l.port);
        if (l.udp) {
            stun.insert("stun:" + where);
            turn.insert("turn:" + where + "?transport=udp");
        }
        if (l.tcp) turn.insert("turn:" + where + "?transport=tcp");
        if (l.tls) turn.insert("turns:" + where + "?transport=tcp");
    }
    json servers = json::array();
    if (!stun.empty()) servers.push_back({{"urls", json(stun)}});
    if (!turn.empty() && !turn_secrets.empty()) {
        // TURN REST: username "expiry:member", password base64(HMAC-SHA1(secret, username)).
        const auto expiry = static_cast<std::int64_t>(std::time(nullptr)) + cfg.credential_lifetime.count();
        const std::string username = std::to_string(expiry) + ":" + std::string(member);
        const auto& secret = turn_secrets.front();
        std::array<std::uint8_t, protocol::hmac_sha1_size> mac{};
        protocol::hmac_sha1({reinterpret_cast<const std::uint8_t*>(secret.data()), secret.size()},
                            {reinterpret_cast<const std::uint8_t*>(username.data()), username.size()}, mac);
        servers.push_back({{"urls", json(turn)}, {"username", username}, {"credential", auth::base64_encode(mac)}});
    }
    return servers.dump();
}

void signaling_server::impl::forget(const connection& c) {
    conns.erase(c.id);
    if (auto it = per_ip.find({c.key.family, c.key.bytes}); it != per_ip.end() && --it->second == 0) per_ip.erase(it);
    --stats.connections;
    if (c.upgraded) dispatch(hub.on_close(c.id), c.id);
}

void signaling_server::impl::dispatch(const signaling::hub::effects& e, std::uint64_t from) {
    for (const auto& s : e.sends)
        if (const auto it = conns.find(s.to); it != conns.end())
            if (const auto c = it->second.lock()) c->deliver(ws::frame(ws::opcode::text, s.text));
    if (e.close)
        if (const auto it = conns.find(from); it != conns.end())
            if (const auto c = it->second.lock()) c->close_with(e.code, e.reason);
}

asio::awaitable<void> signaling_server::impl::accept_loop() {
    while (!stopped) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (stopped) break;
        if (ec) {
            if (ec == asio::error::operation_aborted) break;
            // Out of descriptors and the like: wait a moment rather than spin.
            log_.at(log_level::warn, "signaling: accept failed: {}", ec.message());
            asio::steady_timer pause(io, std::chrono::milliseconds(100));
            co_await pause.async_wait(use_tuple);
            continue;
        }
        std::error_code e2;
        const auto ep = socket.remote_endpoint(e2);
        if (e2) continue;
        const auto raw = ep.address();
        protocol::ip_address source;
        if (raw.is_v4()) {
            const auto b = raw.to_v4().to_bytes();
            source = protocol::ip_address::v4(std::span<const std::uint8_t, 4>(b.data(), 4));
        } else {
            const auto b = raw.to_v6().to_bytes();
            source = protocol::ip_address::v6(std::span<const std::uint8_t, 16>(b.data(), 16));
        }
        const auto k = source_key(source, ipv6_prefix);
        auto& n = per_ip[{k.family, k.bytes}];
        if (stats.connections >= cfg.connections || n >= cfg.connections_per_ip) {
            if (n == 0) per_ip.erase({k.family, k.bytes});
            ++stats.refused;
            log_.at(log_level::info, "signaling: connection from {} refused: {} connections from it, {} in all",
                    raw.to_string(), n, stats.connections);
            // Said in HTTP before the request is read (one small non-blocking send into a fresh
            // socket's empty buffer); TLS clients see the connection close.
            if (!tls) {
                const auto answer = signaling::http_response(
                    503, "text/plain; charset=utf-8", "too many connections from your address; try again later\n",
                    "Retry-After: 10\r\n");
                [[maybe_unused]] const auto sent =
                    ::send(socket.native_handle(), answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            }
            continue; // the socket closes as it goes out of scope
        }
        ++n;
        ++stats.connections;
        const auto id = next_id++;
        auto c = std::make_shared<connection>(shared_from_this(), std::move(socket), id, k);
        conns[id] = c;
        spawn(io.get_executor(), "signaling connection", [c] { return c->run(); }, [c] { c->close(); });
    }
}

signaling_server::signaling_server(asio::io_context& io, const config& cfg, std::shared_ptr<asio::ssl::context> tls)
    : impl_(std::make_shared<impl>(io, cfg, std::move(tls))) {}

signaling_server::~signaling_server() { stop(); }

void signaling_server::start() {
    auto i = impl_;
    spawn_restarting(i->io.get_executor(), "signaling listener", [i] { return i->accept_loop(); });
}

void signaling_server::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    std::error_code ec;
    impl_->acceptor.close(ec);
    std::vector<std::shared_ptr<impl::connection>> open;
    for (auto& [id, w] : impl_->conns)
        if (auto c = w.lock()) open.push_back(c);
    for (auto& c : open) c->close();
}

asio::ip::tcp::endpoint signaling_server::local_endpoint() const { return impl_->acceptor.local_endpoint(); }

signaling_server::counters signaling_server::stats() const { return impl_->stats; }

} // namespace ferry::server
