#include "ferry/server/request.hpp"

namespace ferry::server {

std::string_view to_string(transport t) {
    switch (t) {
    case transport::udp: return "udp";
    case transport::tcp: return "tcp";
    case transport::tls: return "tls";
    case transport::dtls: return "dtls";
    }
    return "?";
}

} // namespace ferry::server
