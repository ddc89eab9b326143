// Why remote bytes were rejected. Decoders report these through std::error_code and never throw:
// the socket layer drops the datagram (or closes the stream) and counts the reason.
#pragma once

#include <system_error>

namespace ferry::protocol {

enum class errc {
    truncated = 1,        ///< fewer bytes than the header or an attribute header needs
    not_stun,             ///< top two bits set, or not a STUN message at all
    bad_length,           ///< header length disagrees with the datagram or is not a multiple of 4
    attribute_overrun,    ///< an attribute's length runs past the end of the message
    too_many_attributes,  ///< more attributes than the index holds
    after_fingerprint,    ///< bytes follow FINGERPRINT (RFC 8489 §14.7: it is last)
    bad_fingerprint,      ///< FINGERPRINT present and wrong
    bad_channel_number,   ///< ChannelData with a channel number outside 0x4000-0x7FFF
    frame_too_large,      ///< a stream frame over the configured maximum
};

const std::error_category& protocol_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), protocol_category()};
}

} // namespace ferry::protocol

template <> struct std::is_error_code_enum<ferry::protocol::errc> : std::true_type {};
