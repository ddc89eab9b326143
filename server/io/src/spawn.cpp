#include "ferry/server/spawn.hpp"

#include <atomic>
#include <csignal>
#include <mutex>
#include <unistd.h>

namespace ferry::server {
namespace {

std::atomic<int> exit_code{0};

} // namespace

void request_exit(int code) {
    int none = 0;
    exit_code.compare_exchange_strong(none, code);
    ::kill(::getpid(), SIGTERM); // the main thread's signal_set stops the workers
}

int requested_exit() { return exit_code.load(); }

namespace detail {

std::string describe(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception of unknown type";
    }
}

bool may_restart(const std::string& what) {
    // More than 20 restarts within a minute, across the process: something is broken for
    // good, and a clean restart by the supervisor serves clients better than a loop of errors.
    static std::mutex mutex;
    static std::chrono::steady_clock::time_point window;
    static unsigned count = 0;
    std::lock_guard lock(mutex);
    const auto now = std::chrono::steady_clock::now();
    if (now - window > std::chrono::minutes(1)) {
        window = now;
        count = 0;
    }
    if (++count <= 20) return true;
    log::error("{}: too many restarts within a minute; stopping the process (exit code {})", what,
               exit_internal_error);
    request_exit(exit_internal_error);
    return false;
}

} // namespace detail
} // namespace ferry::server
