#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <malloc.h>
#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "multiloop_harness.hpp"

using namespace std::chrono_literals;
using reactor::AcceptMode;
using reactor::CloseReason;
using reactor::EventLoop;
using test::TestClient;
using test::multiloop::Arrivals;
using test::multiloop::ConnectionRecord;
using test::multiloop::Gate;
using test::multiloop::MultiLoopServer;

namespace {

constexpr unsigned kLoops = 4;
constexpr std::size_t kPerLoop = 1000;
constexpr std::size_t kClients = kLoops * kPerLoop;
constexpr int kLinesEach = 3;

[[maybe_unused]] const bool quiet_logs = [] {
    reactor::set_log_level(reactor::LogLevel::warn);
    return true;
}();

// The server's record of each client of one listener, matched by the client's address. (Clients of
// different listeners may share a local port: only the whole 4-tuple is unique.)
std::vector<ConnectionRecord> records_of(const MultiLoopServer& h, const std::string& listener,
                                         const std::vector<TestClient>& clients) {
    std::map<std::string, ConnectionRecord> by_peer;
    for (const auto& [id, record] : h.recorder.records()) {
        if (record.listener == listener) by_peer[record.peer] = record;
    }
    std::vector<ConnectionRecord> out;
    out.reserve(clients.size());
    for (const auto& client : clients) {
        const auto it = by_peer.find(test::multiloop::local_address(client));
        out.push_back(it == by_peer.end() ? ConnectionRecord{} : it->second);
    }
    return out;
}

std::vector<const TestClient*> pointers(const std::vector<TestClient>& a,
                                        const std::vector<TestClient>& b = {}) {
    std::vector<const TestClient*> out;
    for (const auto& c : a) out.push_back(&c);
    for (const auto& c : b) out.push_back(&c);
    return out;
}

// Reads exactly expected[i] from clients[i], all before one deadline. Returns how many differed.
std::size_t read_expected(std::vector<TestClient>& clients,
                          const std::vector<std::string>& expected,
                          std::chrono::milliseconds budget) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        const auto reply = clients[i].read_exactly(expected[i].size(), std::max(left, 1ms));
        if (!reply.ok() || reply.data != expected[i]) {
            if (++wrong <= 3) {
                INFO("client " << i << " read ended: " << test::to_string(reply.end));
                CHECK(reply.data == expected[i]);
            }
        }
    }
    return wrong;
}

std::vector<reactor::ConnectionInfo> collect(reactor::Server& server) {
    auto promise = std::make_shared<std::promise<std::vector<reactor::ConnectionInfo>>>();
    auto future = promise->get_future();
    server.collect_connections([promise](std::vector<reactor::ConnectionInfo> found) {
        promise->set_value(std::move(found));
    });
    REQUIRE(future.wait_for(30s) == std::future_status::ready);
    return future.get();
}

std::string describe_spread(const std::vector<std::size_t>& per_loop) {
    std::ostringstream out;
    for (std::size_t i = 0; i < per_loop.size(); ++i) {
        out << (i == 0 ? "" : ", ") << "loop " << i << ": " << per_loop[i];
    }
    return out.str();
}

// Opens kClients connections to one listener, checks where their handlers ran, what
// collect_connections() and loop_stats() report, and returns the connections per loop index.
std::vector<std::size_t> spread_of(AcceptMode mode) {
    MultiLoopServer h(kLoops);
    const auto endpoint = h.listen("main", mode);
    auto clients = test::multiloop::connect_clients(endpoint, kClients);
    REQUIRE(h.recorder.wait_opened(kClients, 60s));

    // Every id distinct, every handler on a loop thread.
    const auto records = h.recorder.records();
    CHECK(h.recorder.duplicate_ids() == 0);
    CHECK(records.size() == kClients);
    CHECK(h.server->connection_count() == kClients);

    // Each loop is one thread, and the loops are distinct threads; loop 0 is the caller's.
    std::map<EventLoop*, std::set<std::thread::id>> threads_of_loop;
    for (const auto& [id, record] : records) threads_of_loop[record.loop].insert(record.thread);
    CHECK(threads_of_loop.size() == kLoops);
    std::set<std::thread::id> loop_threads;
    for (const auto& [loop, threads] : threads_of_loop) {
        CHECK(threads.size() == 1);
        loop_threads.insert(threads.begin(), threads.end());
    }
    CHECK(loop_threads.size() == kLoops);
    REQUIRE(threads_of_loop.count(&h.loop) == 1);
    CHECK(*threads_of_loop[&h.loop].begin() == h.loop0_thread);

    // A few messages per connection, pipelined, echoed on whichever loop owns it.
    std::vector<std::string> sent(kClients);
    for (std::size_t i = 0; i < kClients; ++i) {
        for (int k = 0; k < kLinesEach; ++k) {
            sent[i] += "client " + std::to_string(i) + " line " + std::to_string(k) + "\n";
        }
        REQUIRE(clients[i].send_all(sent[i]));
    }
    CHECK(read_expected(clients, sent, 60s) == 0);

    // collect_connections from a foreign thread: every connection, on the loop that ran it.
    const auto infos = collect(*h.server);
    CHECK(infos.size() == kClients);
    std::map<std::size_t, EventLoop*> loop_of_index;
    std::map<EventLoop*, std::size_t> index_of_loop;
    std::vector<std::size_t> per_loop(kLoops, 0);
    std::size_t mismatched = 0;
    for (const auto& info : infos) {
        const auto it = records.find(info.id);
        if (it == records.end() || info.loop >= kLoops || info.listener != "main" ||
            info.peer != it->second.peer || info.stats.messages_in != kLinesEach) {
            ++mismatched;
            continue;
        }
        loop_of_index.emplace(info.loop, it->second.loop);
        index_of_loop.emplace(it->second.loop, info.loop);
        if (loop_of_index[info.loop] != it->second.loop ||
            index_of_loop[it->second.loop] != info.loop) {
            ++mismatched;
        }
        ++per_loop[info.loop];
    }
    CHECK(mismatched == 0);
    CHECK(loop_of_index.size() == kLoops);
    CHECK(loop_of_index[0] == &h.loop);

    // loop_stats agrees, and counted every message the clients sent.
    const auto stats = h.server->loop_stats();
    REQUIRE(stats.size() == kLoops);
    std::size_t connections = 0;
    std::uint64_t messages = 0;
    for (std::size_t i = 0; i < kLoops; ++i) {
        CHECK(stats[i].connections == per_loop[i]);
        CHECK(stats[i].messages == per_loop[i] * kLinesEach);
        connections += stats[i].connections;
        messages += stats[i].messages;
    }
    CHECK(connections == kClients);
    CHECK(messages == kClients * kLinesEach);

    // Closing from the client side: on_close runs on the connection's own loop thread too.
    for (auto& client : clients) client.close();
    REQUIRE(h.recorder.wait_closed(kClients, 60s));
    std::size_t not_peer_closed = 0;
    for (const auto& [id, record] : h.recorder.records()) {
        if (record.closes != std::vector{CloseReason::peer_closed}) ++not_peer_closed;
    }
    CHECK(not_peer_closed == 0);
    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);
    CHECK(test::eventually([&] { return h.server->connection_count() == 0; }));
    return per_loop;
}

// Records each call of a shutdown's done callback. Shared with the callback, which may outlive a
// failed test's stack.
struct DoneProbe {
    Arrivals calls;
    std::mutex mutex;
    std::vector<std::thread::id> threads;

    static std::function<void()> callback(const std::shared_ptr<DoneProbe>& probe) {
        return [probe] {
            {
                std::lock_guard lock(probe->mutex);
                probe->threads.push_back(std::this_thread::get_id());
            }
            probe->calls.arrive();
        };
    }
};

}  // namespace

TEST_CASE("reuse_port: 4 loops x 1000 connections, each loop gets a fair share") {
    const auto per_loop = spread_of(AcceptMode::reuse_port);
    MESSAGE("reuse_port spread of " << kClients << " connections: " << describe_spread(per_loop));
    for (std::size_t i = 0; i < per_loop.size(); ++i) {
        INFO("loop " << i);
        CHECK(per_loop[i] >= kClients / 10);
    }
}

TEST_CASE("round_robin: 4 loops x 1000 connections, spread exactly") {
    const auto per_loop = spread_of(AcceptMode::round_robin);
    MESSAGE("round_robin spread of " << kClients << " connections: " << describe_spread(per_loop));
    for (std::size_t i = 0; i < per_loop.size(); ++i) {
        INFO("loop " << i);
        CHECK(per_loop[i] >= kPerLoop - 1);
        CHECK(per_loop[i] <= kPerLoop + 1);
    }
}

TEST_CASE("send and broadcast from foreign threads reach each client exactly once") {
    constexpr std::size_t kSideClients = 40;
    constexpr std::size_t kSenders = 4;
    MultiLoopServer h(kLoops);
    const auto main_endpoint = h.listen("main", AcceptMode::reuse_port);
    const auto side_endpoint = h.listen("side", AcceptMode::round_robin);
    auto clients = test::multiloop::connect_clients(main_endpoint, kClients);
    auto side = test::multiloop::connect_clients(side_endpoint, kSideClients);
    REQUIRE(h.recorder.wait_opened(kClients + kSideClients, 60s));
    const auto records = records_of(h, "main", clients);
    for (const auto& record : records) REQUIRE(record.id != 0);
    std::set<EventLoop*> loops_used;
    for (const auto& record : records) loops_used.insert(record.loop);
    CHECK(loops_used.size() == kLoops);

    // send(id) from several threads at once, each client its own payload.
    {
        std::vector<std::string> expected(kClients);
        for (std::size_t i = 0; i < kClients; ++i) {
            expected[i] =
                "for client " + std::to_string(i) + " id " + std::to_string(records[i].id);
        }
        Gate start;
        std::atomic<std::size_t> refused{0};
        std::vector<std::thread> senders;
        for (std::size_t t = 0; t < kSenders; ++t) {
            senders.emplace_back([&, t] {
                if (!start.wait(10s)) return;
                for (std::size_t i = t; i < kClients; i += kSenders) {
                    if (!h.server->send(records[i].id, expected[i])) ++refused;
                }
            });
        }
        start.open();
        for (auto& sender : senders) sender.join();
        CHECK(refused.load() == 0);
        for (auto& line : expected) line += "\n";
        CHECK(read_expected(clients, expected, 60s) == 0);
        CHECK(test::multiloop::readable_within(pointers(clients, side), 100ms) == 0);
    }

    // broadcast from a foreign thread: every client of every listener, once.
    {
        std::size_t queued = 0;
        std::thread([&] { queued = h.server->broadcast("to everyone"); }).join();
        CHECK(queued == kClients + kSideClients);
        CHECK(read_expected(clients, std::vector<std::string>(kClients, "to everyone\n"), 60s) ==
              0);
        CHECK(read_expected(side, std::vector<std::string>(kSideClients, "to everyone\n"), 10s) ==
              0);
        CHECK(test::multiloop::readable_within(pointers(clients, side), 100ms) == 0);
    }

    // broadcast to one listener from a foreign thread reaches only its clients.
    {
        std::size_t queued = 0;
        std::thread([&] { queued = h.server->broadcast("side only", "side"); }).join();
        CHECK(queued == kSideClients);
        CHECK(read_expected(side, std::vector<std::string>(kSideClients, "side only\n"), 10s) == 0);
        CHECK(test::multiloop::readable_within(pointers(clients, side), 100ms) == 0);
    }

    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);
    CHECK(h.recorder.close_calls() == 0);
}

TEST_CASE("close(id) from a foreign thread closes that connection on its own loop") {
    constexpr std::size_t kCount = 400;
    constexpr std::size_t kKickedPerLoop = 2;
    MultiLoopServer h(kLoops);
    const auto endpoint = h.listen("main", AcceptMode::round_robin);
    auto clients = test::multiloop::connect_clients(endpoint, kCount);
    REQUIRE(h.recorder.wait_opened(kCount, 30s));
    const auto records = records_of(h, "main", clients);

    // Two victims per loop, and one survivor per loop to show its loop still serves.
    std::map<EventLoop*, std::vector<std::size_t>> by_loop;
    for (std::size_t i = 0; i < kCount; ++i) {
        REQUIRE(records[i].id != 0);
        by_loop[records[i].loop].push_back(i);
    }
    REQUIRE(by_loop.size() == kLoops);
    std::vector<std::size_t> victims;
    std::vector<std::size_t> survivors;
    for (const auto& [loop, members] : by_loop) {
        REQUIRE(members.size() > kKickedPerLoop);
        victims.insert(victims.end(), members.begin(), members.begin() + kKickedPerLoop);
        survivors.push_back(members.back());
    }

    std::atomic<std::size_t> refused{0};
    std::vector<std::thread> closers;
    for (const std::size_t v : victims) {
        closers.emplace_back([&, v] {
            if (!h.server->close(records[v].id)) ++refused;
        });
    }
    for (auto& closer : closers) closer.join();
    CHECK(refused.load() == 0);

    for (const std::size_t v : victims) {
        INFO("victim " << v);
        CHECK(h.recorder.wait_close_of(records[v].id, 10s) == CloseReason::kicked);
        CHECK(clients[v].sees_eof(10s));
    }
    const auto after = h.recorder.records();
    for (const std::size_t v : victims) {
        const auto& record = after.at(records[v].id);
        CHECK(record.close_thread == record.thread);
        CHECK(record.close_loop == record.loop);
    }
    CHECK(h.recorder.close_calls() == victims.size());
    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);
    CHECK(
        test::eventually([&] { return h.server->connection_count() == kCount - victims.size(); }));
    // Once gone, the id is unknown.
    CHECK_FALSE(h.server->close(records[victims.front()].id));
    CHECK_FALSE(h.server->send(records[victims.front()].id, "late"));

    for (const std::size_t s : survivors) {
        REQUIRE(clients[s].send_all("still here\n"));
        const auto reply = clients[s].read_exactly(11, 10s);
        CHECK(reply.data == "still here\n");
    }
}

// Sends from another thread wait in the loop's queue as copies: they count against output_limit
// as if they were output, so a connection whose loop is behind holds about output_limit, not
// every copy made for it. (Two loops with 200 slow chat members of 1 MiB each peaked at 355 MB,
// now at 215 MB: benchmarks/slow_consumers --threads 2.)
TEST_CASE("sends queued for a busy loop count against output_limit") {
    constexpr std::size_t kLimit = 1 << 20;
    constexpr std::size_t kSends = 200;
    const std::string chunk(64 * 1024, 'q');
    MultiLoopServer h(2);
    reactor::ConnectionLimits limits;
    limits.output_limit = kLimit;
    limits.output_high_water = kLimit;
    const auto endpoint = h.listen("main", AcceptMode::round_robin, std::nullopt, limits);
    auto client = TestClient::connect(endpoint);
    REQUIRE(h.recorder.wait_opened(1, 10s));
    const ConnectionRecord record = h.recorder.records().begin()->second;

    // Hold the connection's loop so nothing queued is applied while the test thread sends.
    Gate release;
    Gate held;
    record.loop->post([&] {
        held.open();
        release.wait(30s);
    });
    REQUIRE(held.wait(10s));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    const std::size_t heap_before = ::mallinfo2().uordblks;
#endif
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < kSends; ++i) accepted += h.server->send(record.id, chunk) ? 1 : 0;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // The sanitizers' allocators do not report through mallinfo2.
    const std::size_t grown = ::mallinfo2().uordblks - heap_before;
    INFO("heap grew by " << grown << " bytes for " << kSends * chunk.size() << " bytes sent");
    CHECK(grown < 2 * kLimit + 64 * 1024);  // was kSends copies: 12.5 MiB
#endif
    // The id stays open until its loop closes it: every send was taken.
    CHECK(accepted == kSends);
    release.open();
    CHECK(h.recorder.wait_close_of(record.id, 10s) == CloseReason::output_overflow);
    CHECK(test::eventually([&] { return !h.server->send(record.id, "late"); }));
}

TEST_CASE("shutdown closes every loop's connections on their own threads, then done once") {
    MultiLoopServer h(kLoops);
    const auto endpoint = h.listen("main", AcceptMode::reuse_port);
    auto clients = test::multiloop::connect_clients(endpoint, kClients);
    REQUIRE(h.recorder.wait_opened(kClients, 60s));
    for (const auto& stats : h.server->loop_stats()) REQUIRE(stats.connections > 0);

    const auto done = std::make_shared<DoneProbe>();
    h.on_loop([&] { h.server->shutdown(DoneProbe::callback(done)); });
    REQUIRE(done->calls.wait(1, 60s));
    CHECK(h.server->connection_count() == 0);
    for (const auto& stats : h.server->loop_stats()) CHECK(stats.connections == 0);

    // The whole close happened before done: every connection, reason shutdown, on its own thread.
    CHECK(h.recorder.close_calls() == kClients);
    std::size_t wrong = 0;
    for (const auto& [id, record] : h.recorder.records()) {
        if (record.closes != std::vector{CloseReason::shutdown} ||
            record.close_thread != record.thread || record.close_loop != record.loop) {
            ++wrong;
        }
    }
    CHECK(wrong == 0);
    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);

    std::size_t without_eof = 0;
    for (auto& client : clients) without_eof += client.sees_eof(10s) ? 0 : 1;
    CHECK(without_eof == 0);

    // Destroying the server joins its worker threads and releases their descriptors.
    h.destroy_server();
    {
        std::lock_guard lock(done->mutex);
        CHECK(done->threads == std::vector{h.loop0_thread});
    }
    clients.clear();
    CHECK(test::eventually([&] { return test::multiloop::count_threads() == h.threads_before; }));
    CHECK(test::eventually([&] { return test::count_open_fds() == h.fds_before; }));
}

TEST_CASE("a request sent just before shutdown still gets its reply, on every loop") {
    constexpr std::size_t kCount = 200;
    MultiLoopServer h(kLoops);
    const auto endpoint = h.listen("main", AcceptMode::round_robin);
    auto clients = test::multiloop::connect_clients(endpoint, kCount);
    REQUIRE(h.recorder.wait_opened(kCount, 30s));
    const auto records = records_of(h, "main", clients);
    std::set<EventLoop*> workers;
    for (const auto& record : records) {
        REQUIRE(record.id != 0);
        if (record.loop != &h.loop) workers.insert(record.loop);
    }
    REQUIRE(workers.size() == kLoops - 1);

    // Hold every loop so that the requests wait unread in the kernel when shutdown begins. Loop 0
    // starts the shutdown while its requests are pending; the workers receive the shutdown task
    // before their requests arrive, so both orders of "task, then input" are covered.
    struct Holds {
        Gate release_loop0;
        Gate release_workers;
        Gate shutdown_started;
        Arrivals held;
    };
    const auto holds = std::make_shared<Holds>();  // the loops may outlive a failed test's stack
    const auto done = std::make_shared<DoneProbe>();
    reactor::Server* server = &*h.server;
    h.loop.post([holds, done, server] {
        holds->held.arrive();
        if (!holds->release_loop0.wait(30s)) return;
        server->shutdown(DoneProbe::callback(done));
        holds->shutdown_started.open();
    });
    for (EventLoop* worker : workers) {
        worker->post([holds] {
            holds->held.arrive();
            holds->release_workers.wait(30s);
        });
    }
    REQUIRE(holds->held.wait(kLoops, 10s));

    const auto request_for = [](std::size_t i) {
        return "last request " + std::to_string(i) + "\n";
    };
    const auto send_requests = [&](bool on_loop0) {
        for (std::size_t i = 0; i < kCount; ++i) {
            if ((records[i].loop == &h.loop) == on_loop0)
                REQUIRE(clients[i].send_all(request_for(i)));
        }
        for (std::size_t i = 0; i < kCount; ++i) {
            if ((records[i].loop == &h.loop) != on_loop0) continue;
            REQUIRE(test::eventually([&] { return test::multiloop::acknowledged(clients[i]); }));
        }
    };
    send_requests(true);
    holds->release_loop0.open();
    REQUIRE(holds->shutdown_started.wait(10s));
    send_requests(false);
    holds->release_workers.open();

    std::size_t wrong = 0;
    for (std::size_t i = 0; i < kCount; ++i) {
        const auto reply = clients[i].read_until_eof(10s);
        if (!reply.ok() || reply.data != request_for(i)) {
            if (++wrong <= 3) {
                INFO("client " << i << " on loop 0: " << (records[i].loop == &h.loop)
                               << ", read ended: " << test::to_string(reply.end));
                CHECK(reply.data == request_for(i));
            }
        }
    }
    CHECK(wrong == 0);
    REQUIRE(done->calls.wait(1, 30s));
    std::uint64_t messages = 0;
    for (const auto& stats : h.server->loop_stats()) messages += stats.messages;
    CHECK(messages == kCount);
    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);
}

TEST_CASE("with loop 0 stopped, worker loops serve on and leave loop 0's connections alone") {
    constexpr std::size_t kCount = 2 * kLoops;
    MultiLoopServer h(kLoops);
    // A chat: every line is broadcast to every connection, from the loop that read it.
    reactor::Handlers chat;
    chat.on_open = [&h](reactor::Connection& conn) { h.recorder.opened(conn); };
    chat.on_message = [&h](reactor::Connection& conn, reactor::Message& message) {
        h.recorder.handled(conn);
        h.server->broadcast(message.payload);
    };
    chat.on_close = [&h](reactor::Connection& conn, CloseReason reason) {
        h.recorder.closed(conn, reason);
    };
    const auto endpoint = h.listen("main", AcceptMode::round_robin, chat);
    auto clients = test::multiloop::connect_clients(endpoint, kCount);
    REQUIRE(h.recorder.wait_opened(kCount, 10s));
    const auto records = records_of(h, "main", clients);
    std::vector<TestClient> on_loop0;
    std::vector<TestClient> on_workers;
    std::vector<EventLoop*> worker_loops;
    for (std::size_t i = 0; i < kCount; ++i) {
        REQUIRE(records[i].id != 0);
        if (records[i].loop == &h.loop) {
            on_loop0.push_back(std::move(clients[i]));
        } else {
            on_workers.push_back(std::move(clients[i]));
            worker_loops.push_back(records[i].loop);
        }
    }
    REQUIRE(on_loop0.size() == 2);
    // round_robin: consecutive clients sit on different loops.
    REQUIRE(worker_loops[0] != worker_loops[1]);

    // Loop 0 stopped for good, as when the program's main loop returned. Two worker loops
    // broadcast at once: their own clients get both lines, while loop 0's connections are left to
    // the loop that owns them (which no longer runs); no worker thread may write to them.
    h.stop_loop0();
    REQUIRE(on_workers[0].send_all("from one\n"));
    REQUIRE(on_workers[1].send_all("from another\n"));
    const std::string both = "from one\nfrom another\n";
    std::size_t wrong = 0;
    for (auto& client : on_workers) {
        const auto got = client.read_exactly(both.size(), 10s);
        if (!got.ok() || (got.data != both && got.data != "from another\nfrom one\n")) ++wrong;
    }
    CHECK(wrong == 0);
    CHECK(test::multiloop::readable_within(pointers(on_loop0), 100ms) == 0);
    CHECK(h.recorder.misplaced() == 0);
    CHECK(test::multiloop::off_thread_codec_calls.load() == 0);

    // Destroyed on this thread after loop 0 stopped: the worker threads are joined. libevent closes
    // loop 0's freed sockets on that loop, so it runs again to release them.
    h.destroy_server();
    h.restart_loop0();
    on_loop0.clear();
    on_workers.clear();
    CHECK(test::eventually([&] { return test::multiloop::count_threads() == h.threads_before; }));
    CHECK(test::eventually([&] { return test::count_open_fds() == h.fds_before; }));
}
