// Replies written while a connection handles a read are gathered and written once at the end of
// that read (the connection's output stage); these tests hold that path to the same guarantees as
// the output buffer: order, completeness under back-pressure, a flush on close, and no mixing
// between connections.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::CloseReason;
using reactor::ConnectionId;
using test::ServerHarness;

namespace {

// The reply to one request byte: `size` bytes that name the byte and their offset.
std::string reply_for(char request, std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(request + i % 97);
    return s;
}

// Handlers that answer every byte received with `pieces` writes of `piece` bytes each, with
// send_raw, or with every third one through send when mixed (raw framing, so send writes the
// payload as it is, but through the protocol's encoder).
reactor::Handlers piecewise_replies(test::ConnectionEvents& events, std::size_t pieces,
                                    std::size_t piece, bool mixed) {
    reactor::Handlers handlers = test::echo_handlers(events);
    handlers.on_message = [pieces, piece, mixed](reactor::Connection& conn,
                                                 reactor::Message& message) {
        for (const char byte : message.payload) {
            const std::string reply = reply_for(byte, pieces * piece);
            for (std::size_t i = 0; i < pieces; ++i) {
                const std::string_view part = std::string_view(reply).substr(i * piece, piece);
                if (mixed && i % 3 == 2) {
                    conn.send(part);
                } else {
                    conn.send_raw(part);
                }
            }
        }
    };
    return handlers;
}

// Framing that wraps each outbound payload in brackets; a payload "boom" makes the encoder throw
// once it has written its opening bracket. Each chunk read is one message, as with raw framing.
class BracketProtocol final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        return raw_->decode(in, out);
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append("[");
        if (payload == "boom") throw std::runtime_error("boom");
        out.append(payload);
        out.append("]");
    }
    static std::string framed(std::string_view payload) { return "[" + std::string(payload) + "]"; }

  private:
    const std::unique_ptr<reactor::Protocol> raw_ = reactor::raw_protocol()->create();
};

class BracketFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "bracket"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<BracketProtocol>();
    }
};

// What piecewise_replies(..., pieces, piece, ...) writes for `requests`, every third piece as
// `framed` frames it: `unframed` where nothing frames it (send_raw, or raw framing).
std::string expected_replies(std::string_view requests, std::size_t pieces, std::size_t piece,
                             std::string (*framed)(std::string_view)) {
    std::string out;
    for (const char byte : requests) {
        const std::string reply = reply_for(byte, pieces * piece);
        for (std::size_t i = 0; i < pieces; ++i) {
            const std::string_view part = std::string_view(reply).substr(i * piece, piece);
            out += i % 3 == 2 ? framed(part) : std::string(part);
        }
    }
    return out;
}

std::string unframed(std::string_view part) {
    return std::string(part);
}

}  // namespace

TEST_CASE("replies of one read keep their order past the stage's capacity") {
    // 10 requests x 40 pieces x 500 bytes: 200 KB from one read, three times the stage, written
    // both ways.
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = piecewise_replies(h.events, 40, 500, true);
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    const std::string requests = "abcdefghij";
    REQUIRE(client.send_all(requests));
    const std::string want = expected_replies(requests, 40, 500, unframed);
    const auto got = client.read_exactly(want.size());
    REQUIRE(got.ok());
    CHECK(got.data == want);
    CHECK(client.read_exactly(1, 50ms).end == test::ReadEnd::timeout);
}

TEST_CASE("replies through the protocol's encoder are framed and keep their order") {
    // As above, with every third piece framed by the protocol: into the stage while it has room,
    // with small pieces all of them; with large ones, once the stage is full, into the output
    // buffer after it. The client sees the same bytes.
    for (const std::size_t piece : {std::size_t{500}, std::size_t{8000}}) {
        CAPTURE(piece);
        constexpr std::size_t kPieces = 40;
        ServerHarness h{test::NoListener{}};
        reactor::ListenOptions options;
        options.protocol = std::make_shared<BracketFactory>();
        options.handlers = piecewise_replies(h.events, kPieces, piece, true);
        h.listen_primary(std::move(options));
        auto [client, id] = h.connect_and_wait_open();
        const std::string requests = piece > 1000 ? "abc" : "abcdefghij";
        REQUIRE(client.send_all(requests));
        const std::string want =
            expected_replies(requests, kPieces, piece, &BracketProtocol::framed);
        const auto got = client.read_exactly(want.size());
        REQUIRE(got.ok());
        CHECK(got.data == want);
        CHECK(client.read_exactly(1, 50ms).end == test::ReadEnd::timeout);
    }
}

TEST_CASE("an encoder that throws closes its connection only") {
    // Inside a read the encoder writes into the stage; a send from another thread is applied
    // outside one, into the output buffer. Either way the half-written frame goes nowhere.
    for (const bool staged : {true, false}) {
        CAPTURE(staged);
        ServerHarness h{test::NoListener{}};
        reactor::ListenOptions options;
        options.protocol = std::make_shared<BracketFactory>();
        options.handlers = test::echo_handlers(h.events);
        options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
            conn.send(message.payload);
        };
        h.listen_primary(std::move(options));
        auto [bad, bad_id] = h.connect_and_wait_open();
        auto [good, good_id] = h.connect_and_wait_open();
        if (staged) {
            REQUIRE(bad.send_all("boom"));
        } else {
            REQUIRE(h.server.send(bad_id, "boom"));
        }
        CHECK(h.events.wait_close_of(bad_id) == CloseReason::error);
        const auto end = bad.read_until_eof();
        CHECK(end.data.empty());
        REQUIRE(good.send_all("fine"));
        const auto got = good.read_exactly(6);
        REQUIRE(got.ok());
        CHECK(got.data == "[fine]");
    }
}

TEST_CASE("a client that reads late gets every byte, in order") {
    // One request per read, each answered with 32 KiB the client does not read yet: the replies
    // fill loopback's socket buffers until one read's staged replies meet a full socket, and what
    // the kernel did not take goes on through the output buffer.
    std::atomic<int> handled{0};
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = piecewise_replies(h.events, 32, 1024, false);
    options.handlers.on_message = [inner = options.handlers.on_message, &handled](
                                      reactor::Connection& conn, reactor::Message& message) {
        inner(conn, message);
        handled += static_cast<int>(message.payload.size());
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    const auto pending = [&h, id = id] {
        return h.on_loop([&h, id] {
            reactor::Connection* conn = h.server.find(id);
            return conn != nullptr ? conn->output_pending() : std::size_t{0};
        });
    };
    std::string requests;
    bool socket_full = false;
    for (int i = 0; i < 2000 && !socket_full; ++i) {
        const char request = static_cast<char>('A' + i % 50);
        REQUIRE(client.send_all(std::string(1, request)));
        requests += request;
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (handled.load() < i + 1 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        REQUIRE(handled.load() == i + 1);
        socket_full = pending() > 0;
    }
    REQUIRE(socket_full);
    const std::string want = expected_replies(requests, 32, 1024, unframed);
    const auto got = client.read_exactly(want.size(), 20s);
    REQUIRE(got.ok());
    CHECK(got.data == want);
    CHECK(client.read_exactly(1, 50ms).end == test::ReadEnd::timeout);
}

TEST_CASE("closing inside on_message flushes the replies written before it") {
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message&) {
        conn.send_raw("first,");
        conn.send_raw("second");
        conn.close();
        conn.send_raw("ignored");
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("x"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "first,second");
    CHECK(h.events.wait_close_of(id) == CloseReason::app_closed);
}

TEST_CASE("a handler that writes to another connection during its read") {
    // Connection A's handler replies to A and sends to B on the same loop: each gets its own
    // bytes, whole, however the two interleave.
    std::atomic<ConnectionId> b_id{0};
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [&h, &b_id](reactor::Connection& conn, reactor::Message& m) {
        if (conn.id() == b_id.load()) {
            conn.send_raw("b-own:" + std::string(m.payload) + ";");
            return;
        }
        conn.send_raw("a:" + std::string(m.payload) + ";");
        h.server.send(b_id.load(), "from-a:" + std::string(m.payload) + ";");
        conn.send_raw("a-again;");
    };
    h.listen_primary(std::move(options));
    auto [a, a_id] = h.connect_and_wait_open();
    auto [b, id_of_b] = h.connect_and_wait_open();
    b_id = id_of_b;
    REQUIRE(a.send_all("1"));
    const std::string want_a = "a:1;a-again;";
    const auto got_a = a.read_exactly(want_a.size());
    REQUIRE(got_a.ok());
    CHECK(got_a.data == want_a);
    REQUIRE(b.send_all("2"));
    const std::string want_b = "from-a:1;b-own:2;";
    const auto got_b = b.read_exactly(want_b.size());
    REQUIRE(got_b.ok());
    CHECK(got_b.data == want_b);
}

TEST_CASE("a handler that starts the server's shutdown gets its replies out, once") {
    // The shutdown closes this very connection while it is still decoding: the request it is
    // answering is not decoded again, what it staged goes out, and the next pipelined request,
    // arriving after the shutdown began, is not answered.
    std::atomic<int> calls{0};
    std::atomic<bool> done{false};
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [&](reactor::Connection& conn, reactor::Message& message) {
        ++calls;
        conn.send_raw("reply to " + std::string(message.payload) + ";");
        h.server.shutdown([&] { done = true; });
        conn.send_raw("ignored");
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("stop"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "reply to stop;");
    CHECK(h.events.wait_close_of(id) == CloseReason::shutdown);
    CHECK(calls == 1);
}
