// A fleet: ferry instances sharing users, allocation counts and load through Redis. This is
// the pure half: what an instance knows of the others (fleet_view, read by workers when an
// Allocate needs a quota or a redirect), the wire form of what instances publish, and the
// Redis key layout. The I/O half (redis_client, redis_sync) lives in server/io.
//
// Keys (P = redis.key_prefix, empty by default, so a coturn database is read as it is):
//   P turn/realm/<realm>/user/<name>/key       hex MD5(name:realm:password)  (coturn's layout)
//   P turn/realm/<realm>/user/<name>/password  the password in clear         (coturn's layout)
//   P turn/realm/<realm>/secret/<id>           a TURN REST shared secret     (coturn's layout)
//   P ferry/instance/<name>  hash: "load" -> encode_load(), "u:<user>" -> allocations; expires
//                            after redis.lease unless its instance renews it
//   P ferry/instances        set of instance names (a name whose hash is gone is dropped)
// Channels: P ferry/fleet (loads and per-user counts as they change), P ferry/users (a user
// name whose keys changed, or "*": read all), for deployments without keyspace notifications.
#pragma once

#include "ferry/auth/credentials.hpp"
#include "ferry/protocol/address.hpp"
#include "ferry/server/allocation.hpp"

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::server {

/// What one instance says of itself, renewed every third of the lease.
struct instance_load {
    std::string name;
    std::vector<protocol::transport_address> addresses; ///< where clients are sent for it (300)
    std::uint64_t allocations = 0;
    std::uint64_t capacity = 0; ///< limits.allocations_total (0: no limit)
    std::uint64_t packets_per_second = 0;
    bool draining = false;

    bool full() const { return capacity != 0 && allocations >= capacity; }
};

/// "name draining allocations capacity pps addr,addr" (names hold no spaces).
std::string encode_load(const instance_load& l);
std::optional<instance_load> decode_load(std::string_view text);

/// A message on the fleet channel: a load ("L <load>"), one user's allocation count on an
/// instance ("U <instance> <count> <user>"; the user last, as it may hold spaces) or an
/// instance leaving ("B <instance>").
struct fleet_message {
    enum class kind { load, user_count, bye } what = kind::load;
    instance_load load;  ///< kind::load
    std::string instance; ///< kind::user_count, kind::bye
    std::string user;
    unsigned count = 0;
};
std::string encode_user_count(std::string_view instance, std::string_view user, unsigned count);
std::string encode_bye(std::string_view instance);
std::optional<fleet_message> decode_fleet_message(std::string_view text);

/// The Redis keys of one realm's users and secrets, and what a key is.
class redis_layout {
public:
    redis_layout(std::string prefix, std::string realm);

    struct user_key {
        std::string name;
        bool password = false; ///< ".../password" (else ".../key")
    };
    /// The user a key names, if it is one of this realm's user keys.
    std::optional<user_key> user_of(std::string_view key) const;
    /// True for this realm's ".../secret/<id>" keys.
    bool is_secret(std::string_view key) const;

    std::string user_key_name(std::string_view user, bool password) const;
    /// The SCAN pattern of every key of the realm ("P turn/realm/R/*", with R's pattern
    /// characters escaped).
    std::string realm_pattern() const;
    std::string instance_key(std::string_view instance) const { return prefix_ + "ferry/instance/" + std::string(instance); }
    std::string instances_key() const { return prefix_ + "ferry/instances"; }
    std::string fleet_channel() const { return prefix_ + "ferry/fleet"; }
    std::string users_channel() const { return prefix_ + "ferry/users"; }
    const std::string& realm_prefix() const { return realm_prefix_; }

private:
    std::string prefix_;
    std::string realm_prefix_; ///< P turn/realm/<realm>/
};

/// A user as Redis holds it: coturn's hex key, a clear password, or both (the key wins). The
/// password itself is not kept: its keys are derived (MD5 and SHA-256) when it is read.
struct redis_user {
    std::optional<std::array<std::uint8_t, 16>> key;
    std::optional<auth::user_keys> from_password;
    friend bool operator==(const redis_user&, const redis_user&) = default;
};


/// The other instances as this one knows them: their loads and their allocations per user,
/// each dropped when its lease runs out unrenewed. Written by the main thread from Redis; read
/// by workers when an Allocate takes a quota or is redirected (never per packet).
class fleet_view {
public:
    /// A load heard from an instance, alive until `expires`.
    void set_load(instance_load l, steady_time expires);
    void set_user_count(const std::string& instance, const std::string& user, unsigned count);
    /// An instance read whole from Redis (its load and every user count).
    void replace(instance_load l, std::unordered_map<std::string, unsigned> users, steady_time expires);
    void forget(const std::string& instance);
    /// Drops the instances whose lease ran out; returns their names.
    std::vector<std::string> expire(steady_time now);
    /// Forgets every instance (Redis lost for longer than a lease: their counts are stale).
    void clear();

    /// `user`'s allocations on the other live instances.
    unsigned others(const std::string& user) const;
    /// The least-loaded live instance that is neither draining nor full and has an address of
    /// family `f`: fewest allocations, then fewest packets a second, then name.
    std::optional<protocol::transport_address> least_loaded(protocol::address_family f) const;
    std::size_t size() const;
    /// Every instance's load (metrics, logs).
    std::vector<instance_load> loads() const;

private:
    struct instance {
        instance_load load;
        bool has_load = false; ///< counts can arrive before the first load
        std::unordered_map<std::string, unsigned> users;
        steady_time expires{};
    };
    void add_counts(const instance& i, int sign);

    mutable std::mutex mutex_;
    std::unordered_map<std::string, instance> instances_;
    std::unordered_map<std::string, unsigned> totals_; ///< per user, over instances_
};

} // namespace ferry::server
