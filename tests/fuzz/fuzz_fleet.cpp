// Fuzzes what one fleet instance reads of another through Redis: fleet channel messages,
// published loads, key names and hex keys. Whatever decodes must encode back to text that
// decodes to the same thing; nothing may crash on any input.
#include "ferry/server/fleet.hpp"

#include <cstdlib>
#include <string_view>

using namespace ferry::server;

namespace {

bool same(const instance_load& a, const instance_load& b) {
    return a.name == b.name && a.addresses == b.addresses && a.allocations == b.allocations &&
           a.capacity == b.capacity && a.packets_per_second == b.packets_per_second && a.draining == b.draining;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (const auto m = decode_fleet_message(text)) {
        switch (m->what) {
        case fleet_message::kind::load: {
            const auto again = decode_load(encode_load(m->load));
            if (!again || !same(*again, m->load)) std::abort();
            break;
        }
        case fleet_message::kind::user_count: {
            const auto again = decode_fleet_message(encode_user_count(m->instance, m->user, m->count));
            if (!again || again->instance != m->instance || again->user != m->user || again->count != m->count)
                std::abort();
            break;
        }
        case fleet_message::kind::bye: {
            const auto again = decode_fleet_message(encode_bye(m->instance));
            if (!again || again->instance != m->instance) std::abort();
            break;
        }
        }
    }
    static const redis_layout layout("p:", "realm");
    if (const auto u = layout.user_of(text))
        if (layout.user_key_name(u->name, u->password) != text) std::abort();
    (void)layout.is_secret(text);
    (void)ferry::auth::parse_hex_key(text);
    return 0;
}
