// Transports over real loopback sockets: a test transport that swaps the case of what it writes,
// and optionally wants a handshake ("HELLO\n" from the client, "WELCOME\n" back) before on_open.
// Reads, writes, the busy notice and outbound connections go through it; on_open waits for the
// handshake, which has a deadline and can fail.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <future>
#include <memory>
#include <string>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::IoResult;
using reactor::IoSlice;
using reactor::Transport;

namespace {

// Options of the test transport.
struct Quirks {
    bool handshake = false;         // wants "HELLO\n" before it is established
    bool read_wants_write = false;  // its first read waits for writability, as TLS may
    bool write_wants_read = false;  // its first write waits for readability, as TLS may
};

class CaseSwapTransport final : public Transport {
  public:
    explicit CaseSwapTransport(Quirks quirks)
        : handshake_wanted_(quirks.handshake),
          stall_read_(quirks.read_wants_write),
          stall_write_(quirks.write_wants_read) {}
    ~CaseSwapTransport() override { close(); }

    void attach(int fd, std::string_view received) override {
        fd_ = fd;
        pending_ = std::string(received);
    }

    Handshake handshake() override {
        if (!handshake_wanted_) return {};
        while (!greeted_) {
            const std::size_t end = pending_.find('\n');
            if (end != std::string::npos) {
                if (pending_.substr(0, end) != "HELLO") {
                    return {Handshake::Status::failed, "no HELLO"};
                }
                pending_.erase(0, end + 1);
                greeted_ = true;
                break;
            }
            char chunk[64];
            const ssize_t got = ::read(fd_, chunk, sizeof chunk);
            if (got == 0) return {Handshake::Status::failed, "end of stream in the handshake"};
            if (got < 0) {
                if (errno == EAGAIN) return {Handshake::Status::want_read, {}};
                return {Handshake::Status::failed, "read failed"};
            }
            pending_.append(chunk, static_cast<std::size_t>(got));
        }
        static constexpr std::string_view welcome = "WELCOME\n";
        while (welcomed_ < welcome.size()) {
            const ssize_t put =
                ::send(fd_, welcome.data() + welcomed_, welcome.size() - welcomed_, MSG_NOSIGNAL);
            if (put < 0) {
                if (errno == EAGAIN) return {Handshake::Status::want_write, {}};
                return {Handshake::Status::failed, "write failed"};
            }
            welcomed_ += static_cast<std::size_t>(put);
        }
        return {};
    }

    IoResult read(char* into, std::size_t room) override {
        if (stall_read_) {
            stall_read_ = false;
            return {0, IoResult::Status::want_write};
        }
        if (!pending_.empty()) {
            // Bytes read with the handshake come first.
            const std::size_t n = std::min(room, pending_.size());
            pending_.copy(into, n);
            pending_.erase(0, n);
            IoResult result{n, IoResult::Status::ok};
            result.more = true;
            return result;
        }
        const ssize_t got = ::read(fd_, into, room);
        if (got > 0) return {static_cast<std::size_t>(got), IoResult::Status::ok};
        if (got == 0) return {0, IoResult::Status::end_of_stream};
        if (errno == EAGAIN) return {0, IoResult::Status::would_block};
        return {0, IoResult::Status::error, errno};
    }

    IoResult write(const IoSlice* slices, std::size_t count) override {
        if (stall_write_) {
            stall_write_ = false;
            return {0, IoResult::Status::want_read};
        }
        std::string swapped;
        for (std::size_t i = 0; i < count; ++i) {
            swapped.append(static_cast<const char*>(slices[i].data), slices[i].size);
        }
        for (char& c : swapped) {
            const auto u = static_cast<unsigned char>(c);
            c = static_cast<char>(std::islower(u) ? std::toupper(u) : std::tolower(u));
        }
        const ssize_t put = ::send(fd_, swapped.data(), swapped.size(), MSG_NOSIGNAL);
        if (put >= 0) return {static_cast<std::size_t>(put), IoResult::Status::ok};
        if (errno == EAGAIN) return {0, IoResult::Status::would_block};
        return {0, IoResult::Status::error, errno};
    }

    bool shutdown_write() override { return ::shutdown(fd_, SHUT_WR) == 0; }
    std::size_t unsent() const override { return 0; }
    void close() override {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    std::string_view name() const override { return "case-swap"; }

  private:
    bool handshake_wanted_;
    bool stall_read_;
    bool stall_write_;
    int fd_ = -1;
    std::string pending_;
    bool greeted_ = false;
    std::size_t welcomed_ = 0;
};

class CaseSwapFactory final : public reactor::TransportFactory {
  public:
    explicit CaseSwapFactory(bool handshake, std::chrono::milliseconds timeout = 5000ms)
        : CaseSwapFactory(Quirks{handshake, false, false}, timeout) {}
    explicit CaseSwapFactory(Quirks quirks, std::chrono::milliseconds timeout = 5000ms)
        : quirks_(quirks), timeout_(timeout) {}
    std::string_view name() const override { return "case-swap"; }
    std::unique_ptr<Transport> create() const override {
        return std::make_unique<CaseSwapTransport>(quirks_);
    }
    std::chrono::milliseconds handshake_timeout() const override {
        return quirks_.handshake ? timeout_ : std::chrono::milliseconds(0);
    }

  private:
    Quirks quirks_;
    std::chrono::milliseconds timeout_;
};

reactor::ListenOptions through(std::shared_ptr<const reactor::TransportFactory> transport) {
    reactor::ListenOptions options;
    options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 0);
    options.transport = std::move(transport);
    return options;
}

}  // namespace

TEST_CASE("reads and writes go through the listener's transport") {
    test::ServerHarness h(through(std::make_shared<CaseSwapFactory>(false)));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("Hello, World"));
    const auto got = client.read_exactly(12);
    REQUIRE(got.ok());
    CHECK(got.data == "hELLO, wORLD");
    // A large reply, written in many pieces, all through it.
    const std::string big(1 << 20, 'a');
    REQUIRE(client.send_all(big));
    const auto echoed = client.read_exactly(big.size(), 10000ms);
    REQUIRE(echoed.ok());
    CHECK(echoed.data == std::string(big.size(), 'A'));
    client.close();
    CHECK(h.events.wait_close_of(id) == reactor::CloseReason::peer_closed);
}

TEST_CASE("a read that waits for writability, and a write that waits for readability, go on") {
    SUBCASE("read wants write") {
        test::ServerHarness h(
            through(std::make_shared<CaseSwapFactory>(Quirks{false, true, false})));
        auto [client, id] = h.connect_and_wait_open();
        REQUIRE(client.send_all("abc"));
        const auto got = client.read_exactly(3);
        REQUIRE(got.ok());
        CHECK(got.data == "ABC");
    }
    SUBCASE("write wants read") {
        test::ServerHarness h(
            through(std::make_shared<CaseSwapFactory>(Quirks{false, false, true})));
        auto [client, id] = h.connect_and_wait_open();
        REQUIRE(client.send_all("abc"));
        // The reply waits for the socket to be readable (a round trip to the loop each look)...
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        bool waiting = false;
        while (!waiting && std::chrono::steady_clock::now() < deadline) {
            waiting = h.on_loop([&, id = id] {
                reactor::Connection* c = h.server.find(id);
                return c != nullptr && c->output_pending() == 3;
            });
        }
        REQUIRE(waiting);
        // ...which the next request makes it.
        REQUIRE(client.send_all("d"));
        const auto got = client.read_exactly(4);
        REQUIRE(got.ok());
        CHECK(got.data == "ABCD");
    }
}

TEST_CASE("a transport's handshake holds on_open until it is done") {
    test::ServerHarness h(through(std::make_shared<CaseSwapFactory>(true)));
    auto client = h.connect();
    REQUIRE(client.send_all("HEL"));
    CHECK_FALSE(h.events.wait_opened(1, 200ms));
    // The rest of the greeting and the first request in one write: the request's bytes, read
    // with the handshake, reach the protocol once the connection opens.
    REQUIRE(client.send_all("LO\nfirst"));
    const auto welcome = client.read_exactly(8);
    REQUIRE(welcome.ok());
    CHECK(welcome.data == "WELCOME\n");  // written by the handshake itself, not swapped
    REQUIRE(h.events.wait_opened(1));
    const auto got = client.read_exactly(5);
    REQUIRE(got.ok());
    CHECK(got.data == "FIRST");
}

TEST_CASE("a handshake that fails or does not finish in time never opens") {
    SUBCASE("failed") {
        test::ServerHarness h(through(std::make_shared<CaseSwapFactory>(true)));
        auto client = h.connect();
        REQUIRE(client.send_all("GOODBYE\n"));
        CHECK(client.sees_eof());
        CHECK(h.events.open_count() == 0);
        CHECK(h.events.close_count() == 0);
    }
    SUBCASE("timed out") {
        test::ServerHarness h(through(std::make_shared<CaseSwapFactory>(true, 150ms)));
        auto client = h.connect();
        REQUIRE(client.send_all("HEL"));
        const auto start = std::chrono::steady_clock::now();
        CHECK(client.sees_eof(5000ms));
        CHECK(std::chrono::steady_clock::now() - start >= 100ms);
        CHECK(h.events.open_count() == 0);
    }
}

TEST_CASE("the busy notice goes through the transport") {
    auto options = through(std::make_shared<CaseSwapFactory>(false));
    options.protocol = test::busy_notice_protocol();
    options.limits.max_connections = 1;
    test::ServerHarness h(options);
    auto [first, id] = h.connect_and_wait_open();
    auto refused = h.connect();
    const auto got = refused.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "busy\n");  // "BUSY\n", swapped on its way out
}

TEST_CASE("an outbound connection uses the transport it is given") {
    test::ServerHarness h;  // plain echo
    std::promise<std::string> echoed;
    reactor::ConnectOptions options;
    options.endpoint = h.endpoint;
    options.transport = std::make_shared<CaseSwapFactory>(false);
    options.handlers.on_open = [](reactor::Connection& c) { c.send("abc"); };
    options.handlers.on_message = [&](reactor::Connection& c, reactor::Message& m) {
        echoed.set_value(std::string(m.payload));
        c.close();
    };
    h.on_loop([&] { h.server.connect(options, nullptr); });
    auto result = echoed.get_future();
    REQUIRE(result.wait_for(5s) == std::future_status::ready);
    // Swapped on the way out ("ABC" reached the echo server), read back as it came.
    CHECK(result.get() == "ABC");
}

TEST_CASE("a shutdown ends connections still in their handshake") {
    test::ServerHarness h(through(std::make_shared<CaseSwapFactory>(true)));
    auto waiting = h.connect();
    REQUIRE(waiting.send_all("HEL"));
    auto [open, id] = [&] {
        auto c = h.connect();
        REQUIRE(c.send_all("HELLO\n"));
        REQUIRE(h.events.wait_opened(1));
        return std::pair{std::move(c), h.events.wait_nth_open(0)};
    }();
    std::promise<void> done;
    h.on_loop([&] { h.server.shutdown([&] { done.set_value(); }); });
    CHECK(waiting.read_until_eof().ok());
    CHECK(h.events.wait_close_of(id) == reactor::CloseReason::shutdown);
    CHECK(done.get_future().wait_for(10s) == std::future_status::ready);
    CHECK(h.events.open_count() == 1);
}
