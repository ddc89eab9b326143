// stream_poller on real socket pairs: a connection is read whenever bytes arrive (also bytes
// that were there before it was added), one that stops with bytes left is called again without
// a new edge, one closed in the middle of a pass gets no call for a stale event even when its
// descriptor number is reused at once, and a reader that throws is aborted, not the poller.
#include "ferry/server/stream_poller.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

using namespace ferry::server;

namespace {

/// Reads at most `chunk` bytes per call into `got`; `more` while the last read filled the chunk
/// (so it may stop with bytes left, as a connection's share of a pass does).
struct reader final : stream_reader {
    int fd;
    std::size_t chunk;
    std::string got;
    int calls = 0;
    bool aborted = false;
    std::function<void()> during;
    reader(int f, std::size_t c) : fd(f), chunk(c) {}
    bool readable() override {
        ++calls;
        if (during) during();
        char buf[64];
        const auto n = ::recv(fd, buf, std::min(chunk, sizeof buf), MSG_DONTWAIT);
        if (n > 0) got.append(buf, static_cast<std::size_t>(n));
        return !(n > 0 && static_cast<std::size_t>(n) == chunk);
    }
    void abort() override { aborted = true; }
};

struct pair_fds {
    int ours = -1, theirs = -1;
    pair_fds() {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        ours = sv[0];
        theirs = sv[1];
    }
    ~pair_fds() {
        if (ours >= 0) ::close(ours);
        if (theirs >= 0) ::close(theirs);
    }
    void say(const std::string& s) const { REQUIRE(::send(theirs, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size())); }
};

void run_until(asio::io_context& io, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
}

} // namespace

TEST_CASE("stream_poller: bytes before and after the add are read; a reader with bytes left is called again") {
    asio::io_context io;
    stream_poller poller(io);
    pair_fds a, b;
    a.say("early"); // before the add: the add itself must report it
    auto ra = std::make_shared<reader>(a.ours, 64);
    auto rb = std::make_shared<reader>(b.ours, 4); // 4 bytes a call: many passes for one edge
    REQUIRE(poller.add(a.ours, ra));
    REQUIRE(poller.add(b.ours, rb));
    CHECK(poller.size() == 2);
    poller.start();
    b.say("0123456789abcdefghij");
    run_until(io, [&] { return ra->got == "early" && rb->got.size() == 20; });
    CHECK(ra->got == "early");
    CHECK(rb->got == "0123456789abcdefghij");
    CHECK(rb->calls >= 5);
    // Edge-triggered: later bytes bring a new call.
    a.say(" late");
    run_until(io, [&] { return ra->got == "early late"; });
    CHECK(ra->got == "early late");
    poller.remove(a.ours);
    poller.remove(b.ours);
    CHECK(poller.size() == 0);
    const int before = ra->calls;
    a.say("after");
    io.run_for(std::chrono::milliseconds(50));
    CHECK(ra->calls == before);
}

TEST_CASE("stream_poller: a connection closed mid-pass, its number reused at once, gets no stale call") {
    asio::io_context io;
    stream_poller poller(io);
    pair_fds a, b;
    auto ra = std::make_shared<reader>(a.ours, 64);
    auto rb = std::make_shared<reader>(b.ours, 64);
    std::shared_ptr<reader> fresh;
    pair_fds* closed = nullptr;
    int reused = -1;
    // Whichever is read first closes the other, and a new socket takes the freed number.
    auto close_other = [&](pair_fds& other) {
        if (closed != nullptr) return;
        closed = &other;
        poller.remove(other.ours);
        ::close(other.ours);
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        reused = sv[0];
        ::close(sv[1]);
        fresh = std::make_shared<reader>(reused, 64);
        REQUIRE(poller.add(reused, fresh));
    };
    ra->during = [&] { close_other(b); };
    rb->during = [&] { close_other(a); };
    REQUIRE(poller.add(a.ours, ra));
    REQUIRE(poller.add(b.ours, rb));
    poller.start();
    a.say("x");
    b.say("y");
    run_until(io, [&] { return closed != nullptr && fresh->calls > 0; });
    REQUIRE(closed != nullptr);
    // The closed one's pending event was dropped; the new socket (peer gone: readable at EOF)
    // was called for its own readiness.
    CHECK((closed == &a ? ra : rb)->calls == 0);
    CHECK(fresh->calls >= 1);
    if (reused == closed->ours) MESSAGE("the descriptor number was reused");
    poller.remove(reused);
    ::close(reused);
    closed->ours = -1;
}

TEST_CASE("stream_poller: a reader that throws is aborted and the others are still served") {
    asio::io_context io;
    stream_poller poller(io);
    pair_fds a, b;
    auto ra = std::make_shared<reader>(a.ours, 64);
    auto rb = std::make_shared<reader>(b.ours, 64);
    ra->during = [&] {
        poller.remove(a.ours);
        throw std::runtime_error("boom");
    };
    REQUIRE(poller.add(a.ours, ra));
    REQUIRE(poller.add(b.ours, rb));
    poller.start();
    a.say("x");
    b.say("y");
    run_until(io, [&] { return ra->aborted && rb->got == "y"; });
    CHECK(ra->aborted);
    CHECK(rb->got == "y");
    b.say("z");
    run_until(io, [&] { return rb->got == "yz"; });
    CHECK(rb->got == "yz");
}

TEST_CASE("stream_poller: a reader already gone is skipped") {
    asio::io_context io;
    stream_poller poller(io);
    pair_fds a;
    {
        auto ra = std::make_shared<reader>(a.ours, 64);
        REQUIRE(poller.add(a.ours, ra));
    } // the connection's last owner let go without removing it
    poller.start();
    a.say("x");
    io.run_for(std::chrono::milliseconds(50));
    poller.remove(a.ours);
    CHECK(poller.size() == 0);
}
