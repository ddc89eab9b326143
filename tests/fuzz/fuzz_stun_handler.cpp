// Fuzzes the request handlers end to end: STUN Binding (with and without an RFC 5780 set), TURN
// requests and Send indications through a TURN handler with fake relay sockets, ChannelData
// from clients and datagrams from peers. Every answer must parse and must not be much larger
// than its request (no amplification); nothing may crash whatever comes before authentication.
#include "ferry/protocol/message.hpp"
#include "ferry/server/stun_handler.hpp"
#include "ferry/server/turn_handler.hpp"

#include <cstdlib>
#include <vector>

using namespace ferry::protocol;
using namespace ferry::server;

namespace {

struct fixed_clock final : turn_clock {
    steady_time now() const override { return steady_time{} + std::chrono::hours(1000); }
    std::int64_t unix_now() const override { return 1'800'000'000; }
};

struct fake_relays final : relay_provider {
    int next = 100;
    std::optional<opened> open(const ip_address& ip, bool, bool, bool) override {
        return opened{next++, {ip, static_cast<std::uint16_t>(50000 + next % 1000)}};
    }
    std::optional<opened> open_next(const opened& o) override {
        return opened{next++, {o.local.ip, static_cast<std::uint16_t>(o.local.port + 1)}};
    }
    void adopt(int) override {}
    void close(int) override {}
};

struct null_sink final : packet_sink {
    std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(4200);
    std::span<std::uint8_t> buffer() override { return scratch; }
    void to_peer(int, const transport_address&, std::span<const std::uint8_t> b) override {
        if (b.size() > 70000) std::abort();
    }
    void to_client(const client_route&, std::span<const std::uint8_t> b) override {
        message_view m;
        if (!b.empty() && b[0] < 4 && m.parse(b)) std::abort(); // Data indications must parse
    }
};

struct world {
    turn_settings settings;
    ferry::auth::credential_store credentials{"ferry"};
    ferry::auth::nonce_manager nonces{std::chrono::seconds(600), ferry::auth::nonce_manager::secret{7}};
    peer_policy policy;
    turn_shared shared;
    fake_relays relays;
    fixed_clock clock;
    turn_handler turn{settings, credentials, nonces, policy, shared, relays, clock, "ferry-fuzz"};
    stun_handler stun{handler_settings{"ferry-fuzz"}};
    null_sink sink;
    nat_identity nat;

    world() {
        credentials.add_user("u", "p");
        credentials.add_rest_secret("s");
        stun.attach(&turn);
        for (unsigned i = 0; i < 2; ++i)
            for (unsigned p = 0; p < 2; ++p)
                nat.addresses[i][p] = *transport_address::from(i == 0 ? "2001:db8::1" : "2001:db8::2",
                                                               static_cast<std::uint16_t>(3478 + p));
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static world w;
    static std::vector<std::uint8_t> out(1500);
    if (size < 1) return 0;

    request_context ctx;
    ctx.via = (data[0] & 1) ? transport::tcp : transport::udp;
    ctx.local = *transport_address::from("2001:db8::1", 3478);
    ctx.remote = *transport_address::from("2001:db8::99", 50000);
    ctx.nat = (data[0] & 2) ? &w.nat : nullptr;
    ctx.socket = 3;
    const std::span<const std::uint8_t> in(data + 1, size - 1);

    switch ((data[0] >> 2) & 3) {
    case 1: // ChannelData from a client
        w.turn.handle_channel_data(ctx, in, w.sink);
        return 0;
    case 2: // a datagram from a peer, to one of the relay handles
        w.turn.handle_peer(100 + (data[0] >> 4), *transport_address::from("2001:db8::50", 4000), in, w.sink);
        return 0;
    default: break;
    }
    const reply r = w.stun.handle(ctx, in, out, &w.sink);
    if (r.size == 0) return 0;
    message_view m;
    if (m.parse(std::span(out).first(r.size))) std::abort();
    if (r.size > in.size() + 160) std::abort();
    if (r.from_ip > 1 || r.from_port > 1) std::abort();
    return 0;
}
