#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "server_harness.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;
using Clock = std::chrono::steady_clock;

namespace {

// What Server::connect reported, and what the outbound connection received. Notifies while
// holding the lock: the waiting test may destroy it as soon as it sees the change.
struct Outbound {
    std::mutex mutex;
    std::condition_variable changed;
    bool done = false;
    ConnectionId id = 0;
    std::string error;
    bool opened_before_done = false;
    bool opened = false;
    std::string received;
    std::vector<CloseReason> closes;

    reactor::Handlers handlers() {
        reactor::Handlers h;
        h.on_open = [this](reactor::Connection&) {
            std::lock_guard lock(mutex);
            opened = true;
        };
        h.on_message = [this](reactor::Connection&, reactor::Message& msg) {
            std::lock_guard lock(mutex);
            received.append(msg.payload);
            changed.notify_all();
        };
        h.on_close = [this](reactor::Connection&, CloseReason reason) {
            std::lock_guard lock(mutex);
            closes.push_back(reason);
            changed.notify_all();
        };
        return h;
    }

    auto on_done() {
        return [this](ConnectionId conn, const std::string& err) {
            std::lock_guard lock(mutex);
            done = true;
            id = conn;
            error = err;
            opened_before_done = opened;
            changed.notify_all();
        };
    }

    template <typename Pred>
    bool wait(Pred pred, std::chrono::milliseconds deadline = 5s) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, deadline, [&] { return pred(*this); });
    }
};

void start_connect(ServerHarness& h, const reactor::Endpoint& to, Outbound& out,
                   std::chrono::milliseconds timeout = 5000ms) {
    h.on_loop([&] {
        reactor::ConnectOptions options;
        options.endpoint = to;
        options.timeout = timeout;
        options.handlers = out.handlers();
        h.server.connect(std::move(options), out.on_done());
    });
}

// A loopback TCP socket that is bound but not listening: connecting to its port is refused, and
// while it stays open no other socket can take the port.
class UnlistenedPort {
  public:
    UnlistenedPort() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
    }
    ~UnlistenedPort() { ::close(fd_); }
    std::uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// A loopback listener whose accept queue is full and never drained. Linux drops further SYNs
// (tcp_abort_on_overflow is off by default), so a new connect neither completes nor fails: the
// deterministic way to make a connect time out without leaving loopback.
class FullBacklog {
  public:
    FullBacklog() {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listen_fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listen_fd_, 0) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        // Fill the queue: connect until one connect does not complete.
        for (int i = 0; i < 16 && !full_; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            REQUIRE(fd >= 0);
            fillers_.push_back(fd);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) continue;
            REQUIRE(errno == EINPROGRESS);
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, 200) == 0) full_ = true;
        }
    }
    ~FullBacklog() {
        for (const int fd : fillers_) ::close(fd);
        ::close(listen_fd_);
    }
    bool full() const { return full_; }
    std::uint16_t port() const { return port_; }

  private:
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    bool full_ = false;
    std::vector<int> fillers_;
};

}  // namespace

TEST_CASE("connect to a listener of the same server and exchange bytes") {
    Outbound out;  // outlives the loop that reports into it
    ServerHarness h;
    start_connect(h, h.endpoint, out);
    REQUIRE(out.wait([](Outbound& o) { return o.done; }));
    CHECK(out.error.empty());
    REQUIRE(out.id != 0);
    CHECK(out.opened_before_done);
    // The listener side opened too: two connections, one each way.
    REQUIRE(h.events.wait_opened(1));
    CHECK(test::eventually([&] { return h.server.connection_count() == 2; }));
    const std::string peer = h.on_loop([&] { return h.server.find(out.id)->peer(); });
    CHECK(peer == h.endpoint.to_string());
    const std::string name = h.on_loop([&] { return h.server.find(out.id)->listener(); });
    CHECK(name == "outbound");

    // Outbound send -> listener echoes -> outbound on_message.
    CHECK(h.server.send(out.id, "ping over the connector"));
    CHECK(out.wait([](Outbound& o) { return o.received == "ping over the connector"; }));

    // Closing the outbound side closes the inbound one as peer closed.
    const ConnectionId inbound = h.events.open_order().front();
    CHECK(h.server.close(out.id));
    CHECK(out.wait([](Outbound& o) { return !o.closes.empty(); }));
    CHECK(out.closes == std::vector<CloseReason>{CloseReason::kicked});
    CHECK(h.events.wait_close_of(inbound) == CloseReason::peer_closed);
}

TEST_CASE("connect over a Unix domain socket") {
    test::TempDir dir;
    const std::string path = dir.file("s");
    {
        reactor::ListenOptions options;
        options.endpoint = reactor::Endpoint::unix_socket(path);
        Outbound out;
        ServerHarness h(std::move(options));
        start_connect(h, h.endpoint, out);
        REQUIRE(out.wait([](Outbound& o) { return o.done; }));
        CHECK(out.error.empty());
        REQUIRE(out.id != 0);
        CHECK(h.server.send(out.id, "local"));
        CHECK(out.wait([](Outbound& o) { return o.received == "local"; }));
    }
}

TEST_CASE("connect to a closed port reports the error") {
    Outbound out;
    ServerHarness h;
    UnlistenedPort closed;
    start_connect(h, reactor::Endpoint::tcp("127.0.0.1", closed.port()), out);
    REQUIRE(out.wait([](Outbound& o) { return o.done; }));
    CHECK(out.id == 0);
    INFO("error: " << out.error);
    CHECK_FALSE(out.error.empty());
    CHECK(out.error.find(std::to_string(closed.port())) != std::string::npos);
    CHECK(out.error.find("refused") != std::string::npos);
    CHECK_FALSE(out.opened);
    CHECK(h.server.connection_count() == 0);
}

TEST_CASE("connect to an address that cannot be used reports the error") {
    Outbound out;  // outlives the loop that reports into it
    ServerHarness h;
    // Longer than sun_path: rejected before any socket exists, reported from the loop.
    start_connect(h, reactor::Endpoint::unix_socket("/tmp/" + std::string(200, 'x')), out);
    REQUIRE(out.wait([](Outbound& o) { return o.done; }));
    CHECK(out.id == 0);
    INFO("error: " << out.error);
    CHECK(out.error.find("too long") != std::string::npos);
    CHECK_FALSE(out.opened);
}

TEST_CASE("connect times out when the peer never answers") {
    FullBacklog silent;
    if (!silent.full()) {
        MESSAGE("could not fill a loopback accept queue here: connect timeout not tested");
        return;
    }
    Outbound out;  // outlives the loop that reports into it
    ServerHarness h;
    const auto start = Clock::now();
    start_connect(h, reactor::Endpoint::tcp("127.0.0.1", silent.port()), out, 300ms);
    REQUIRE(out.wait([](Outbound& o) { return o.done; }, 10s));
    const auto waited = Clock::now() - start;
    CHECK(out.id == 0);
    INFO("error: " << out.error);
    CHECK(out.error.find("timed out") != std::string::npos);
    CHECK(waited >= 300ms);
    CHECK(waited < 5s);
    CHECK(h.server.connection_count() == 0);
    // The abandoned socket is released.
    h.stop_loop();
}

TEST_CASE("a connect still pending when the server is destroyed reports once") {
    FullBacklog silent;
    if (!silent.full()) {
        MESSAGE("could not fill a loopback accept queue here: skipped");
        return;
    }
    reactor::EventLoop loop;
    Outbound out;
    {
        auto server = std::make_unique<reactor::Server>(loop);
        test::LoopThread thread(loop);
        test::on_loop(loop, [&] {
            reactor::ConnectOptions options;
            options.endpoint = reactor::Endpoint::tcp("127.0.0.1", silent.port());
            options.timeout = 200ms;
            options.handlers = out.handlers();
            server->connect(std::move(options), out.on_done());
            server.reset();
        });
        REQUIRE(out.wait([](Outbound& o) { return o.done; }, 10s));
    }
    CHECK(out.id == 0);
    CHECK_FALSE(out.error.empty());
}
