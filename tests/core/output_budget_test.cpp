// The server-wide output budget over real loopback sockets: clients that never read are closed
// once the bytes pending for all of them pass the budget, the total stays within it, and a client
// that reads its replies is not touched.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;
using test::TestClient;

TEST_CASE("above the output budget the clients that do not read are closed, a reader is not") {
    constexpr std::size_t kBudget = 2 << 20;
    constexpr int kFlooders = 6;
    const std::string chunk(64 * 1024, 'b');  // outlives the loop's timer
    ServerHarness h{test::NoListener{}};
    h.server.set_output_budget(kBudget);
    reactor::ListenOptions options;
    options.limits.output_limit = 64 << 20;  // each alone may hold far more than the budget
    options.limits.output_high_water = 64 << 20;
    options.handlers = test::echo_handlers(h.events);
    auto flooded = std::make_shared<std::set<ConnectionId>>();  // loop thread
    std::atomic<std::size_t> max_pending{0};
    auto timer = std::make_shared<reactor::TimerHandle>();
    options.handlers.on_message = [&, flooded, timer](reactor::Connection& conn,
                                                      reactor::Message& msg) {
        if (msg.payload != "flood") {
            conn.send(msg.payload);
            return;
        }
        flooded->insert(conn.id());
        if (flooded->size() != 1) return;
        // One timer feeds every flooding client until none is left.
        *timer = conn.loop().run_every(1ms, [&, flooded, timer] {
            for (auto it = flooded->begin(); it != flooded->end();) {
                if (h.server.send(*it, chunk)) {
                    ++it;
                } else {
                    it = flooded->erase(it);
                }
            }
            max_pending = std::max(max_pending.load(), h.server.output_budget_pending());
        });
    };
    h.listen_primary(std::move(options));

    auto [reader, reader_id] = h.connect_and_wait_open();
    std::vector<TestClient> flooders;
    std::vector<ConnectionId> ids;
    for (int i = 0; i < kFlooders; ++i) {
        auto [client, id] = h.connect_and_wait_open();
        REQUIRE(client.send_all("flood"));
        flooders.push_back(std::move(client));
        ids.push_back(id);
    }
    for (const auto id : ids)
        CHECK(h.events.wait_close_of(id, 20s) == CloseReason::output_overflow);
    CHECK(h.server.output_budget_closed() == kFlooders);
    // Within the budget and one reply per client, the most a client can add while it crosses its
    // share (the kernel's socket buffers hold more, uncounted).
    CHECK(max_pending.load() <= kBudget + (kFlooders + 1) * chunk.size());
    CHECK(max_pending.load() > kBudget / 2);
    CHECK(test::eventually([&] { return h.server.output_budget_pending() == 0; }));
    // The reader still gets its replies.
    REQUIRE(reader.send_all("still here"));
    const auto echoed = reader.read_exactly(10, 5s);
    CHECK(echoed.data == "still here");
    CHECK(h.events.closes_of(reader_id).empty());
    h.on_loop([timer] { timer->cancel(); });
}

TEST_CASE("without a budget nothing is counted and nothing is closed for it") {
    ServerHarness h;
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("hello"));
    CHECK(client.read_exactly(5, 5s).data == "hello");
    CHECK(h.server.output_budget_pending() == 0);
    CHECK(h.server.output_budget_closed() == 0);
}
