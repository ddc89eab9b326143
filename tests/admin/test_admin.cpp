// The admin endpoint's pieces: request heads, responses, the Prometheus text format, and a
// real server on loopback answering a real socket.
#include "ferry/admin/exposition.hpp"
#include "ferry/admin/http.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <doctest/doctest.h>

#include <thread>

using namespace ferry::admin;

TEST_CASE("request heads: GET and HEAD with paths; anything else is not HTTP") {
    auto r = parse_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(r);
    CHECK(r->method == "GET");
    CHECK(r->path == "/metrics");
    CHECK(parse_request_head("HEAD /readyz HTTP/1.0\r\n\r\n")->method == "HEAD");
    CHECK_FALSE(parse_request_head("GET /metrics\r\n\r\n"));         // HTTP/0.9
    CHECK_FALSE(parse_request_head("GET metrics HTTP/1.1\r\n\r\n"));  // not a path
    CHECK_FALSE(parse_request_head("get / HTTP/1.1\r\n\r\n"));        // methods are upper case
    CHECK_FALSE(parse_request_head("GET / SPDY/3\r\n\r\n"));
    CHECK_FALSE(parse_request_head("\x16\x03\x01 hello"));           // a TLS ClientHello
    CHECK_FALSE(parse_request_head(" / HTTP/1.1\r\n\r\n"));
}

TEST_CASE("responses carry their length; HEAD gets the headers alone") {
    http_response r{503, "text/plain", "draining\n"};
    const auto full = serialize(r, false);
    CHECK(full.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(full.find("Content-Length: 9\r\n") != std::string::npos);
    CHECK(full.ends_with("\r\n\r\ndraining\n"));
    CHECK(serialize(r, true).ends_with("\r\n\r\n"));
}

TEST_CASE("exposition: HELP and TYPE, labels escaped") {
    exposition e;
    e.family("x_total", "counter", "Things");
    e.sample("x_total", {{"user", "a\"b\\c\nd"}}, std::uint64_t{3});
    e.sample("x_total", {}, std::int64_t{-1});
    CHECK(e.take() == "# HELP x_total Things\n# TYPE x_total counter\nx_total{user=\"a\\\"b\\\\c\\nd\"} 3\nx_total -1\n");
    CHECK(e.take().empty());
}

TEST_CASE("a real server on loopback: routes, 404, 405, oversized heads") {
    asio::io_context io;
    http_server server(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0},
                       [](http_request r) -> asio::awaitable<http_response> {
                           http_response out;
                           if (r.path == "/hello") out.body = "hi\n";
                           else out.status = 404;
                           co_return out;
                       },
                       [](const std::string&) {});
    server.start();
    const auto port = server.local_endpoint().port();
    std::thread t([&] { io.run(); });
    auto ask = [&](const std::string& request) {
        asio::io_context cio;
        asio::ip::tcp::socket s(cio);
        s.connect({asio::ip::make_address("127.0.0.1"), port});
        asio::write(s, asio::buffer(request));
        std::string reply;
        std::error_code ec;
        asio::read(s, asio::dynamic_buffer(reply), ec);
        return reply;
    };
    CHECK(ask("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").ends_with("\r\n\r\nhi\n"));
    CHECK(ask("GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    CHECK(ask("POST /hello HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    CHECK(ask("GET /hello HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n").starts_with("HTTP/1.1 431 "));
    CHECK(ask("garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    asio::post(io, [&] { server.stop(); });
    io.stop();
    t.join();
}
