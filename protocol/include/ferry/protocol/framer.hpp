// Splits a byte stream (TCP, TLS) into STUN messages and ChannelData records (RFC 8656 §12.5,
// RFC 8489 §6.2.2), in the tri-state manner of a resumable parser: given the bytes buffered so
// far, the answer is "need more", "a frame of N bytes starts here", or "invalid". An invalid
// answer means the stream cannot be trusted past this point: the caller closes the connection
// rather than hunting for the next frame inside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ferry::protocol {

struct frame_result {
    enum kind_t { need_more, frame, invalid } kind = need_more;
    /// need_more: total bytes the frame needs, when known (else the minimum to learn it);
    /// frame: the frame's size, padding included.
    std::size_t size = 0;
};

/// Looks at the start of `buffered`. `max_frame` bounds what a peer may declare, so a huge
/// length cannot make the caller buffer without limit.
frame_result next_frame(std::span<const std::uint8_t> buffered, std::size_t max_frame);

} // namespace ferry::protocol
