#include "ferry/protocol/writer.hpp"

#include "ferry/protocol/integrity.hpp"
#include "ferry/protocol/message.hpp"
#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <cstring>

namespace ferry::protocol {

message_writer::message_writer(std::span<std::uint8_t> buffer, std::uint16_t type,
                               std::span<const std::uint8_t, transaction_id_size> txid)
    : buf_(buffer) {
    if (buf_.size() < header_size || buf_.size() > header_size + 0xFFFF) {
        // A message's length field is 16 bits; clamp the usable buffer rather than overflow it.
        if (buf_.size() < header_size) {
            failed_ = true;
            return;
        }
        buf_ = buf_.first(header_size + 0xFFFC);
    }
    store_u16(buf_.data(), type);
    store_u16(buf_.data() + 2, 0);
    store_u32(buf_.data() + 4, magic_cookie);
    std::copy(txid.begin(), txid.end(), buf_.begin() + 8);
    size_ = header_size;
}

message_writer::message_writer(std::span<std::uint8_t> buffer, std::uint16_t type,
                               const message_view& request)
    : message_writer(buffer, type, request.transaction_id()) {
    if (!failed_) std::copy_n(request.cookie_bytes().begin(), 4, buf_.begin() + 4);
}

void message_writer::set_length(std::size_t total) {
    store_u16(buf_.data() + 2, static_cast<std::uint16_t>(total - header_size));
}

std::span<std::uint8_t> message_writer::append_in(phase allowed_up_to, attribute_type type,
                                                  std::size_t length) {
    if (failed_ || phase_ > allowed_up_to || length > 0xFFFF ||
        buf_.size() - size_ < 4 + padded(length)) {
        failed_ = true;
        return {};
    }
    std::uint8_t* p = buf_.data() + size_;
    store_u16(p, static_cast<std::uint16_t>(type));
    store_u16(p + 2, static_cast<std::uint16_t>(length));
    std::memset(p + 4 + length, 0, padded(length) - length);
    size_ += 4 + padded(length);
    set_length(size_);
    return {p + 4, length};
}

std::span<std::uint8_t> message_writer::append(attribute_type type, std::size_t length) {
    // Zeroed: encoders write only the fields they set, and a reserved byte left as the buffer
    // had it (an earlier message's bytes) would be sent.
    auto out = append_in(phase::open, type, length);
    if (!out.empty()) std::memset(out.data(), 0, out.size());
    return out;
}

void message_writer::append_bytes(attribute_type type, std::span<const std::uint8_t> value) {
    auto out = append_in(phase::open, type, value.size()); // every byte written below
    if (!out.empty()) std::memcpy(out.data(), value.data(), value.size());
}

void message_writer::append_string(attribute_type type, std::string_view value) {
    append_bytes(type, {reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
}

void message_writer::append_u32(attribute_type type, std::uint32_t value) {
    auto out = append(type, 4);
    if (!out.empty()) store_u32(out.data(), value);
}

void message_writer::append_message_integrity(std::span<const std::uint8_t> key) {
    const std::size_t covered = size_;
    auto out = append_in(phase::open, attribute_type::message_integrity, hmac_sha1_size);
    if (out.empty()) return;
    // The header length already counts this attribute (RFC 8489 §14.5).
    hmac_sha1(key, {buf_.data(), covered}, out.first<hmac_sha1_size>());
    phase_ = phase::after_mi;
}

void message_writer::append_message_integrity_sha256(std::span<const std::uint8_t> key) {
    const std::size_t covered = size_;
    auto out = append_in(phase::after_mi, attribute_type::message_integrity_sha256,
                         hmac_sha256_size);
    if (out.empty()) return;
    hmac_sha256(key, {buf_.data(), covered}, out.first<hmac_sha256_size>());
    phase_ = phase::after_mi_sha256;
}

void message_writer::append_fingerprint() {
    const std::size_t covered = size_;
    auto out = append_in(phase::after_mi_sha256, attribute_type::fingerprint, 4);
    if (out.empty()) return;
    store_u32(out.data(), crc32({buf_.data(), covered}) ^ fingerprint_xor);
    phase_ = phase::after_fingerprint;
}

} // namespace ferry::protocol
