// The process: N workers on N threads, and the main thread handling signals (SIGHUP reloads,
// SIGTERM drains, a second SIGTERM or SIGINT stops at once), the admin endpoint and systemd's
// notifications. Binding happens before any thread starts, so a bad address fails start-up at once.
#pragma once

#include "ferry/server/config.hpp"

#include <string>

namespace ferry::server {

/// Binds everything, runs until stopped, stops cleanly. Throws on start-up failure. Takes the
/// configuration by value: user passwords are turned into keys and wiped. `config_path` is
/// read again on SIGHUP (empty: the built-in defaults, nothing to reload). Returns the
/// process's exit code: 0, or exit_internal_error when a loop failed for good.
int run(config cfg, std::string config_path = {});

} // namespace ferry::server
