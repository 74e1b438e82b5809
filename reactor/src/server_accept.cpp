// How connections join a Server: listeners and their accept path (round-robin or one listener
// per loop, the max_connections refusal), outbound connects, and adoption (id, id table, start).
// The rest of the Server is in server.cpp.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include "thread_check.hpp"

#include <cerrno>

#include "connector.hpp"
#include "linger.hpp"
#include "log_rates.hpp"
#include "loop_internals.hpp"
#include "plain_transport.hpp"
#include "reactor/log.hpp"
#include "server_impl.hpp"
#include "socket_address.hpp"

namespace reactor {

namespace {
// Ids are unique in the process, across servers and loops, and never reused.
std::atomic<ConnectionId> g_next_id{1};

// Refused sockets waiting for their notice to go out, per loop; the same linger as any close
// (see TcpConnection::linger), polled as often.
constexpr std::size_t kMaxRefusing = 64;
constexpr std::chrono::seconds kRefusalLinger{2};
constexpr std::chrono::milliseconds kRefusalPoll{20};

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
        refuse(shard, fd, *group);
        log_refusal(shard, group, peer_text);
        if (group->handlers.on_refused) {
            try {
                group->handlers.on_refused(peer_text);
            } catch (const std::exception& e) {
                log_limited(log_rates::handler_threw(), "listener=", group->name,
                            " on_refused threw: ", e.what());
            } catch (...) {
                log_limited(log_rates::handler_threw(), "listener=", group->name,
                            " on_refused threw");
            }
        }
        return;
    }
    adopt(shard, fd, peer_text, group, tcp, true);
}

RefusedSocket::RefusedSocket(Shard& owner, int socket, std::unique_ptr<Transport> through)
    : shard(owner), fd(socket), transport(std::move(through)) {}

RefusedSocket::~RefusedSocket() {
    event.reset();
    transport->close();
}

void RefusedSocket::on_event(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<RefusedSocket*>(arg);
    // Done once the peer's kernel has the notice, the peer is gone, or at the deadline.
    if (linger_done(*self->transport, what, self->started, kRefusalLinger)) {
        end(self->shard, self->fd);
    }
}

void Server::Impl::refuse(Shard& shard, int fd, const ConnectionGroup& group) {
    // The notice goes through the listener's transport, when that needs no handshake first; a
    // TLS client is refused without one, its socket lingering as a plain one (nothing is
    // answered). The socket is fresh, so a short notice fits in its send buffer and a
    // non-blocking write is enough.
    const bool handshakes = group.transport && group.transport->handshake_timeout().count() > 0;
    std::unique_ptr<Transport> transport = group.transport && !handshakes
                                               ? group.transport->create()
                                               : std::make_unique<PlainTransport>();
    transport->attach(fd, {});
    if (!handshakes && transport->handshake().status == Transport::Handshake::Status::done) {
        const std::string notice = group.protocol->create()->busy_notice();
        if (!notice.empty()) {
            const IoSlice slice{notice.data(), notice.size()};
            [[maybe_unused]] const IoResult put = transport->write(&slice, 1);
        }
    }
    if (shard.refusing.size() >= kMaxRefusing || !transport->shutdown_write()) {
        transport->close();
        return;
    }
    auto refused = std::make_unique<RefusedSocket>(shard, fd, std::move(transport));
    refused->event.reset(event_new(event_base_of(*shard.loop), fd, EV_READ | EV_PERSIST,
                                   &RefusedSocket::on_event, refused.get()));
    if (!refused->event) return;  // closed by its destructor
    // A persistent event's timeout restarts with each activation: it is the polling interval.
    const timeval poll = to_timeval(kRefusalPoll);
    event_add(refused->event.get(), &poll);
    auto* raw = refused.get();
    shard.refusing.emplace(fd, std::move(refused));
    RefusedSocket::on_event(fd, EV_READ, raw);
}

void RefusedSocket::end(Shard& shard, int fd) {
    const auto it = shard.refusing.find(fd);
    if (it == shard.refusing.end()) return;
    RefusedSocket* doomed = it->second.release();
    shard.refusing.erase(it);
    event_del(doomed->event.get());
    // The descriptor stays open until then, so no new socket can take its number meanwhile.
    shard.loop->defer([doomed] { delete doomed; });
}

void Server::Impl::log_refusal(Shard& shard, const std::shared_ptr<ConnectionGroup>& group,
                               const std::string& peer) {
    // A flood of refused clients must not become a flood of log lines (nor block on stderr), and
    // none of them may go unreported.
    group->refused.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t wait_ms = 0;
    {
        std::lock_guard lock(group->refusal_mutex);
        ++group->refused_unlogged;
        group->last_refused_peer = peer;
        if (now - group->refusal_logged_ms < 1000) {
            if (group->refusal_report_armed) return;
            group->refusal_report_armed = true;
            wait_ms = 1000 - (now - group->refusal_logged_ms);
        }
    }
    if (wait_ms == 0) {
        report_refusals(*group);
        return;
    }
    shard.loop->run_after(std::chrono::milliseconds(wait_ms),
                          [weak = std::weak_ptr<Impl*>(alive), group] {
                              if (weak.lock()) report_refusals(*group);
                          });
}

void Server::Impl::report_refusals(ConnectionGroup& group) {
    std::uint64_t count = 0;
    std::string peer;
    {
        std::lock_guard lock(group.refusal_mutex);
        group.refusal_report_armed = false;
        if (group.refused_unlogged == 0) return;
        count = group.refused_unlogged;
        group.refused_unlogged = 0;
        peer = group.last_refused_peer;
        group.refusal_logged_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count();
    }
    log(LogLevel::warn, "listener=", group.name, " max_connections ", group.limits.max_connections,
        " reached: refused ", count, count == 1 ? " connection" : " connections",
        " since the last report, the last from ", peer, " (",
        group.refused.load(std::memory_order_relaxed), " in all)");
}

void Server::Impl::connection_ended(void* owner, TcpConnection& connection,
                                    TcpConnection::Ending how) {
    auto* shard = static_cast<Shard*>(owner);
    if (how == TcpConnection::Ending::closed) {
        static_cast<Impl*>(shard->server)->retire(*shard, connection.id());
    } else {
        static_cast<Impl*>(shard->server)->release(*shard, connection.id());
    }
}

ConnectionId Server::Impl::adopt(Shard& shard, int fd, std::string peer,
                                 const std::shared_ptr<ConnectionGroup>& group, bool tcp,
                                 bool accepted, TcpConnection::OpenedFn opened) {
    if (tcp) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const ConnectionId id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    std::unique_ptr<TcpConnection> conn;
    try {
        conn = std::make_unique<TcpConnection>(*shard.loop, shard.counters, id, fd, std::move(peer),
                                               group, &Impl::connection_ended, &shard, accepted);
    } catch (const std::bad_alloc&) {
        return 0;  // the socket is closed
    }
    auto* raw = conn.get();
    if (opened) raw->on_opened(std::move(opened));
    shard.live.emplace(id, std::move(conn));
    {
        std::lock_guard lock(ids_mutex);
        ids.emplace(id, Entry{shard.index, raw});
    }
    raw->start();
    return id;
}

Endpoint Server::listen(ListenOptions options) {
    REACTOR_LOOP_THREAD_ONLY(*impl_->main().loop, "Server::listen");
    auto group = make_group(options.name, std::move(options.protocol), std::move(options.handlers),
                            options.limits);
    group->transport = std::move(options.transport);
    group->filters = std::move(options.accept_filters);
    if (impl_->budget->limit != 0) group->budget = impl_->budget;
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
        group->protocol->name(), group->transport ? " over " : "",
        group->transport ? group->transport->name() : "", ", ", impl->shards.size(),
        per_loop ? " loops, reuseport)" : " loops)");
    return local;
}

void Server::connect(ConnectOptions options,
                     std::function<void(ConnectionId, const std::string&)> done) {
    auto group = make_group(options.name, std::move(options.protocol), std::move(options.handlers),
                            options.limits);
    group->transport = std::move(options.transport);
    if (impl_->budget->limit != 0) group->budget = impl_->budget;
    const bool tcp = !options.endpoint.is_unix();
    Shard* shard = impl_->current_shard();
    if (shard == nullptr) shard = &impl_->main();
    connect_stream(
        *shard->loop, options.endpoint, options.timeout,
        [weak = std::weak_ptr<Impl*>(impl_->alive), shard, group, tcp, done = std::move(done)](
            int fd, const std::string& peer, const std::string& error) {
            const auto self = weak.lock();
            if (!self || fd < 0) {
                if (fd >= 0) ::close(fd);
                if (done) done(0, error.empty() ? "server destroyed" : error);
                return;
            }
            // A connection that completes during shutdown would keep the shutdown from ending.
            if ((*self)->shutting_down.load()) {
                ::close(fd);
                if (done) done(0, "server shutting down");
                return;
            }
            // With a handshake, done waits for its end: after on_open, or with why it failed.
            if (group->transport && group->transport->handshake_timeout().count() > 0) {
                const ConnectionId id = (*self)->adopt(*shard, fd, peer, group, tcp, false, done);
                if (id == 0 && done) done(0, "out of memory");
                return;
            }
            const ConnectionId id = (*self)->adopt(*shard, fd, peer, group, tcp, false);
            if (done) done(id, {});
        });
}

}  // namespace reactor
