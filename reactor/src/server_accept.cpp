// How connections join a Server: listeners and their accept path (round-robin or one listener
// per loop, the max_connections refusal), outbound connects, and adoption (id, id table, start).
// The rest of the Server is in server.cpp.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connector.hpp"
#include "log_rates.hpp"
#include "reactor/log.hpp"
#include "server_impl.hpp"
#include "socket_address.hpp"

namespace reactor {

namespace {
// Ids are unique in the process, across servers and loops, and never reused.
std::atomic<ConnectionId> g_next_id{1};

std::shared_ptr<ConnectionGroup> make_group(std::string name,
                                            std::shared_ptr<const ProtocolFactory> protocol,
                                            Handlers handlers, ConnectionLimits limits) {
    auto group = std::make_shared<ConnectionGroup>();
    group->name = std::move(name);
    group->protocol = protocol ? std::move(protocol) : raw_protocol();
    group->handlers = std::move(handlers);
    group->limits = limits;
    return group;
}
}  // namespace

void Server::Impl::accept(Shard& shard, int fd, const std::string& peer_text, bool tcp,
                          const std::shared_ptr<ConnectionGroup>& group) {
    if (shutting_down.load()) {
        ::close(fd);
        return;
    }
    if (group->limits.max_connections != 0 && group->open.load() >= group->limits.max_connections) {
        // Refuse with the protocol's notice. The socket is fresh, so a short notice fits in
        // its send buffer and a non-blocking write is enough.
        const std::string notice = group->protocol->create()->busy_notice();
        if (!notice.empty()) {
            [[maybe_unused]] const auto n = ::send(fd, notice.data(), notice.size(), MSG_NOSIGNAL);
        }
        ::close(fd);
        log_refusal(*group, peer_text);
        return;
    }
    BufferEventPtr bev(bufferevent_socket_new(static_cast<event_base*>(shard.loop->native_handle()),
                                              fd, BEV_OPT_CLOSE_ON_FREE));
    if (!bev) {
        ::close(fd);
        return;
    }
    adopt(shard, std::move(bev), peer_text, group, tcp);
}

void Server::Impl::log_refusal(ConnectionGroup& group, const std::string& peer) {
    // A flood of refused clients must not become a flood of log lines (nor block on stderr).
    const std::uint64_t refused = group.refused.fetch_add(1) + 1;
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t last = group.refusal_logged_ms.load();
    if (now - last < 1000 || !group.refusal_logged_ms.compare_exchange_strong(last, now)) return;
    log(LogLevel::warn, "listener=", group.name, " max_connections ", group.limits.max_connections,
        " reached: refused ", peer, " (", refused, " refused so far)");
}

ConnectionId Server::Impl::adopt(Shard& shard, BufferEventPtr bev, std::string peer,
                                 const std::shared_ptr<ConnectionGroup>& group, bool tcp) {
    const int fd = bufferevent_getfd(bev.get());
    if (tcp) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const ConnectionId id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    Shard* where = &shard;
    auto conn = std::make_unique<TcpConnection>(
        *shard.loop, shard.counters, id, std::move(bev), std::move(peer), group,
        [this, where](TcpConnection& ended, TcpConnection::Ending how) {
            if (how == TcpConnection::Ending::closed) {
                retire(*where, ended.id());
            } else {
                release(*where, ended.id());
            }
        });
    auto* raw = conn.get();
    shard.live.emplace(id, std::move(conn));
    {
        std::lock_guard lock(ids_mutex);
        ids.emplace(id, Entry{shard.index, group->name});
    }
    log_limited(log_rates::connection_opened(), "listener=", group->name, " conn=", id,
                " loop=", shard.index, " opened from ", raw->peer());
    raw->start();
    return id;
}

Endpoint Server::listen(ListenOptions options) {
    auto group = make_group(options.name, std::move(options.protocol), std::move(options.handlers),
                            options.limits);
    Impl* impl = impl_.get();
    const bool per_loop = options.accept == AcceptMode::reuse_port && !options.endpoint.is_unix() &&
                          impl->shards.size() > 1;
    Endpoint where = options.endpoint;
    Endpoint local;
    for (auto& shard_ptr : impl->shards) {
        Shard* shard = shard_ptr.get();
        if (!per_loop && shard->index != 0) break;
        Listener::AcceptFn on_accept;
        if (per_loop) {
            on_accept = [impl, shard, group](int fd, const sockaddr* peer, socklen_t len) {
                impl->accept(*shard, fd, describe(peer, len), peer->sa_family != AF_UNIX, group);
            };
        } else {
            on_accept = [impl, group](int fd, const sockaddr* peer, socklen_t len) {
                Shard& target = *impl->shards[impl->next_shard.fetch_add(1) % impl->shards.size()];
                const bool tcp = peer->sa_family != AF_UNIX;
                std::string text = describe(peer, len);
                if (target.index == 0) {
                    impl->accept(target, fd, text, tcp, group);
                    return;
                }
                // Hand the descriptor to its loop; it is closed there if the server is gone.
                target.loop->post(
                    [weak = std::weak_ptr<Impl*>(impl->alive), &target, fd, text, tcp, group] {
                        if (const auto self = weak.lock()) {
                            (*self)->accept(target, fd, text, tcp, group);
                        } else {
                            ::close(fd);
                        }
                    });
            };
        }
        local = impl->on_shard_wait(*shard, [&, shard] {
            const PortSharing sharing = options.share_port  ? PortSharing::shared
                                        : !per_loop         ? PortSharing::none
                                        : shard->index == 0 ? PortSharing::group_first
                                                            : PortSharing::group_member;
            auto listener = std::make_unique<Listener>(*shard->loop, where, options.backlog,
                                                       options.name, on_accept, sharing);
            Endpoint bound = listener->local();
            shard->listeners.push_back(std::move(listener));
            return bound;
        });
        where = local;  // port 0: the other loops bind the port the first one got
    }
    log(LogLevel::info, "listener=", options.name, " listening on ", local.to_string(), " (",
        group->protocol->name(), ", ", impl->shards.size(),
        per_loop ? " loops, reuseport)" : " loops)");
    return local;
}

void Server::connect(ConnectOptions options,
                     std::function<void(ConnectionId, const std::string&)> done) {
    auto group = make_group(options.name, std::move(options.protocol), std::move(options.handlers),
                            options.limits);
    const bool tcp = !options.endpoint.is_unix();
    Shard* shard = impl_->current_shard();
    if (shard == nullptr) shard = &impl_->main();
    connect_stream(
        *shard->loop, options.endpoint, options.timeout,
        [weak = std::weak_ptr<Impl*>(impl_->alive), shard, group, tcp, done = std::move(done)](
            BufferEventPtr bev, const std::string& peer, const std::string& error) {
            const auto self = weak.lock();
            if (!self || !bev) {
                if (done) done(0, error.empty() ? "server destroyed" : error);
                return;
            }
            // A connection that completes during shutdown would keep the shutdown from ending.
            if ((*self)->shutting_down.load()) {
                if (done) done(0, "server shutting down");
                return;
            }
            const ConnectionId id = (*self)->adopt(*shard, std::move(bev), peer, group, tcp);
            if (done) done(id, {});
        });
}

}  // namespace reactor
