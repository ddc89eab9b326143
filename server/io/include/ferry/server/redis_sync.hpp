// The fleet's Redis side, on the main thread's io_context: a mirror of the realm's users and
// REST secrets (read whole at connect and every redis.resync_interval, then followed through
// keyspace notifications and the P ferry/users channel), this instance's load and allocations
// per user published with a lease, and the other instances' (fleet_view) followed through the
// P ferry/fleet channel. Two connections: RESP2 lets a subscribed connection do nothing but
// subscribe, so commands go on the other. No TURN request ever waits on any of this: workers
// read the mirror through the runtime they are handed, and fleet_view under its own lock.
#pragma once

#include "ferry/server/fleet.hpp"
#include "ferry/server/redis_client.hpp"
#include "ferry/server/turn_handler.hpp"

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace ferry::server {

class redis_sync {
public:
    /// `users_changed`: the mirror changed (called at most every 20 ms); the caller rebuilds the
    /// runtime from users() and secrets() and hands it to the workers.
    redis_sync(asio::io_context& io, const config& cfg, turn_shared& shared, fleet_view& fleet,
               std::function<void()> users_changed);
    ~redis_sync();

    void start();
    /// Leaving the fleet: a last word (the "bye" and our key deleted), best effort.
    void leave();

    /// This instance's load now (renews its lease); called every third of the lease, and at once
    /// when draining starts.
    void publish_load(instance_load load);
    /// `user`'s count on this instance changed (any thread: it posts to the io_context).
    void user_changed(const std::string& user);

    const std::map<std::string, redis_user>& users() const { return users_; }
    std::vector<std::string> secrets() const;
    const std::string& instance() const { return name_; }
    std::chrono::seconds lease() const { return rcfg_.lease; }

    bool connected() const { return cmd_.up() && sub_.up(); }
    bool synced() const { return synced_; } ///< users read whole at least once
    std::uint64_t outages() const { return outages_; }

private:
    asio::awaitable<redis_reply> call(std::vector<std::string> args);
    void on_up();
    void on_down(const std::string& why);
    void on_push(const redis_reply& r);
    void on_key_event(std::string_view key);
    /// Reads every user and secret of the realm, then replaces the mirror.
    asio::awaitable<void> read_users(std::uint64_t generation);
    /// Writes this instance whole (after a reconnect) and reads every other instance.
    asio::awaitable<void> read_fleet(std::uint64_t generation);
    /// Re-reads one key of a user or secret.
    asio::awaitable<void> read_key(std::string key);
    void take_value(const std::string& key, const redis_reply& r);
    void take_all(const std::vector<std::string>& keys, const std::vector<redis_reply>& values);
    /// A password's keys for this realm, derived once when read (the password is not kept).
    auth::user_keys keys_of(const std::string& user, const std::string& password) const;
    void flush_users();
    instance_load own_empty_load() const;
    void schedule_apply();
    void resync_tick();
    void expire_tick();

    asio::io_context& io_;
    redis_config rcfg_;
    turn_shared& shared_;
    fleet_view& fleet_;
    std::function<void()> users_changed_;
    std::string realm_;
    redis_layout layout_;
    std::string name_;
    std::string key_; ///< P ferry/instance/<name>
    redis_client cmd_;
    redis_client sub_;

    std::map<std::string, redis_user> users_;
    std::map<std::string, std::string> secrets_; ///< by key
    std::set<std::string> dirty_;  ///< users whose count here changed, not yet published
    bool flush_queued_ = false;
    bool apply_queued_ = false;
    bool synced_ = false;
    bool was_connected_ = false;
    bool ever_connected_ = false;
    bool said_down_ = false;
    std::uint64_t generation_ = 0; ///< counts connections made whole (both up)
    std::uint64_t outages_ = 0;
    std::chrono::steady_clock::time_point down_since_{};
    std::optional<instance_load> last_load_;
    asio::steady_timer apply_timer_;
    asio::steady_timer resync_timer_;
    asio::steady_timer expire_timer_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// The name an instance goes by when redis.instance is not set: host name and first listener.
std::string default_instance_name(const config& cfg);
/// Where clients are sent for this instance when redis.advertise is not set: the listeners on
/// concrete addresses.
std::vector<protocol::transport_address> default_advertise(const config& cfg);

} // namespace ferry::server
