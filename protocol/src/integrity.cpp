#include "ferry/protocol/integrity.hpp"

#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <array>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdexcept>

namespace ferry::protocol {
namespace {

// One HMAC context per digest per thread, created on first use and reused for every message.
class hmac_context {
public:
    explicit hmac_context(const char* digest) {
        EVP_MAC* mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
        if (mac == nullptr) throw std::runtime_error("OpenSSL: HMAC unavailable");
        ctx_ = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
            OSSL_PARAM_construct_end()};
        if (ctx_ == nullptr || EVP_MAC_CTX_set_params(ctx_, params) != 1)
            throw std::runtime_error(std::string("OpenSSL: HMAC-") + digest + " unavailable");
    }
    ~hmac_context() { EVP_MAC_CTX_free(ctx_); }
    hmac_context(const hmac_context&) = delete;
    hmac_context& operator=(const hmac_context&) = delete;

    void init(std::span<const std::uint8_t> key) {
        // A zero-length key is legal for HMAC; OpenSSL wants a non-null pointer for it.
        static const std::uint8_t empty = 0;
        EVP_MAC_init(ctx_, key.empty() ? &empty : key.data(), key.size(), nullptr);
    }
    void update(std::span<const std::uint8_t> data) {
        if (!data.empty()) EVP_MAC_update(ctx_, data.data(), data.size());
    }
    void final(std::span<std::uint8_t> out) {
        std::size_t len = 0;
        EVP_MAC_final(ctx_, out.data(), &len, out.size());
    }

private:
    EVP_MAC_CTX* ctx_ = nullptr;
};

hmac_context& sha1_ctx() {
    thread_local hmac_context ctx("SHA1");
    return ctx;
}
hmac_context& sha256_ctx() {
    thread_local hmac_context ctx("SHA256");
    return ctx;
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr auto crc_table = make_crc_table();

// HMAC over the message up to attribute `a`, with the header length rewritten to end just
// after `a` (RFC 8489 §14.5, §14.6): the header copy is hashed, then the body in place.
void mac_up_to(hmac_context& ctx, const message_view& msg, const attribute_ref& a,
               std::span<const std::uint8_t> key, std::span<std::uint8_t> out) {
    auto bytes = msg.bytes();
    std::array<std::uint8_t, header_size> header;
    std::copy_n(bytes.begin(), header_size, header.begin());
    store_u16(header.data() + 2,
              static_cast<std::uint16_t>(a.offset + 4 + padded(a.length) - header_size));
    ctx.init(key);
    ctx.update(header);
    ctx.update(bytes.subspan(header_size, a.offset - header_size));
    ctx.final(out);
}

} // namespace

void hmac_sha1(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
               std::span<std::uint8_t, hmac_sha1_size> out) {
    auto& ctx = sha1_ctx();
    ctx.init(key);
    ctx.update(data);
    ctx.final(out);
}

void hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
                 std::span<std::uint8_t, hmac_sha256_size> out) {
    auto& ctx = sha256_ctx();
    ctx.init(key);
    ctx.update(data);
    ctx.final(out);
}

void md5(std::span<const std::uint8_t> data, std::span<std::uint8_t, md5_size> out) {
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_md5(), nullptr);
}

void sha256(std::span<const std::uint8_t> data, std::span<std::uint8_t, sha256_size> out) {
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
}

std::uint32_t crc32(std::span<const std::uint8_t> data) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (auto b : data) c = crc_table[(c ^ b) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

bool equal_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool verify_message_integrity(const message_view& msg, std::span<const std::uint8_t> key) {
    const auto* a = msg.find(attribute_type::message_integrity);
    if (a == nullptr || a->length != hmac_sha1_size) return false;
    std::array<std::uint8_t, hmac_sha1_size> mac;
    mac_up_to(sha1_ctx(), msg, *a, key, mac);
    return equal_constant_time(mac, msg.value(*a));
}

bool verify_message_integrity_sha256(const message_view& msg, std::span<const std::uint8_t> key) {
    const auto* a = msg.find(attribute_type::message_integrity_sha256);
    if (a == nullptr || a->length < 16 || a->length > hmac_sha256_size || a->length % 4 != 0)
        return false;
    std::array<std::uint8_t, hmac_sha256_size> mac;
    mac_up_to(sha256_ctx(), msg, *a, key, mac);
    return equal_constant_time(std::span(mac).first(a->length), msg.value(*a));
}

fingerprint_status check_fingerprint(const message_view& msg) {
    const auto* a = msg.find(attribute_type::fingerprint);
    if (a == nullptr) return fingerprint_status::absent;
    if (a->length != 4) return fingerprint_status::invalid;
    // FINGERPRINT is last (the parser guarantees it), so the header length already covers it.
    const auto expected = crc32(msg.bytes().first(a->offset)) ^ fingerprint_xor;
    return load_u32(msg.value(*a).data()) == expected ? fingerprint_status::valid
                                                      : fingerprint_status::invalid;
}

} // namespace ferry::protocol
