// What a configuration becomes at run time, and what a reload can and cannot change. Pure:
// server.cpp reads the file and hands the results to the workers.
#pragma once

#include "ferry/server/config.hpp"
#include "ferry/server/turn_handler.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ferry::server {

/// The TURN settings, credentials and peer policy of `cfg`. Wipes the users' passwords from
/// `cfg` once their keys are derived.
std::shared_ptr<const turn_runtime> build_runtime(config& cfg);

/// `base` (the file's runtime) with Redis's users and REST secrets added: a name the file has
/// keeps the file's key; secrets past credential_store::max_secrets are left out (and counted
/// in `*left_out`).
std::shared_ptr<const turn_runtime> with_redis_users(const turn_runtime& base,
                                                     const std::map<std::string, redis_user>& users,
                                                     const std::vector<std::string>& secrets,
                                                     std::size_t* left_out = nullptr);

/// The secret nonces are made with: SHA-256 of turn.nonce_secret, or random when it is empty.
auth::nonce_manager::secret nonce_secret_of(const turn_config& t);

/// The keys whose change between `running` and `next` needs a restart (listeners, threads,
/// relay addresses and ports, ...): a reload keeps the running values of these and says so.
std::vector<std::string> restart_needed(const config& running, const config& next);

} // namespace ferry::server
