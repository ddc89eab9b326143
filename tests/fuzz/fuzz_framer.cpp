// Fuzzes the stream framer and ChannelData parser: the input is a TCP byte stream delivered in
// chunks whose sizes come from the input itself. Frames must tile the consumed bytes exactly.
#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/framer.hpp"
#include "ferry/protocol/message.hpp"

#include <cstdlib>
#include <vector>

using namespace ferry::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t chunk = 1 + data[0] % 64;
    const std::size_t max_frame = 64 + std::size_t{data[0]} * 16;
    std::vector<std::uint8_t> buffered;
    std::size_t fed = 1;
    std::size_t consumed = 0;
    while (fed < size) {
        const std::size_t n = std::min(chunk, size - fed);
        buffered.insert(buffered.end(), data + fed, data + fed + n);
        fed += n;
        for (;;) {
            const auto r = next_frame(buffered, max_frame);
            if (r.kind == frame_result::invalid) return 0;
            if (r.kind == frame_result::need_more) {
                if (r.size > max_frame && r.size != 4) std::abort();
                break;
            }
            if (r.size == 0 || r.size > buffered.size() || r.size > max_frame) std::abort();
            const std::span<const std::uint8_t> frame(buffered.data(), r.size);
            if (classify(frame[0]) == packet_kind::channel_data) {
                auto cd = parse_channel_data(frame);
                if (!cd || cd->data.size() + 4 > frame.size()) std::abort();
            } else {
                message_view m;
                static_cast<void>(m.parse(frame));
            }
            consumed += r.size;
            buffered.erase(buffered.begin(), buffered.begin() + static_cast<long>(r.size));
        }
    }
    if (consumed + buffered.size() != size - 1) std::abort();
    return 0;
}
