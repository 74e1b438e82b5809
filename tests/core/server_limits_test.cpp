#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;
using test::TestClient;

namespace {

// Byte i of the stream a pipelining client writes.
char stream_byte(std::size_t i) {
    return static_cast<char>('A' + (i * 7 + i / 4096) % 53);
}

// Waits for loop time to pass, measured by a loop timer: the window over which "nothing happens"
// is observed.
void let_loop_run(reactor::EventLoop& loop, std::chrono::milliseconds window) {
    auto fired = std::make_shared<std::promise<void>>();
    auto future = fired->get_future();
    loop.run_after(window, [fired] { fired->set_value(); });
    REQUIRE(future.wait_for(window + 5s) == std::future_status::ready);
}

std::chrono::nanoseconds thread_cpu_time(pthread_t thread) {
    clockid_t clock;
    REQUIRE(pthread_getcpuclockid(thread, &clock) == 0);
    timespec ts{};
    REQUIRE(clock_gettime(clock, &ts) == 0);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

TEST_CASE("a client that never reads is closed with output overflow") {
    const std::string chunk(256 * 1024, 'f');  // outlives the loop's timer
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.limits.output_limit = 1 << 20;
    options.handlers = test::echo_handlers(h.events);
    // "flood" starts a timer that keeps sending until the connection is gone.
    options.handlers.on_message = [&h, &chunk](reactor::Connection& conn, reactor::Message& msg) {
        if (msg.payload != "flood") return;
        auto timer = std::make_shared<reactor::TimerHandle>();
        *timer = conn.loop().run_every(1ms, [&h, &chunk, timer, id = conn.id()] {
            if (!h.server.send(id, chunk)) timer->cancel();
        });
    };
    h.listen_primary(std::move(options));

    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("flood"));
    CHECK(h.events.wait_close_of(id, 20s) == CloseReason::output_overflow);
    // The connection was dropped, not flushed: the client sees the end (EOF or reset) of a stream
    // that stopped short.
    const auto rest = client.read_until_eof(10s);
    CHECK(rest.end != test::ReadEnd::timeout);
    CHECK(test::eventually([&] { return h.server.connection_count() == 0; }));
}

TEST_CASE("above output_high_water the server stops reading from a client that does not read") {
    constexpr std::size_t kHighWater = 256 * 1024;
    reactor::ListenOptions options;
    options.limits.output_high_water = kHighWater;
    ServerHarness h(std::move(options));
    auto [client, id] = h.connect_and_wait_open();

    // Pipeline requests without reading replies until the server stops taking them.
    constexpr std::size_t kGiveUp = 48u << 20;  // below the 64 MiB output limit
    std::size_t written = 0;
    std::string block(64 * 1024, '\0');
    for (;;) {
        for (std::size_t i = 0; i < block.size(); ++i) block[i] = stream_byte(written + i);
        const ssize_t n = ::send(client.fd(), block.data(), block.size(), MSG_NOSIGNAL);
        if (n > 0) {
            written += static_cast<std::size_t>(n);
            if (written > kGiveUp) break;
            continue;
        }
        REQUIRE(errno == EAGAIN);
        pollfd p{client.fd(), POLLOUT, 0};
        if (::poll(&p, 1, 300) == 0) break;  // no progress for 300 ms: the server stopped reading
    }
    INFO("client wrote " << written << " bytes before blocking");
    REQUIRE(written < kGiveUp);

    struct Sample {
        bool found = false;
        std::uint64_t bytes_in = 0;
        std::size_t pending = 0;
        bool closing = false;
    };
    auto sample = [&h, id = id] {
        const Sample s = h.on_loop([&h, id] {
            reactor::Connection* conn = h.server.find(id);
            if (conn == nullptr) return Sample{};
            return Sample{true, conn->stats().bytes_in, conn->output_pending(), conn->closing()};
        });
        REQUIRE(s.found);
        return s;
    };
    // The client stalls once the kernel buffers between it and the paused server are full. A
    // busy machine may delay the server's last reads, so look for two equal samples in a row.
    Sample first = sample();
    Sample second;
    std::chrono::nanoseconds cpu_used{};
    for (int attempt = 0; attempt < 10; ++attempt) {
        const auto cpu_before = thread_cpu_time(h.thread->native_handle());
        let_loop_run(h.loop, 300ms);
        cpu_used = thread_cpu_time(h.thread->native_handle()) - cpu_before;
        second = sample();
        if (second.bytes_in == first.bytes_in) break;
        first = second;
    }

    CHECK_FALSE(first.closing);
    CHECK(first.pending > kHighWater / 2);  // reading resumes at half the high-water mark
    CHECK(second.bytes_in == first.bytes_in);
    CHECK(second.pending == first.pending);
    CHECK(first.bytes_in < written);  // the rest waits in the kernel, unread
    INFO("loop thread CPU while paused: "
         << std::chrono::duration_cast<std::chrono::microseconds>(cpu_used).count() << " us");
    CHECK(cpu_used < 100ms);  // paused reading must not spin
    CHECK(h.events.closes_of(id).empty());

    // Once the client reads, the server resumes and every byte comes back in order.
    const auto echoed = client.read_exactly(written, 60s);
    REQUIRE(echoed.ok());
    std::size_t first_bad = written;
    for (std::size_t i = 0; i < written; ++i) {
        if (echoed.data[i] != stream_byte(i)) {
            first_bad = i;
            break;
        }
    }
    CHECK(first_bad == written);
    const Sample after = sample();
    CHECK(after.bytes_in == written);
    CHECK(h.events.closes_of(id).empty());
}

TEST_CASE("max_connections: the extra connection is closed at once") {
    reactor::ListenOptions options;
    options.limits.max_connections = 2;
    ServerHarness h(std::move(options));
    auto [a, a_id] = h.connect_and_wait_open();
    auto [b, b_id] = h.connect_and_wait_open();

    TestClient refused = h.connect();
    // The raw protocol has no notice: the refused client just sees the end of the stream.
    const auto got = refused.read_until_eof();
    CHECK(got.ok());
    CHECK(got.data.empty());
    CHECK(h.events.open_count() == 2);
    CHECK(h.server.connection_count() == 2);

    // The admitted clients are unaffected.
    REQUIRE(a.send_all("a"));
    CHECK(a.read_exactly(1).data == "a");
    REQUIRE(b.send_all("b"));
    CHECK(b.read_exactly(1).data == "b");

    // A slot freed is a slot available.
    a.close();
    REQUIRE(h.events.wait_close_of(a_id) == CloseReason::peer_closed);
    auto [c, c_id] = h.connect_and_wait_open();
    REQUIRE(c.send_all("c"));
    CHECK(c.read_exactly(1).data == "c");
    CHECK(c_id > b_id);
}

TEST_CASE("max_connections: a protocol's busy notice reaches the refused client") {
    reactor::ListenOptions options;
    options.limits.max_connections = 1;
    options.protocol = test::busy_notice_protocol();
    ServerHarness h(std::move(options));
    auto [admitted, id] = h.connect_and_wait_open();
    TestClient refused = h.connect();
    const auto got = refused.read_until_eof();
    CHECK(got.ok());
    CHECK(got.data == "BUSY\n");
    REQUIRE(admitted.send_all("still served"));
    CHECK(admitted.read_exactly(12).data == "still served");
}
