#include "ferry/server/log.hpp"

#include <ctime>
#include <unistd.h>

namespace ferry::server::log {
namespace {

std::atomic<int> current{static_cast<int>(log_level::info)};
std::atomic<int> current_format{static_cast<int>(log_format::text)};

void now_text(fmt::memory_buffer& buf) {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    fmt::format_to(std::back_inserter(buf), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void append_json_escaped(fmt::memory_buffer& buf, std::string_view s) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            buf.push_back('\\');
            buf.push_back(c);
        } else if (u < 0x20 || u == 0x7f) {
            fmt::format_to(std::back_inserter(buf), "\\u{:04x}", u);
        } else {
            buf.push_back(c);
        }
    }
}

// One write(2) per line keeps lines from different threads whole.
void emit(const fmt::memory_buffer& buf) {
    std::size_t off = 0;
    while (off < buf.size()) {
        const auto n = ::write(STDERR_FILENO, buf.data() + off, buf.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
}

void head(fmt::memory_buffer& buf, log_level l) {
    if (format() == log_format::json) {
        buf.append(std::string_view(R"({"time":")"));
        now_text(buf);
        fmt::format_to(std::back_inserter(buf), R"(","level":"{}",)", to_string(l));
    } else {
        now_text(buf);
        fmt::format_to(std::back_inserter(buf), " {:<5} ", to_string(l));
    }
}

} // namespace

void set_level(log_level l) { current.store(static_cast<int>(l), std::memory_order_relaxed); }
log_level level() { return static_cast<log_level>(current.load(std::memory_order_relaxed)); }
void set_format(log_format f) { current_format.store(static_cast<int>(f), std::memory_order_relaxed); }
log_format format() { return static_cast<log_format>(current_format.load(std::memory_order_relaxed)); }

std::string json_escape(std::string_view s) {
    fmt::memory_buffer buf;
    append_json_escaped(buf, s);
    return fmt::to_string(buf);
}

std::string timestamp(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void event(log_level l, std::string_view what, std::initializer_list<field> fields) {
    if (!enabled(l)) return;
    fmt::memory_buffer buf;
    head(buf, l);
    if (format() == log_format::json) {
        buf.append(std::string_view(R"("msg":")"));
        append_json_escaped(buf, what);
        buf.push_back('"');
        for (const auto& f : fields) {
            buf.append(std::string_view(",\""));
            append_json_escaped(buf, f.key);
            buf.append(std::string_view("\":"));
            if (f.quoted) buf.push_back('"');
            append_json_escaped(buf, f.text);
            if (f.quoted) buf.push_back('"');
        }
        buf.append(std::string_view("}\n"));
    } else {
        buf.append(what);
        buf.push_back(':');
        for (const auto& f : fields) {
            const bool quote = f.quoted && (f.text.empty() || f.text.find_first_of(" \"=") != std::string::npos);
            fmt::format_to(std::back_inserter(buf), " {}=", f.key);
            if (quote) buf.push_back('"');
            for (char c : f.text) {
                if (c == '\n' || c == '\r') c = ' ';
                if (quote && (c == '"' || c == '\\')) buf.push_back('\\');
                buf.push_back(c);
            }
            if (quote) buf.push_back('"');
        }
        buf.push_back('\n');
    }
    emit(buf);
}

void write(log_level l, std::string_view message) {
    fmt::memory_buffer buf;
    head(buf, l);
    if (format() == log_format::json) {
        buf.append(std::string_view(R"("msg":")"));
        append_json_escaped(buf, message);
        buf.append(std::string_view("\"}\n"));
        emit(buf);
        return;
    }
    // Keep one event on one line whatever the message holds.
    for (char c : message) buf.push_back(c == '\n' || c == '\r' ? ' ' : c);
    buf.push_back('\n');
    emit(buf);
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
