#include "ferry/server/udp_listener.hpp"

#include "ferry/protocol/channel_data.hpp"
#include "ferry/server/net.hpp"
#include "ferry/server/spawn.hpp"

namespace ferry::server {

udp_listener::udp_listener(asio::io_context& io, int fd, const protocol::transport_address& bound,
                           stun_handler& handler, udp_batch& batch, turn_handler* turn, packet_sink& sink)
    : socket_(io), bound_(bound), wildcard_(bound.ip.is_unspecified()), handler_(handler),
      batch_(batch), turn_(turn), sink_(sink) {
    socket_.assign(bound.ip.family == protocol::address_family::ipv4 ? asio::ip::udp::v4()
                                                                     : asio::ip::udp::v6(),
                   fd);
}

void udp_listener::start() {
    spawn_restarting(socket_.get_executor(), fmt::format("udp listener {}", bound_), [this] { return run(); });
}

asio::awaitable<void> udp_listener::run() {
    for (;;) {
        auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read,
                                                use_tuple);
        if (ec) co_return; // closed on shutdown
        // Yield between rounds so one busy socket cannot starve the worker's others.
        while (!service()) co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    }
}

bool udp_listener::service() {
    constexpr int rounds = 4;
    const int fd = socket_.native_handle();
    for (int round = 0; round < rounds; ++round) {
        const std::size_t n = batch_.receive(fd);
        if (n == 0) return true;
        send_scope sent(batch_); // what this round queues points into its receive slots
        for (std::size_t i = 0; i < n; ++i) {
            const auto data = batch_.payload(i);
            const auto kind = data.empty() || batch_.truncated(i) ? protocol::packet_kind::other
                                                                  : protocol::classify(data[0]);
            if (kind != protocol::packet_kind::stun &&
                (kind != protocol::packet_kind::channel_data || turn_ == nullptr)) {
                drop_log_.at(log_level::trace, "udp {}: dropped {} bytes that are not STUN",
                             bound_, data.size());
                continue;
            }
            request_context ctx;
            ctx.via = transport::udp;
            ctx.remote = net::from_sockaddr(batch_.source(i));
            ctx.local = bound_;
            ctx.socket = fd;
            ctx.wildcard = wildcard_;
            std::optional<protocol::ip_address> from;
            if (wildcard_) {
                from = batch_.destination(i);
                if (from) ctx.local.ip = *from;
            }
            ctx.nat = nat_;
            if (kind == protocol::packet_kind::channel_data) {
                turn_->handle_channel_data(ctx, data, sink_);
                continue;
            }

            auto out = batch_.send_buffer();
            if (out.empty()) {
                batch_.flush();
                out = batch_.send_buffer();
            }
            const reply r = handler_.handle(ctx, data, out, &sink_);
            if (r.size == 0) continue;

            int via = fd;
            if (nat_sockets_ != nullptr) via = (*nat_sockets_)[r.from_ip][r.from_port]->native_handle();
            sockaddr_storage to = batch_.source(i);
            if (r.to_port != 0) {
                auto dest = ctx.remote;
                dest.port = r.to_port;
                net::to_sockaddr(dest, to);
            }
            batch_.queue(via, to, out.first(r.size), from);
        }
        sent.now();
        if (n < udp_batch::batch_size) return true;
    }
    return false;
}

} // namespace ferry::server
