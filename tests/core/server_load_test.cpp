#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using test::ServerHarness;
using test::TestClient;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kClients = 1000;
constexpr int kMessages = 100;

// Distinct per client and sequence number, of varying length, so a reply delivered to the wrong
// client or out of order cannot match.
std::string message_for(int client, int seq) {
    std::string m = "c" + std::to_string(client) + ":s" + std::to_string(seq) + ":";
    const std::size_t pad = static_cast<std::size_t>((client * 31 + seq * 17) % 200);
    for (std::size_t i = 0; i < pad; ++i)
        m.push_back(static_cast<char>('a' + (client + seq + i) % 26));
    m.push_back('\n');
    return m;
}

// One client's round trip in progress: send the message, read back exactly its bytes, repeat.
struct EchoClient {
    TestClient socket;
    int number = 0;
    int seq = 0;
    std::string outgoing;
    std::size_t sent = 0;
    std::string received;
    bool done = false;

    void start_message() {
        outgoing = message_for(number, seq);
        sent = 0;
        received.clear();
    }
};

}  // namespace

TEST_CASE("1000 concurrent clients each echo 100 messages byte-exact") {
    reactor::set_log_level(reactor::LogLevel::warn);
    ServerHarness h;
    std::vector<EchoClient> clients(kClients);
    for (int i = 0; i < kClients; ++i) {
        clients[i].socket = h.connect();
        clients[i].number = i;
    }
    REQUIRE(h.events.wait_opened(kClients, 30s));
    CHECK(h.server.connection_count() == kClients);

    const auto start = Clock::now();
    const auto deadline = start + 60s;
    for (auto& c : clients) c.start_message();
    int finished = 0;
    int mismatches = 0;
    int socket_errors = 0;
    std::vector<pollfd> fds(kClients);
    char chunk[4096];
    while (finished < kClients && Clock::now() < deadline) {
        for (int i = 0; i < kClients; ++i) {
            auto& c = clients[i];
            // Write what the socket takes now; the rest waits for POLLOUT.
            while (!c.done && c.sent < c.outgoing.size()) {
                const ssize_t n = ::send(c.socket.fd(), c.outgoing.data() + c.sent,
                                         c.outgoing.size() - c.sent, MSG_NOSIGNAL);
                if (n > 0) {
                    c.sent += static_cast<std::size_t>(n);
                } else {
                    if (n < 0 && errno != EAGAIN && errno != EINTR) ++socket_errors;
                    break;
                }
            }
            fds[i].fd = c.done ? -1 : c.socket.fd();
            fds[i].events = static_cast<short>(POLLIN | (c.sent < c.outgoing.size() ? POLLOUT : 0));
            fds[i].revents = 0;
        }
        const int ready = ::poll(fds.data(), fds.size(), 1000);
        if (ready <= 0) continue;
        for (int i = 0; i < kClients; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
            auto& c = clients[i];
            const ssize_t n = ::recv(c.socket.fd(), chunk, sizeof chunk, 0);
            if (n <= 0) {
                if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    ++socket_errors;
                    c.done = true;
                    ++finished;
                }
                continue;
            }
            c.received.append(chunk, static_cast<std::size_t>(n));
            if (c.received.size() < c.outgoing.size()) continue;
            if (c.received != c.outgoing) {
                if (++mismatches <= 3) {
                    INFO("client " << i << " seq " << c.seq);
                    CHECK(c.received == c.outgoing);
                }
                c.done = true;
                ++finished;
                continue;
            }
            if (++c.seq == kMessages) {
                c.done = true;
                ++finished;
            } else {
                c.start_message();
            }
        }
    }
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);

    int completed = 0;
    for (const auto& c : clients) completed += c.seq == kMessages ? 1 : 0;
    CHECK(mismatches == 0);
    CHECK(socket_errors == 0);
    REQUIRE(completed == kClients);
    const double round_trips = static_cast<double>(kClients) * kMessages;
    MESSAGE("1000 clients x 100 echoes: "
            << elapsed.count() << " ms, "
            << static_cast<long>(round_trips * 1000.0 / std::max<long>(1, elapsed.count()))
            << " round trips/s");
    std::cout << "core load: " << kClients << " clients x " << kMessages << " messages echoed in "
              << elapsed.count() << " ms\n";

    // Every byte the server read is accounted for.
    const auto totals = h.on_loop([&] {
        std::uint64_t in = 0;
        std::uint64_t out = 0;
        h.server.for_each([&](reactor::Connection& conn) {
            in += conn.stats().bytes_in;
            out += conn.stats().bytes_out;
        });
        return std::pair{in, out};
    });
    std::uint64_t expected_bytes = 0;
    for (int i = 0; i < kClients; ++i) {
        for (int s = 0; s < kMessages; ++s) expected_bytes += message_for(i, s).size();
    }
    CHECK(totals.first == expected_bytes);
    CHECK(totals.second == expected_bytes);

    for (auto& c : clients) c.socket.close();
    REQUIRE(h.events.wait_closed(kClients, 30s));
    CHECK(h.events.unbalanced().empty());
    CHECK(test::eventually([&] { return h.server.connection_count() == 0; }));
    CHECK(test::eventually([&] { return test::count_open_fds() == h.fds_listening; }));
}
