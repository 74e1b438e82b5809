// Accept filters over real loopback sockets: a filter that consumes a header line and sets the
// connection's addresses, its header split across reads at every point, a rejection, a deadline, a
// byte budget, a verdict by address alone, and two filters in a row. Nothing reaches on_open (or
// the protocol) before the filters accept.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::AcceptContext;
using reactor::FilterVerdict;

namespace {

// What the filters saw, readable from the test thread.
struct FilterLog {
    void saw(std::size_t bytes) {
        std::lock_guard lock(mutex);
        if (bytes > most_seen) most_seen = bytes;
        ++inspections;
        changed.notify_all();
    }
    // True once a filter has looked at `bytes` bytes.
    bool wait_seen(std::size_t bytes, test::Millis deadline = 5000ms) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, deadline, [&] { return most_seen >= bytes; });
    }
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t most_seen = 0;
    int inspections = 0;
};

// Consumes "<tag> <address>\r\n" and makes <address> the peer, "<tag>-local" the local address.
// Anything else in the first bytes is rejected as soon as it differs.
class HeaderFilter final : public reactor::AcceptFilter {
  public:
    HeaderFilter(std::string tag, std::shared_ptr<FilterLog> log)
        : tag_(std::move(tag) + " "), log_(std::move(log)) {}
    FilterVerdict inspect(std::string_view bytes, AcceptContext& connection) override {
        log_->saw(bytes.size());
        const std::size_t common = std::min(bytes.size(), tag_.size());
        if (bytes.substr(0, common) != std::string_view(tag_).substr(0, common)) {
            return FilterVerdict::reject("not a " + tag_ + "header");
        }
        const std::size_t end = bytes.find("\r\n");
        if (end == std::string_view::npos) return FilterVerdict::need_more();
        connection.set_peer(std::string(bytes.substr(tag_.size(), end - tag_.size())));
        connection.set_local(tag_.substr(0, tag_.size() - 1) + "-local");
        return FilterVerdict::accept(end + 2);
    }

  private:
    std::string tag_;
    std::shared_ptr<FilterLog> log_;
};

class HeaderFilterFactory final : public reactor::AcceptFilterFactory {
  public:
    HeaderFilterFactory(std::string tag, std::shared_ptr<FilterLog> log, std::size_t budget = 64,
                        std::chrono::milliseconds deadline = 5000ms)
        : tag_(std::move(tag)), log_(std::move(log)), budget_(budget), deadline_(deadline) {}
    std::string_view name() const override { return "header"; }
    std::unique_ptr<reactor::AcceptFilter> create() const override {
        return std::make_unique<HeaderFilter>(tag_, log_);
    }
    std::size_t byte_budget() const override { return budget_; }
    std::chrono::milliseconds deadline() const override { return deadline_; }

  private:
    std::string tag_;
    std::shared_ptr<FilterLog> log_;
    std::size_t budget_;
    std::chrono::milliseconds deadline_;
};

// Decides by the socket's own addresses, before any byte: rejects every connection from the
// address it is given.
class AddressFilterFactory final : public reactor::AcceptFilterFactory {
  public:
    explicit AddressFilterFactory(std::string refused_host) : refused_(std::move(refused_host)) {}
    std::string_view name() const override { return "address"; }
    std::unique_ptr<reactor::AcceptFilter> create() const override {
        class Filter final : public reactor::AcceptFilter {
          public:
            explicit Filter(std::string refused) : refused_(std::move(refused)) {}
            FilterVerdict inspect(std::string_view, AcceptContext& connection) override {
                if (connection.peer().rfind(refused_, 0) == 0)
                    return FilterVerdict::reject("refused");
                return FilterVerdict::accept();
            }

          private:
            std::string refused_;
        };
        return std::make_unique<Filter>(refused_);
    }
    std::size_t byte_budget() const override { return 1; }
    std::chrono::milliseconds deadline() const override { return 5000ms; }

  private:
    std::string refused_;
};

// The addresses on_open saw, by connection.
struct OpenedAddresses {
    std::mutex mutex;
    std::string peer;
    std::string local;
};

reactor::ListenOptions filtered(
    test::ConnectionEvents& events, OpenedAddresses& seen,
    std::vector<std::shared_ptr<const reactor::AcceptFilterFactory>> filters) {
    reactor::ListenOptions options;
    options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 0);
    options.accept_filters = std::move(filters);
    options.handlers = test::echo_handlers(events);
    auto echo_open = options.handlers.on_open;
    options.handlers.on_open = [&seen, echo_open](reactor::Connection& c) {
        {
            std::lock_guard lock(seen.mutex);
            seen.peer = c.peer();
            seen.local = c.local();
        }
        echo_open(c);
    };
    return options;
}

using Filters = std::vector<std::shared_ptr<const reactor::AcceptFilterFactory>>;

// A server whose one echo listener runs the filters make_filters() returns, recording what they
// saw (log) and the addresses on_open saw (seen).
struct FilteredServer {
    explicit FilteredServer(
        const std::function<Filters(std::shared_ptr<FilterLog>)>& make_filters) {
        h.listen_primary(filtered(h.events, seen, make_filters(log)));
    }
    std::shared_ptr<FilterLog> log = std::make_shared<FilterLog>();
    OpenedAddresses seen;
    test::ServerHarness h{test::NoListener{}};  // last: its handlers refer to seen
};

// The HELLO header filter alone.
Filters hello(std::shared_ptr<FilterLog> log, std::size_t budget = 64,
              std::chrono::milliseconds deadline = 5000ms) {
    return {std::make_shared<HeaderFilterFactory>("HELLO", std::move(log), budget, deadline)};
}

}  // namespace

TEST_CASE(
    "a filter consumes its header, split across reads at every point, and sets the addresses") {
    FilteredServer server([](auto log) { return hello(log); });
    auto& [log, seen, h] = server;
    const std::string header = "HELLO 203.0.113.7:4242\r\n";
    const std::string payload = "after the header";
    const std::string all = header + payload;
    for (std::size_t split = 1; split < all.size(); ++split) {
        CAPTURE(split);
        const std::size_t opened_before = h.events.open_count();
        {
            std::lock_guard lock(log->mutex);
            log->most_seen = 0;
        }
        auto client = h.connect();
        REQUIRE(client.send_all(all.substr(0, split)));
        // The filter has the first part, in a read of its own, before the rest is sent.
        REQUIRE(log->wait_seen(split));
        if (split < header.size()) CHECK(h.events.open_count() == opened_before);
        REQUIRE(client.send_all(all.substr(split)));
        // Only the bytes after the header reach the protocol (echoed back).
        const auto got = client.read_exactly(payload.size());
        REQUIRE(got.ok());
        CHECK(got.data == payload);
        REQUIRE(h.events.wait_opened(opened_before + 1));
        std::lock_guard lock(seen.mutex);
        CHECK(seen.peer == "203.0.113.7:4242");
        CHECK(seen.local == "HELLO-local");
    }
}

TEST_CASE("a connection the filter rejects is closed before on_open and never reaches on_close") {
    FilteredServer server([](auto log) { return hello(log); });
    auto& [log, seen, h] = server;
    auto client = h.connect();
    REQUIRE(client.send_all("HELP me\r\n"));
    CHECK(client.sees_eof());
    // A good client afterwards is served: one bad client hurts no other.
    auto good = h.connect();
    REQUIRE(good.send_all("HELLO 192.0.2.1:1\r\nping"));
    const auto got = good.read_exactly(4);
    REQUIRE(got.ok());
    CHECK(got.data == "ping");
    CHECK(h.events.open_count() == 1);
    CHECK(h.events.close_count() == 0);
}

TEST_CASE("a filter that gets no verdict by its deadline closes the connection") {
    FilteredServer server([](auto log) { return hello(log, 64, 150ms); });
    auto& [log, seen, h] = server;
    auto client = h.connect();
    REQUIRE(client.send_all("HELLO 192.0.2.1"));  // no end of line, ever
    const auto start = std::chrono::steady_clock::now();
    CHECK(client.sees_eof(5000ms));
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
    CHECK(h.events.open_count() == 0);
}

TEST_CASE("a filter that has seen its byte budget without a verdict closes the connection") {
    FilteredServer server([](auto log) { return hello(log, 32); });
    auto& [log, seen, h] = server;
    auto client = h.connect();
    REQUIRE(client.send_all("HELLO " + std::string(100, '9')));
    // Closed with the rest unread: the kernel resets the connection rather than ending it.
    const auto got = client.read_until_eof();
    CHECK(got.data.empty());
    CHECK((got.end == test::ReadEnd::complete || got.end == test::ReadEnd::error));
    // It never looked at more than its budget.
    std::lock_guard lock(log->mutex);
    CHECK(log->most_seen == 32);
    CHECK(h.events.open_count() == 0);
}

TEST_CASE("a filter may decide by address alone, before any byte arrives") {
    OpenedAddresses seen;
    test::ServerHarness h{test::NoListener{}};
    h.listen_primary(
        filtered(h.events, seen, {std::make_shared<AddressFilterFactory>("127.0.0.1:")}));
    auto refused = h.connect();
    CHECK(refused.sees_eof());  // without having sent anything
    CHECK(h.events.open_count() == 0);

    test::ServerHarness other{test::NoListener{}};
    other.listen_primary(
        filtered(other.events, seen, {std::make_shared<AddressFilterFactory>("192.0.2.")}));
    auto [client, id] = other.connect_and_wait_open();
    std::lock_guard lock(seen.mutex);
    CHECK(seen.peer.rfind("127.0.0.1:", 0) == 0);
    CHECK(seen.local == other.endpoint.to_string());
}

TEST_CASE("filters run in order, each on what the one before left") {
    FilteredServer server([](auto log) {
        return Filters{std::make_shared<HeaderFilterFactory>("ONE", log),
                       std::make_shared<HeaderFilterFactory>("TWO", log)};
    });
    auto& [log, seen, h] = server;
    auto client = h.connect();
    REQUIRE(client.send_all("ONE 192.0.2.1:1\r\nTWO 192.0.2.2:2\r\nbody"));
    const auto got = client.read_exactly(4);
    REQUIRE(got.ok());
    CHECK(got.data == "body");
    std::lock_guard lock(seen.mutex);
    CHECK(seen.peer == "192.0.2.2:2");  // the last filter's word
    CHECK(seen.local == "TWO-local");
}

TEST_CASE("a peer that ends its stream during the filters never reaches on_open") {
    FilteredServer server([](auto log) { return hello(log); });
    auto& [log, seen, h] = server;
    auto client = h.connect();
    REQUIRE(client.send_all("HELLO 1"));
    REQUIRE(log->wait_seen(7));
    client.shutdown_write();
    CHECK(client.sees_eof());
    CHECK(h.events.open_count() == 0);
    CHECK(h.events.close_count() == 0);
}
