#include "ferry/server/worker.hpp"

#include "ferry/server/log.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/server/net.hpp"

#include <cstdlib>
#include <cstring>
#include <thread>
#include <system_error>
#include <unistd.h>

namespace ferry::server {
namespace {

// A host without IPv6 cannot bind "::"; the shipped config lists it, so skip it there.
bool ipv6_missing(const std::system_error& e, const protocol::transport_address& a) {
    return a.ip.family == protocol::address_family::ipv6 && a.ip.is_unspecified() &&
           (e.code().value() == EAFNOSUPPORT || e.code().value() == EADDRNOTAVAIL);
}

// The one listener an RFC 5780 set is built around: the first UDP listener on a concrete
// address of the alternate's family.
const listen_config* nat_primary(const config& cfg) {
    const auto& alt = cfg.nat_discovery.alternate_address;
    if (!alt) return nullptr;
    for (const auto& l : cfg.listen)
        if (l.udp && l.address.family == alt->family && !l.address.is_unspecified() &&
            l.address != *alt)
            return &l;
    return nullptr;
}

} // namespace

worker::worker(const config& cfg, unsigned index, connection_limiter& connections, turn_context* turn,
               tls_context_holder* tls)
    : cfg_(cfg), limits_(cfg.limits), index_(index), handler_(handler_settings{cfg.software}),
      rng_(std::random_device{}()), turn_context_(turn) {
    if (turn != nullptr) {
        const auto& rt = *turn->runtime;
        turn_ = std::make_unique<turn_handler>(rt.settings, rt.credentials, turn->nonces, rt.policy, turn->shared,
                                               *this, clock_, cfg.software);
        turn_->reconfigure(turn->runtime);
        handler_.attach(turn_.get());
        relays_ = std::make_unique<relay_poller>(io_, *turn_, batch_, sink_);
    }
    const listen_config* primary = nat_primary(cfg);
    for (const auto& l : cfg.listen) {
        const protocol::transport_address a{l.address, l.port};
        try {
            if (&l == primary) {
                add_nat_set(l, *cfg.nat_discovery.alternate_address, cfg.nat_discovery.alternate_port);
            } else if (l.udp) {
                add_udp(a);
            }
            if (l.tcp || l.tls) {
                if (index_ == 0) net::ensure_unused(a, SOCK_STREAM);
                tcp_.push_back(std::make_unique<tcp_listener>(io_, net::listen_tcp(a, 1024), a,
                                                              handler_, limits_, connections,
                                                              turn_.get(), sink_, streams_, stream_poller_, conns_,
                                                              l.tls ? tls : nullptr, l.tls && l.tcp));
            }
            if (l.dtls && tls != nullptr) {
                if (index_ == 0) net::ensure_unused(a, SOCK_DGRAM);
                dtls_.push_back(std::make_unique<dtls_listener>(io_, net::bind_udp(a), a, handler_, limits_,
                                                                connections, turn_.get(), batch_, sink_, streams_,
                                                                *tls, conns_));
            }
        } catch (const std::system_error& e) {
            if (!ipv6_missing(e, a)) throw;
            if (index_ == 0) log::warn("skipping {}: this host has no IPv6 ({})", a, e.what());
        }
    }
}

worker::~worker() {
    handler_.attach(nullptr);
    turn_.reset(); // closes every relay socket through close()
    if (relays_) relays_->remove_all();
}

void worker::add_udp(const protocol::transport_address& a, const nat_identity* nat, nat_set* set) {
    if (index_ == 0) net::ensure_unused(a, SOCK_DGRAM);
    const int fd = net::bind_udp(a);
    if (index_ == 0 && udp_.empty()) {
        const int got = net::receive_buffer_bytes(fd);
        if (got < net::udp_listener_buffer_bytes / 2)
            log::warn("UDP socket buffers are {} KiB, not the {} KiB asked for (net.core.rmem_max, wmem_max): a "
                      "burst of large datagrams during a stall may overflow them; raise both sysctls",
                      got / 1024, net::udp_listener_buffer_bytes / 1024);
    }
    udp_.push_back(std::make_unique<udp_listener>(io_, fd, a, handler_, batch_, turn_.get(), sink_));
    if (set != nullptr) {
        udp_.back()->join_nat_set(nat, &set->sockets);
        set->sockets[nat->ip][nat->port] = udp_.back().get();
    }
}

void worker::add_nat_set(const listen_config& l, const protocol::ip_address& alternate,
                         std::uint16_t alternate_port) {
    auto set = std::make_unique<nat_set>();
    const std::uint16_t ports[2] = {l.port, alternate_port != 0 ? alternate_port
                                                                : static_cast<std::uint16_t>(l.port + 1)};
    const protocol::ip_address ips[2] = {l.address, alternate};
    for (unsigned i = 0; i < 2; ++i) {
        for (unsigned p = 0; p < 2; ++p) {
            auto& id = set->identities[i * 2 + p];
            for (unsigned ii = 0; ii < 2; ++ii)
                for (unsigned pp = 0; pp < 2; ++pp) id.addresses[ii][pp] = {ips[ii], ports[pp]};
            id.ip = i;
            id.port = p;
        }
    }
    for (auto& id : set->identities) add_udp(id.addresses[id.ip][id.port], &id, set.get());
    nat_sets_.push_back(std::move(set));
}

void worker::run() {
    for (auto& u : udp_) u->start();
    for (auto& t : tcp_) t->start();
    if (!tcp_.empty()) stream_poller_.start();
    for (auto& d : dtls_) d->start();
    if (relays_) relays_->start();
    if (turn_) spawn_restarting(io_.get_executor(), "sweep", [this] { return sweep_loop(); });
    const auto delay = cfg_.batching.delay;
    if (!turn_ || delay.count() <= 0) {
        io_.run();
        return;
    }
    // Adaptive batching. A pass runs every handler that is ready (one blocking wait for the
    // first, then non-blocking polls until nothing is left). While this worker relays more than
    // above_pps packets a second, the next pass starts no sooner than `delay` after this one
    // began: in between the thread sleeps on a timer instead of in epoll, so arriving datagrams
    // queue in the socket buffers without a wake-up each (on loopback, without the sender
    // paying for one either) and the next pass takes them all at once. Below that rate each
    // datagram is handled as soon as it arrives.
    using clock = std::chrono::steady_clock;
    // The load is measured over at least 10 ms: over a shorter window a short burst at light load
    // (a client sending a few packets at once) would look like a high rate.
    constexpr auto window = std::chrono::milliseconds(10);
    const double threshold = cfg_.batching.above_pps;
    auto window_start = clock::now();
    std::uint64_t window_count = relayed_packets();
    // A pass that already relayed this many packets is batch enough: waiting would only slow a
    // closed loop of clients (each waiting for its answer) without saving anything.
    constexpr std::uint64_t large_pass = 64;
    bool busy = false;
    while (!io_.stopped()) {
        const auto began = clock::now();
        const auto before = relayed_packets();
        io_.run_one();
        while (io_.poll() != 0) {
        }
        const auto now = clock::now();
        const auto count = relayed_packets();
        if (now - window_start >= window) {
            const double seconds = std::chrono::duration<double>(now - window_start).count();
            busy = static_cast<double>(count - window_count) >= threshold * seconds;
            window_start = now;
            window_count = count;
        }
        if (busy && count - before < large_pass) {
            ++batched_passes_;
            std::this_thread::sleep_until(began + delay);
        }
    }
}

std::uint64_t worker::relayed_packets() const {
    const auto& s = turn_->stats();
    return s.relayed_to_peer + s.relayed_to_client;
}

void worker::reconfigure(std::shared_ptr<const turn_runtime> runtime, const limits_config& limits) {
    limits_ = limits;
    if (turn_ && runtime) {
        const auto revoked = turn_->reconfigure(std::move(runtime));
        if (revoked != 0)
            log::info("credentials changed: {} allocation{} revoked", revoked, revoked == 1 ? "" : "s");
    }
}

void worker::start_drain() {
    if (turn_) turn_->start_drain();
}

void worker::end_allocations(end_reason why) {
    if (turn_) turn_->clear(why);
}

worker_snapshot worker::snapshot(bool per_user) const {
    worker_snapshot s;
    s.handler = handler_.stats();
    s.connections = conns_;
    s.send_failures = batch_.send_errors();
    s.batched_passes = batched_passes_;
    if (turn_) {
        s.turn = turn_->stats();
        turn_->gauges(s.gauges, per_user);
    }
    return s;
}

asio::awaitable<void> worker::sweep_loop() {
    asio::steady_timer timer(io_);
    for (;;) {
        timer.expires_after(std::chrono::seconds(1));
        auto [ec] = co_await timer.async_wait(use_tuple);
        if (ec) co_return;
        turn_->sweep();
        if (index_ == 0) turn_context_->ports.release_foreign(std::chrono::steady_clock::now());
    }
}

// --- relay_provider: relay sockets on ports from the configured range ------------------------
// Nothing here throws: these run on a client's request, and a socket call that fails (EMFILE,
// ENOBUFS, an address not on this host) becomes a 508 for that request, with a log line.

namespace {

std::optional<protocol::transport_address> local_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
    return net::from_sockaddr(ss);
}

} // namespace

template <class Bind>
std::optional<relay_provider::opened> worker::bind_from_pool(const protocol::ip_address& ip, port_pool::protocol_kind kind,
                                                             bool even, bool pair, Bind bind) {
    auto& ports = turn_context_->ports;
    for (int attempt = 0; attempt < 16; ++attempt) {
        const auto port = ports.take(ip, kind, even, pair, static_cast<std::uint32_t>(rng_()));
        if (!port) {
            log_.at(log_level::warn, "no free relay port on {} (range {}-{})", ip, turn_context_->runtime->settings.port_min,
                    turn_context_->runtime->settings.port_max);
            return std::nullopt;
        }
        const protocol::transport_address a{ip, *port};
        const int fd = bind(a);
        if (fd >= 0) return opened{fd, a};
        const int err = errno;
        if (pair) ports.give_back(ip, kind, static_cast<std::uint16_t>(*port + 1));
        if (err == EADDRINUSE || err == EACCES) {
            ports.held_elsewhere(ip, kind, *port, std::chrono::steady_clock::now()); // another process has it
            continue;
        }
        ports.give_back(ip, kind, *port);
        log_.at(log_level::warn, "cannot open a relay socket on {}: {}", a, std::strerror(err));
        return std::nullopt;
    }
    log_.at(log_level::warn, "no relay port on {} could be bound: other processes hold them", ip);
    return std::nullopt;
}

std::optional<relay_provider::opened> worker::open(const protocol::ip_address& ip, bool even, bool dont_fragment,
                                                   bool pair) {
    auto o = bind_from_pool(ip, port_pool::protocol_kind::udp, even, pair,
                            [&](const protocol::transport_address& a) { return net::bind_relay(a, dont_fragment); });
    if (!o) return std::nullopt;
    if (!relays_->add(o->handle)) {
        log_.at(log_level::warn, "cannot watch the relay socket on {}: {}", o->local, std::strerror(errno));
        turn_context_->ports.give_back(ip, port_pool::protocol_kind::udp, o->local.port);
        if (pair) turn_context_->ports.give_back(ip, port_pool::protocol_kind::udp, static_cast<std::uint16_t>(o->local.port + 1));
        batch_.close_after_flush(o->handle);
        return std::nullopt;
    }
    return o;
}

std::optional<relay_provider::opened> worker::open_next(const opened& even_port) {
    // open(..., pair) kept N+1 free for this.
    const protocol::transport_address a{even_port.local.ip, static_cast<std::uint16_t>(even_port.local.port + 1)};
    const int fd = net::bind_relay(a, false);
    if (fd >= 0) return opened{fd, a};
    const int err = errno;
    if (err == EADDRINUSE || err == EACCES)
        turn_context_->ports.held_elsewhere(a.ip, port_pool::protocol_kind::udp, a.port, std::chrono::steady_clock::now());
    else
        turn_context_->ports.give_back(a.ip, port_pool::protocol_kind::udp, a.port);
    return std::nullopt;
}

void worker::adopt(int handle) {
    if (!relays_->add(handle))
        log_.at(log_level::warn, "cannot watch an adopted relay socket: {}; its allocation will not relay",
                std::strerror(errno));
}

void worker::close(int handle) {
    if (auto t = tcp_relays_.find(handle); t != tcp_relays_.end()) {
        turn_context_->ports.give_back(t->second->local().ip, port_pool::protocol_kind::tcp, t->second->local().port);
        t->second->close();
        tcp_relays_.erase(t);
        return;
    }
    if (const auto local = local_of(handle))
        turn_context_->ports.give_back(local->ip, port_pool::protocol_kind::udp, local->port);
    // Datagrams for this socket may still be queued in the batch: it closes after the flush,
    // so its number cannot go to another allocation's socket before they leave.
    if (relays_->contains(handle)) relays_->remove(handle);
    else batch_.close_after_flush(handle); // a reservation that never became an allocation
}

std::optional<relay_provider::opened> worker::open_tcp(const protocol::ip_address& ip) {
    auto o = bind_from_pool(ip, port_pool::protocol_kind::tcp, false, false,
                            [](const protocol::transport_address& a) { return net::listen_relay_tcp(a); });
    if (!o) return std::nullopt;
    auto listener = std::make_shared<tcp_relay_listener>(io_, o->handle, o->local, *turn_, sink_, turn_context_->links,
                                                         limits_.tcp_buffer_bytes);
    tcp_relays_[o->handle] = listener;
    listener->start();
    return o;
}

void worker::connect_tcp(int handle, const protocol::transport_address& peer, std::uint32_t id) {
    auto fail = [this, id] {
        // Answered from the loop, not inside the Connect request being handled.
        asio::post(io_, [this, id] {
            if (turn_) turn_->tcp_connect_result(id, false, sink_);
        });
    };
    auto listener = tcp_relays_.find(handle);
    if (listener == tcp_relays_.end()) return fail();
    const int fd = net::bind_relay_tcp_client(listener->second->local());
    if (fd < 0) return fail();
    auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
    std::error_code ec;
    socket->assign(peer.ip.family == protocol::address_family::ipv4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
    if (ec) {
        ::close(fd);
        return fail();
    }
    connecting_[id] = socket;
    sockaddr_storage ss;
    const auto len = net::to_sockaddr(peer, ss);
    asio::ip::tcp::endpoint endpoint;
    std::memcpy(endpoint.data(), &ss, len);
    endpoint.resize(len);
    spawn(io_.get_executor(), fmt::format("tcp relay connection {}: connect", id),
          [&] { return connect_attempt(socket, endpoint, id); }, [this, id] {
        connecting_.erase(id);
        if (turn_) turn_->tcp_connect_result(id, false, sink_);
    });
}

asio::awaitable<void> worker::connect_attempt(std::shared_ptr<asio::ip::tcp::socket> socket,
                                              asio::ip::tcp::endpoint endpoint, std::uint32_t id) {
    // RFC 6062 §5.2: "The timeout value MUST be at least 30 seconds."
    asio::steady_timer deadline(io_);
    deadline.expires_after(tcp_bind_timeout);
    deadline.async_wait([socket](const std::error_code& e) {
        std::error_code ignored;
        if (!e) socket->close(ignored);
    });
    auto [cec] = co_await socket->async_connect(endpoint, use_tuple);
    deadline.cancel();
    const auto it = connecting_.find(id);
    if (it == connecting_.end() || it->second != socket || !turn_) co_return; // abandoned
    connecting_.erase(it);
    if (cec) {
        log::debug("tcp relay connection {}: connect failed: {}", id, cec.message());
        turn_->tcp_connect_result(id, false, sink_);
        co_return;
    }
    // Registered before the answer, so a quick ConnectionBind finds it.
    std::make_shared<tcp_peer_link>(std::move(*socket), id, turn_context_->links, *turn_,
                                    limits_.tcp_buffer_bytes)
        ->start();
    turn_->tcp_connect_result(id, true, sink_);
}

bool worker::bind_tcp(std::uint32_t id, int stream) {
    auto client = streams_.find(stream);
    auto link = turn_context_->links.find(id);
    if (!client || !link) return false;
    auto end = client->splice_to(link);
    if (!end) return false;
    // The link belongs to whichever worker made it: it is attached there.
    asio::post(link->executor(), [link, end] {
        link->attach(end);
        link->turn().tcp_link_bound(link->id());
    });
    return true;
}

void worker::close_tcp(std::uint32_t id) {
    if (auto it = connecting_.find(id); it != connecting_.end()) {
        std::error_code ec;
        it->second->close(ec);
        connecting_.erase(it);
        return;
    }
    if (auto link = turn_context_->links.find(id)) link->hang_up();
}

std::vector<std::string> worker::describe() const {
    std::vector<std::string> out;
    for (const auto& u : udp_) out.push_back("udp " + u->bound().to_string());
    for (const auto& t : tcp_) out.push_back(std::string(t->kind()) + " " + t->bound().to_string());
    for (const auto& d : dtls_) out.push_back("dtls " + d->bound().to_string());
    return out;
}

} // namespace ferry::server
