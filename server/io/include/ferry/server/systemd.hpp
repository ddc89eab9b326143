// systemd's service protocol through libsystemd (sd_notify): readiness, reload and stop
// notices, STATUS= lines and the watchdog. Without NOTIFY_SOCKET every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace ferry::server::systemd {

/// Sends `state` ("READY=1", "STATUS=...", several lines at once) to the service manager.
void notify(std::string_view state);
/// "RELOADING=1" with the MONOTONIC_USEC systemd expects alongside it.
void notify_reloading();
/// The watchdog interval the unit asks for (WatchdogSec=), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

} // namespace ferry::server::systemd
