#include "ferry/auth/credentials.hpp"

#include "ferry/auth/base64.hpp"
#include "ferry/protocol/integrity.hpp"

#include <charconv>
#include <openssl/crypto.h>
#include <stdexcept>

namespace ferry::auth {
namespace {

std::optional<std::int64_t> number(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
}

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

} // namespace

void credential_store::add_user(std::string_view name, std::string_view password) {
    users_[std::string(name)] = {long_term_key(name, realm_, password, protocol::password_algorithm::md5),
                                 long_term_key(name, realm_, password, protocol::password_algorithm::sha256)};
    add_hash(name);
}

void credential_store::add_user_key(std::string_view name, const key& md5_key) {
    users_[std::string(name)] = {md5_key, std::nullopt};
    md5_only_users_ = true;
    add_hash(name);
}

void credential_store::add_user_keys(std::string_view name, const user_keys& keys) {
    users_[std::string(name)] = keys;
    if (!keys.sha256) md5_only_users_ = true;
    add_hash(name);
}

void credential_store::add_hash(std::string_view name) {
    const auto h = user_hash(name, realm_);
    by_hash_[std::string(h.begin(), h.end())] = std::string(name);
}

std::optional<std::string_view> credential_store::find_by_hash(const std::array<std::uint8_t, 32>& hash) const {
    const auto it = by_hash_.find(std::string(hash.begin(), hash.end()));
    if (it == by_hash_.end()) return std::nullopt;
    return std::string_view(it->second);
}

std::span<const protocol::password_algorithm> credential_store::offered_algorithms() const {
    static constexpr std::array both{protocol::password_algorithm::sha256, protocol::password_algorithm::md5};
    return md5_only_users_ ? std::span(both).subspan(1) : std::span(both);
}

std::optional<std::int64_t> credential_store::credential_expiry(std::string_view username) const {
    if (secrets_.empty() || users_.count(std::string(username)) != 0) return std::nullopt;
    return rest_expiry(username);
}

void credential_store::add_rest_secret(std::string secret) {
    if (secrets_.size() == max_secrets)
        throw std::invalid_argument("at most 8 REST API secrets may be active at once");
    secrets_.push_back(std::move(secret));
}

std::optional<std::int64_t> credential_store::rest_expiry(std::string_view username) {
    const auto first = username.find(':');
    if (first == std::string_view::npos) return std::nullopt;
    if (auto t = number(username.substr(0, first))) return t; // "expiry:user"
    const auto last = username.rfind(':');
    return number(username.substr(last + 1)); // "user:expiry"
}

credential_store::candidates credential_store::lookup(std::string_view username,
                                                      protocol::password_algorithm algorithm,
                                                      std::int64_t now) const {
    candidates out;
    if (auto it = users_.find(std::string(username)); it != users_.end()) {
        if (algorithm == protocol::password_algorithm::md5) out.keys[out.count++] = it->second.md5;
        else if (it->second.sha256) out.keys[out.count++] = *it->second.sha256;
        return out;
    }
    if (secrets_.empty()) return out;
    const auto expiry = rest_expiry(username);
    if (!expiry || *expiry < now) return out;
    for (const auto& secret : secrets_) {
        std::array<std::uint8_t, protocol::hmac_sha1_size> mac{};
        protocol::hmac_sha1(bytes(secret), bytes(username), mac);
        std::string password = base64_encode(mac);
        out.keys[out.count++] = long_term_key(username, realm_, password, algorithm);
        OPENSSL_cleanse(password.data(), password.size());
    }
    return out;
}

} // namespace ferry::auth
