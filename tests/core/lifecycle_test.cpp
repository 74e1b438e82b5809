#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server_harness.hpp"

// A connection's life cycle against what its neighbours do: loops over a loop's connections whose
// calls close, open or kick others; deadlines that fall due while input waits; refusal.

using namespace std::chrono_literals;
using reactor::CloseMode;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;
using test::TestClient;

namespace {

// A listening socket nobody accepts from: the kernel completes connections to it, which is all an
// outbound connection needs to open.
class Backlog {
  public:
    Backlog() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
    }
    ~Backlog() { ::close(fd_); }
    reactor::Endpoint endpoint() const { return reactor::Endpoint::tcp("127.0.0.1", port_); }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// Newline-framed messages, without the newline; replies are sent as they are.
class Lines final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        const std::size_t at = in.find("\n");
        if (at == reactor::Buffer::npos) return reactor::Decoded::need_more();
        reactor::Message message;
        message.payload = in.peek(at + 1).substr(0, at);
        out.deliver(message);
        in.drain(at + 1);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
    }
};

class LinesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "test-lines"; }
    std::unique_ptr<reactor::Protocol> create() const override { return std::make_unique<Lines>(); }
};

// The reply to request i of a pipelining client: `size` bytes that say which request it answers.
std::string big_reply(std::size_t i, std::size_t size) {
    std::string reply = "reply " + std::to_string(i) + " ";
    reply.resize(size - 1, static_cast<char>('a' + i % 26));
    reply.push_back('\n');
    return reply;
}

std::vector<std::pair<TestClient, ConnectionId>> connect_many(ServerHarness& h, int n) {
    std::vector<std::pair<TestClient, ConnectionId>> clients;
    for (int i = 0; i < n; ++i) clients.push_back(h.connect_and_wait_open());
    return clients;
}

}  // namespace

TEST_CASE("broadcast survives receivers that its send closes for output overflow") {
    // Each send overflows the receiver's output limit, so the receiver closes inside the
    // broadcast's loop over the connections: the loop must go on with the others.
    reactor::ListenOptions options;
    options.limits.output_high_water = 16 * 1024;
    options.limits.output_limit = 64 * 1024;
    ServerHarness h(std::move(options));
    constexpr int kClients = 40;
    auto clients = connect_many(h, kClients);

    const std::string payload(100 * 1024, 'b');
    CHECK(h.server.broadcast(payload) == kClients);
    REQUIRE(h.events.wait_closed(kClients));
    for (const auto& [client, id] : clients) {
        CHECK(h.events.closes_of(id) == std::vector{CloseReason::output_overflow});
    }
    CHECK(h.events.unbalanced().empty());

    // Also from the loop's own thread, where the broadcast runs inline, with receivers whose
    // on_close would be the caller's neighbours.
    auto more = connect_many(h, kClients);
    CHECK(h.on_loop([&] { return h.server.broadcast(payload); }) == kClients);
    REQUIRE(h.events.wait_closed(2 * kClients));

    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("still serving"));
    CHECK(client.read_exactly(13).data == "still serving");
}

TEST_CASE("broadcast survives an on_close that closes, kicks and sends to the others") {
    test::ConnectionEvents events;
    reactor::ListenOptions options;
    options.limits.output_limit = 64 * 1024;
    ServerHarness h{test::NoListener{}};
    options.handlers = test::echo_handlers(events);
    options.handlers.on_close = [&](reactor::Connection& conn, CloseReason reason) {
        events.closed(conn.id(), reason);
        // Every receiver that goes closes its neighbours and writes to the rest.
        for (ConnectionId other = conn.id() + 1; other < conn.id() + 4; ++other) {
            h.server.close(other, CloseMode::now);
        }
        h.server.broadcast("gone\n");
    };
    h.listen_primary(std::move(options));
    std::vector<TestClient> clients;
    for (int i = 0; i < 30; ++i) clients.push_back(h.connect());
    REQUIRE(events.wait_opened(30));

    const std::string payload(100 * 1024, 'x');
    CHECK(h.server.broadcast(payload) == 30);
    REQUIRE(events.wait_closed(30));
    CHECK(events.unbalanced().empty());
    CHECK(test::eventually([&] { return h.server.connection_count() == 0; }));
}

TEST_CASE("for_each visits only open connections when its callback closes others") {
    ServerHarness h;
    auto clients = connect_many(h, 12);
    const auto visits = h.on_loop([&] {
        std::vector<std::pair<ConnectionId, bool>> seen;  // id, closing when visited
        h.server.for_each([&](reactor::Connection& conn) {
            seen.emplace_back(conn.id(), conn.closing());
            // The first one visited closes every other connection, then itself.
            if (seen.size() == 1) {
                for (const auto& [client, id] : clients) {
                    if (id != conn.id()) h.server.close(id, CloseMode::now);
                }
                conn.close(CloseMode::now);
            }
        });
        return seen;
    });
    REQUIRE(visits.size() == 1);
    CHECK_FALSE(visits.front().second);
    REQUIRE(h.events.wait_closed(12));
    CHECK(h.events.unbalanced().empty());
}

TEST_CASE("for_each survives a callback whose sends overflow and close the connections") {
    reactor::ListenOptions options;
    options.limits.output_limit = 32 * 1024;
    ServerHarness h(std::move(options));
    auto clients = connect_many(h, 20);
    const std::string big(64 * 1024, 'f');
    const std::size_t visited = h.on_loop([&] {
        std::size_t n = 0;
        h.server.for_each([&](reactor::Connection& conn) {
            ++n;
            conn.send(big);
        });
        return n;
    });
    CHECK(visited == 20);
    REQUIRE(h.events.wait_closed(20));
    for (const auto& [client, id] : clients) {
        CHECK(h.events.closes_of(id) == std::vector{CloseReason::output_overflow});
    }
}

TEST_CASE("shutdown survives on_close handlers that close, send to and open connections") {
    Backlog elsewhere;
    test::ConnectionEvents events;
    std::promise<std::pair<ConnectionId, std::string>> opened_during_shutdown;
    auto opened_future = opened_during_shutdown.get_future();
    std::atomic<bool> done{false};
    std::vector<TestClient> clients;
    {
        reactor::EventLoop loop;
        reactor::Server server(loop);
        bool connect_tried = false;
        reactor::ListenOptions options;
        options.handlers = test::echo_handlers(events);
        options.handlers.on_close = [&](reactor::Connection& conn, CloseReason reason) {
            events.closed(conn.id(), reason);
            for (ConnectionId other = conn.id() + 1; other < conn.id() + 3; ++other) {
                server.send(other, "neighbour left\n");
                server.close(other, CloseMode::now, CloseReason::kicked);
            }
            server.broadcast("someone left\n");
            if (!connect_tried) {
                connect_tried = true;
                reactor::ConnectOptions out;
                out.endpoint = elsewhere.endpoint();
                out.handlers = test::echo_handlers(events);
                server.connect(std::move(out), [&](ConnectionId id, const std::string& error) {
                    opened_during_shutdown.set_value({id, error});
                });
            }
        };
        const reactor::Endpoint endpoint = server.listen(std::move(options));
        test::LoopThread thread(loop);
        for (int i = 0; i < 16; ++i) clients.push_back(TestClient::connect(endpoint));
        REQUIRE(events.wait_opened(16));
        test::on_loop(loop, [&] { server.shutdown([&] { done = true; }); });
        for (auto& c : clients) CHECK(c.read_until_eof(10s).end == test::ReadEnd::complete);
        REQUIRE(test::eventually([&] { return done.load(); }, 10s));
        // The connection that completed during the shutdown was not let in to keep it going.
        REQUIRE(opened_future.wait_for(10s) == std::future_status::ready);
        const auto [id, error] = opened_future.get();
        CHECK(id == 0);
        CHECK(error == "server shutting down");
        CHECK(test::on_loop(loop, [&] { return server.connection_count(); }) == 0);
        thread.stop_and_join();
        CHECK(events.close_count() == 16);
        CHECK(events.unbalanced().empty());
    }
}

TEST_CASE("destroying the server: a connection's context that sends or closes finds nothing") {
    // What the destruction of one connection runs (here its context's destructor) may address
    // the others by id; the server is going, so they are gone, not half destroyed.
    struct Farewell {
        reactor::Server* server;
        std::vector<ConnectionId> others;
        std::shared_ptr<std::vector<bool>> results;
        // Spelled out: clang 14 has no parenthesised aggregate initialisation for make_shared.
        Farewell(reactor::Server* s, std::vector<ConnectionId> o,
                 std::shared_ptr<std::vector<bool>> r)
            : server(s), others(std::move(o)), results(std::move(r)) {}
        Farewell(const Farewell&) = delete;
        Farewell& operator=(const Farewell&) = delete;
        ~Farewell() {
            for (const auto id : others) {
                results->push_back(server->send(id, "bye"));
                results->push_back(server->close(id));
            }
        }
    };
    auto results = std::make_shared<std::vector<bool>>();
    std::vector<std::pair<TestClient, ConnectionId>> clients;
    {
        ServerHarness h;
        clients = connect_many(h, 8);
        std::vector<ConnectionId> ids;
        for (const auto& [client, id] : clients) ids.push_back(id);
        h.on_loop([&] {
            h.server.for_each([&](reactor::Connection& conn) {
                conn.context = std::make_shared<Farewell>(&h.server, ids, results);
            });
        });
        h.stop_loop();
    }
    CHECK(results->size() == 8 * 8 * 2);
    for (const bool sent : *results) CHECK_FALSE(sent);
    for (auto& [client, id] : clients) CHECK(client.read_until_eof(5s).ok());
}

namespace {

// A listener whose every request line "N" is answered with big_reply(N, kReplySize); the high-water
// mark and the output limit are small next to what a pipelined batch asks for.
constexpr std::size_t kReplySize = 64 * 1024;
reactor::ListenOptions pipelining_listener() {
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.limits.output_high_water = 256 * 1024;
    options.limits.output_limit = 1024 * 1024;
    return options;
}

std::string requests(std::size_t n) {
    std::string all;
    for (std::size_t i = 0; i < n; ++i) all += std::to_string(i) + "\n";
    return all;
}

std::string replies(std::size_t n) {
    std::string all;
    for (std::size_t i = 0; i < n; ++i) all += big_reply(i, kReplySize);
    return all;
}

void answer_with_big_replies(ServerHarness& h, reactor::ListenOptions options) {
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        conn.send(big_reply(std::stoul(std::string(message.payload)), kReplySize));
    };
    h.listen_primary(std::move(options));
}

}  // namespace

TEST_CASE("pipelined requests whose replies pass the output limit are throttled, not closed") {
    // 200 requests arrive in one read and ask for 12.5 MiB of replies, twelve times the output
    // limit: decoding waits while the output is above the high-water mark, and every reply
    // arrives, in order, as the client reads.
    ServerHarness h{test::NoListener{}};
    answer_with_big_replies(h, pipelining_listener());
    constexpr std::size_t kRequests = 200;
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(requests(kRequests)));
    const auto got = client.read_exactly(kRequests * kReplySize, 30s);
    INFO("read ended: " << test::to_string(got.end) << " after " << got.data.size() << " bytes");
    REQUIRE(got.ok());
    CHECK(got.data == replies(kRequests));
    CHECK(h.events.closes_of(id).empty());
    // Still served afterwards.
    REQUIRE(client.send_all("7\n"));
    CHECK(client.read_exactly(kReplySize).data == big_reply(7, kReplySize));
}

TEST_CASE("pipelined requests then a half-close: every reply arrives before the end of stream") {
    ServerHarness h{test::NoListener{}};
    answer_with_big_replies(h, pipelining_listener());
    constexpr std::size_t kRequests = 100;
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(requests(kRequests)));
    client.shutdown_write();
    const auto got = client.read_until_eof(30s);
    INFO("read ended: " << test::to_string(got.end) << " after " << got.data.size() << " bytes");
    REQUIRE(got.ok());
    CHECK(got.data == replies(kRequests));
    CHECK(h.events.wait_close_of(id) == CloseReason::peer_closed);
}

namespace {

// Stalls the thread a signal lands on, as SIGSTOP stalls a process: a loop waiting in epoll_wait
// sleeps in the handler, then epoll_wait fails with EINTR and the loop runs its timers before it
// polls again, the order in which a process continued after SIGCONT runs them. The handler writes
// a byte to `stall_pipe[1]` when the stall begins.
int stall_pipe[2] = {-1, -1};
void stall_handler(int) {
    const char byte = 's';
    [[maybe_unused]] const auto n = ::write(stall_pipe[1], &byte, 1);
    timespec stall{0, 800 * 1000 * 1000};
    ::nanosleep(&stall, nullptr);
}

}  // namespace

TEST_CASE("a connection whose input waits while its idle timer falls due is not closed as idle") {
    // The loop is stalled past the idle timeout while the client sends a line: on waking, the
    // timer and the read are both due, and the line counts before idleness is judged. The
    // handler's sleep is the stall under test.
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.limits.idle_timeout = 300ms;
    ServerHarness h{test::NoListener{}};
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        conn.send(std::string(message.payload) + "\n");
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("first\n"));
    REQUIRE(client.read_exactly(6).data == "first\n");

    REQUIRE(::pipe(stall_pipe) == 0);
    struct sigaction action {};
    action.sa_handler = stall_handler;  // no SA_RESTART: epoll_wait returns EINTR
    sigemptyset(&action.sa_mask);
    struct sigaction previous {};
    REQUIRE(::sigaction(SIGUSR2, &action, &previous) == 0);
    // The loop has nothing to do but its 100 ms probe: it waits in epoll_wait.
    REQUIRE(::pthread_kill(h.thread->native_handle(), SIGUSR2) == 0);
    pollfd began{stall_pipe[0], POLLIN, 0};
    REQUIRE(::poll(&began, 1, 5000) == 1);
    REQUIRE(client.send_all("during the stall\n"));
    const auto got = client.read_exactly(17, 5s);
    INFO("read ended: " << test::to_string(got.end));
    CHECK(got.data == "during the stall\n");
    CHECK(h.events.closes_of(id).empty());
    // Idle from then on, it is closed in its time.
    CHECK(h.events.wait_close_of(id, 5s) == CloseReason::timeout);
    ::sigaction(SIGUSR2, &previous, nullptr);
    ::close(stall_pipe[0]);
    ::close(stall_pipe[1]);
}

TEST_CASE("a refused client that sent at once reads the notice and the end of stream, no reset") {
    std::atomic<int> refusals{0};
    reactor::ListenOptions options;
    options.limits.max_connections = 1;
    options.protocol = test::busy_notice_protocol();
    ServerHarness h{test::NoListener{}};
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_refused = [&](const std::string& peer) {
        CHECK(peer.rfind("127.0.0.1:", 0) == 0);
        ++refusals;
    };
    h.listen_primary(std::move(options));
    auto [admitted, id] = h.connect_and_wait_open();

    constexpr int kRefused = 10;
    std::vector<TestClient> refused;
    // The loop waits while the clients connect and send, so their bytes are in the server's
    // socket before it accepts and refuses them: closing such a socket at once resets it.
    std::promise<void> sent;
    auto sent_future = sent.get_future().share();
    h.loop.post([sent_future] { sent_future.wait_for(10s); });
    for (int i = 0; i < kRefused; ++i) {
        refused.push_back(h.connect());
        REQUIRE(refused.back().send_all("PING\r\nPING\r\n"));
    }
    sent.set_value();
    for (auto& client : refused) {
        const auto got = client.read_until_eof(5s);
        INFO("read ended: " << test::to_string(got.end) << " errno " << got.error);
        CHECK(got.end == test::ReadEnd::complete);
        CHECK(got.data == "BUSY\n");
    }
    CHECK(test::eventually([&] { return refusals.load() == kRefused; }));
    REQUIRE(admitted.send_all("still served"));
    CHECK(admitted.read_exactly(12).data == "still served");
}

TEST_CASE("refused sockets that neither read nor close do not pile up") {
    reactor::ListenOptions options;
    options.limits.max_connections = 1;
    options.protocol = test::busy_notice_protocol();
    ServerHarness h(std::move(options));
    auto [admitted, id] = h.connect_and_wait_open();
    const int baseline = test::count_open_fds();
    std::vector<TestClient> refused;
    // More than the server keeps lingering at once, each sending and never closing.
    for (int i = 0; i < 150; ++i) {
        refused.push_back(h.connect());
        refused.back().send_all(std::string(1000, 'x'));
    }
    // The server's side of each is closed (within the linger deadline): only the clients' own
    // descriptors remain.
    CHECK(test::eventually([&] { return test::count_open_fds() == baseline + 150; }, 10s));
    for (auto& client : refused) CHECK(client.read_exactly(5, 5s).data == "BUSY\n");
}

TEST_CASE("the refusal log reports every refusal of a burst, the tail by a later line") {
    int log_pipe[2];
    REQUIRE(::pipe(log_pipe) == 0);
    const int previous = reactor::set_log_fd(log_pipe[1]);
    reactor::ListenOptions options;
    options.name = "tail";
    options.limits.max_connections = 1;
    options.protocol = test::busy_notice_protocol();
    {
        ServerHarness h(std::move(options));
        auto [admitted, id] = h.connect_and_wait_open();
        for (int i = 0; i < 5; ++i) {
            TestClient refused = h.connect();
            CHECK(refused.read_until_eof(5s).data == "BUSY\n");
        }
        // The first refusal is logged at once; the four within the same second by the line that
        // ends the burst, about a second later.
        std::string logged;
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (logged.find("refused 4 connections since the last report") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline) {
            pollfd readable{log_pipe[0], POLLIN, 0};
            if (::poll(&readable, 1, 100) != 1) continue;
            char chunk[4096];
            const ssize_t n = ::read(log_pipe[0], chunk, sizeof chunk);
            if (n > 0) logged.append(chunk, static_cast<std::size_t>(n));
        }
        INFO("log: " << logged);
        CHECK(logged.find("listener=tail max_connections 1 reached: refused 1 connection since "
                          "the last report") != std::string::npos);
        CHECK(
            logged.find("refused 4 connections since the last report, the last from 127.0.0.1:") !=
            std::string::npos);
        CHECK(logged.find("(5 in all)") != std::string::npos);
    }
    reactor::set_log_fd(previous);
    ::close(log_pipe[0]);
    ::close(log_pipe[1]);
}
