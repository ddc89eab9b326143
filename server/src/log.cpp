#include "ferry/server/log.hpp"

#include <ctime>
#include <unistd.h>

namespace ferry::server::log {
namespace {

std::atomic<int> current{static_cast<int>(log_level::info)};

} // namespace

void set_level(log_level l) { current.store(static_cast<int>(l), std::memory_order_relaxed); }
log_level level() { return static_cast<log_level>(current.load(std::memory_order_relaxed)); }

void write(log_level l, std::string_view message) {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    fmt::memory_buffer buf;
    fmt::format_to(std::back_inserter(buf), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {:<5} ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ms, to_string(l));
    // Keep one event on one line whatever the message holds.
    for (char c : message) buf.push_back(c == '\n' || c == '\r' ? ' ' : c);
    buf.push_back('\n');
    // One write(2) per line keeps lines from different threads whole.
    std::size_t off = 0;
    while (off < buf.size()) {
        const auto n = ::write(STDERR_FILENO, buf.data() + off, buf.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
}

bool throttle::allow() {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    if (now != window_) {
        window_ = now;
        used_ = 0;
    }
    if (used_ < per_second_) {
        ++used_;
        return true;
    }
    ++suppressed_;
    return false;
}

} // namespace ferry::server::log
