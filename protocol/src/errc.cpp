#include "ferry/protocol/errc.hpp"

#include <string>

namespace ferry::protocol {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "stun"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::truncated: return "truncated message";
        case errc::not_stun: return "not a STUN message";
        case errc::bad_length: return "message length disagrees with the bytes received";
        case errc::attribute_overrun: return "attribute runs past the end of the message";
        case errc::too_many_attributes: return "too many attributes";
        case errc::after_fingerprint: return "bytes after FINGERPRINT";
        case errc::bad_fingerprint: return "FINGERPRINT mismatch";
        case errc::bad_channel_number: return "channel number out of range";
        case errc::frame_too_large: return "frame larger than allowed";
        }
        return "unknown protocol error";
    }
};

} // namespace

const std::error_category& protocol_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace ferry::protocol
