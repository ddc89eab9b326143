// udp_batch on real loopback sockets: datagrams merged into one UDP GSO send still arrive as
// the separate datagrams they were, in order, and only like datagrams are merged.
#include "ferry/server/net.hpp"
#include "ferry/server/udp_batch.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace ferry;
using namespace ferry::server;

namespace {

struct udp_socket {
    int fd = -1;
    protocol::transport_address address;
    udp_socket() {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        address = net::from_sockaddr(ss);
        timeval tv{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~udp_socket() { ::close(fd); }
    std::vector<std::string> receive_all(std::size_t expected) {
        std::vector<std::string> got;
        char buf[70000];
        while (got.size() < expected) {
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0) break;
            got.emplace_back(buf, static_cast<std::size_t>(n));
        }
        return got;
    }
};

} // namespace

TEST_CASE("udp_batch: like datagrams share a GSO send and still arrive one by one") {
    udp_socket sender, a, b;
    udp_batch batch;
    sockaddr_storage to_a, to_b;
    net::to_sockaddr(a.address, to_a);
    net::to_sockaddr(b.address, to_b);

    std::vector<std::string> to_a_expected, to_b_expected;
    auto queue = [&](const sockaddr_storage& to, std::string text, std::vector<std::string>& expected) {
        auto buf = batch.send_buffer();
        REQUIRE(buf.size() >= text.size());
        std::copy(text.begin(), text.end(), buf.begin());
        batch.queue(sender.fd, to, buf.first(text.size()));
        expected.push_back(std::move(text));
    };
    // Five of 1,000 bytes and a shorter sixth to a (one GSO send), then one to b, then two
    // more to a of another size, then a longer one (a new send: only the last may be short).
    for (char c = 'a'; c < 'f'; ++c) queue(to_a, std::string(1000, c), to_a_expected);
    queue(to_a, "short tail", to_a_expected);
    queue(to_b, "for b", to_b_expected);
    queue(to_a, std::string(300, 'x'), to_a_expected);
    queue(to_a, std::string(300, 'y'), to_a_expected);
    queue(to_a, std::string(1200, 'z'), to_a_expected);
    batch.flush();
    CHECK(batch.send_errors() == 0);
    CHECK(batch.gso_sends() == 2); // the six to a, and the x and y pair

    CHECK(a.receive_all(to_a_expected.size()) == to_a_expected);
    CHECK(b.receive_all(to_b_expected.size()) == to_b_expected);
}

TEST_CASE("udp_batch: without GSO the same datagrams arrive the same way") {
    udp_socket sender, a;
    udp_batch batch;
    batch.set_gso(false);
    sockaddr_storage to_a;
    net::to_sockaddr(a.address, to_a);
    std::vector<std::string> expected;
    for (int i = 0; i < 40; ++i) { // more than one batch: queue() flushes when full
        auto buf = batch.send_buffer();
        if (buf.empty()) {
            batch.flush();
            buf = batch.send_buffer();
        }
        std::string text(100, static_cast<char>('A' + i % 26));
        std::copy(text.begin(), text.end(), buf.begin());
        batch.queue(sender.fd, to_a, buf.first(text.size()));
        expected.push_back(text);
    }
    batch.flush();
    CHECK(batch.gso_sends() == 0);
    CHECK(a.receive_all(expected.size()) == expected);
}
