// How turn_handler signs what it sends, shared by its translation units (turn_handler.cpp, turn_ops.cpp,
// turn_tcp.cpp). Private to server/core/src.
#pragma once

#include "ferry/auth/keys.hpp"
#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/message.hpp"
#include "ferry/protocol/writer.hpp"

#include <string>

namespace ferry::server {

/// Signs a response the way the request was signed (RFC 8489 §9.2.4) and adds FINGERPRINT
/// when the request had one.
inline void seal(protocol::message_writer& w, bool fingerprint, const std::string& software, const auth::key* key, bool sha256) {
    if (!software.empty()) protocol::software{software}.encode(w);
    if (key != nullptr) {
        if (sha256) w.append_message_integrity_sha256(key->view());
        else w.append_message_integrity(key->view());
    }
    if (fingerprint) w.append_fingerprint();
}

inline void seal(protocol::message_writer& w, const protocol::message_view& req, const std::string& software,
                 const auth::key* key, bool sha256) {
    seal(w, req.has(protocol::attribute_type::fingerprint), software, key, sha256);
}

} // namespace ferry::server
