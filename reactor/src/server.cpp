#include "reactor/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connector.hpp"
#include "listener.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"
#include "socket_address.hpp"
#include "tcp_connection.hpp"

namespace reactor {

namespace {
// Ids are unique in the process, across servers and loops, and never reused.
std::atomic<ConnectionId> g_next_id{1};

constexpr std::chrono::milliseconds kLagProbe{100};
}  // namespace

// One loop and what lives on it. Everything but the counters belongs to that loop's thread.
struct Shard {
    std::size_t index = 0;
    EventLoop* loop = nullptr;
    std::unique_ptr<EventLoop> owned_loop;  // loops 1..n-1, run by `thread`
    std::thread thread;
    std::unordered_map<ConnectionId, std::unique_ptr<TcpConnection>> live;
    // Closed connections whose sockets still linger (see TcpConnection::linger).
    std::unordered_map<ConnectionId, std::unique_ptr<TcpConnection>> lingering;
    std::vector<std::unique_ptr<Listener>> listeners;
    LoopCounters counters;
    TimerHandle lag_probe;
    bool drained = false;  // reported empty during shutdown
};

struct Server::Impl {
    std::vector<std::unique_ptr<Shard>> shards;
    // Posted tasks hold a weak reference and do nothing once the server is gone.
    std::shared_ptr<Impl*> alive = std::make_shared<Impl*>(this);
    std::atomic<std::size_t> next_shard{0};  // round-robin accept

    std::atomic<bool> shutting_down{false};
    std::atomic<std::size_t> shards_draining{0};
    std::function<void()> shutdown_done;  // loop 0

    // Open connections: where they live and their listener, readable from any thread.
    struct Entry {
        std::size_t shard;
        std::string listener;
    };
    mutable std::mutex ids_mutex;
    std::unordered_map<ConnectionId, Entry> ids;

    Shard& main() { return *shards[0]; }

    // True when the calling thread may touch the shard's state directly: its loop thread, or loop 0
    // before it runs (setup, single-threaded by contract). A worker loop's thread never stands in
    // for a loop 0 that is not running: workers run concurrently with the setup thread and with
    // each other, so they post to loop 0 even then.
    bool owns(const Shard& shard) const {
        if (shard.loop->in_loop_thread()) return true;
        if (shard.index != 0 || shard.loop->running()) return false;
        for (const auto& other : shards) {
            if (other->loop->in_loop_thread()) return false;
        }
        return true;
    }

    template <typename Fn>
    void on_shard(Shard& shard, Fn fn) {
        if (owns(shard)) {
            fn();
            return;
        }
        shard.loop->post([weak = std::weak_ptr<Impl*>(alive), fn = std::move(fn)]() mutable {
            if (weak.lock()) fn();
        });
    }

    // Runs fn on the shard's thread and waits for it. Only for setup from loop 0 (or before it
    // runs): worker loops never wait on loop 0, so this cannot deadlock.
    template <typename Fn>
    auto on_shard_wait(Shard& shard, Fn fn) -> decltype(fn()) {
        if (owns(shard)) return fn();
        std::packaged_task<decltype(fn())()> task(std::move(fn));
        auto result = task.get_future();
        shard.loop->post([&task] { task(); });
        return result.get();
    }

    Shard* current_shard() {
        for (auto& shard : shards) {
            if (shard->loop->in_loop_thread()) return shard.get();
        }
        return owns(main()) ? &main() : nullptr;
    }

    // Runs now(conn) when the calling thread owns the connection's loop, otherwise posts the task
    // that make_later() builds (it must own copies of its data, so it is only built when needed).
    // False when the id is not open.
    template <typename Now, typename MakeLater>
    bool route(ConnectionId id, Now now, MakeLater make_later) {
        std::size_t index = 0;
        {
            std::lock_guard lock(ids_mutex);
            const auto it = ids.find(id);
            if (it == ids.end()) return false;
            index = it->second.shard;
        }
        Shard& shard = *shards[index];
        if (owns(shard)) {
            const auto it = shard.live.find(id);
            if (it == shard.live.end() || it->second->closing()) return false;
            now(*it->second);
            return true;
        }
        shard.loop->post(
            [weak = std::weak_ptr<Impl*>(alive), &shard, id, later = make_later()]() mutable {
                if (!weak.lock()) return;
                const auto it = shard.live.find(id);
                if (it != shard.live.end() && !it->second->closing()) later(*it->second);
            });
        return true;
    }

    ConnectionId adopt(Shard& shard, BufferEventPtr bev, std::string peer,
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
        log(LogLevel::debug, "listener=", group->name, " conn=", id, " loop=", shard.index,
            " opened from ", raw->peer());
        raw->start();
        return id;
    }

    // The connection closed: its id is forgotten now; the object waits for its release.
    void retire(Shard& shard, ConnectionId id) {
        {
            std::lock_guard lock(ids_mutex);
            ids.erase(id);
        }
        const auto it = shard.live.find(id);
        if (it == shard.live.end()) return;
        shard.lingering.emplace(id, std::move(it->second));
        shard.live.erase(it);
    }

    // The connection's socket is done with: destroy it after this callback.
    void release(Shard& shard, ConnectionId id) {
        const auto it = shard.lingering.find(id);
        if (it == shard.lingering.end()) return;
        auto* doomed = it->second.release();
        shard.lingering.erase(it);
        shard.loop->defer([doomed] { delete doomed; });
        if (shutting_down.load() && shard.live.empty() && shard.lingering.empty()) {
            shard_drained(shard);
        }
    }

    void shard_drained(Shard& shard) {
        if (shard.drained) return;
        shard.drained = true;
        if (shards_draining.fetch_sub(1) != 1) return;
        // The last loop to drain reports, on loop 0.
        on_shard(main(), [this] {
            if (!shutdown_done) return;
            auto done = std::move(shutdown_done);
            shutdown_done = nullptr;
            main().loop->defer(std::move(done));
        });
    }

    void accept(Shard& shard, int fd, const std::string& peer_text, bool tcp,
                const std::shared_ptr<ConnectionGroup>& group) {
        if (shutting_down.load()) {
            ::close(fd);
            return;
        }
        if (group->limits.max_connections != 0 &&
            group->open.load() >= group->limits.max_connections) {
            // Refuse with the protocol's notice. The socket is fresh, so a short notice fits in
            // its send buffer and a non-blocking write is enough.
            const std::string notice = group->protocol->create()->busy_notice();
            if (!notice.empty()) {
                [[maybe_unused]] const auto n =
                    ::send(fd, notice.data(), notice.size(), MSG_NOSIGNAL);
            }
            ::close(fd);
            log_refusal(*group, peer_text);
            return;
        }
        BufferEventPtr bev(bufferevent_socket_new(
            static_cast<event_base*>(shard.loop->native_handle()), fd, BEV_OPT_CLOSE_ON_FREE));
        if (!bev) {
            ::close(fd);
            return;
        }
        adopt(shard, std::move(bev), peer_text, group, tcp);
    }

    static void log_refusal(ConnectionGroup& group, const std::string& peer) {
        // A flood of refused clients must not become a flood of log lines (nor block on stderr).
        const std::uint64_t refused = group.refused.fetch_add(1) + 1;
        const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count();
        std::int64_t last = group.refusal_logged_ms.load();
        if (now - last < 1000 || !group.refusal_logged_ms.compare_exchange_strong(last, now))
            return;
        log(LogLevel::warn, "listener=", group.name, " max_connections ",
            group.limits.max_connections, " reached: refused ", peer, " (", refused,
            " refused so far)");
    }

    void start_lag_probe(Shard& shard) {
        auto expected = std::make_shared<std::chrono::steady_clock::time_point>(
            std::chrono::steady_clock::now() + kLagProbe);
        Shard* s = &shard;
        shard.lag_probe = shard.loop->run_every(kLagProbe, [s, expected] {
            const auto now = std::chrono::steady_clock::now();
            const auto late =
                std::chrono::duration_cast<std::chrono::microseconds>(now - *expected);
            s->counters.lag_us.store(std::max<std::int64_t>(0, late.count()));
            *expected = now + kLagProbe;
        });
    }
};

Server::Server(EventLoop& loop, unsigned threads) : impl_(std::make_unique<Impl>()) {
    if (threads == 0) threads = 1;
    for (unsigned i = 0; i < threads; ++i) {
        auto shard = std::make_unique<Shard>();
        shard->index = i;
        if (i == 0) {
            shard->loop = &loop;
        } else {
            shard->owned_loop = std::make_unique<EventLoop>();
            shard->loop = shard->owned_loop.get();
            EventLoop* worker = shard->loop;
            shard->thread = std::thread([worker] { worker->run(); });
            // Wait until the loop runs, so that "not running" always means loop 0 before setup.
            std::promise<void> running;
            worker->post([&running] { running.set_value(); });
            running.get_future().wait();
        }
        impl_->shards.push_back(std::move(shard));
    }
    for (auto& shard : impl_->shards) {
        Shard* s = shard.get();
        impl_->on_shard_wait(*s, [this, s] {
            impl_->start_lag_probe(*s);
            return 0;
        });
    }
}

Server::~Server() {
    // Connections still open are dropped without callbacks: the application chose this by
    // destroying the server (shutdown() is the graceful way). Each loop frees its own.
    for (auto& shard : impl_->shards) {
        Shard* s = shard.get();
        auto drop = [s] {
            s->lag_probe.cancel();
            for (auto& listener : s->listeners) listener->close();
            s->listeners.clear();
            s->live.clear();
            s->lingering.clear();
        };
        if (s->index == 0) {
            drop();
        } else {
            s->loop->post(drop);
            s->loop->stop();
            s->thread.join();
        }
    }
}

namespace {
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
            auto listener = std::make_unique<Listener>(*shard->loop, where, options.backlog,
                                                       options.name, on_accept, per_loop);
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
            const ConnectionId id = (*self)->adopt(*shard, std::move(bev), peer, group, tcp);
            if (done) done(id, {});
        });
}

bool Server::send(ConnectionId id, std::string_view payload) {
    return impl_->route(
        id, [payload](TcpConnection& c) { c.send(payload); },
        [payload] { return [copy = std::string(payload)](TcpConnection& c) { c.send(copy); }; });
}

bool Server::send_raw(ConnectionId id, std::string_view bytes) {
    return impl_->route(
        id, [bytes](TcpConnection& c) { c.send_raw(bytes); },
        [bytes] { return [copy = std::string(bytes)](TcpConnection& c) { c.send_raw(copy); }; });
}

bool Server::close(ConnectionId id, CloseMode mode, CloseReason reason) {
    auto fn = [mode, reason](TcpConnection& c) { c.close(mode, reason); };
    return impl_->route(id, fn, [fn] { return fn; });
}

std::size_t Server::broadcast(std::string_view payload, std::string_view listener) {
    std::size_t expected = 0;
    {
        std::lock_guard lock(impl_->ids_mutex);
        for (const auto& [id, entry] : impl_->ids) {
            if (listener.empty() || entry.listener == listener) ++expected;
        }
    }
    auto text = std::make_shared<const std::string>(payload);
    auto name = std::make_shared<const std::string>(listener);
    for (auto& shard_ptr : impl_->shards) {
        Shard* shard = shard_ptr.get();
        impl_->on_shard(*shard, [shard, text, name] {
            for (auto& [id, conn] : shard->live) {
                if (conn->closing()) continue;
                if (!name->empty() && conn->listener() != *name) continue;
                conn->send(*text);
            }
        });
    }
    return expected;
}

std::size_t Server::connection_count() const {
    std::lock_guard lock(impl_->ids_mutex);
    return impl_->ids.size();
}

Connection* Server::find(ConnectionId id) {
    Shard* shard = impl_->current_shard();
    if (shard == nullptr) return nullptr;
    const auto it = shard->live.find(id);
    return it == shard->live.end() ? nullptr : it->second.get();
}

void Server::for_each(const std::function<void(Connection&)>& fn) {
    Shard* shard = impl_->current_shard();
    if (shard == nullptr) return;
    std::vector<TcpConnection*> snapshot;
    snapshot.reserve(shard->live.size());
    for (auto& [id, conn] : shard->live) snapshot.push_back(conn.get());
    for (auto* conn : snapshot) fn(*conn);
}

void Server::collect_connections(std::function<void(std::vector<ConnectionInfo>)> done) {
    struct Gather {
        std::mutex mutex;
        std::vector<ConnectionInfo> found;
        std::size_t remaining;
        std::function<void(std::vector<ConnectionInfo>)> done;
    };
    auto gather = std::make_shared<Gather>();
    gather->remaining = impl_->shards.size();
    gather->done = std::move(done);
    for (auto& shard_ptr : impl_->shards) {
        Shard* shard = shard_ptr.get();
        impl_->on_shard(*shard, [shard, gather] {
            std::vector<ConnectionInfo> mine;
            for (auto& [id, conn] : shard->live) {
                if (conn->closing()) continue;
                mine.push_back({id, conn->listener(), conn->peer(), shard->index, conn->stats()});
            }
            bool last = false;
            {
                std::lock_guard lock(gather->mutex);
                gather->found.insert(gather->found.end(), mine.begin(), mine.end());
                last = --gather->remaining == 0;
            }
            if (last) {
                std::sort(gather->found.begin(), gather->found.end(),
                          [](const auto& a, const auto& b) { return a.id < b.id; });
                gather->done(std::move(gather->found));
            }
        });
    }
}

std::vector<LoopStats> Server::loop_stats() const {
    std::vector<LoopStats> out;
    for (const auto& shard : impl_->shards) {
        out.push_back({shard->counters.connections.load(), shard->counters.messages.load(),
                       std::chrono::microseconds(shard->counters.lag_us.load())});
    }
    return out;
}

std::size_t Server::loop_count() const {
    return impl_->shards.size();
}

void Server::shutdown(std::function<void()> done) {
    impl_->shutdown_done = std::move(done);
    impl_->shards_draining.store(impl_->shards.size());
    impl_->shutting_down.store(true);
    for (auto& shard_ptr : impl_->shards) {
        Shard* shard = shard_ptr.get();
        Impl* impl = impl_.get();
        impl_->on_shard(*shard, [impl, shard] {
            for (auto& listener : shard->listeners) listener->close();
            if (shard->live.empty() && shard->lingering.empty()) {
                impl->shard_drained(*shard);
                return;
            }
            std::vector<TcpConnection*> open;
            for (auto& [id, conn] : shard->live) open.push_back(conn.get());
            for (auto* conn : open) conn->close(CloseMode::flush, CloseReason::shutdown);
        });
    }
}

EventLoop& Server::loop() const {
    return *impl_->shards[0]->loop;
}

}  // namespace reactor
