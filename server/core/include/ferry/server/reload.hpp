// What a configuration becomes at run time, and what a reload can and cannot change. Pure:
// server.cpp reads the file and hands the results to the workers.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/turn_handler.hpp"

#include <memory>
#include <string>
#include <vector>

namespace ferry::server {

/// The TURN settings, credentials and peer policy of `cfg`. Wipes the users' passwords from
/// `cfg` once their keys are derived.
std::shared_ptr<const turn_runtime> build_runtime(config& cfg);

/// The secret nonces are made with: SHA-256 of turn.nonce_secret, or random when it is empty.
auth::nonce_manager::secret nonce_secret_of(const turn_config& t);

/// The keys whose change between `running` and `next` needs a restart (listeners, threads,
/// relay addresses and ports, ...): a reload keeps the running values of these and says so.
std::vector<std::string> restart_needed(const config& running, const config& next);

} // namespace ferry::server
