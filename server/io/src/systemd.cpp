#include "ferry/server/systemd.hpp"

#include <systemd/sd-daemon.h>

#include <fmt/format.h>

#include <ctime>
#include <string>

namespace ferry::server::systemd {

void notify(std::string_view state) {
    const std::string text(state);
    ::sd_notify(0, text.c_str());
}

void notify_reloading() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}

} // namespace ferry::server::systemd
