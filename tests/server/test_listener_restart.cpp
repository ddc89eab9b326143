// A listener whose coroutine is ended by an exception (here one injected where a socket call
// used to throw) is logged and started again: the worker keeps answering on that socket.
#include "../server/turn_fixture.hpp"

#include "ferry/server/net.hpp"
#include "ferry/server/relay_poller.hpp"
#include "ferry/server/spawn.hpp"
#include "ferry/server/udp_listener.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

using namespace ferry::test;

namespace {

struct throwing_relays final : relay_provider {
    int calls = 0;
    std::optional<opened> open(const ip_address&, bool, bool, bool) override {
        ++calls;
        throw std::runtime_error("injected: no socket");
    }
    std::optional<opened> open_next(const opened&) override { return std::nullopt; }
    void adopt(int) override {}
    void close(int) override {}
};

/// Sends `bytes` from `fd` to `to` and waits up to a second for an answer; its size, or 0.
std::size_t ask(int fd, const transport_address& to, const std::vector<std::uint8_t>& bytes,
                std::vector<std::uint8_t>& answer) {
    sockaddr_storage ss;
    const auto len = net::to_sockaddr(to, ss);
    ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    answer.resize(1500);
    const auto n = ::recv(fd, answer.data(), answer.size(), 0);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

} // namespace

TEST_CASE("a UDP listener ended by an exception is restarted and serves on") {
    turn_fixture f;
    throwing_relays relays;
    turn_handler turn(f.settings, f.credentials, f.nonces, f.policy, f.shared, relays, f.clock, "ferry-test");
    stun_handler stun{handler_settings{"ferry-test"}};
    stun.attach(&turn);

    asio::io_context io;
    udp_batch batch;
    stream_registry streams;
    batch_sink sink(batch, streams);
    const int fd = net::bind_udp(*transport_address::from("127.0.0.1", 0));
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
    const auto bound = net::from_sockaddr(ss);
    udp_listener listener(io, fd, bound, stun, batch, &turn, sink);
    listener.start();
    std::thread runner([&] { io.run(); });

    const int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{1, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<std::uint8_t> answer;
    const auto allocate = [](message_writer& w) { requested_transport{}.encode(w); };

    // 401 first, as any client gets.
    auto n = ask(client, bound, f.build(method::allocate, allocate, false), answer);
    REQUIRE(n != 0);
    message_view m;
    REQUIRE_FALSE(m.parse(std::span(answer).first(n)));
    REQUIRE(m.get<nonce>());
    f.nonce_text = std::string(m.get<nonce>()->value);

    // The signed Allocate reaches relays.open, which throws out of the listener's coroutine.
    CHECK(ask(client, bound, f.build(method::allocate, allocate), answer) == 0);
    CHECK(relays.calls == 1);

    // The listener was started again: a Binding on the same socket is answered.
    std::vector<std::uint8_t> binding(20, 0);
    binding[1] = 0x01;
    store_u32(binding.data() + 4, magic_cookie);
    binding[19] = 42;
    n = ask(client, bound, binding, answer);
    REQUIRE(n >= 20);
    CHECK(answer[0] == 0x01);
    CHECK(answer[1] == 0x01); // Binding success
    CHECK(requested_exit() == 0);

    io.stop();
    runner.join();
    ::close(client);
}
