// A Redis connection on an Asio io_context: hiredis parses the replies (its redisReader) and
// formats the commands; the socket (TCP, a unix socket, or TLS over TCP through OpenSSL) and
// the waiting are Asio's, so nothing here ever blocks the thread it runs on. Debian's hiredis
// 0.14 has no TLS of its own, which is why its async context is not used.
//
// The client connects, authenticates and selects the database by itself, reconnects with
// backoff when the connection is lost, and says so through its callbacks. Commands are
// pipelined; replies are matched to them in order. A subscriber connection (`subscriber`)
// hands pub/sub messages to `on_push` instead.
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/config.hpp"

#include <asio/ssl.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct redisReader;

namespace ferry::server {

/// One Redis reply, copied out of hiredis's.
struct redis_reply {
    enum class type { string, array, integer, nil, status, error };
    type kind = type::nil;
    std::string str; ///< string, status, error
    long long integer = 0;
    std::vector<redis_reply> elements;

    bool error() const { return kind == type::error; }
    bool nil() const { return kind == type::nil; }
    static redis_reply failure(std::string why) {
        redis_reply r;
        r.kind = type::error;
        r.str = std::move(why);
        return r;
    }
};

class redis_client {
public:
    using handler = std::function<void(const redis_reply&)>;
    struct callbacks {
        std::function<void()> on_up;                   ///< connected, authenticated, database selected
        std::function<void(const std::string&)> on_down; ///< lost, or an attempt failed (why)
        std::function<void(const redis_reply&)> on_push; ///< subscriber: a pub/sub message
    };

    redis_client(asio::io_context& io, const redis_config& cfg, std::string name, bool subscriber, callbacks cb);
    ~redis_client();
    redis_client(const redis_client&) = delete;
    redis_client& operator=(const redis_client&) = delete;

    /// Starts connecting (and reconnecting, for as long as it runs).
    void start();
    void stop();
    /// Drops the connection (if any); a new one follows after the backoff.
    void reconnect();
    bool up() const { return up_; }

    /// Sends a command now if connected. Otherwise, or if the connection ends before the
    /// answer, `h` gets an error reply. `h` runs on the io_context, never inside this call.
    void command(std::vector<std::string> args, handler h = {});
    /// A command whose answer comes as pushes (SUBSCRIBE, PSUBSCRIBE), on a subscriber.
    void push_command(std::vector<std::string> args);

private:
    class session;
    template <class Stream> class stream_session;
    struct waiting {
        handler h;
        std::chrono::steady_clock::time_point sent;
    };

    asio::awaitable<void> run();
    /// Opens the connection; nullptr (and `why`) when it fails.
    asio::awaitable<std::shared_ptr<session>> connect(std::string& why);
    void enqueue(const std::vector<std::string>& args);
    void dispatch(redis_reply r);
    void lost(const std::string& why);
    void check_stuck();

    asio::io_context& io_;
    redis_config cfg_;
    std::string name_;
    bool subscriber_;
    callbacks cb_;
    std::shared_ptr<asio::ssl::context> tls_;
    std::shared_ptr<session> session_;
    redisReader* reader_ = nullptr;
    std::string out_;             ///< formatted commands not yet written
    std::deque<waiting> waiting_; ///< one per command sent, in order
    bool up_ = false;
    bool stopped_ = false;
    std::string down_why_;
    asio::steady_timer backoff_timer_;
    asio::steady_timer stuck_timer_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// A reply's text as an operator would read it (logs).
std::string describe(const redis_reply& r);

} // namespace ferry::server
