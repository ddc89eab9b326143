#include "ferry/protocol/framer.hpp"

#include "ferry/protocol/channel_data.hpp"
#include "ferry/protocol/constants.hpp"
#include "ferry/protocol/wire.hpp"

namespace ferry::protocol {

frame_result next_frame(std::span<const std::uint8_t> b, std::size_t max_frame) {
    if (b.empty()) return {frame_result::need_more, 4};
    std::size_t total = 0;
    switch (classify(b[0])) {
    case packet_kind::stun: {
        if (b.size() < 4) return {frame_result::need_more, 4};
        const std::size_t length = load_u16(b.data() + 2);
        if (length % 4 != 0) return {frame_result::invalid, 0};
        // Over a stream only RFC 5389/8489 framing is meaningful: insist on the cookie.
        if (b.size() >= 8 && load_u32(b.data() + 4) != magic_cookie)
            return {frame_result::invalid, 0};
        total = header_size + length;
        break;
    }
    case packet_kind::channel_data: {
        if (b.size() < 4) return {frame_result::need_more, 4};
        // RFC 8656 §12.5: over TCP and TLS, ChannelData is padded to a multiple of 4.
        total = channel_data_header_size + padded(load_u16(b.data() + 2));
        break;
    }
    default:
        return {frame_result::invalid, 0};
    }
    if (total > max_frame) return {frame_result::invalid, 0};
    if (b.size() < total) return {frame_result::need_more, total};
    return {frame_result::frame, total};
}

} // namespace ferry::protocol
