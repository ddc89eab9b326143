// A small HTTP/1.1 server for the operator's endpoints: GET and HEAD only, one request per
// connection (Connection: close), request heads up to 8 KiB, a 5 s deadline per connection and
// at most 32 connections at once. It runs on whatever io_context it is given: ferry gives it
// the main thread's, off the relay path.
#pragma once

#include <asio.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::admin {

struct http_request {
    std::string method; ///< GET or HEAD
    std::string path;   ///< without the query string
};

struct http_response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

/// Parses a request head up to and including its blank line. nullopt when it is not HTTP/1.x.
std::optional<http_request> parse_request_head(std::string_view head);
/// The bytes to send: status line, headers, and the body unless `head_only`.
std::string serialize(const http_response& r, bool head_only);

class http_server {
public:
    using handler = std::function<asio::awaitable<http_response>(http_request)>;
    using error_sink = std::function<void(const std::string&)>;

    /// Binds and listens at `at`; throws std::system_error when it cannot.
    http_server(asio::any_io_executor ex, const asio::ip::tcp::endpoint& at, handler h, error_sink on_error);
    void start();
    void stop();
    asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    static constexpr std::size_t max_head = 8192;
    static constexpr unsigned max_connections = 32;

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(std::shared_ptr<asio::ip::tcp::socket> socket);
    void spawn(asio::awaitable<void> a, const char* what);

    asio::ip::tcp::acceptor acceptor_;
    handler handler_;
    error_sink on_error_;
    /// Connections being served; shared with their frames, which may outlive this object.
    std::shared_ptr<unsigned> active_ = std::make_shared<unsigned>(0);
};

} // namespace ferry::admin
