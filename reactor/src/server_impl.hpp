#pragma once

// The Server's state, shared by server.cpp (loops, routing, shutdown) and server_accept.cpp (how
// connections join). Internal header.

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "listener.hpp"
#include "output_budget.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/server.hpp"
#include "tcp_connection.hpp"

namespace reactor {

struct Shard;

// A socket refused at max_connections after its notice: its write side is shut, and its input is
// read and dropped until the peer ends its stream, the notice is delivered, or a short deadline,
// so that closing it does not reset the connection under the notice. (server_accept.cpp)
struct RefusedSocket {
    RefusedSocket(Shard& shard, int fd, std::unique_ptr<Transport> transport);
    ~RefusedSocket();
    RefusedSocket(const RefusedSocket&) = delete;
    RefusedSocket& operator=(const RefusedSocket&) = delete;
    static void on_event(evutil_socket_t, short what, void* arg);
    // The refused socket is done with: destroyed after this callback.
    static void end(Shard& shard, int fd);

    Shard& shard;
    const int fd;
    std::unique_ptr<Transport> transport;  // owns the socket
    EventPtr event;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// One loop and what lives on it. Everything but the counters belongs to that loop's thread.
struct Shard {
    void* server = nullptr;  // the Server::Impl that owns it (a name private to Server)
    std::size_t index = 0;
    EventLoop* loop = nullptr;
    std::unique_ptr<EventLoop> owned_loop;  // loops 1..n-1, run by `thread`
    std::thread thread;
    std::unordered_map<ConnectionId, std::unique_ptr<TcpConnection>> live;
    // Closed connections whose sockets still linger (see TcpConnection::linger).
    std::unordered_map<ConnectionId, std::unique_ptr<TcpConnection>> lingering;
    std::vector<std::unique_ptr<Listener>> listeners;
    // Refused sockets still waiting for their notice to go out, by descriptor; at most
    // kMaxRefusing at a time (beyond, a refused socket is closed at once).
    std::unordered_map<int, std::unique_ptr<RefusedSocket>> refusing;
    LoopCounters counters;
    TimerHandle lag_probe;
    bool drained = false;  // reported empty during shutdown
};

struct Server::Impl {
    std::vector<std::unique_ptr<Shard>> shards;
    // Posted tasks hold a weak reference and do nothing once the server is gone.
    std::shared_ptr<Impl*> alive = std::make_shared<Impl*>(this);
    std::atomic<std::size_t> next_shard{0};  // round-robin accept
    std::shared_ptr<OutputBudget> budget = std::make_shared<OutputBudget>();

    std::atomic<bool> shutting_down{false};
    std::atomic<std::size_t> shards_draining{0};
    std::function<void()> shutdown_done;  // loop 0

    // Open connections: where they live and their listener, readable from any thread.
    struct Entry {
        std::size_t shard;
        TcpConnection* conn;  // alive while listed: retire() unlists it before it can go
    };
    mutable std::mutex ids_mutex;
    std::unordered_map<ConnectionId, Entry> ids;

    Shard& main() { return *shards[0]; }

    // True when the calling thread may touch the shard's state directly: its loop thread, or loop 0
    // before it runs (setup, single-threaded by contract). A worker loop's thread never stands in
    // for a loop 0 that is not running: workers run concurrently with the setup thread and with
    // each other, so they post to loop 0 even then.
    bool owns(const Shard& shard) const;

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

    // The shard the calling thread owns (see owns()), or null.
    Shard* current_shard();

    // Calls fn(conn) for each connection of the shard that is still open when its turn comes, on
    // the shard's thread. fn may close, kick, open or send to any connection, itself included: a
    // close erases from `live` and an open may rehash it, so the ids are taken first and each is
    // looked up again before its call. Every loop over a shard's connections that calls into them
    // goes through here.
    template <typename Fn>
    static void each_open(Shard& shard, Fn&& fn) {
        std::vector<ConnectionId> ids;
        ids.reserve(shard.live.size());
        for (const auto& [id, conn] : shard.live) {
            if (!conn->closing()) ids.push_back(id);
        }
        for (const ConnectionId id : ids) {
            const auto it = shard.live.find(id);
            if (it == shard.live.end() || it->second->closing()) continue;
            fn(*it->second);
        }
    }

    // Runs now(conn) when the calling thread owns the connection's loop, otherwise posts the task
    // that make_later() builds (it must own copies of its data, so it is only built when needed).
    // A posted send copies `queued` bytes: they count against the connection's output_limit until
    // the task runs (TcpConnection::add_queued), and past it the connection is closed for output
    // overflow instead of queuing more. False when the id is not open.
    template <typename Now, typename MakeLater>
    bool route(ConnectionId id, Now now, MakeLater make_later, std::size_t queued = 0) {
        std::size_t index = 0;
        bool overflow = false;
        {
            std::lock_guard lock(ids_mutex);
            const auto it = ids.find(id);
            if (it == ids.end()) return false;
            index = it->second.shard;
            if (queued != 0 && !owns(*shards[index]) && !it->second.conn->add_queued(queued)) {
                if (!it->second.conn->take_overflow()) return true;  // its close is on the way
                overflow = true;
            }
        }
        Shard& shard = *shards[index];
        if (owns(shard)) {
            const auto it = shard.live.find(id);
            if (it == shard.live.end() || it->second->closing()) return false;
            now(*it->second);
            return true;
        }
        if (overflow) {
            shard.loop->post([weak = std::weak_ptr<Impl*>(alive), &shard, id] {
                if (!weak.lock()) return;
                const auto it = shard.live.find(id);
                if (it != shard.live.end()) it->second->overflow_queued();
            });
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

    // Makes a connection of an accepted or connected socket on the shard's thread: a new id, the
    // id table, on_open. (server_accept.cpp)
    // opened: see TcpConnection::on_opened (may be empty).
    ConnectionId adopt(Shard& shard, int fd, std::string peer,
                       const std::shared_ptr<ConnectionGroup>& group, bool tcp, bool accepted,
                       TcpConnection::OpenedFn opened = {});
    // TcpConnection's EndedFn: retire() or release() on the shard (`owner`).
    static void connection_ended(void* owner, TcpConnection& connection, TcpConnection::Ending how);

    // The connection closed: its id is forgotten now; the object waits for its release.
    void retire(Shard& shard, ConnectionId id);

    // The connection's socket is done with: destroy it after this callback.
    void release(Shard& shard, ConnectionId id);

    // During shutdown, the shard has no connection left; the last one reports on loop 0.
    void shard_drained(Shard& shard);

    // A socket accepted for the shard, on its thread: refused during shutdown and above
    // max_connections (with the protocol's busy notice), adopted otherwise. (server_accept.cpp)
    void accept(Shard& shard, int fd, const std::string& peer_text, bool tcp,
                const std::shared_ptr<ConnectionGroup>& group);

    // A refused socket: its notice written through its transport, then closed gracefully
    // (RefusedSocket), or at once when too many are already waiting.
    void refuse(Shard& shard, int fd, const ConnectionGroup& group);

    // Counts a refusal and logs at most one line a second per listener, with the refusals since
    // the previous line; a timer on the shard's loop writes the line that ends a burst.
    void log_refusal(Shard& shard, const std::shared_ptr<ConnectionGroup>& group,
                     const std::string& peer);
    static void report_refusals(ConnectionGroup& group);

    // Measures how late the shard's loop runs a 100 ms timer: LoopStats::lag.
    void start_lag_probe(Shard& shard);
};

}  // namespace reactor
