// Long-term credentials (RFC 8489 §9.2) for one realm: static users, kept only as derived
// keys, and the TURN REST API's ephemeral credentials (draft-uberti-behave-turn-rest, as
// coturn's static-auth-secret): username "expiry:user" (or "user:expiry"), password
// base64(HMAC-SHA1(secret, username)). Several secrets may be active at once, for rotation.
#pragma once

#include "ferry/auth/keys.hpp"

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::auth {

/// A static user as configured: the keys are derived at load time, the password dropped.
struct user_keys {
    key md5;
    std::optional<key> sha256; ///< absent when only a precomputed MD5 key was configured
    friend bool operator==(const user_keys&, const user_keys&) = default;
};

class credential_store {
public:
    static constexpr std::size_t max_secrets = 8;

    /// Up to max_secrets keys to try for one username (one per REST secret).
    struct candidates {
        std::array<key, max_secrets> keys{};
        std::size_t count = 0;
    };

    explicit credential_store(std::string realm) : realm_(std::move(realm)) {}

    /// Adds a user from a (SASLprep'd) password.
    void add_user(std::string_view name, std::string_view password);
    /// Adds a user from a precomputed MD5(user:realm:password) key, 16 bytes.
    void add_user_key(std::string_view name, const key& md5_key);
    /// Adds a user from keys derived earlier for this realm (both, as add_user derives them).
    void add_user_keys(std::string_view name, const user_keys& keys);
    void add_rest_secret(std::string secret);

    const std::string& realm() const { return realm_; }
    bool has_user(std::string_view name) const { return users_.count(std::string(name)) != 0; }
    std::size_t secret_count() const { return secrets_.size(); }
    bool empty() const { return users_.empty() && secrets_.empty(); }

    /// The keys that may have signed a request from `username` with `algorithm`; none when the
    /// user is unknown, or a REST username has expired (`now` in unix seconds).
    candidates lookup(std::string_view username, protocol::password_algorithm algorithm,
                      std::int64_t now) const;

    /// The static user whose USERHASH (RFC 8489 §14.4) is `hash`, if any. TURN REST usernames
    /// are made per client and cannot be found by their hash.
    std::optional<std::string_view> find_by_hash(const std::array<std::uint8_t, 32>& hash) const;

    /// The expiry time of a REST username (either order), if it is one.
    static std::optional<std::int64_t> rest_expiry(std::string_view username);
    /// When `username`'s credential stops being valid (unix seconds): the expiry of a TURN REST
    /// username; nullopt for a static user, or when no REST secret is configured.
    std::optional<std::int64_t> credential_expiry(std::string_view username) const;

    /// The PASSWORD-ALGORITHMS this store offers, in order of preference (RFC 8489 §9.2.4):
    /// SHA-256 then MD5, or MD5 alone while any user is configured with only an MD5 key (an
    /// RFC 8489 client takes the first algorithm it supports, and such a user has no SHA-256
    /// key). Derived from the configuration only, so any worker re-derives the list it sent.
    std::span<const protocol::password_algorithm> offered_algorithms() const;

private:
    void add_hash(std::string_view name);

    std::string realm_;
    std::unordered_map<std::string, user_keys> users_;
    std::unordered_map<std::string, std::string> by_hash_; ///< USERHASH bytes -> a key of users_
    bool md5_only_users_ = false;
    std::vector<std::string> secrets_;
};

} // namespace ferry::auth
