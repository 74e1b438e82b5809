// Connection::switch_protocol over real loopback sockets: the frame that asks for the switch is the
// old protocol's last, the bytes after it (in the same read or in later ones, at every split point)
// reach the new protocol, sends from the switch on are framed by the new one, and the old protocol
// is destroyed only after its decode() has returned.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::Buffer;
using reactor::Decoded;
using reactor::Message;
using reactor::MessageSink;

namespace {

std::atomic<int> decodes_running{0};           // inside some Lines::decode
std::atomic<int> destroyed_while_decoding{0};  // a Lines destroyed inside its own decode

// Frames of exactly four bytes; sends are written "<payload>".
class Fours final : public reactor::Protocol {
  public:
    Decoded decode(Buffer& in, MessageSink& out) override {
        if (in.size() < 4) return Decoded::need_more();
        Message message;
        message.payload = in.peek(4);
        out.deliver(message);
        in.drain(4);
        return Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append("<");
        out.append(payload);
        out.append(">");
    }
};

// Newline framing that notes when it is destroyed inside its own decode(). With self_switching,
// it hands over to Fours by itself after a line "UP" (which it still delivers).
class Lines final : public reactor::Protocol {
  public:
    explicit Lines(bool self_switching = false) : self_switching_(self_switching) {}
    ~Lines() override {
        if (decodes_running.load() != 0) ++destroyed_while_decoding;
    }
    Decoded decode(Buffer& in, MessageSink& out) override {
        const std::size_t end = in.find("\n");
        if (end == Buffer::npos) return Decoded::need_more();
        ++decodes_running;
        Message message;
        message.payload = in.peek(end);
        const bool up = self_switching_ && message.payload == "UP";
        out.deliver(message);
        if (up) out.switch_protocol(std::make_unique<Fours>());
        in.drain(end + 1);  // still this protocol's to drain: it lives until decode() returns
        --decodes_running;
        return Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
        out.append("\n");
    }

  private:
    const bool self_switching_;
};

class SelfSwitchingFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "test-self-switching"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<Lines>(true);
    }
};

class LinesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "test-switch-lines"; }
    std::unique_ptr<reactor::Protocol> create() const override { return std::make_unique<Lines>(); }
};

// Echoes each message; "SWITCH" switches to Fours and answers "ok" in the new framing.
reactor::ListenOptions switching_listener(test::ConnectionEvents& events) {
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.handlers = test::echo_handlers(events);
    options.handlers.on_message = [](reactor::Connection& conn, Message& message) {
        if (message.payload == "SWITCH") {
            conn.switch_protocol(std::make_unique<Fours>());
            conn.send("ok");
            return;
        }
        conn.send(message.payload);
    };
    return options;
}

const std::string kStream = "one\nSWITCH\nABCDwxyz";
const std::string kReply = "one\n<ok><ABCD><wxyz>";

}  // namespace

TEST_CASE("the bytes after the switching frame, in the same read, reach the new protocol") {
    test::ServerHarness h{test::NoListener{}};
    h.listen_primary(switching_listener(h.events));
    auto client = h.connect();
    REQUIRE(client.send_all(kStream));
    CHECK(client.read_exactly(kReply.size(), 5s).data == kReply);
    CHECK(destroyed_while_decoding.load() == 0);
}

TEST_CASE("at every split point of the stream the replies are the same") {
    test::ServerHarness h{test::NoListener{}};
    h.listen_primary(switching_listener(h.events));
    for (std::size_t split = 1; split < kStream.size(); ++split) {
        CAPTURE(split);
        auto opened = h.connect_and_wait_open();
        auto& client = opened.first;
        const reactor::ConnectionId id = opened.second;  // a binding clang 14 lets lambdas capture
        REQUIRE(client.send_all(kStream.substr(0, split)));
        // The server has read the first part before the second is sent.
        REQUIRE(test::eventually([&] {
            return h.on_loop([&] {
                const reactor::Connection* conn = h.server.find(id);
                return conn != nullptr && conn->stats().bytes_in == split;
            });
        }));
        REQUIRE(client.send_all(kStream.substr(split)));
        CHECK(client.read_exactly(kReply.size(), 5s).data == kReply);
    }
    CHECK(destroyed_while_decoding.load() == 0);
}

TEST_CASE("a switch outside a delivery decodes what is buffered with the new protocol at once") {
    test::ServerHarness h{test::NoListener{}};
    h.listen_primary(switching_listener(h.events));
    auto opened = h.connect_and_wait_open();
    auto& client = opened.first;
    const reactor::ConnectionId id = opened.second;  // a binding clang 14 lets lambdas capture
    // "WXYZ" has no newline: Lines leaves it in the input, waiting for the rest of a line.
    REQUIRE(client.send_all("hold\nWXYZ"));
    CHECK(client.read_exactly(5, 5s).data == "hold\n");
    REQUIRE(test::eventually([&] {
        return h.on_loop([&] {
            const reactor::Connection* conn = h.server.find(id);
            return conn != nullptr && conn->stats().bytes_in == 9;
        });
    }));
    h.on_loop([&] {
        reactor::Connection* conn = h.server.find(id);
        REQUIRE(conn != nullptr);
        conn->switch_protocol(std::make_unique<Fours>());
    });
    CHECK(client.read_exactly(6, 5s).data == "<WXYZ>");
}

TEST_CASE("a protocol may hand over by itself, and the next decodes the rest of the read") {
    test::ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.protocol = std::make_shared<SelfSwitchingFactory>();
    options.handlers = test::echo_handlers(h.events);
    h.listen_primary(std::move(options));
    auto client = h.connect();
    REQUIRE(client.send_all("hi\nUP\nabcd"));
    // "UP" is echoed after the switch (on_message ran before it), so in the old framing; then
    // "abcd" is a Fours frame.
    const std::string expected = "hi\nUP\n<abcd>";
    CHECK(client.read_exactly(expected.size(), 5s).data == expected);
}
