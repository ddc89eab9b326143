#include "ferry/auth/authenticate.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"

namespace ferry::auth {

using namespace ferry::protocol;

auth_result authenticate(const message_view& req, const transport_address& client,
                         const credential_store& store, const nonce_manager& nonces, std::int64_t now,
                         const key* known, std::string_view known_username) {
    auth_result r;
    const bool has_mi = req.has(attribute_type::message_integrity);
    const bool has_mi256 = req.has(attribute_type::message_integrity_sha256);

    // RFC 8489 §9.2.4 step 1: no integrity at all -> 401 with REALM and NONCE.
    if (!has_mi && !has_mi256) return r;

    // Step 2: integrity without USERNAME, REALM or NONCE -> 400.
    const auto user = req.get<username>();
    const auto realm_attr = req.get<realm>();
    const auto nonce_attr = req.get<nonce>();
    if (!user || !realm_attr || !nonce_attr) {
        r.status = auth_status::bad_request;
        return r;
    }

    // PASSWORD-ALGORITHM (§14.12) picks the key's hash; it must be one we offered.
    auto algorithm = password_algorithm::md5;
    if (req.has(attribute_type::password_algorithm)) {
        const auto pa = req.get<password_algorithm_attribute>();
        if (!pa || (pa->algorithm != 1 && pa->algorithm != 2)) {
            r.status = auth_status::bad_request;
            return r;
        }
        algorithm = static_cast<password_algorithm>(pa->algorithm);
        // §9.2.4: PASSWORD-ALGORITHMS, when echoed, must be the list we sent.
        if (req.has(attribute_type::password_algorithms)) {
            const auto list = req.get<password_algorithms>();
            if (!list || list->count != 2 || list->algorithms[0] != 2 || list->algorithms[1] != 1) {
                r.status = auth_status::bad_request;
                return r;
            }
        }
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
    credential_store::candidates keys;
    if (known != nullptr && user->value == known_username && known->algorithm == alg) {
        keys.keys[keys.count++] = *known;
    } else {
        keys = store.lookup(user->value, alg, now);
    }
    const bool unknown = keys.count == 0;
    if (unknown) keys.keys[keys.count++] = long_term_key(user->value, store.realm(), "", alg);

    for (std::size_t i = 0; i < keys.count; ++i) {
        const bool good = use_sha256 ? verify_message_integrity_sha256(req, keys.keys[i].view())
                                     : verify_message_integrity(req, keys.keys[i].view());
        if (good && !unknown) {
            r.status = auth_status::ok;
            r.signing_key = keys.keys[i];
            r.username = user->value;
            r.sha256 = use_sha256;
            return r;
        }
    }
    r.status = auth_status::unauthorized;
    return r;
}

} // namespace ferry::auth
