#include "ferry/server/tcp_relay.hpp"

#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"

#include <chrono>
#include <cstring>

namespace ferry::server {
namespace {

protocol::transport_address to_address(const asio::ip::tcp::endpoint& e) { return net::from_raw(e.data(), e.size()); }

} // namespace

// --- tcp_link_hub ------------------------------------------------------------------------------

void tcp_link_hub::add(std::uint32_t id, std::weak_ptr<tcp_peer_link> link) {
    std::lock_guard lock(mutex_);
    links_[id] = std::move(link);
}

void tcp_link_hub::remove(std::uint32_t id) {
    std::lock_guard lock(mutex_);
    links_.erase(id);
}

std::shared_ptr<tcp_peer_link> tcp_link_hub::find(std::uint32_t id) const {
    std::lock_guard lock(mutex_);
    auto it = links_.find(id);
    return it == links_.end() ? nullptr : it->second.lock();
}

// --- tcp_peer_link -----------------------------------------------------------------------------

tcp_peer_link::tcp_peer_link(asio::ip::tcp::socket socket, std::uint32_t id, tcp_link_hub& hub, turn_handler& turn,
                             std::size_t cap)
    : socket_(std::move(socket)), pause_(socket_.get_executor()), id_(id), hub_(hub), turn_(turn), cap_(cap) {}

asio::awaitable<bool> wait_for_partner(asio::steady_timer& pause, const splice_end& partner) {
    const auto deadline = std::chrono::steady_clock::now() + splice_stall_timeout;
    while (partner.backlog() > splice_high_water) {
        if (std::chrono::steady_clock::now() >= deadline) co_return false;
        pause.expires_at(deadline);
        co_await pause.async_wait(use_tuple); // cancelled by the partner's resume()
    }
    co_return true;
}

void tcp_peer_link::resume() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->pause_.cancel(); });
}

void tcp_peer_link::start() {
    std::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    const auto remote = socket_.remote_endpoint(ec);
    if (!ec) peer_ = to_address(remote);
    hub_.add(id_, weak_from_this());
    auto self = shared_from_this();
    spawn(socket_.get_executor(), fmt::format("tcp relay connection {}: reader", id_), [self] { return self->read_loop(); },
          [self] { self->close(); });
}

void tcp_peer_link::attach(std::shared_ptr<splice_end> client) {
    if (closed_) {
        client->hang_up();
        return;
    }
    client_ = std::move(client);
    // "This includes data that was received after the associated Connect or request was
    //  successfully processed and before this ConnectionBind request was received."
    if (!early_.empty()) client_->push(early_);
    early_.clear();
    early_.shrink_to_fit();
}

void tcp_peer_link::push(std::span<const std::uint8_t> bytes) {
    auto copy = std::make_shared<std::vector<std::uint8_t>>(bytes.begin(), bytes.end());
    backlog_.fetch_add(copy->size(), std::memory_order_relaxed);
    asio::post(socket_.get_executor(), [self = shared_from_this(), copy] {
        self->backlog_.fetch_sub(copy->size(), std::memory_order_relaxed);
        self->write(*copy);
    });
}

void tcp_peer_link::hang_up() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
}

void tcp_peer_link::write(std::span<const std::uint8_t> bytes) {
    if (closed_) return;
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    backlog_.fetch_add(bytes.size(), std::memory_order_relaxed);
    if (!writing_) {
        writing_ = true;
        auto self = shared_from_this();
        spawn(socket_.get_executor(), fmt::format("tcp relay connection {}: writer", id_), [self] { return self->write_loop(); },
              [self] {
                  self->writing_ = false;
                  self->close();
              });
    }
}

asio::awaitable<void> tcp_peer_link::write_loop() {
    while (!pending_.empty() && !closed_) {
        std::swap(pending_, sending_);
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(sending_), use_tuple);
        backlog_.fetch_sub(sending_.size(), std::memory_order_relaxed);
        to_peer_ += n;
        sending_.clear();
        if (client_ && backlog() <= splice_high_water) client_->resume();
        if (ec) {
            close();
            break;
        }
    }
    writing_ = false;
}

asio::awaitable<void> tcp_peer_link::read_loop() {
    std::vector<std::uint8_t> buf(16384);
    while (!closed_) {
        if (client_ && client_->backlog() > splice_high_water) {
            const auto partner = client_; // close() may reset client_ while we wait
            if (!co_await wait_for_partner(pause_, *partner)) {
                log::info("tcp relay connection {}: the client read nothing for {} s, closing", id_,
                          splice_stall_timeout.count());
                break;
            }
            continue;
        }
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), use_tuple);
        if (ec || closed_) break;
        from_peer_ += n;
        if (client_) {
            client_->push({buf.data(), n});
        } else if (early_.size() + n > cap_) {
            log::debug("tcp relay connection {}: peer sent {} bytes before the client bound it, closing", id_,
                       early_.size() + n);
            break;
        } else {
            early_.insert(early_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        }
    }
    close();
}

void tcp_peer_link::close() {
    if (closed_) return;
    closed_ = true;
    hub_.remove(id_);
    log::info("tcp relay connection {} with {} closed: {} bytes to the peer, {} bytes from it", id_, peer_, to_peer_,
              from_peer_);
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
    pause_.cancel();
    if (client_) client_->hang_up();
    client_.reset();
    // Not inside the caller: close() can run from the handler itself (close_tcp).
    asio::post(socket_.get_executor(), [turn = &turn_, id = id_] { turn->tcp_link_closed(id); });
}

// --- tcp_relay_listener ------------------------------------------------------------------------

tcp_relay_listener::tcp_relay_listener(asio::io_context& io, int fd, const protocol::transport_address& local,
                                       turn_handler& turn, packet_sink& sink, tcp_link_hub& hub, std::size_t cap)
    : acceptor_(io), local_(local), turn_(turn), sink_(sink), hub_(hub), cap_(cap) {
    acceptor_.assign(local.ip.family == protocol::address_family::ipv4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(),
                     fd);
}

void tcp_relay_listener::start() {
    auto self = shared_from_this();
    spawn_restarting(acceptor_.get_executor(), fmt::format("tcp relay listener {}", local_),
                     [self] { return self->accept_loop(); });
}

void tcp_relay_listener::close() {
    std::error_code ec;
    acceptor_.close(ec);
}

asio::awaitable<void> tcp_relay_listener::accept_loop() {
    asio::steady_timer backoff(acceptor_.get_executor());
    const int handle = acceptor_.native_handle();
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        std::error_code pec;
        const auto peer = socket.remote_endpoint(pec);
        if (pec) continue;
        const std::uint32_t id = turn_.tcp_peer_arrived(handle, to_address(peer), sink_);
        if (id == 0) {
            socket.close(pec); // no permission for this peer
            continue;
        }
        std::make_shared<tcp_peer_link>(std::move(socket), id, hub_, turn_, cap_)->start();
    }
}

} // namespace ferry::server
