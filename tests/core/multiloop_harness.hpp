#pragma once

// A server with several loops for tests: loop 0 on a test thread, the worker loops inside the
// Server, and a record of which loop and thread ran each connection's handlers. Everything the
// server is told (construction, listen, shutdown, destruction) happens on loop 0's thread, unless a
// test stopped loop 0 on purpose.

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loop_thread.hpp"
#include "reactor/reactor.hpp"
#include "test_client.hpp"

namespace test::multiloop {

// Codec calls made off the thread that created the codec, over all connections of the process.
inline std::atomic<std::size_t> off_thread_codec_calls{0};

// Newline framing, so that message counts do not depend on how TCP splits the bytes. A connection
// creates its codec on its loop thread; the codec counts any call from another thread, which
// catches a send() or broadcast() that touched the connection from the wrong thread.
class LineFraming final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        check_thread();
        const std::size_t end = in.find("\n");
        if (end == reactor::Buffer::npos) return reactor::Decoded::need_more();
        reactor::Message message;
        message.payload = in.peek(end);
        out.deliver(message);
        in.drain(end + 1);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        check_thread();
        out.append(payload);
        out.append("\n");
    }

  private:
    void check_thread() const {
        if (std::this_thread::get_id() != owner_) ++off_thread_codec_calls;
    }

    const std::thread::id owner_ = std::this_thread::get_id();
};

class LineFramingFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "test-lines"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<LineFraming>();
    }
};

// What the handlers of one connection saw.
struct ConnectionRecord {
    reactor::ConnectionId id = 0;
    std::string listener;
    std::string peer;
    reactor::EventLoop* loop = nullptr;  // conn.loop() in on_open
    std::thread::id thread;              // the thread that ran on_open
    std::vector<reactor::CloseReason> closes;
    reactor::EventLoop* close_loop = nullptr;
    std::thread::id close_thread;
};

// Filled by the handlers on every loop thread at once; read by the test thread.
class LoopRecorder {
  public:
    void opened(reactor::Connection& conn) {
        std::lock_guard lock(mutex_);
        ++open_calls_;
        if (!conn.loop().in_loop_thread()) ++misplaced_;
        ConnectionRecord record;
        record.id = conn.id();
        record.listener = conn.listener();
        record.peer = conn.peer();
        record.loop = &conn.loop();
        record.thread = std::this_thread::get_id();
        if (!records_.emplace(conn.id(), std::move(record)).second) ++duplicate_ids_;
        changed_.notify_all();
    }

    // Any handler after on_open: it must run on the thread and loop that ran on_open.
    void handled(reactor::Connection& conn) {
        std::lock_guard lock(mutex_);
        check_placement(conn);
    }

    void closed(reactor::Connection& conn, reactor::CloseReason reason) {
        std::lock_guard lock(mutex_);
        ++close_calls_;
        check_placement(conn);
        auto& record = records_[conn.id()];
        record.closes.push_back(reason);
        record.close_loop = &conn.loop();
        record.close_thread = std::this_thread::get_id();
        changed_.notify_all();
    }

    bool wait_opened(std::size_t n, Millis deadline) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, [&] { return open_calls_ >= n; });
    }
    bool wait_closed(std::size_t n, Millis deadline) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, [&] { return close_calls_ >= n; });
    }
    std::optional<reactor::CloseReason> wait_close_of(reactor::ConnectionId id,
                                                      Millis deadline) const {
        std::unique_lock lock(mutex_);
        const auto closed = [&] {
            const auto it = records_.find(id);
            return it != records_.end() && !it->second.closes.empty();
        };
        if (!changed_.wait_for(lock, deadline, closed)) return std::nullopt;
        return records_.at(id).closes.front();
    }

    std::map<reactor::ConnectionId, ConnectionRecord> records() const {
        std::lock_guard lock(mutex_);
        return records_;
    }
    std::size_t open_calls() const {
        std::lock_guard lock(mutex_);
        return open_calls_;
    }
    std::size_t close_calls() const {
        std::lock_guard lock(mutex_);
        return close_calls_;
    }
    std::size_t duplicate_ids() const {
        std::lock_guard lock(mutex_);
        return duplicate_ids_;
    }
    // Handler calls that ran off their connection's loop thread or off the thread of its on_open.
    std::size_t misplaced() const {
        std::lock_guard lock(mutex_);
        return misplaced_;
    }

  private:
    void check_placement(reactor::Connection& conn) {
        const auto it = records_.find(conn.id());
        if (!conn.loop().in_loop_thread() || it == records_.end() ||
            it->second.thread != std::this_thread::get_id() || it->second.loop != &conn.loop()) {
            ++misplaced_;
        }
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::map<reactor::ConnectionId, ConnectionRecord> records_;
    std::size_t open_calls_ = 0;
    std::size_t close_calls_ = 0;
    std::size_t duplicate_ids_ = 0;
    std::size_t misplaced_ = 0;
};

// A flag one thread opens and others wait on, each wait bounded.
class Gate {
  public:
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    bool wait(Millis deadline) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, [&] { return open_; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool open_ = false;
};

// Counts arrivals; the test waits for a number of them with a deadline.
class Arrivals {
  public:
    void arrive() {
        std::lock_guard lock(mutex_);
        ++count_;
        changed_.notify_all();
    }
    bool wait(std::size_t n, Millis deadline) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, [&] { return count_ >= n; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t count_ = 0;
};

// Threads of this process (entries of /proc/self/task).
inline int count_threads() {
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) return -1;
    int count = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count;
}

// The client's own address as the server spells its peer: "127.0.0.1:50312".
inline std::string local_address(const TestClient& client) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (::getsockname(client.fd(), reinterpret_cast<sockaddr*>(&address), &length) != 0) return {};
    char host[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(address.sin_port));
}

// True once the peer acknowledged every byte the client sent: they sit in the server's socket.
inline bool acknowledged(const TestClient& client) {
    int unacked = -1;
    return ::ioctl(client.fd(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
}

inline std::vector<TestClient> connect_clients(const reactor::Endpoint& endpoint, std::size_t n) {
    std::vector<TestClient> clients;
    clients.reserve(n);
    for (std::size_t i = 0; i < n; ++i) clients.push_back(TestClient::connect(endpoint));
    return clients;
}

// How many clients have something to read (data or EOF) within the window. One bounded wait.
inline std::size_t readable_within(const std::vector<const TestClient*>& clients, Millis window) {
    std::vector<pollfd> fds;
    fds.reserve(clients.size());
    for (const auto* c : clients) fds.push_back({c->fd(), POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(window.count()));
    return ready < 0 ? clients.size() : static_cast<std::size_t>(ready);
}

// Echo handlers over the recorder.
inline reactor::Handlers recording_echo(LoopRecorder& recorder) {
    reactor::Handlers handlers;
    handlers.on_open = [&recorder](reactor::Connection& conn) { recorder.opened(conn); };
    handlers.on_message = [&recorder](reactor::Connection& conn, reactor::Message& message) {
        recorder.handled(conn);
        conn.send(message.payload);
    };
    handlers.on_close = [&recorder](reactor::Connection& conn, reactor::CloseReason reason) {
        recorder.closed(conn, reason);
    };
    return handlers;
}

// Loop 0 runs on a test thread; the server is built, told and destroyed on it.
class MultiLoopServer {
  public:
    explicit MultiLoopServer(unsigned loops) {
        thread = std::make_unique<LoopThread>(loop);
        loop0_thread = test::on_loop(loop, [] { return std::this_thread::get_id(); });
        fds_before = count_open_fds();
        threads_before = count_threads();
        test::on_loop(loop, [this, loops] { server.emplace(loop, loops); });
    }

    ~MultiLoopServer() {
        try {
            destroy_server();
        } catch (const std::exception& e) {
            // The loop did not run the destruction: nothing can be freed safely.
            std::fprintf(stderr, "watchdog: %s\n", e.what());
            std::abort();
        }
        thread.reset();
    }

    MultiLoopServer(const MultiLoopServer&) = delete;
    MultiLoopServer& operator=(const MultiLoopServer&) = delete;

    // Listens on 127.0.0.1:0 with line framing; handlers default to recording_echo(recorder).
    reactor::Endpoint listen(std::string name, reactor::AcceptMode mode,
                             std::optional<reactor::Handlers> handlers = std::nullopt,
                             reactor::ConnectionLimits limits = {}) {
        reactor::ListenOptions options;
        options.limits = limits;
        options.name = std::move(name);
        options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 0);
        options.accept = mode;
        options.protocol = std::make_shared<LineFramingFactory>();
        options.handlers = handlers ? std::move(*handlers) : recording_echo(recorder);
        return test::on_loop(loop, [this, options = std::move(options)]() mutable {
            return server->listen(std::move(options));
        });
    }

    // Destroys the server on loop 0's thread, or on this one once loop 0 stopped; either way that
    // joins the worker loops' threads.
    void destroy_server() {
        if (!server) return;
        if (!thread) {
            server.reset();
            return;
        }
        test::on_loop(
            loop, [this] { server.reset(); }, std::chrono::seconds(60));
    }

    // Stops loop 0 and joins its thread; the worker loops keep running.
    void stop_loop0() { thread.reset(); }
    // Runs loop 0 again on a new thread.
    void restart_loop0() { thread = std::make_unique<LoopThread>(loop); }

    template <typename Fn>
    auto on_loop(Fn fn, std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
        return test::on_loop(loop, std::move(fn), deadline);
    }

    reactor::EventLoop loop;
    LoopRecorder recorder;  // outlives the server, whose handlers refer to it
    std::unique_ptr<LoopThread> thread;
    std::thread::id loop0_thread;
    int fds_before = 0;      // with loop 0 running, before the server existed
    int threads_before = 0;  // likewise
    std::optional<reactor::Server> server;
};

}  // namespace test::multiloop
