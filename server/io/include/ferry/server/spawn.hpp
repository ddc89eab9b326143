// Every coroutine the server starts goes through spawn(): asio::detached would drop an exception
// that escapes a coroutine, and the loop behind it would end without a word. Here the
// completion handler logs it and then does what the caller chose:
// - a loop that serves many clients (a listener, a relay socket, the sweep) is started again,
//   after a short pause; if it keeps failing, the process stops with exit code 70 so that a
//   supervisor (systemd) restarts it cleanly;
// - a coroutine of one connection closes that connection (the callback).
#pragma once

#include "ferry/server/asio.hpp"
#include "ferry/server/log.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace ferry::server {

/// Exit code after a fatal internal error (EX_SOFTWARE).
inline constexpr int exit_internal_error = 70;

/// Asks the process to stop with `code` (the main thread's signal loop sees it). Safe from any
/// thread; the first code asked for wins.
void request_exit(int code);
/// The code asked for by request_exit, or 0.
int requested_exit();

namespace detail {
std::string describe(std::exception_ptr e);
/// Counts a restart of `what`; false when it has failed too often to go on (then it has asked
/// the process to exit).
bool may_restart(const std::string& what);
} // namespace detail

/// Starts `make()` (which returns an asio::awaitable<void>; it is called at once, so it may
/// capture by reference) on `ex`; if the coroutine ends with an exception, logs it and calls
/// `on_error()`.
template <class Executor, class Make, class OnError>
void spawn(const Executor& ex, std::string what, Make make, OnError on_error) {
    asio::co_spawn(ex, make(), [what = std::move(what), on_error = std::move(on_error)](std::exception_ptr e) mutable {
        if (!e) return;
        log::error("{}: ended by an unexpected exception: {}", what, detail::describe(e));
        on_error();
    });
}

/// Starts `make()` on `ex` and starts it again (after 100 ms) whenever it ends with an
/// exception; `make` must stay callable (capture what it needs by value or shared_ptr).
template <class Executor, class Make>
void spawn_restarting(const Executor& ex, std::string what, Make make) {
    asio::co_spawn(ex, make(), [ex, what = std::move(what), make](std::exception_ptr e) mutable {
        if (!e) return;
        log::error("{}: ended by an unexpected exception: {}; restarting it", what, detail::describe(e));
        if (!detail::may_restart(what)) return;
        auto pause = std::make_shared<asio::steady_timer>(ex, std::chrono::milliseconds(100));
        pause->async_wait([pause, ex, what = std::move(what), make = std::move(make)](const std::error_code& ec) mutable {
            if (!ec) spawn_restarting(ex, std::move(what), std::move(make));
        });
    });
}

} // namespace ferry::server
