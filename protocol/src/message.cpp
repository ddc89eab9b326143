#include "ferry/protocol/message.hpp"

#include "ferry/protocol/wire.hpp"

namespace ferry::protocol {

bool looks_like_stun(std::span<const std::uint8_t> b) {
    return b.size() >= header_size && (b[0] & 0xC0) == 0 && (b[3] & 0x03) == 0;
}

std::error_code message_view::parse(std::span<const std::uint8_t> bytes) noexcept {
    *this = message_view{};
    if (bytes.size() < header_size) return errc::truncated;
    if ((bytes[0] & 0xC0) != 0) return errc::not_stun;
    const std::size_t length = load_u16(bytes.data() + 2);
    if (length % 4 != 0 || header_size + length != bytes.size()) return errc::bad_length;

    enum class phase { open, after_mi, after_mi_sha256 } ph = phase::open;
    std::size_t count = 0;
    std::size_t pos = header_size;
    while (pos < bytes.size()) {
        if (bytes.size() - pos < 4) return errc::truncated;
        const auto type = load_u16(bytes.data() + pos);
        const auto len = load_u16(bytes.data() + pos + 2);
        if (padded(len) > bytes.size() - pos - 4) return errc::attribute_overrun;

        const bool is_mi = type == static_cast<std::uint16_t>(attribute_type::message_integrity);
        const bool is_mi256 =
            type == static_cast<std::uint16_t>(attribute_type::message_integrity_sha256);
        const bool is_fp = type == static_cast<std::uint16_t>(attribute_type::fingerprint);

        bool indexed = true;
        if (ph == phase::after_mi) indexed = is_mi256 || is_fp;
        if (ph == phase::after_mi_sha256) indexed = is_fp;
        if (indexed) {
            if (count == max_attributes) return errc::too_many_attributes;
            index_[count++] = {type, static_cast<std::uint16_t>(pos), len};
            if (is_mi && ph == phase::open) ph = phase::after_mi;
            if (is_mi256) ph = phase::after_mi_sha256;
        }
        pos += 4 + padded(len);
        if (is_fp && pos != bytes.size()) return errc::after_fingerprint;
    }

    bytes_ = bytes;
    type_ = load_u16(bytes.data());
    has_cookie_ = load_u32(bytes.data() + 4) == magic_cookie;
    count_ = count;
    return {};
}

const attribute_ref* message_view::find(attribute_type t) const noexcept {
    const auto code = static_cast<std::uint16_t>(t);
    for (std::size_t i = 0; i < count_; ++i)
        if (index_[i].type == code) return &index_[i];
    return nullptr;
}

std::size_t message_view::unknown_required(std::span<std::uint16_t> out) const {
    std::size_t n = 0;
    for (const auto& a : attributes()) {
        if (n == out.size()) break;
        if (comprehension_required(a.type) && !is_known_attribute(a.type)) out[n++] = a.type;
    }
    return n;
}

} // namespace ferry::protocol
