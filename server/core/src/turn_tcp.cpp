// RFC 6062 TCP allocations: Connect, ConnectionAttempt, ConnectionBind and the life of a peer
// data connection, as turn_handler members. The sockets live in the worker (tcp_relay.hpp).
#include "ferry/server/turn_handler.hpp"

#include "turn_seal.hpp"

#include "ferry/protocol/attributes.hpp"
#include "ferry/protocol/wire.hpp"

#include <algorithm>
#include <cstring>

namespace ferry::server {

using namespace ferry::protocol;
using std::chrono::seconds;

// RFC 6062 §5.2 Receiving a Connect Request.
std::size_t turn_handler::handle_connect(allocation& a, const message_view& req, std::span<std::uint8_t> out) {
    const auto now = clock_.now();
    const auth::key key = a.key;
    const request_context ctx{a.tuple.via, a.tuple.server, a.tuple.client};
    auto fail = [&](std::uint16_t code) { return error(ctx, req, code, out, &key, a.sha256); };
    if (!a.tcp) return fail(error::bad_request);
    // "If the request does not contain an XOR-PEER-ADDRESS attribute, or if such attribute is
    //  invalid, the server MUST return a 400 (Bad Request) error."
    const auto peer = req.get<xor_peer_address>();
    if (!peer) return fail(error::bad_request);
    const auto* relay = a.relay_for(peer->address.ip.family);
    if (relay == nullptr) return fail(error::peer_address_family_mismatch);
    // The peer policy and permissions apply to TCP peers as to UDP ones: a Connect needs the
    // CreatePermission a Send would.
    if (!peer_permitted(a, peer->address, "Connect")) return fail(error::forbidden);
    if (!a.permits(peer->address.ip, now)) {
        ++stats_.dropped_no_permission;
        return fail(error::forbidden);
    }
    // "If the server is currently processing a Connect request for this allocation with the
    //  same XOR-PEER-ADDRESS, it MUST return a 446 (Connection Already Exists) error. If the
    //  server has already successfully processed a Connect request for this allocation with
    //  the same XOR-PEER-ADDRESS, and the resulting client and peer data connections are
    //  either pending or active, it MUST return a 446 (Connection Already Exists) error."
    for (const auto& l : a.links)
        if (l.peer == peer->address) return fail(error::connection_already_exists);
    if (a.links.size() >= settings_->permissions_per_allocation) return fail(error::insufficient_capacity);

    // "Otherwise, the server MUST initiate an outgoing TCP connection. The local endpoint is
    //  the relayed transport address associated with the allocation. The remote endpoint is
    //  the one indicated by the XOR-PEER-ADDRESS attribute." The answer waits for it.
    tcp_link link;
    link.id = shared_.add_connection(a.username, false);
    link.peer = peer->address;
    link.st = tcp_link::state::connecting;
    link.expires = now + tcp_bind_timeout + seconds(10); // the I/O layer answers first
    std::copy(req.transaction_id().begin(), req.transaction_id().end(), link.connect_txid.begin());
    link.connect_fingerprint = req.has(attribute_type::fingerprint);
    a.links.push_back(link);
    links_[link.id] = &a;
    ++stats_.tcp_links;
    log::debug("{} Connect from {}: connection {} to {}", to_string(ctx.via), ctx.remote, link.id, link.peer);
    relays_.connect_tcp(relay->handle, link.peer, link.id);
    return 0;
}

void turn_handler::tcp_connect_result(std::uint32_t id, bool connected, packet_sink& sink) {
    const auto it = links_.find(id);
    if (it == links_.end()) return;
    allocation& a = *it->second;
    auto link = std::find_if(a.links.begin(), a.links.end(), [id](const tcp_link& l) { return l.id == id; });
    if (link == a.links.end() || link->st != tcp_link::state::connecting) return;
    auto buf = sink.buffer();
    if (buf.empty()) return;
    const auto cls = connected ? message_class::success_response : message_class::error_response;
    message_writer w(buf, make_message_type(method::connect, cls), link->connect_txid);
    if (connected) {
        // "If the connection is successful, it is now called a peer data connection ... The
        //  server then MUST respond with a Connect success response. The Connect success
        //  response MUST contain a CONNECTION-ID attribute."
        connection_id{id}.encode(w);
        link->st = tcp_link::state::waiting_bind;
        link->expires = clock_.now() + tcp_bind_timeout;
        shared_.ready_connection(id);
    } else {
        // "If the connection attempt fails or times out, the server MUST return a 447
        //  (Connection Timeout or Failure) error."
        error_code{error::connection_timeout_or_failure, ""}.encode(w);
    }
    seal(w, link->connect_fingerprint, software_, &a.key, a.sha256);
    const auto message = w.finish();
    const auto route = a.route;
    if (!connected) drop_link(a, id, false);
    if (!message.empty()) sink.to_client(route, message);
}

// RFC 6062 §5.3 Receiving a TCP Connection on a Relayed Transport Address.
std::uint32_t turn_handler::tcp_peer_arrived(int handle, const transport_address& peer, packet_sink& sink) {
    const auto now = clock_.now();
    allocation* a = table_.find_by_relay(handle, now);
    if (a == nullptr || !a->tcp) return 0;
    // "If no permission for this peer has been installed for this allocation, the server MUST
    //  close the connection with the peer immediately after it has been accepted."
    if (!a->permits(peer.ip, now)) {
        ++stats_.dropped_no_permission;
        return 0;
    }
    if (a->links.size() >= settings_->permissions_per_allocation) return 0;
    auto buf = sink.buffer();
    if (buf.empty()) return 0;
    tcp_link link;
    link.id = shared_.add_connection(a->username, true);
    link.peer = peer;
    link.st = tcp_link::state::waiting_bind;
    link.expires = now + tcp_bind_timeout;
    // "Otherwise, the server sends a ConnectionAttempt indication to the client over the
    //  control connection. The indication MUST include an XOR-PEER-ADDRESS attribute
    //  containing the peer's transport address, as well as a CONNECTION-ID attribute uniquely
    //  identifying the peer data connection."
    std::array<std::uint8_t, transaction_id_size> txid{};
    const auto n = ++indication_counter_;
    std::memcpy(txid.data(), &n, sizeof n);
    std::memcpy(txid.data() + sizeof n, &link.id, sizeof link.id);
    message_writer w(buf, make_message_type(method::connection_attempt, message_class::indication), txid);
    xor_peer_address{peer}.encode(w);
    connection_id{link.id}.encode(w);
    const auto message = w.finish();
    if (message.empty()) {
        shared_.drop_connection(link.id);
        return 0;
    }
    a->links.push_back(link);
    links_[link.id] = a;
    ++stats_.tcp_links;
    log::debug("tcp relay {}: connection {} from peer {}", a->relays[0].local, link.id, peer);
    sink.to_client(a->route, message);
    return link.id;
}

// RFC 6062 §5.4 Receiving a ConnectionBind Request.
std::size_t turn_handler::handle_connection_bind(const request_context& ctx, const message_view& req,
                                                 const auth::auth_result& auth, std::span<std::uint8_t> out) {
    auto fail = [&](std::uint16_t code) { return error(ctx, req, code, out, &auth.signing_key, auth.sha256); };
    // "If the client connection transport is not TCP or TLS, the server MUST return a 400 (Bad
    //  Request) error." A control connection (one with an allocation) cannot become a data
    //  connection either.
    if (ctx.via != transport::tcp && ctx.via != transport::tls) return fail(error::bad_request);
    if (table_.find({ctx.remote, ctx.local, ctx.via}, clock_.now()) != nullptr) return fail(error::bad_request);
    // "If the request does not contain the CONNECTION-ID attribute, or if this attribute does
    //  not refer to an existing pending connection, the server MUST return a 400 (Bad
    //  Request) error." Pending, and the same user's: nobody binds another user's connection.
    const auto cid = req.get<connection_id>();
    if (!cid || !shared_.claim_connection(cid->id, auth.username)) return fail(error::bad_request);
    // "Otherwise, the client connection is now called a client data connection. Data
    //  received on it MUST be sent as-is to the associated peer data connection."
    if (!relays_.bind_tcp(cid->id, ctx.socket)) return fail(error::connection_timeout_or_failure);
    message_writer w(out, make_message_type(method::connection_bind, message_class::success_response), req);
    seal(w, req, software_, &auth.signing_key, auth.sha256);
    log::debug("{} ConnectionBind from {}: connection {}", to_string(ctx.via), ctx.remote, cid->id);
    return w.finish().size();
}

void turn_handler::tcp_link_bound(std::uint32_t id) {
    const auto it = links_.find(id);
    if (it == links_.end()) return;
    for (auto& l : it->second->links)
        if (l.id == id) l.st = tcp_link::state::bound;
}

void turn_handler::tcp_link_closed(std::uint32_t id) {
    const auto it = links_.find(id);
    if (it != links_.end()) drop_link(*it->second, id, false);
}

void turn_handler::drop_link(allocation& a, std::uint32_t id, bool close) {
    std::erase_if(a.links, [id](const tcp_link& l) { return l.id == id; });
    links_.erase(id);
    shared_.drop_connection(id);
    if (close) relays_.close_tcp(id);
}

} // namespace ferry::server
