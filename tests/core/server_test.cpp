#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "server_harness.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using reactor::CloseMode;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;
using test::TestClient;

namespace {

std::string pattern(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 251);
    return s;
}

void check_echo(TestClient& client, const std::string& message) {
    REQUIRE(client.send_all(message));
    const auto reply = client.read_exactly(message.size());
    INFO("read ended: " << test::to_string(reply.end));
    REQUIRE(reply.ok());
    CHECK(reply.data == message);
}

reactor::ListenOptions options_named(std::string name) {
    reactor::ListenOptions options;
    options.name = std::move(name);
    return options;
}

bool ipv6_loopback_available() {
    const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

TEST_CASE("echo over one connection, byte exact") {
    ServerHarness h;
    auto [client, id] = h.connect_and_wait_open();
    CHECK(id >= 1);
    check_echo(client, "hello");
    check_echo(client, pattern(1 << 20, 'a'));  // larger than one read and the socket buffers
    check_echo(client, std::string("\0\x01\xff", 3));
    CHECK(h.server.connection_count() == 1);
}

TEST_CASE("connection ids are distinct, strictly increasing and start at 1 or above") {
    ServerHarness h;
    std::vector<TestClient> clients;
    std::vector<ConnectionId> ids;
    for (int i = 0; i < 10; ++i) {
        auto [client, id] = h.connect_and_wait_open();
        clients.push_back(std::move(client));
        ids.push_back(id);
    }
    CHECK(ids.front() >= 1);
    for (std::size_t i = 1; i < ids.size(); ++i) {
        INFO("ids " << ids[i - 1] << " then " << ids[i]);
        CHECK(ids[i] > ids[i - 1]);
    }
    CHECK(h.server.connection_count() == 10);

    // A second server in the same process never reuses them.
    ServerHarness other;
    auto [client, id] = other.connect_and_wait_open();
    CHECK(id > ids.back());
}

TEST_CASE("send to an unknown or closed id returns false") {
    ServerHarness h;
    constexpr ConnectionId kUnknown = 0xdead'beef'0000ULL;
    CHECK_FALSE(h.on_loop([&] { return h.server.send(kUnknown, "x"); }));
    CHECK_FALSE(h.server.send(kUnknown, "x"));
    bool from_other_thread = true;
    std::thread other([&] { from_other_thread = h.server.send(kUnknown, "x"); });
    other.join();
    CHECK_FALSE(from_other_thread);
    CHECK_FALSE(h.server.send(0, "x"));
    CHECK_FALSE(h.server.send_raw(kUnknown, "x"));
    CHECK_FALSE(h.server.close(kUnknown));

    auto [client, id] = h.connect_and_wait_open();
    CHECK(h.server.send(id, "ok"));
    CHECK(client.read_exactly(2).data == "ok");
    client.close();
    REQUIRE(h.events.wait_close_of(id) == CloseReason::peer_closed);
    // on_close has returned once a later loop task runs.
    h.on_loop([] {});
    CHECK_FALSE(h.server.send(id, "late"));
    CHECK_FALSE(h.server.send_raw(id, "late"));
    CHECK_FALSE(h.server.close(id));
    CHECK_FALSE(h.on_loop([&, id = id] { return h.server.send(id, "late"); }));
    CHECK(h.on_loop([&, id = id] { return h.server.find(id) == nullptr; }));
    CHECK(h.server.connection_count() == 0);
}

TEST_CASE("send from a foreign thread reaches the client, in order") {
    ServerHarness h;
    auto [client, id] = h.connect_and_wait_open();
    std::string expected;
    for (int i = 0; i < 200; ++i) expected += "part" + std::to_string(i) + ";";
    std::atomic<int> refused{0};
    std::thread sender([&, id = id] {
        for (int i = 0; i < 200; ++i) {
            if (!h.server.send(id, "part" + std::to_string(i) + ";")) ++refused;
        }
        if (!h.server.send_raw(id, "[raw]")) ++refused;
    });
    sender.join();
    CHECK(refused == 0);
    expected += "[raw]";
    const auto got = client.read_exactly(expected.size());
    REQUIRE(got.ok());
    CHECK(got.data == expected);
}

TEST_CASE("broadcast reaches every client exactly once") {
    ServerHarness h;
    const reactor::Endpoint second = h.listen(options_named("second"));
    constexpr int kPerListener = 10;
    std::vector<TestClient> first_clients;
    std::vector<TestClient> second_clients;
    for (int i = 0; i < kPerListener; ++i) {
        first_clients.push_back(h.connect_and_wait_open().first);
        const std::size_t before = h.events.open_count();
        second_clients.push_back(TestClient::connect(second));
        REQUIRE(h.events.wait_opened(before + 1));
    }

    CHECK(h.server.broadcast("news") == 2 * kPerListener);
    CHECK(h.on_loop([&] { return h.server.broadcast("more"); }) == 2 * kPerListener);
    CHECK(h.server.broadcast("only-second", "second") == kPerListener);
    // A marker after everything: a duplicate would show up before it.
    CHECK(h.server.broadcast("|end") == 2 * kPerListener);

    for (auto& c : first_clients) {
        const auto got = c.read_exactly(std::string("newsmore|end").size());
        REQUIRE(got.ok());
        CHECK(got.data == "newsmore|end");
    }
    for (auto& c : second_clients) {
        const std::string want = "newsmoreonly-second|end";
        const auto got = c.read_exactly(want.size());
        REQUIRE(got.ok());
        CHECK(got.data == want);
    }
    // Nothing after the marker.
    for (auto& c : first_clients) CHECK(c.read_exactly(1, 50ms).end == test::ReadEnd::timeout);
}

TEST_CASE("close reasons") {
    ServerHarness h;

    SUBCASE("the client closes: peer closed") {
        auto [client, id] = h.connect_and_wait_open();
        check_echo(client, "bye");
        client.close();
        CHECK(h.events.wait_close_of(id) == CloseReason::peer_closed);
    }
    SUBCASE("the client resets an idle connection: reset/error") {
        auto [client, id] = h.connect_and_wait_open();
        check_echo(client, "bye");
        client.reset();
        // RST with nothing unread: the kernel reports ECONNRESET on the next read, never EOF.
        CHECK(h.events.wait_close_of(id) == CloseReason::error);
    }
    SUBCASE("the client resets with its reply unread") {
        auto [client, id] = h.connect_and_wait_open();
        REQUIRE(client.send_all(pattern(64 * 1024, 'r')));
        client.reset();
        const auto reason = h.events.wait_close_of(id);
        REQUIRE(reason.has_value());
        // Depending on whether the server read the data before the RST arrived, it sees the error
        // on the read or on the echo's write; either way it is not a clean close.
        CHECK(*reason == CloseReason::error);
    }
    SUBCASE("the server closes: kicked, and the client gets the pending output then EOF") {
        auto [client, id] = h.connect_and_wait_open();
        const std::string big = pattern(4 << 20, 'k');
        h.on_loop([&, id = id] {
            REQUIRE(h.server.send(id, big));
            REQUIRE(h.server.close(id));
            // Closing: no more sends, and a second close is refused.
            CHECK_FALSE(h.server.send(id, "after close"));
            CHECK_FALSE(h.server.close(id));
        });
        const auto got = client.read_until_eof(10s);
        REQUIRE(got.ok());
        CHECK(got.data.size() == big.size());
        CHECK(got.data == big);
        CHECK(h.events.wait_close_of(id) == CloseReason::kicked);
    }
    SUBCASE("the server closes from a foreign thread after a send") {
        auto [client, id] = h.connect_and_wait_open();
        CHECK(h.server.send(id, "last words"));
        CHECK(h.server.close(id));
        const auto got = client.read_until_eof();
        REQUIRE(got.ok());
        CHECK(got.data == "last words");
        CHECK(h.events.wait_close_of(id) == CloseReason::kicked);
    }
    SUBCASE("close now with another reason") {
        auto [client, id] = h.connect_and_wait_open();
        CHECK(h.server.close(id, CloseMode::now, CloseReason::protocol_error));
        CHECK(client.read_until_eof().end != test::ReadEnd::timeout);
        CHECK(h.events.wait_close_of(id) == CloseReason::protocol_error);
    }
    CHECK(h.events.wait_closed(1));
    CHECK(h.events.unbalanced().empty());
}

TEST_CASE("idle timeout closes an idle connection but not an active one") {
    constexpr auto kIdle = 400ms;
    reactor::ListenOptions options;
    options.limits.idle_timeout = kIdle;
    ServerHarness h(std::move(options));

    // An idle client is closed once the timeout passed, not before.
    const auto opened_at = std::chrono::steady_clock::now();
    auto [idle, idle_id] = h.connect_and_wait_open();
    REQUIRE(h.events.wait_close_of(idle_id, 5s) == CloseReason::timeout);
    CHECK(std::chrono::steady_clock::now() - opened_at >= kIdle);
    CHECK(idle.sees_eof());

    // A client that sends a message every 50 ms for well over the timeout stays open.
    auto [active, active_id] = h.connect_and_wait_open();
    const auto until = std::chrono::steady_clock::now() + 2 * kIdle + 200ms;
    int round = 0;
    while (std::chrono::steady_clock::now() < until) {
        check_echo(active, "ping" + std::to_string(round++));
        std::this_thread::sleep_for(50ms);  // pacing, not synchronisation
    }
    CHECK(h.events.closes_of(active_id).empty());
    check_echo(active, "still here");

    // Once it stops, it times out as well.
    CHECK(h.events.wait_close_of(active_id, 5s) == CloseReason::timeout);
    CHECK(active.sees_eof());
}

TEST_CASE("half-close: the client still gets its full reply, then EOF") {
    ServerHarness h;
    SUBCASE("a short message") {
        auto [client, id] = h.connect_and_wait_open();
        REQUIRE(client.send_all("request"));
        client.shutdown_write();
        const auto got = client.read_until_eof();
        REQUIRE(got.ok());
        CHECK(got.data == "request");
        CHECK(h.events.wait_close_of(id) == CloseReason::peer_closed);
    }
    SUBCASE("a large message, shut down before the reply was read") {
        auto [client, id] = h.connect_and_wait_open();
        const std::string big = pattern(1 << 20, 'h');
        REQUIRE(client.send_all(big));
        client.shutdown_write();
        const auto got = client.read_until_eof(10s);
        REQUIRE(got.ok());
        CHECK(got.data.size() == big.size());
        CHECK(got.data == big);
        CHECK(h.events.wait_close_of(id) == CloseReason::peer_closed);
    }
}

TEST_CASE("disconnects and resets leave no connection, callback or descriptor behind") {
    ServerHarness h;
    constexpr int kClients = 60;
    std::vector<TestClient> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(h.connect());
    }
    REQUIRE(h.events.wait_opened(kClients));
    for (int i = 0; i < kClients; ++i) check_echo(clients[i], "warm-up " + std::to_string(i));

    const std::string big = pattern(256 * 1024, 'm');
    for (int i = 0; i < kClients; ++i) {
        switch (i % 4) {
            case 0:  // mid-stream: a large request, gone before the reply
                REQUIRE(clients[i].send_all(big));
                clients[i].close();
                break;
            case 1:  // reset mid-stream
                REQUIRE(clients[i].send_all(big));
                clients[i].reset();
                break;
            case 2:  // reset while idle
                clients[i].reset();
                break;
            default:  // half-close, then gone without reading
                REQUIRE(clients[i].send_all("half"));
                clients[i].shutdown_write();
                clients[i].close();
                break;
        }
    }
    REQUIRE(h.events.wait_closed(kClients, 10s));
    CHECK(h.events.open_count() == kClients);
    CHECK(h.events.unbalanced().empty());
    CHECK(test::eventually([&] { return h.server.connection_count() == 0; }));
    CHECK(h.on_loop([&] {
        std::size_t n = 0;
        h.server.for_each([&](reactor::Connection&) { ++n; });
        return n;
    }) == 0);
    CHECK(test::eventually([&] { return test::count_open_fds() == h.fds_listening; }));
    INFO("descriptors: " << test::count_open_fds() << ", listening baseline " << h.fds_listening);
    CHECK(test::count_open_fds() == h.fds_listening);

    // The server still serves.
    auto [client, id] = h.connect_and_wait_open();
    check_echo(client, "after the storm");
}

TEST_CASE("shutdown closes every connection with reason shutdown and stops the loop") {
    const int fds_before = test::count_open_fds();
    test::ConnectionEvents events;
    std::vector<TestClient> clients;
    std::atomic<bool> done_called{false};
    {
        reactor::EventLoop loop;
        reactor::Server server(loop);
        reactor::ListenOptions options;
        options.handlers = test::echo_handlers(events);
        const reactor::Endpoint endpoint = server.listen(std::move(options));
        test::LoopThread thread(loop);
        for (int i = 0; i < 20; ++i) clients.push_back(TestClient::connect(endpoint));
        REQUIRE(events.wait_opened(20));
        for (auto& c : clients) check_echo(c, "before shutdown");
        // Some output still pending when shutdown starts: it is flushed, not dropped.
        const std::string tail = pattern(512 * 1024, 's');
        test::on_loop(loop, [&] {
            server.for_each([&](reactor::Connection& conn) { conn.send(tail); });
            server.shutdown([&] {
                done_called = true;
                loop.stop();
            });
        });
        for (auto& c : clients) {
            const auto got = c.read_until_eof(10s);
            REQUIRE(got.ok());
            CHECK(got.data == tail);
        }
        REQUIRE(thread.wait_finished(10s));
        CHECK(done_called);
        CHECK(events.close_count() == 20);
        CHECK(events.unbalanced().empty());
        for (const auto id : events.open_order()) {
            const auto reasons = events.closes_of(id);
            REQUIRE(reasons.size() == 1);
            CHECK(reasons.front() == CloseReason::shutdown);
        }
        CHECK(server.connection_count() == 0);
        // The listener is closed: a new connection is refused.
        bool refused = false;
        try {
            TestClient::connect(endpoint, 1s);
        } catch (const std::runtime_error&) {
            refused = true;
        }
        CHECK(refused);
    }
    clients.clear();
    CHECK(test::count_open_fds() == fds_before);
}

TEST_CASE("shutdown with no connections calls done") {
    reactor::EventLoop loop;
    reactor::Server server(loop);
    server.listen({});
    test::LoopThread thread(loop);
    test::on_loop(loop, [&] { server.shutdown([&] { loop.stop(); }); });
    CHECK(thread.wait_finished(5s));
}

TEST_CASE("a connection's peer is its client's address and port") {
    ServerHarness h;
    // A client bound to a loopback address with three-digit and one-digit octets.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(0x7f6d0009);  // 127.109.0.9
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(h.endpoint.port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server);
    TestClient client(fd);  // owns the socket from here (and makes it non-blocking)
    REQUIRE(connected == 0);
    socklen_t length = sizeof local;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0);
    REQUIRE(h.events.wait_opened(1));
    const reactor::ConnectionId id = h.events.open_order().front();
    const std::string peer = h.on_loop([&] { return h.server.find(id)->peer(); });
    CHECK(peer == "127.109.0.9:" + std::to_string(ntohs(local.sin_port)));
}

TEST_CASE("IPv6 loopback listener echoes") {
    if (!ipv6_loopback_available()) {
        MESSAGE("no IPv6 loopback here: skipped");
        return;
    }
    reactor::ListenOptions options;
    options.endpoint = reactor::Endpoint::parse("[::1]:0");
    ServerHarness h(std::move(options));
    CHECK(h.endpoint.host == "::1");
    CHECK(h.endpoint.port != 0);
    auto [client, id] = h.connect_and_wait_open();
    check_echo(client, "over six");
    const std::string peer = h.on_loop([&, id = id] { return h.server.find(id)->peer(); });
    CHECK(peer.rfind("[::1]:", 0) == 0);
}

TEST_CASE("Unix domain socket listener echoes, and removes its socket file") {
    test::TempDir dir;
    const std::string path = dir.file("echo.sock");
    {
        reactor::ListenOptions options;
        options.endpoint = reactor::Endpoint::unix_socket(path);
        ServerHarness h(std::move(options));
        CHECK(h.endpoint.is_unix());
        CHECK(h.endpoint.unix_path == path);
        auto [client, id] = h.connect_and_wait_open();
        check_echo(client, "over unix");
        check_echo(client, pattern(300 * 1024, 'u'));
        const std::string peer = h.on_loop([&, id = id] { return h.server.find(id)->peer(); });
        CHECK(peer.rfind("unix:", 0) == 0);
        client.close();
        CHECK(h.events.wait_close_of(id) == CloseReason::peer_closed);
    }
    struct stat st {};
    CHECK(::lstat(path.c_str(), &st) != 0);
}

TEST_CASE("listening on a port in use throws") {
    ServerHarness h;
    reactor::EventLoop loop;
    reactor::Server server(loop);
    reactor::ListenOptions options;
    options.endpoint = h.endpoint;
    CHECK_THROWS_AS(server.listen(std::move(options)), std::system_error);
}

TEST_CASE("on_open may greet and close at once") {
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_open = [&h](reactor::Connection& conn) {
        h.events.opened(conn.id());
        conn.send("hello and goodbye");
        conn.close();
    };
    h.listen_primary(std::move(options));
    for (int i = 0; i < 3; ++i) {
        TestClient client = h.connect();
        const auto got = client.read_until_eof();
        REQUIRE(got.ok());
        CHECK(got.data == "hello and goodbye");
    }
    REQUIRE(h.events.wait_closed(3));
    for (const auto id : h.events.open_order()) {
        CHECK(h.events.closes_of(id) == std::vector<CloseReason>{CloseReason::app_closed});
    }
    CHECK(test::eventually([&] { return h.server.connection_count() == 0; }));
}

TEST_CASE("closing inside on_message stops delivery and flushes the reply") {
    std::atomic<int> messages{0};  // outlives the loop that counts into it
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [&messages](reactor::Connection& conn, reactor::Message& msg) {
        ++messages;
        conn.send(msg.payload);
        conn.close();
        // Closing: further sends are ignored.
        conn.send("ignored");
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("only this"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "only this");
    CHECK(h.events.wait_close_of(id) == CloseReason::app_closed);
    CHECK(messages == 1);
}

TEST_CASE("destroying the server with open connections releases every descriptor") {
    const int fds_before = test::count_open_fds();
    test::ConnectionEvents events;
    std::vector<TestClient> clients;
    {
        reactor::EventLoop loop;
        reactor::Server server(loop);
        reactor::ListenOptions options;
        options.handlers = test::echo_handlers(events);
        const reactor::Endpoint endpoint = server.listen(std::move(options));
        test::LoopThread thread(loop);
        for (int i = 0; i < 10; ++i) clients.push_back(TestClient::connect(endpoint));
        REQUIRE(events.wait_opened(10));
        for (auto& c : clients) check_echo(c, "x");
        thread.stop_and_join();
    }
    // The application chose to drop them: no on_close, but the clients see the end.
    CHECK(events.close_count() == 0);
    for (auto& c : clients) CHECK(c.read_until_eof().end != test::ReadEnd::timeout);
    clients.clear();
    CHECK(test::count_open_fds() == fds_before);
}
