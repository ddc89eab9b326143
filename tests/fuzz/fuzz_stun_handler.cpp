// Fuzzes the request handler end to end (parse, dispatch, reply) with and without an RFC 5780
// set. Every reply must parse, and must not be much larger than the request (amplification).
#include "ferry/protocol/message.hpp"
#include "ferry/server/stun_handler.hpp"

#include <cstdlib>
#include <vector>

using namespace ferry::protocol;
using namespace ferry::server;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static stun_handler handler(handler_settings{"ferry-fuzz"});
    static nat_identity nat = [] {
        nat_identity n;
        for (unsigned i = 0; i < 2; ++i)
            for (unsigned p = 0; p < 2; ++p)
                n.addresses[i][p] = *transport_address::from(i == 0 ? "2001:db8::1" : "2001:db8::2",
                                                             static_cast<std::uint16_t>(3478 + p));
        return n;
    }();
    static std::vector<std::uint8_t> out(1500);
    if (size < 1) return 0;

    request_context ctx;
    ctx.via = (data[0] & 1) ? transport::tcp : transport::udp;
    ctx.local = *transport_address::from("2001:db8::1", 3478);
    ctx.remote = *transport_address::from("2001:db8::99", 50000);
    ctx.nat = (data[0] & 2) ? &nat : nullptr;
    const std::span<const std::uint8_t> in(data + 1, size - 1);

    const reply r = handler.handle(ctx, in, out);
    if (r.size == 0) return 0;
    message_view m;
    if (m.parse(std::span(out).first(r.size))) std::abort();
    if (r.size > in.size() + 160) std::abort();
    if (r.from_ip > 1 || r.from_port > 1) std::abort();
    return 0;
}
