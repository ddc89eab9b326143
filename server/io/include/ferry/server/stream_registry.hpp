// A worker's stream connections (TCP and TLS) by id, so relayed data for a client that
// came over a stream finds its connection. Ids count up and are not reused while the process
// runs, so a closed connection's id can never reach a newer one (file descriptors would).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>

namespace ferry::server {

/// One end of an RFC 6062 splice (a client data connection or a peer connection). Its
/// partner may live on another worker, so these are safe to call from any thread.
class splice_end {
public:
    virtual ~splice_end() = default;
    /// Queues a copy of `bytes` for the owning thread to write.
    virtual void push(std::span<const std::uint8_t> bytes) = 0;
    /// Closes it; it then hangs up on its own partner.
    virtual void hang_up() = 0;
    /// Bytes queued and not yet written: a reader pauses while its partner's is high.
    virtual std::size_t backlog() const = 0;
    /// The partner's backlog went down: a reader paused for it reads again.
    virtual void resume() = 0;
};

class stream_client {
public:
    virtual ~stream_client() = default;
    /// Queues bytes for the client. Over the connection's buffer cap, the connection is closed.
    virtual void deliver(std::span<const std::uint8_t> bytes) = 0;
    /// RFC 6062 ConnectionBind: from the current message on, this connection carries raw bytes
    /// to and from `partner`. Returns this connection's own end, or null if it cannot.
    virtual std::shared_ptr<splice_end> splice_to(std::shared_ptr<splice_end> /*partner*/) { return nullptr; }
};

class stream_registry {
public:
    int add(std::weak_ptr<stream_client> client) {
        const int id = next_;
        next_ = next_ == INT32_MAX ? 1 : next_ + 1;
        clients_[id] = std::move(client);
        return id;
    }
    void remove(int id) { clients_.erase(id); }
    std::shared_ptr<stream_client> find(int id) const {
        auto it = clients_.find(id);
        return it == clients_.end() ? nullptr : it->second.lock();
    }

private:
    int next_ = 1;
    std::unordered_map<int, std::weak_ptr<stream_client>> clients_;
};

} // namespace ferry::server
