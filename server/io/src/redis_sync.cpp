#include "ferry/server/redis_sync.hpp"

#include "ferry/server/log.hpp"
#include "ferry/server/spawn.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>

namespace ferry::server {

using namespace std::chrono_literals;

namespace {

constexpr auto apply_delay = 20ms; ///< changes that come together are applied together
constexpr std::size_t mget_batch = 500;

std::string keyspace_prefix(unsigned database) { return fmt::format("__keyspace@{}__:", database); }

} // namespace

std::string default_instance_name(const config& cfg) {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) host = {'f', 'e', 'r', 'r', 'y'};
    std::string name(host.data());
    if (!cfg.listen.empty()) {
        name += '/';
        name += protocol::transport_address{cfg.listen.front().address, cfg.listen.front().port}.to_string();
    }
    return name;
}

std::vector<protocol::transport_address> default_advertise(const config& cfg) {
    std::vector<protocol::transport_address> out;
    for (const auto& l : cfg.listen)
        if (!l.address.is_unspecified() && (l.udp || l.tcp)) out.push_back({l.address, l.port});
    return out;
}

redis_sync::redis_sync(asio::io_context& io, const config& cfg, turn_shared& shared, fleet_view& fleet,
                       std::function<void()> users_changed)
    : io_(io), rcfg_(cfg.redis), shared_(shared), fleet_(fleet), users_changed_(std::move(users_changed)),
      realm_(cfg.turn.realm), layout_(cfg.redis.key_prefix, cfg.turn.realm),
      name_(cfg.redis.instance.empty() ? default_instance_name(cfg) : cfg.redis.instance),
      key_(layout_.instance_key(name_)),
      cmd_(io, cfg.redis, "commands", false,
           {[this] { on_up(); }, [this](const std::string& why) { on_down(why); }, {}}),
      sub_(io, cfg.redis, "subscriber", true,
           {[this] { on_up(); }, [this](const std::string& why) { on_down(why); },
            [this](const redis_reply& r) { on_push(r); }}),
      apply_timer_(io), resync_timer_(io), expire_timer_(io) {}

redis_sync::~redis_sync() { *alive_ = false; }

void redis_sync::start() {
    cmd_.start();
    sub_.start();
    resync_tick();
    expire_tick();
}

std::vector<std::string> redis_sync::secrets() const {
    std::vector<std::string> out;
    for (const auto& [key, s] : secrets_) out.push_back(s);
    return out;
}

// Not a coroutine itself (GCC 12 destroys a coroutine's by-value parameter twice when it is
// moved into a lambda there): the operation is started when the caller awaits it.
asio::awaitable<redis_reply> redis_sync::call(std::vector<std::string> args) {
    auto ex = io_.get_executor();
    return asio::async_initiate<decltype(asio::use_awaitable), void(redis_reply)>(
        [this, ex](auto handler, std::vector<std::string> a) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            // Resumed through post: never inside the client's own reply loop.
            cmd_.command(std::move(a), [h, ex](const redis_reply& r) {
                asio::post(ex, [h, r]() mutable { (*h)(std::move(r)); });
            });
        },
        asio::use_awaitable, std::move(args));
}

void redis_sync::on_up() {
    if (!connected()) return; // the other connection is still on its way
    // Subscriptions first, then the reads: a change made between the two still arrives.
    sub_.push_command({"PSUBSCRIBE", keyspace_prefix(rcfg_.database) + layout_.realm_pattern()});
    sub_.push_command({"SUBSCRIBE", layout_.users_channel(), layout_.fleet_channel()});
    const auto gen = ++generation_;
    if (!ever_connected_) {
        log::info("redis: connected to {}; reading users of realm '{}' and the fleet (this instance: '{}')",
                  rcfg_.unix_socket.empty() ? fmt::format("{}:{}", rcfg_.host, rcfg_.port) : "unix:" + rcfg_.unix_socket,
                  layout_.realm_prefix(), name_);
    } else if (said_down_) {
        const auto down = std::chrono::duration<double>(std::chrono::steady_clock::now() - down_since_).count();
        log::info("redis: connected again after {:.1f} s; reading users and the fleet again", down);
    }
    ever_connected_ = true;
    was_connected_ = true;
    said_down_ = false;
    auto alive = alive_;
    spawn(io_.get_executor(), "redis: reading users", [this, gen] { return read_users(gen); }, [] {});
    spawn(io_.get_executor(), "redis: reading the fleet", [this, gen] { return read_fleet(gen); }, [] {});
    // Keyspace notifications are off in a default Redis. Unless told not to, ferry adds the
    // flags it needs to what is set (as Spring Session does); where CONFIG is refused (managed
    // Redis), it says what that means.
    cmd_.command({"CONFIG", "GET", "notify-keyspace-events"}, [this, alive, gen](const redis_reply& r) {
        if (!*alive) return;
        const auto fallback = fmt::format("changes to users arrive when published on '{}' or at the next full read "
                                          "(redis.resync_interval {} s)",
                                          layout_.users_channel(), rcfg_.resync_interval.count());
        if (r.error() || r.elements.size() != 2) {
            log::info("redis: cannot read notify-keyspace-events ({}); {}", describe(r), fallback);
            return;
        }
        const auto flags = r.elements[1].str;
        const bool all = flags.find('A') != std::string::npos;
        std::string missing;
        if (flags.find('K') == std::string::npos) missing += 'K';
        if (!all && flags.find('$') == std::string::npos) missing += '$';
        if (!all && flags.find('g') == std::string::npos) missing += 'g';
        if (!all && flags.find('x') == std::string::npos) missing += 'x';
        if (missing.empty()) return;
        if (!rcfg_.configure_notifications) {
            log::warn("redis: notify-keyspace-events is '{}' (wants K, $, g and x: 'K$gx'); {}", flags, fallback);
            return;
        }
        cmd_.command({"CONFIG", "SET", "notify-keyspace-events", flags + missing},
                     [this, alive, gen, flags, missing, fallback](const redis_reply& set) {
                         if (!*alive) return;
                         if (set.error()) {
                             log::warn("redis: notify-keyspace-events is '{}' and setting it was refused ({}); {}",
                                       flags, set.str, fallback);
                             return;
                         }
                         log::info("redis: notify-keyspace-events was '{}': added '{}' so that changes to users "
                                   "arrive at once (redis.configure_notifications: false leaves it alone)",
                                   flags, missing);
                         // What changed before notifications were on is read now.
                         if (gen == generation_)
                             spawn(io_.get_executor(), "redis: reading users", [this, gen] { return read_users(gen); },
                                   [] {});
                     });
    });
}

void redis_sync::on_down(const std::string& why) {
    if (said_down_) return;
    said_down_ = true;
    down_since_ = std::chrono::steady_clock::now();
    if (was_connected_) {
        ++outages_;
        log::warn("redis: connection lost ({}); serving on with the {} user{} and {} secret{} last read, and "
                  "counting allocations per user here alone once the fleet's leases run out; reconnecting",
                  why, users_.size(), users_.size() == 1 ? "" : "s", secrets_.size(), secrets_.size() == 1 ? "" : "s");
    } else {
        log::warn("redis: cannot connect ({}); TURN serves the users of the file meanwhile; retrying", why);
    }
    was_connected_ = false;
    // The other connection goes too: both come back together and read everything again.
    cmd_.reconnect();
    sub_.reconnect();
}

void redis_sync::on_push(const redis_reply& r) {
    // ["pmessage", pattern, channel, event] and ["message", channel, payload]
    if (r.elements.size() == 4 && r.elements[0].str == "pmessage") {
        std::string_view channel = r.elements[2].str;
        const auto prefix = keyspace_prefix(rcfg_.database);
        if (channel.starts_with(prefix)) on_key_event(channel.substr(prefix.size()));
        return;
    }
    if (r.elements.size() != 3 || r.elements[0].str != "message") return;
    const auto& channel = r.elements[1].str;
    const auto& payload = r.elements[2].str;
    if (channel == layout_.users_channel()) {
        if (payload == "*") {
            spawn(io_.get_executor(), "redis: reading users", [this, gen = generation_] { return read_users(gen); }, [] {});
            return;
        }
        spawn(io_.get_executor(), "redis: reading a user", [this, k = layout_.user_key_name(payload, false)] { return read_key(k); }, [] {});
        spawn(io_.get_executor(), "redis: reading a user", [this, k = layout_.user_key_name(payload, true)] { return read_key(k); }, [] {});
        return;
    }
    if (channel != layout_.fleet_channel()) return;
    const auto m = decode_fleet_message(payload);
    if (!m) {
        log::debug("redis: an unreadable message on {}: {}", channel, payload);
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    switch (m->what) {
    case fleet_message::kind::load:
        if (m->load.name != name_) fleet_.set_load(m->load, now + rcfg_.lease);
        break;
    case fleet_message::kind::user_count:
        if (m->instance != name_) fleet_.set_user_count(m->instance, m->user, m->count);
        break;
    case fleet_message::kind::bye:
        if (m->instance != name_) {
            fleet_.forget(m->instance);
            log::info("fleet: instance '{}' left", m->instance);
        }
        break;
    }
}

void redis_sync::on_key_event(std::string_view key) {
    if (!layout_.user_of(key) && !layout_.is_secret(key)) return;
    spawn(io_.get_executor(), "redis: reading a key", [this, k = std::string(key)] { return read_key(k); }, [] {});
}

asio::awaitable<void> redis_sync::read_key(std::string key) {
    auto alive = alive_;
    std::vector<std::string> get{"GET", key}; // (a braced list inside co_await trips GCC 12)
    const auto r = co_await call(std::move(get));
    if (!*alive || r.error()) co_return;
    take_value(key, r);
}

void redis_sync::take_value(const std::string& key, const redis_reply& r) {
    if (const auto u = layout_.user_of(key)) {
        auto& entry = users_[u->name];
        if (u->password) {
            if (r.nil()) entry.from_password.reset();
            else entry.from_password = keys_of(u->name, r.str);
        } else if (r.nil()) {
            entry.key.reset();
        } else if (const auto k = auth::parse_hex_key(r.str)) {
            entry.key = k;
        } else {
            log::warn("redis: {} is not 32 hex digits (MD5 of user:realm:password); ignored", key);
            entry.key.reset();
        }
        if (!entry.key && !entry.from_password) users_.erase(u->name);
    } else if (layout_.is_secret(key)) {
        if (r.nil() || r.str.empty()) secrets_.erase(key);
        else secrets_[key] = r.str;
    }
    schedule_apply();
}

asio::awaitable<void> redis_sync::read_users(std::uint64_t generation) {
    auto alive = alive_;
    std::vector<std::string> keys;
    std::string cursor = "0";
    do {
        std::vector<std::string> scan{"SCAN", cursor, "MATCH", layout_.realm_pattern(), "COUNT", "1000"};
        const auto r = co_await call(std::move(scan));
        if (!*alive || generation != generation_) co_return;
        if (r.error() || r.elements.size() != 2) {
            log::warn("redis: reading users failed: {}", describe(r));
            co_return;
        }
        cursor = r.elements[0].str;
        for (const auto& e : r.elements[1].elements)
            if (layout_.user_of(e.str) || layout_.is_secret(e.str)) keys.push_back(e.str);
    } while (cursor != "0");
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end()); // SCAN may return a key twice

    std::vector<redis_reply> values;
    for (std::size_t at = 0; at < keys.size(); at += mget_batch) {
        std::vector<std::string> args{"MGET"};
        const auto end = std::min(keys.size(), at + mget_batch);
        args.insert(args.end(), keys.begin() + static_cast<long>(at), keys.begin() + static_cast<long>(end));
        auto r = co_await call(std::move(args));
        if (!*alive || generation != generation_) co_return;
        if (r.error() || r.elements.size() != end - at) {
            log::warn("redis: reading users failed: {}", describe(r));
            co_return;
        }
        for (auto& v : r.elements) values.push_back(std::move(v));
    }
    take_all(keys, values);
}

auth::user_keys redis_sync::keys_of(const std::string& user, const std::string& password) const {
    return {auth::long_term_key(user, realm_, password, protocol::password_algorithm::md5),
            auth::long_term_key(user, realm_, password, protocol::password_algorithm::sha256)};
}

void redis_sync::take_all(const std::vector<std::string>& keys, const std::vector<redis_reply>& values) {
    std::map<std::string, redis_user> users;
    std::map<std::string, std::string> secrets;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const auto& v = values[i];
        if (v.kind != redis_reply::type::string) continue; // gone since the SCAN
        if (const auto u = layout_.user_of(keys[i])) {
            if (u->password) users[u->name].from_password = keys_of(u->name, v.str);
            else if (const auto k = auth::parse_hex_key(v.str)) users[u->name].key = k;
            else log::warn("redis: {} is not 32 hex digits (MD5 of user:realm:password); ignored", keys[i]);
        } else if (!v.str.empty()) {
            secrets[keys[i]] = v.str;
        }
    }
    std::erase_if(users, [](const auto& u) { return !u.second.key && !u.second.from_password; });
    const bool first = !synced_;
    // A full read that finds what the mirror holds changes nothing: the workers are not
    // handed a new runtime (each would walk its allocations for revocations).
    const bool same = users == users_ && secrets == secrets_;
    users_ = std::move(users);
    secrets_ = std::move(secrets);
    synced_ = true;
    if (first)
        log::info("redis: {} user{} and {} REST secret{} read for realm prefix '{}'", users_.size(),
                  users_.size() == 1 ? "" : "s", secrets_.size(), secrets_.size() == 1 ? "" : "s",
                  layout_.realm_prefix());
    if (!same) schedule_apply();
}

asio::awaitable<void> redis_sync::read_fleet(std::uint64_t generation) {
    auto alive = alive_;
    // This instance, whole: a restart under the same name replaces what it said before. The
    // load goes out before the counts: an instance that does not know this one (it forgot it
    // during the outage) ignores counts until it hears a load.
    const auto own = encode_load(last_load_.value_or(own_empty_load()));
    const auto counts = shared_.user_counts(); // one snapshot for the hash and the messages
    std::vector<std::string> hset{"HSET", key_, "load", own};
    for (const auto& [user, n] : counts) {
        hset.push_back("u:" + user);
        hset.push_back(std::to_string(n));
    }
    cmd_.command({"DEL", key_});
    cmd_.command(std::move(hset));
    cmd_.command({"PEXPIRE", key_, std::to_string(std::chrono::milliseconds(rcfg_.lease).count())});
    cmd_.command({"SADD", layout_.instances_key(), name_});
    cmd_.command({"PUBLISH", layout_.fleet_channel(), "L " + own});
    for (const auto& [user, n] : counts)
        cmd_.command({"PUBLISH", layout_.fleet_channel(), encode_user_count(name_, user, n)});
    dirty_.clear();

    std::vector<std::string> smembers{"SMEMBERS", layout_.instances_key()};
    const auto members = co_await call(std::move(smembers));
    if (!*alive || generation != generation_ || members.error()) co_return;
    fleet_.clear();
    for (const auto& m : members.elements) {
        if (m.str == name_) continue;
        std::vector<std::string> hgetall{"HGETALL", layout_.instance_key(m.str)};
        const auto h = co_await call(std::move(hgetall));
        if (!*alive || generation != generation_) co_return;
        if (h.error()) continue;
        if (h.elements.empty()) { // its lease ran out: it is gone
            cmd_.command({"SREM", layout_.instances_key(), m.str});
            continue;
        }
        std::optional<instance_load> load;
        std::unordered_map<std::string, unsigned> users;
        for (std::size_t i = 0; i + 1 < h.elements.size(); i += 2) {
            const auto& field = h.elements[i].str;
            const auto& value = h.elements[i + 1].str;
            if (field == "load") {
                load = decode_load(value);
            } else if (field.starts_with("u:")) {
                unsigned n = 0;
                if (std::from_chars(value.data(), value.data() + value.size(), n).ec == std::errc{} && n > 0)
                    users[field.substr(2)] = n;
            }
        }
        if (!load || load->name != m.str) continue;
        fleet_.replace(std::move(*load), std::move(users), std::chrono::steady_clock::now() + rcfg_.lease);
    }
    log::info("fleet: {} other instance{} live", fleet_.size(), fleet_.size() == 1 ? "" : "s");
}

instance_load redis_sync::own_empty_load() const {
    instance_load l;
    l.name = name_;
    return l;
}

void redis_sync::publish_load(instance_load load) {
    load.name = name_;
    last_load_ = load;
    if (!cmd_.up()) return;
    cmd_.command({"HSET", key_, "load", encode_load(load)});
    cmd_.command({"PEXPIRE", key_, std::to_string(std::chrono::milliseconds(rcfg_.lease).count())});
    cmd_.command({"SADD", layout_.instances_key(), name_});
    cmd_.command({"PUBLISH", layout_.fleet_channel(), "L " + encode_load(load)});
}

void redis_sync::user_changed(const std::string& user) {
    asio::post(io_, [this, alive = alive_, user] {
        if (!*alive) return;
        dirty_.insert(user);
        if (flush_queued_) return;
        flush_queued_ = true;
        asio::post(io_, [this, alive] {
            if (*alive) flush_users();
        });
    });
}

// Every changed count goes out at once: the other instances' quotas see it within a round
// trip (the window in which two instances can both grant a user's last place).
void redis_sync::flush_users() {
    flush_queued_ = false;
    if (!cmd_.up()) return; // written whole at the next connect
    for (const auto& user : dirty_) {
        const auto n = shared_.count_of(user);
        if (n == 0) cmd_.command({"HDEL", key_, "u:" + user});
        else cmd_.command({"HSET", key_, "u:" + user, std::to_string(n)});
        cmd_.command({"PUBLISH", layout_.fleet_channel(), encode_user_count(name_, user, n)});
    }
    dirty_.clear();
}

void redis_sync::leave() {
    if (!cmd_.up()) return;
    cmd_.command({"DEL", key_});
    cmd_.command({"SREM", layout_.instances_key(), name_});
    cmd_.command({"PUBLISH", layout_.fleet_channel(), encode_bye(name_)});
}

void redis_sync::schedule_apply() {
    if (apply_queued_) return;
    apply_queued_ = true;
    apply_timer_.expires_after(apply_delay);
    apply_timer_.async_wait([this, alive = alive_](const std::error_code& ec) {
        if (ec || !*alive) return;
        apply_queued_ = false;
        users_changed_();
    });
}

// The safety net: a notification lost (a subscriber reconnecting, notifications off) is made
// good by the next full read.
void redis_sync::resync_tick() {
    resync_timer_.expires_after(rcfg_.resync_interval);
    resync_timer_.async_wait([this, alive = alive_](const std::error_code& ec) {
        if (ec || !*alive) return;
        if (connected())
            spawn(io_.get_executor(), "redis: reading users", [this, gen = generation_] { return read_users(gen); }, [] {});
        resync_tick();
    });
}

void redis_sync::expire_tick() {
    for (const auto& name : fleet_.expire(std::chrono::steady_clock::now()))
        log::info("fleet: instance '{}' not heard from within its lease ({} s); its allocations no longer count", name,
                  rcfg_.lease.count());
    expire_timer_.expires_after(250ms);
    expire_timer_.async_wait([this, alive = alive_](const std::error_code& ec) {
        if (!ec && *alive) expire_tick();
    });
}

} // namespace ferry::server
