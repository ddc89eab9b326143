// The process: N workers on N threads, and the main thread waiting for SIGINT/SIGTERM to stop
// them. Binding happens before any thread starts, so a bad address fails start-up at once.
#pragma once

#include "ferry/server/config.hpp"

namespace ferry::server {

/// Binds everything, runs until SIGINT or SIGTERM, stops cleanly. Throws on start-up failure.
/// Takes the configuration by value: user passwords are turned into keys and wiped. Returns
/// the process's exit code: 0, or exit_internal_error when a loop failed for good.
int run(config cfg);

} // namespace ferry::server
