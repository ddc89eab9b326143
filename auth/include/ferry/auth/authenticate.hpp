// The long-term credential check of RFC 8489 §9.2.4, as one function from a request to a
// verdict. It creates no state: the nonce is stateless and nothing is remembered about a client
// that has not authenticated. An unknown user and a wrong password give the same verdict, after
// the same work.
#pragma once

#include "ferry/auth/credentials.hpp"
#include "ferry/auth/nonce.hpp"
#include "ferry/protocol/message.hpp"

#include <optional>
#include <string_view>

namespace ferry::auth {

enum class auth_status {
    ok,
    challenge,    ///< no integrity at all: 401 with REALM and NONCE
    bad_request,  ///< integrity without USERNAME/REALM/NONCE, or a bad PASSWORD-ALGORITHM: 400
    stale_nonce,  ///< 438 with a fresh NONCE
    unauthorized, ///< unknown user or wrong key: 401 with REALM and NONCE
};

/// Why an unauthorized request failed: for the operator's counters only, never the client's
/// answer (all three get the same 401).
enum class auth_failure { none, unknown_user, bad_integrity, expired_credential };

struct auth_result {
    auth_status status = auth_status::challenge;
    auth_failure failure = auth_failure::none; ///< unauthorized only
    key signing_key{};         ///< the key that verified (ok only)
    std::string_view username; ///< a view into the request, or into the store for a USERHASH (ok only)
    bool sha256 = false;       ///< the request used MESSAGE-INTEGRITY-SHA256
    std::optional<std::int64_t> expires; ///< unix time the credential ends (TURN REST; ok only)
};

/// Checks `req` from `client`. `known` is the key an existing allocation holds for `username`
/// (skips the derivation, not the expiry check); pass nullptr when there is none.
auth_result authenticate(const protocol::message_view& req, const client_identity& client,
                         const credential_store& store, const nonce_manager& nonces,
                         std::int64_t now, const key* known = nullptr,
                         std::string_view known_username = {});

} // namespace ferry::auth
