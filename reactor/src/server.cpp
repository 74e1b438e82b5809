// The Server's loops, routing by id from any thread, and shutdown. How connections join is in
// server_accept.cpp; the state both share is in server_impl.hpp.

#include <algorithm>
#include "thread_check.hpp"

#include "reactor/log.hpp"
#include "server_impl.hpp"

namespace reactor {

namespace {
constexpr std::chrono::milliseconds kLagProbe{100};
}  // namespace

bool Server::Impl::owns(const Shard& shard) const {
    if (shard.loop->in_loop_thread()) return true;
    if (shard.index != 0 || shard.loop->running()) return false;
    for (const auto& other : shards) {
        if (other->loop->in_loop_thread()) return false;
    }
    return true;
}

Shard* Server::Impl::current_shard() {
    for (auto& shard : shards) {
        if (shard->loop->in_loop_thread()) return shard.get();
    }
    return owns(main()) ? &main() : nullptr;
}

void Server::Impl::retire(Shard& shard, ConnectionId id) {
    {
        std::lock_guard lock(ids_mutex);
        ids.erase(id);
    }
    const auto it = shard.live.find(id);
    if (it == shard.live.end()) return;
    shard.lingering.emplace(id, std::move(it->second));
    shard.live.erase(it);
}

void Server::Impl::release(Shard& shard, ConnectionId id) {
    const auto it = shard.lingering.find(id);
    if (it == shard.lingering.end()) return;
    auto* doomed = it->second.release();
    shard.lingering.erase(it);
    shard.loop->defer([doomed] { delete doomed; });
    if (shutting_down.load() && shard.live.empty() && shard.lingering.empty()) {
        shard_drained(shard);
    }
}

void Server::Impl::shard_drained(Shard& shard) {
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

void Server::Impl::start_lag_probe(Shard& shard) {
    auto expected = std::make_shared<std::chrono::steady_clock::time_point>(
        std::chrono::steady_clock::now() + kLagProbe);
    Shard* s = &shard;
    shard.lag_probe = shard.loop->run_every(kLagProbe, [s, expected] {
        const auto now = std::chrono::steady_clock::now();
        const auto late = std::chrono::duration_cast<std::chrono::microseconds>(now - *expected);
        s->counters.lag_us.store(std::max<std::int64_t>(0, late.count()));
        *expected = now + kLagProbe;
    });
}

Server::Server(EventLoop& loop, unsigned threads) : impl_(std::make_unique<Impl>()) {
    if (threads == 0) threads = 1;
    for (unsigned i = 0; i < threads; ++i) {
        auto shard = std::make_unique<Shard>();
        shard->index = i;
        shard->server = impl_.get();
        shard->counters.loop_index = i;
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
    // destroying the server (shutdown() is the graceful way). Each loop frees its own. The id
    // table is emptied first and the maps are moved out before their connections are destroyed,
    // so that whatever a connection's destruction runs (its context's destructor calling
    // send(id) or close(id)) finds nothing rather than a map half cleared.
    {
        std::lock_guard lock(impl_->ids_mutex);
        impl_->ids.clear();
    }
    for (auto& shard : impl_->shards) {
        Shard* s = shard.get();
        auto drop = [s] {
            s->lag_probe.cancel();
            for (auto& listener : s->listeners) listener->close();
            s->listeners.clear();
            s->refusing.clear();
            auto live = std::move(s->live);
            auto lingering = std::move(s->lingering);
            s->live.clear();
            s->lingering.clear();
            live.clear();
            lingering.clear();
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

bool Server::send(ConnectionId id, std::string_view payload) {
    return impl_->route(
        id, [payload](TcpConnection& c) { c.send(payload); },
        [payload] {
            return [copy = std::string(payload)](TcpConnection& c) {
                c.take_queued(copy.size());
                c.send(copy);
            };
        },
        payload.size());
}

bool Server::send_raw(ConnectionId id, std::string_view bytes) {
    return impl_->route(
        id, [bytes](TcpConnection& c) { c.send_raw(bytes); },
        [bytes] {
            return [copy = std::string(bytes)](TcpConnection& c) {
                c.take_queued(copy.size());
                c.send_raw(copy);
            };
        },
        bytes.size());
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
            if (listener.empty() || entry.conn->listener() == listener) ++expected;
        }
    }
    auto text = std::make_shared<const std::string>(payload);
    auto name = std::make_shared<const std::string>(listener);
    for (auto& shard_ptr : impl_->shards) {
        Shard* shard = shard_ptr.get();
        impl_->on_shard(*shard, [shard, text, name] {
            Impl::each_open(*shard, [&](TcpConnection& conn) {
                if (name->empty() || conn.listener() == *name) conn.send(*text);
            });
        });
    }
    return expected;
}

std::size_t Server::connection_count() const {
    std::lock_guard lock(impl_->ids_mutex);
    return impl_->ids.size();
}

std::string Server::listener_of(ConnectionId id) const {
    std::lock_guard lock(impl_->ids_mutex);
    const auto it = impl_->ids.find(id);
    return it == impl_->ids.end() ? std::string() : it->second.conn->listener();
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
    Impl::each_open(*shard, [&](TcpConnection& conn) { fn(conn); });
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
    REACTOR_LOOP_THREAD_ONLY(*impl_->main().loop, "Server::shutdown");
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
            Impl::each_open(*shard, [](TcpConnection& conn) {
                conn.close(CloseMode::flush, CloseReason::shutdown);
            });
        });
    }
}

EventLoop& Server::loop() const {
    return *impl_->shards[0]->loop;
}

}  // namespace reactor
