// Fuzzes the message parser and every typed attribute decoder; a message that parses is
// rebuilt attribute by attribute and must parse again to the same index.
#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/integrity.hpp"

#include <cstdlib>
#include <vector>

using namespace ferry::protocol;

template <class... A> static void decode_all(const message_view& m) {
    (static_cast<void>(m.get<A>()), ...);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    message_view m;
    if (m.parse({data, size})) return 0;
    decode_all<mapped_address, xor_mapped_address, xor_peer_address, xor_relayed_address,
               response_origin, other_address, alternate_server, source_address, changed_address,
               username, realm, nonce, software, alternate_domain, userhash, ferry::protocol::data,
               reservation_token, padding, lifetime, connection_id, channel_number,
               requested_transport, requested_address_family, additional_address_family,
               even_port, dont_fragment, change_request, response_port, icmp, error_code,
               address_error_code, unknown_attributes, password_algorithm_attribute,
               password_algorithms>(m);
    static const std::uint8_t key[] = {'k', 'e', 'y'};
    verify_message_integrity(m, key);
    verify_message_integrity_sha256(m, key);
    check_fingerprint(m);
    std::array<std::uint16_t, 16> unknown{};
    m.unknown_required(unknown);

    // Round trip: copy every indexed attribute through the writer and parse the result.
    static std::vector<std::uint8_t> buf(70000);
    message_writer w(buf, m.type(), m);
    for (const auto& a : m.attributes()) {
        const auto t = static_cast<attribute_type>(a.type);
        if (t == attribute_type::message_integrity || t == attribute_type::message_integrity_sha256 ||
            t == attribute_type::fingerprint)
            break;
        w.append_bytes(t, m.value(a));
    }
    auto out = w.finish();
    if (out.empty()) std::abort(); // a parsed message always fits when rebuilt
    message_view again;
    if (again.parse(out)) std::abort();
    if (again.type() != m.type()) std::abort();
    return 0;
}
