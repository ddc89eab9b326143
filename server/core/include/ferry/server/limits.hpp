// Rate limits for abuse controls, with state of a fixed size however many clients there are:
// a token bucket (per allocation, per worker), and a table of buckets indexed by a keyed hash of
// the source address, for answers to requests that did not authenticate.
#pragma once

#include "ferry/protocol/address.hpp"
#include "ferry/server/peer_policy.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstdint>
#include <vector>

namespace ferry::server {

using steady_time = std::chrono::steady_clock::time_point;

/// The address a source is counted under: an IPv4 address itself (an IPv4-mapped IPv6 one as
/// the IPv4 address), an IPv6 one by its first `ipv6_prefix` bits (one host holds a whole /64).
protocol::ip_address source_key(const protocol::ip_address& ip, unsigned ipv6_prefix = 64);

/// `rate` units a second, at most `burst` saved up; starts full.
class token_bucket {
public:
    /// Takes `cost` units if the bucket holds them. A rate of 0 means no limit.
    bool take(double cost, double rate, double burst, steady_time now) {
        if (rate <= 0) return true;
        if (!started_) {
            tokens_ = burst;
            started_ = true;
        } else if (now > last_) {
            tokens_ += std::chrono::duration<double>(now - last_).count() * rate;
            if (tokens_ > burst) tokens_ = burst;
        }
        last_ = now;
        if (tokens_ < cost) return false;
        tokens_ -= cost;
        return true;
    }

private:
    double tokens_ = 0;
    steady_time last_{};
    bool started_ = false;
};

/// What the per-source and bandwidth limits are, as configured (all 0: off).
struct abuse_limits {
    double unauthenticated_rate = 20;   ///< answers a second to one source that has not authenticated
    double unauthenticated_burst = 60;  ///< ... saved up
    unsigned allocations_per_ip = 1000; ///< allocations held by clients at one address (0: no limit)
    double allocation_bytes_per_second = 12'500'000; ///< per allocation, each direction (0: no limit)
    double relay_bytes_per_second = 0;      ///< per worker: the total cap over the worker count
    unsigned ipv6_prefix = 64;
    /// Sources none of these limits apply to.
    std::vector<ip_range> exempt{*ip_range::parse("127.0.0.0/8"), *ip_range::parse("::1")};

    bool exempts(const protocol::ip_address& source) const;
};

/// Per-source rate limits in a fixed table shared by every worker: a keyed hash of the source
/// key picks the slot (a sender cannot aim at another's), and sources that share a slot share
/// its budget, which never gives a sender more than its own. Each slot is one atomic word, the
/// time its budget next runs dry (the generic cell rate algorithm), so workers need no lock.
class source_limiter {
public:
    static constexpr std::size_t slots = 4096;
    source_limiter();
    /// True if `source` may have one more answer now: `rate` a second, `burst` at once.
    bool allow(const protocol::ip_address& source, double rate, double burst, unsigned ipv6_prefix, steady_time now);

private:
    std::array<std::uint64_t, 2> key_{};
    std::unique_ptr<std::atomic<std::uint64_t>[]> slots_; ///< nanoseconds on the steady clock
};

} // namespace ferry::server
