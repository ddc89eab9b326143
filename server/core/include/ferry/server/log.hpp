// Logging: five levels, one line per event on stderr (systemd's journal picks it up), as text
// or as JSON lines (log.format: json) for log shippers.
// error = our fault or a resource failure; warn = an operational anomaly; info = lifecycle;
// debug = one line per request; trace = per packet. Anything remote input can trigger goes
// through a throttle, so a flood of garbage cannot flood the log.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/server/config.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

// Addresses format themselves, so a log call passes the address and no string is built unless
// the line is actually written.
template <> struct fmt::formatter<ferry::protocol::ip_address> : fmt::formatter<std::string_view> {
    template <class Ctx> auto format(const ferry::protocol::ip_address& a, Ctx& ctx) const {
        return fmt::formatter<std::string_view>::format(a.to_string(), ctx);
    }
};
template <> struct fmt::formatter<ferry::protocol::transport_address> : fmt::formatter<std::string_view> {
    template <class Ctx> auto format(const ferry::protocol::transport_address& a, Ctx& ctx) const {
        return fmt::formatter<std::string_view>::format(a.to_string(), ctx);
    }
};

namespace ferry::server::log {

void set_level(log_level l);
log_level level();
void set_format(log_format f);
log_format format();
inline bool enabled(log_level l) { return l >= level(); }
/// Writes one line, prefixed with time and level, with a single write(2).
void write(log_level l, std::string_view message);

template <class... A> void at(log_level l, fmt::format_string<A...> f, A&&... args) {
    if (enabled(l)) write(l, fmt::format(f, std::forward<A>(args)...));
}
template <class... A> void error(fmt::format_string<A...> f, A&&... a) { at(log_level::error, f, std::forward<A>(a)...); }
template <class... A> void warn(fmt::format_string<A...> f, A&&... a) { at(log_level::warn, f, std::forward<A>(a)...); }
template <class... A> void info(fmt::format_string<A...> f, A&&... a) { at(log_level::info, f, std::forward<A>(a)...); }
template <class... A> void debug(fmt::format_string<A...> f, A&&... a) { at(log_level::debug, f, std::forward<A>(a)...); }
template <class... A> void trace(fmt::format_string<A...> f, A&&... a) { at(log_level::trace, f, std::forward<A>(a)...); }

/// One named value of an event: text, a whole number, a decimal or a flag.
struct field {
    field(std::string_view k, std::string_view v) : key(k), text(v), quoted(true) {}
    field(std::string_view k, const std::string& v) : key(k), text(v), quoted(true) {}
    field(std::string_view k, const char* v) : key(k), text(v), quoted(true) {}
    field(std::string_view k, std::uint64_t v) : key(k), text(fmt::format("{}", v)) {}
    field(std::string_view k, std::int64_t v) : key(k), text(fmt::format("{}", v)) {}
    field(std::string_view k, double v) : key(k), text(fmt::format("{:.3f}", v)) {}
    field(std::string_view k, bool v) : key(k), text(v ? "true" : "false") {}
    std::string_view key;
    std::string text;
    bool quoted = false; ///< a string (JSON quotes it; text mode quotes it when it has spaces)
};

/// A structured event, such as a usage record: text mode writes "what: key=value ...", JSON
/// mode one object with "msg" (the event) and every field as a member.
void event(log_level l, std::string_view what, std::initializer_list<field> fields);
/// Unix seconds as RFC 3339 UTC ("2026-12-02T21:27:43Z").
std::string timestamp(std::int64_t unix_seconds);
/// `s` as the inside of a JSON string.
std::string json_escape(std::string_view s);

/// At most `per_second` lines a second; counts what it held back and reports it on the next
/// line let through. Not thread-safe: keep one per thread (workers are shared-nothing).
class throttle {
public:
    explicit throttle(unsigned per_second = 10) : per_second_(per_second) {}

    template <class... A> void at(log_level l, fmt::format_string<A...> f, A&&... args) {
        if (!enabled(l) || !allow()) return;
        auto line = fmt::format(f, std::forward<A>(args)...);
        if (suppressed_ != 0) {
            line += fmt::format(" ({} similar lines suppressed)", suppressed_);
            suppressed_ = 0;
        }
        write(l, line);
    }

private:
    bool allow();

    unsigned per_second_;
    unsigned used_ = 0;
    std::int64_t window_ = 0;
    std::uint64_t suppressed_ = 0;
};

} // namespace ferry::server::log
