// Fuzzes the WebSocket reader (RFC 6455) as a server meets it: a client's byte stream in chunks
// whose sizes come from the input. It must consume only what it was given, never hand over a
// message over its limit or a text message that is not UTF-8, and read nothing after an error
// or a close.
#include "ferry/signaling/websocket.hpp"

#include <cstdlib>
#include <vector>

using namespace ferry::signaling::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t chunk = 1 + data[0] % 64;
    const std::size_t max_message = 1 + std::size_t{data[1]} * 64;
    reader r(max_message);
    std::vector<std::uint8_t> pending;
    bool ended = false;
    for (std::size_t fed = 2; fed < size;) {
        const std::size_t n = std::min(chunk, size - fed);
        pending.insert(pending.end(), data + fed, data + fed + n);
        fed += n;
        for (;;) {
            reader::event ev;
            const auto used = r.feed(pending, ev);
            if (used > pending.size()) std::abort();
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
            if (ev.what == reader::event::kind::none) break;
            if (ended) std::abort(); // an event after an error or a close
            if (ev.what == reader::event::kind::message) {
                if (ev.data.size() > max_message) std::abort();
                if (ev.type == opcode::text && !valid_utf8(ev.data)) std::abort();
            }
            if (ev.what == reader::event::kind::error || ev.what == reader::event::kind::close) ended = true;
            if ((ev.what == reader::event::kind::ping || ev.what == reader::event::kind::pong) && ev.data.size() > 125)
                std::abort();
        }
    }
    return 0;
}
