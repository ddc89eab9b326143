#include "ferry/admin/http.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <fmt/format.h>

#include <chrono>

namespace ferry::admin {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string_view reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

} // namespace

std::optional<http_request> parse_request_head(std::string_view head) {
    const auto eol = head.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    const auto line = head.substr(0, eol);
    const auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return std::nullopt;
    const auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return std::nullopt;
    const auto version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
    http_request r;
    r.method = std::string(line.substr(0, sp1));
    for (const char c : r.method)
        if (c < 'A' || c > 'Z') return std::nullopt;
    auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (target.front() != '/') return std::nullopt;
    if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    r.path = std::string(target);
    return r;
}

std::string serialize(const http_response& r, bool head_only) {
    auto out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
                           "Connection: close\r\n\r\n",
                           r.status, reason(r.status), r.content_type, r.body.size());
    if (!head_only) out += r.body;
    return out;
}

http_server::http_server(asio::any_io_executor ex, const asio::ip::tcp::endpoint& at, handler h, error_sink on_error)
    : acceptor_(ex), handler_(std::move(h)), on_error_(std::move(on_error)) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    if (at.protocol() == asio::ip::tcp::v6()) acceptor_.set_option(asio::ip::v6_only(true));
    acceptor_.bind(at);
    acceptor_.listen(64);
}

void http_server::spawn(asio::awaitable<void> a, const char* what) {
    asio::co_spawn(acceptor_.get_executor(), std::move(a), [this, what](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            on_error_(fmt::format("admin {}: {}", what, x.what()));
        } catch (...) {
            on_error_(fmt::format("admin {}: unknown exception", what));
        }
    });
}

void http_server::start() { spawn(accept_loop(), "listener"); }

void http_server::stop() {
    std::error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> http_server::accept_loop() {
    asio::steady_timer backoff(acceptor_.get_executor());
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        if (*active_ >= max_connections) {
            std::error_code ignored;
            socket.close(ignored);
            continue;
        }
        spawn(serve(std::make_shared<asio::ip::tcp::socket>(std::move(socket))), "connection");
    }
}

asio::awaitable<void> http_server::serve(std::shared_ptr<asio::ip::tcp::socket> socket) {
    struct done_guard {
        std::shared_ptr<unsigned> n;
        ~done_guard() { --*n; }
    } guard{active_};
    ++*active_;
    // The deadline shares the socket, never a reference into this frame, which may end first.
    auto deadline = std::make_shared<asio::steady_timer>(socket->get_executor());
    deadline->expires_after(std::chrono::seconds(5));
    deadline->async_wait([socket](const std::error_code& e) {
        std::error_code ignored;
        if (!e) socket->close(ignored);
    });
    std::string head;
    auto [ec, n] = co_await asio::async_read_until(*socket, asio::dynamic_buffer(head, max_head), "\r\n\r\n", use_tuple);
    http_response response;
    bool head_only = false;
    if (ec == asio::error::not_found) {
        response.status = 431;
    } else if (ec) {
        deadline->cancel();
        co_return;
    } else if (const auto req = parse_request_head(std::string_view(head).substr(0, n)); !req) {
        response.status = 400;
    } else if (req->method != "GET" && req->method != "HEAD") {
        response.status = 405;
    } else {
        head_only = req->method == "HEAD";
        response = co_await handler_(*req);
    }
    if (response.status != 200 && response.body.empty())
        response.body = fmt::format("{}\n", reason(response.status));
    const auto bytes = serialize(response, head_only);
    co_await asio::async_write(*socket, asio::buffer(bytes), use_tuple);
    std::error_code ignored;
    socket->shutdown(asio::socket_base::shutdown_both, ignored);
    socket->close(ignored);
    deadline->cancel();
}

} // namespace ferry::admin
