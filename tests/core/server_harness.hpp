#pragma once

// An in-process server for tests: an EventLoop on its own thread, a Server listening on loopback,
// and a record of every on_open / on_close that tests can wait on.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "loop_thread.hpp"
#include "reactor/reactor.hpp"
#include "test_client.hpp"

namespace test {

// What the server's callbacks saw, readable from the test thread. Notifies while holding its lock,
// so a test may destroy it as soon as a wait returns.
class ConnectionEvents {
  public:
    void opened(reactor::ConnectionId id);
    void closed(reactor::ConnectionId id, reactor::CloseReason reason);

    std::vector<reactor::ConnectionId> open_order() const;
    std::size_t open_count() const;
    std::size_t close_count() const;
    // Every close reported for id (more than one would be a bug).
    std::vector<reactor::CloseReason> closes_of(reactor::ConnectionId id) const;
    // Ids that were opened but not closed, or closed more than once, or closed without opening.
    std::vector<reactor::ConnectionId> unbalanced() const;

    bool wait_opened(std::size_t n, Millis deadline = Millis{5000}) const;
    bool wait_closed(std::size_t n, Millis deadline = Millis{5000}) const;
    // The reason id closed with, once it has; nothing if it did not close before the deadline.
    std::optional<reactor::CloseReason> wait_close_of(reactor::ConnectionId id,
                                                      Millis deadline = Millis{5000}) const;
    // The id of the n-th connection opened (0-based), once it has opened.
    reactor::ConnectionId wait_nth_open(std::size_t n, Millis deadline = Millis{5000}) const;

  private:
    template <typename Pred>
    bool wait(Pred pred, Millis deadline) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, pred);
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<reactor::ConnectionId> opened_;
    std::map<reactor::ConnectionId, std::vector<reactor::CloseReason>> closed_;
    std::size_t close_calls_ = 0;
};

// Raw framing whose refusal notice is "BUSY\n", to see what a refused client receives.
std::shared_ptr<const reactor::ProtocolFactory> busy_notice_protocol();

// Handlers that record open/close and echo every message back with conn.send(payload).
reactor::Handlers echo_handlers(ConnectionEvents& events);

// Asks ServerHarness for a running loop and server without a listener yet: the test adds it with
// listen_primary(), with handlers that may refer to the harness.
struct NoListener {};

// A server with one echo listener, its loop running on a thread. Destruction stops the loop first,
// then destroys the server, then the loop.
class ServerHarness {
  public:
    // Listens on 127.0.0.1:0 with echo handlers unless options say otherwise; an options.handlers
    // left empty gets echo_handlers(events).
    explicit ServerHarness(reactor::ListenOptions options = {});
    explicit ServerHarness(NoListener);
    ~ServerHarness();

    // Adds the listener that endpoint, connect() and fds_listening refer to.
    void listen_primary(reactor::ListenOptions options);

    // Adds a listener while the loop runs (on the loop thread).
    reactor::Endpoint listen(reactor::ListenOptions options);

    TestClient connect(Millis timeout = Millis{5000}) const {
        return TestClient::connect(endpoint, timeout);
    }
    // Connects and waits for the server's on_open; returns the client and the connection's id.
    std::pair<TestClient, reactor::ConnectionId> connect_and_wait_open();

    template <typename Fn>
    auto on_loop(Fn fn) {
        return test::on_loop(loop, std::move(fn));
    }

    // Stops the loop and joins its thread; the server and loop stay for inspection.
    void stop_loop() { thread.reset(); }

    int fds_before;  // descriptors open before the loop existed
    reactor::EventLoop loop;
    reactor::Server server{loop};
    ConnectionEvents events;
    reactor::Endpoint endpoint;
    int fds_listening;  // descriptors open once the listener was bound
    std::unique_ptr<LoopThread> thread;
};

}  // namespace test
