// relay_poller on real loopback sockets: every datagram of every watched socket reaches the
// handler, a socket with more than one turn's worth waits on the backlog and loses nothing, and
// a socket removed in the middle of a turn gets nothing more and closes only after the flush.
#include "ferry/server/net.hpp"
#include "ferry/server/relay_poller.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace ferry;
using namespace ferry::server;

namespace {

int bound_socket(protocol::transport_address& address) {
    const int fd = net::bind_udp(*protocol::transport_address::from("127.0.0.1", 0));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    address = net::from_sockaddr(ss);
    return fd;
}

void send_to(int from, const protocol::transport_address& to, const std::string& text) {
    sockaddr_storage ss;
    const auto len = net::to_sockaddr(to, ss);
    REQUIRE(::sendto(from, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
            static_cast<ssize_t>(text.size()));
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

struct recording_handler final : peer_handler {
    std::map<int, std::vector<std::string>> got;
    std::function<void(int)> on_datagram;
    void handle_peer(int handle, const protocol::transport_address&, std::span<const std::uint8_t> payload,
                     packet_sink&) override {
        got[handle].emplace_back(payload.begin(), payload.end());
        if (on_datagram) on_datagram(handle);
    }
};

struct null_sink final : packet_sink {
    std::array<std::uint8_t, 2048> scratch{};
    std::span<std::uint8_t> buffer() override { return scratch; }
    void to_peer(int, const protocol::transport_address&, std::span<const std::uint8_t>) override {}
    void to_client(const client_route&, std::span<const std::uint8_t>) override {}
    void flush() override {}
    void discard() override {}
};

/// Runs the loop until `done` or two seconds pass.
void run_until(asio::io_context& io, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
}

/// A poller watching two relay sockets, a and b, and a peer socket that sends to them.
struct poller_fixture {
    asio::io_context io;
    udp_batch batch;
    null_sink sink;
    recording_handler handler;
    relay_poller poller{io, handler, batch, sink};
    protocol::transport_address a_address, b_address, peer_address;
    int a = bound_socket(a_address);
    int b = bound_socket(b_address);
    int peer = bound_socket(peer_address);
    poller_fixture() {
        REQUIRE(poller.add(a));
        REQUIRE(poller.add(b));
    }
    ~poller_fixture() { ::close(peer); }
};

} // namespace

TEST_CASE_FIXTURE(poller_fixture, "relay_poller: every datagram of every socket arrives, a flood included, in order") {
    CHECK(poller.size() == 2);
    poller.start();
    // 300 on a: more than the 4 x 32 one socket gets per turn, so a waits on the backlog.
    for (int i = 0; i < 300; ++i) send_to(peer, a_address, "a" + std::to_string(i));
    for (int i = 0; i < 5; ++i) send_to(peer, b_address, "b" + std::to_string(i));
    run_until(io, [&] { return handler.got[a].size() == 300 && handler.got[b].size() == 5; });
    REQUIRE(handler.got[a].size() == 300);
    REQUIRE(handler.got[b].size() == 5);
    for (int i = 0; i < 300; ++i) CHECK(handler.got[a][static_cast<std::size_t>(i)] == "a" + std::to_string(i));
    for (int i = 0; i < 5; ++i) CHECK(handler.got[b][static_cast<std::size_t>(i)] == "b" + std::to_string(i));
    // Later datagrams wake it again (edge-triggered: nothing may be left behind).
    send_to(peer, b_address, "late");
    run_until(io, [&] { return handler.got[b].size() == 6; });
    CHECK(handler.got[b].back() == "late");
    poller.remove_all();
    CHECK(poller.size() == 0);
}

TEST_CASE_FIXTURE(poller_fixture, "relay_poller: a socket removed mid-turn gets nothing more and closes after the flush") {
    poller.start();
    // Whichever socket the turn serves first removes the other (as an allocation ending does);
    // a datagram is queued meanwhile, so the descriptor must stay open until the flush.
    int removed = -1;
    handler.on_datagram = [&](int handle) {
        if (removed != -1) return;
        removed = handle == a ? b : a;
        std::array<std::uint8_t, 4> bytes{1, 2, 3, 4};
        sockaddr_storage to;
        net::to_sockaddr(peer_address, to);
        batch.queue(removed, to, bytes);
        poller.remove(removed);
        CHECK(is_open(removed));
        CHECK_FALSE(poller.contains(removed));
    };
    send_to(peer, a_address, "x");
    send_to(peer, b_address, "y");
    run_until(io, [&] { return removed != -1; });
    REQUIRE(removed != -1);
    // The turn ended with the batch's flush: the datagram left and the descriptor closed.
    CHECK_FALSE(is_open(removed));
    const int kept = removed == a ? b : a;
    CHECK(handler.got[removed].empty());
    send_to(peer, kept == a ? a_address : b_address, "z");
    run_until(io, [&] { return handler.got[kept].size() == 2; });
    CHECK(handler.got[kept].size() == 2);
}
