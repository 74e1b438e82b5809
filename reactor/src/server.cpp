#include "reactor/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
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
}  // namespace

struct Server::Impl {
    EventLoop& loop;
    // Posted tasks hold a weak reference and do nothing once the server is gone.
    std::shared_ptr<Impl*> alive = std::make_shared<Impl*>(this);

    struct ListenerEntry {
        std::shared_ptr<ConnectionGroup> group;
        std::unique_ptr<Listener> listener;
    };
    std::vector<ListenerEntry> listeners;                                     // loop thread
    std::unordered_map<ConnectionId, std::unique_ptr<TcpConnection>> live;    // loop thread
    std::function<void()> shutdown_done;                                      // loop thread
    bool shutting_down = false;                                               // loop thread

    // Open connections and their listener's name, readable from any thread.
    mutable std::mutex ids_mutex;
    std::unordered_map<ConnectionId, std::string> ids;

    explicit Impl(EventLoop& l) : loop(l) {}

    bool known(ConnectionId id) const {
        std::lock_guard lock(ids_mutex);
        return ids.count(id) != 0;
    }

    // Runs fn on the loop thread with the live connection, if it is still open there.
    template <typename Fn>
    bool with_connection(ConnectionId id, Fn fn) {
        if (loop.in_loop_thread() || !loop.running()) {
            const auto it = live.find(id);
            if (it == live.end() || it->second->closing()) return false;
            fn(*it->second);
            return true;
        }
        if (!known(id)) return false;
        loop.post([weak = std::weak_ptr<Impl*>(alive), id, fn = std::move(fn)]() mutable {
            const auto self = weak.lock();
            if (!self) return;
            const auto it = (*self)->live.find(id);
            if (it != (*self)->live.end() && !it->second->closing()) fn(*it->second);
        });
        return true;
    }

    ConnectionId adopt(BufferEventPtr bev, std::string peer, const std::shared_ptr<ConnectionGroup>& group,
               bool tcp) {
        const int fd = bufferevent_getfd(bev.get());
        if (tcp) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        const ConnectionId id = g_next_id.fetch_add(1, std::memory_order_relaxed);
        auto conn = std::make_unique<TcpConnection>(
            loop, id, std::move(bev), std::move(peer), group,
            [this](TcpConnection& closed) { retire(closed.id()); });
        auto* raw = conn.get();
        live.emplace(id, std::move(conn));
        {
            std::lock_guard lock(ids_mutex);
            ids.emplace(id, group->name);
        }
        log(LogLevel::debug, "listener=", group->name, " conn=", id, " opened from ", raw->peer());
        raw->start();
        return id;
    }

    // The connection finished closing: forget its id now, destroy it after this callback.
    void retire(ConnectionId id) {
        {
            std::lock_guard lock(ids_mutex);
            ids.erase(id);
        }
        const auto it = live.find(id);
        if (it == live.end()) return;
        auto* doomed = it->second.release();
        live.erase(it);
        loop.defer([doomed] { delete doomed; });
        if (shutting_down && live.empty() && shutdown_done) {
            auto done = std::move(shutdown_done);
            shutdown_done = nullptr;
            loop.defer(std::move(done));
        }
    }

    void accept(int fd, const sockaddr* peer, socklen_t length,
                const std::shared_ptr<ConnectionGroup>& group) {
        const std::string peer_text = describe(peer, length);
        if (shutting_down) {
            ::close(fd);
            return;
        }
        if (group->limits.max_connections != 0 && group->open >= group->limits.max_connections) {
            // Refuse with the protocol's notice. The socket is fresh, so a short notice fits in
            // its send buffer and a non-blocking write is enough.
            const std::string notice = group->protocol->create()->busy_notice();
            if (!notice.empty()) {
                [[maybe_unused]] const auto n = ::send(fd, notice.data(), notice.size(), MSG_NOSIGNAL);
            }
            ::close(fd);
            log(LogLevel::info, "listener=", group->name, " refused ", peer_text,
                ": max_connections ", group->limits.max_connections, " reached");
            return;
        }
        BufferEventPtr bev(bufferevent_socket_new(static_cast<event_base*>(loop.native_handle()),
                                                  fd, BEV_OPT_CLOSE_ON_FREE));
        if (!bev) {
            ::close(fd);
            return;
        }
        adopt(std::move(bev), peer_text, group, peer->sa_family != AF_UNIX);
    }
};

Server::Server(EventLoop& loop) : impl_(std::make_unique<Impl>(loop)) {}

Server::~Server() {
    for (auto& entry : impl_->listeners) entry.listener->close();
    // Connections still open are dropped without callbacks: the application chose this by
    // destroying the server (shutdown() is the graceful way). This runs outside any connection
    // callback, so they can be destroyed here.
    impl_->live.clear();
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
    auto listener = std::make_unique<Listener>(
        impl->loop, options.endpoint, options.backlog, options.name,
        [impl, group](int fd, const sockaddr* peer, socklen_t len) { impl->accept(fd, peer, len, group); });
    const Endpoint local = listener->local();
    log(LogLevel::info, "listener=", options.name, " listening on ", local.to_string(), " (",
        group->protocol->name(), ")");
    impl->listeners.push_back({std::move(group), std::move(listener)});
    return local;
}

void Server::connect(ConnectOptions options,
                     std::function<void(ConnectionId, const std::string&)> done) {
    auto group = make_group(options.name, std::move(options.protocol), std::move(options.handlers),
                            options.limits);
    const bool tcp = !options.endpoint.is_unix();
    connect_stream(impl_->loop, options.endpoint, options.timeout,
                   [weak = std::weak_ptr<Impl*>(impl_->alive), group, tcp, done = std::move(done)](
                       BufferEventPtr bev, const std::string& peer, const std::string& error) {
                       const auto self = weak.lock();
                       if (!self || !bev) {
                           if (done) done(0, error.empty() ? "server destroyed" : error);
                           return;
                       }
                       const ConnectionId id = (*self)->adopt(std::move(bev), peer, group, tcp);
                       if (done) done(id, {});
                   });
}

bool Server::send(ConnectionId id, std::string_view payload) {
    if (impl_->loop.in_loop_thread() || !impl_->loop.running()) {
        return impl_->with_connection(id, [payload](TcpConnection& c) { c.send(payload); });
    }
    return impl_->with_connection(id, [copy = std::string(payload)](TcpConnection& c) { c.send(copy); });
}

bool Server::send_raw(ConnectionId id, std::string_view bytes) {
    if (impl_->loop.in_loop_thread() || !impl_->loop.running()) {
        return impl_->with_connection(id, [bytes](TcpConnection& c) { c.send_raw(bytes); });
    }
    return impl_->with_connection(id, [copy = std::string(bytes)](TcpConnection& c) { c.send_raw(copy); });
}

bool Server::close(ConnectionId id, CloseMode mode, CloseReason reason) {
    return impl_->with_connection(id, [mode, reason](TcpConnection& c) { c.close(mode, reason); });
}

std::size_t Server::broadcast(std::string_view payload, std::string_view listener) {
    auto run = [payload = std::string(payload), listener = std::string(listener)](Impl& impl) {
        std::size_t sent = 0;
        for (auto& [id, conn] : impl.live) {
            if (conn->closing()) continue;
            if (!listener.empty() && conn->listener() != listener) continue;
            conn->send(payload);
            ++sent;
        }
        return sent;
    };
    if (impl_->loop.in_loop_thread() || !impl_->loop.running()) return run(*impl_);
    std::size_t expected = 0;
    {
        std::lock_guard lock(impl_->ids_mutex);
        for (const auto& [id, name] : impl_->ids) {
            if (listener.empty() || name == listener) ++expected;
        }
    }
    impl_->loop.post([weak = std::weak_ptr<Impl*>(impl_->alive), run = std::move(run)] {
        if (const auto self = weak.lock()) run(**self);
    });
    return expected;
}

std::size_t Server::connection_count() const {
    std::lock_guard lock(impl_->ids_mutex);
    return impl_->ids.size();
}

Connection* Server::find(ConnectionId id) {
    const auto it = impl_->live.find(id);
    return it == impl_->live.end() ? nullptr : it->second.get();
}

void Server::for_each(const std::function<void(Connection&)>& fn) {
    std::vector<TcpConnection*> snapshot;
    snapshot.reserve(impl_->live.size());
    for (auto& [id, conn] : impl_->live) snapshot.push_back(conn.get());
    for (auto* conn : snapshot) fn(*conn);
}

void Server::shutdown(std::function<void()> done) {
    impl_->shutting_down = true;
    for (auto& entry : impl_->listeners) entry.listener->close();
    impl_->shutdown_done = std::move(done);
    if (impl_->live.empty()) {
        if (impl_->shutdown_done) {
            auto fn = std::move(impl_->shutdown_done);
            impl_->shutdown_done = nullptr;
            impl_->loop.defer(std::move(fn));
        }
        return;
    }
    std::vector<TcpConnection*> open;
    for (auto& [id, conn] : impl_->live) open.push_back(conn.get());
    for (auto* conn : open) conn->close(CloseMode::flush, CloseReason::shutdown);
}

EventLoop& Server::loop() const { return impl_->loop; }

}  // namespace reactor
