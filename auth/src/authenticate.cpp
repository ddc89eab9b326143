#include "ferry/auth/authenticate.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"

#include <algorithm>

namespace ferry::auth {

using namespace ferry::protocol;

auth_result authenticate(const message_view& req, const client_identity& client,
                         const credential_store& store, const nonce_manager& nonces, std::int64_t now,
                         const key* known, std::string_view known_username) {
    auth_result r;
    const bool has_mi = req.has(attribute_type::message_integrity);
    const bool has_mi256 = req.has(attribute_type::message_integrity_sha256);

    // RFC 8489 §9.2.4 step 1: no integrity at all -> 401 with REALM and NONCE.
    if (!has_mi && !has_mi256) return r;

    // Step 2: integrity without USERNAME or USERHASH, REALM or NONCE -> 400.
    const auto user = req.get<username>();
    const auto hash = user ? std::nullopt : req.get<userhash>();
    const auto realm_attr = req.get<realm>();
    const auto nonce_attr = req.get<nonce>();
    if ((!user && !hash) || !realm_attr || !nonce_attr) {
        r.status = auth_status::bad_request;
        return r;
    }

    // §9.2.4: "If the request contains neither PASSWORD-ALGORITHMS nor PASSWORD-ALGORITHM,
    //  then the request is processed as though PASSWORD-ALGORITHM were MD5. Otherwise, unless
    //  (1) PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS are both present, (2) PASSWORD-ALGORITHMS
    //  matches the value sent in the response that sent this NONCE, and (3) PASSWORD-ALGORITHM
    //  matches one of the entries in PASSWORD-ALGORITHMS, the server MUST generate an error
    //  response with an error code of 400 (Bad Request)."
    auto algorithm = password_algorithm::md5;
    const bool has_pa = req.has(attribute_type::password_algorithm);
    const bool has_list = req.has(attribute_type::password_algorithms);
    if (has_pa || has_list) {
        const auto pa = req.get<password_algorithm_attribute>();
        const auto list = req.get<password_algorithms>();
        const auto offered = store.offered_algorithms();
        bool ok = pa && list && list->count == offered.size();
        for (std::size_t i = 0; ok && i < offered.size(); ++i)
            ok = list->algorithms[i] == static_cast<std::uint16_t>(offered[i]);
        ok = ok && std::any_of(offered.begin(), offered.end(), [&](password_algorithm a) {
                 return static_cast<std::uint16_t>(a) == pa->algorithm;
             });
        if (!ok) {
            r.status = auth_status::bad_request;
            return r;
        }
        algorithm = static_cast<password_algorithm>(pa->algorithm);
    }

    // Step 3: the nonce must be ours, for this client, and fresh -> else 438.
    if (nonces.check(nonce_attr->value, client, now) != nonce_manager::verdict::valid) {
        r.status = auth_status::stale_nonce;
        return r;
    }

    // Steps 4-5: find the key(s) and check the integrity. PASSWORD-ALGORITHM chose how the key
    // is derived; MESSAGE-INTEGRITY-SHA256, when present, is the HMAC checked (it wins over
    // MESSAGE-INTEGRITY). An unknown user is checked against a throwaway key, so that it costs
    // the same and answers the same as a wrong password.
    const bool use_sha256 = has_mi256;
    const auto alg = algorithm;
    // §14.4: a USERHASH names a static user by SHA-256(username ":" realm); one that names
    // nobody is an unknown user (a hash of its own stands in for the name, never a real one).
    std::string_view name = user ? user->value : std::string_view{};
    bool hash_unknown = false;
    if (hash) {
        if (const auto found = store.find_by_hash(hash->hash)) name = *found;
        else hash_unknown = true;
    }
    // A TURN REST credential ends at its expiry, for the requests of an existing allocation too.
    const auto expires = hash_unknown ? std::nullopt : store.credential_expiry(name);
    const bool expired = expires && *expires < now;
    credential_store::candidates keys;
    if (expired || hash_unknown) {
        // Checked against a throwaway key below, like an unknown user.
    } else if (known != nullptr && name == known_username && known->algorithm == alg) {
        keys.keys[keys.count++] = *known;
    } else {
        keys = store.lookup(name, alg, now);
    }
    const bool unknown = keys.count == 0;
    if (unknown) keys.keys[keys.count++] = long_term_key(name, store.realm(), "", alg);

    for (std::size_t i = 0; i < keys.count; ++i) {
        const bool good = use_sha256 ? verify_message_integrity_sha256(req, keys.keys[i].view())
                                     : verify_message_integrity(req, keys.keys[i].view());
        if (good && !unknown) {
            r.status = auth_status::ok;
            r.signing_key = keys.keys[i];
            r.username = name;
            r.sha256 = use_sha256;
            r.expires = expires;
            return r;
        }
    }
    r.status = auth_status::unauthorized;
    r.failure = expired ? auth_failure::expired_credential
                        : unknown ? auth_failure::unknown_user : auth_failure::bad_integrity;
    return r;
}

} // namespace ferry::auth
