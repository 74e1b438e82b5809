// A protocol ends a connection in order with Decoded::last_frame(): the frame is delivered and
// answered, nothing after it is decoded, the connection closes once the replies are out, and the
// reason is "closed by protocol", not a protocol error.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>

#include "log_capture.hpp"
#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Decoded;
using reactor::Message;
using reactor::MessageSink;
using test::ServerHarness;

namespace {

// Newline-terminated lines; replies are lines too. A line "BYE" is the last frame when `ends`,
// and so is what the end of the stream leaves without a newline.
class Lines final : public reactor::Protocol {
  public:
    explicit Lines(bool ends) : ends_(ends) {}
    Decoded decode(Buffer& in, MessageSink& out) override {
        const std::size_t end = in.find("\n");
        if (end == Buffer::npos) return Decoded::need_more();
        Message message;
        message.payload = in.peek(end);
        const bool last = ends_ && message.payload == "BYE";
        out.deliver(message);
        in.drain(end + 1);
        return last ? Decoded::last_frame() : Decoded::frame();
    }
    Decoded decode_eof(Buffer& in, MessageSink& out) override {
        if (!ends_ || in.empty()) return Decoded::need_more();
        Message message;
        message.payload = in.peek(in.size());
        out.deliver(message);
        in.clear();
        return Decoded::last_frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
        out.append("\n");
    }

  private:
    const bool ends_;
};

class LinesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "lines"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<Lines>(true);
    }
};

// How many lines the application received.
struct Echo {
    std::atomic<int> delivered{0};
};

void listen_lines(ServerHarness& h, Echo& echo) {
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [&echo](reactor::Connection& conn, Message& message) {
        ++echo.delivered;
        conn.send(message.payload);
    };
    h.listen_primary(std::move(options));
}

}  // namespace

TEST_CASE("the last frame is answered, then the connection ends: reply, EOF, protocol_done") {
    test::LogCapture log;
    Echo echo;
    ServerHarness h{test::NoListener{}};
    listen_lines(h, echo);
    auto [client, id] = h.connect_and_wait_open();
    // One write, so one read: the lines after BYE arrive with it and are never decoded.
    REQUIRE(client.send_all("one\ntwo\nBYE\nnever\nnot this either\n"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "one\ntwo\nBYE\n");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
    CHECK(echo.delivered == 3);
    const std::string text = log.text();
    CHECK(text.find("conn=" + std::to_string(id) + " closed: closed by protocol") !=
          std::string::npos);
    CHECK(text.find("protocol error") == std::string::npos);
}

TEST_CASE("a last frame split across reads ends the connection all the same") {
    Echo echo;
    ServerHarness h{test::NoListener{}};
    listen_lines(h, echo);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("first\nBY"));
    const auto first = client.read_exactly(6);
    REQUIRE(first.ok());
    CHECK(first.data == "first\n");
    REQUIRE(client.send_all("E\nnever\n"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "BYE\n");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
    CHECK(echo.delivered == 2);
}

TEST_CASE("a last frame at the end of the stream: protocol_done, not peer_closed") {
    test::LogCapture log;
    Echo echo;
    ServerHarness h{test::NoListener{}};
    listen_lines(h, echo);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("one\nrest without a newline"));
    client.shutdown_write();
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data == "one\nrest without a newline\n");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
    CHECK(log.text().find("protocol error") == std::string::npos);
}

TEST_CASE("a switch during the last frame outweighs it: the next protocol goes on") {
    Echo echo;
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [&echo](reactor::Connection& conn, Message& message) {
        ++echo.delivered;
        conn.send(message.payload);
        if (message.payload == "BYE") conn.switch_protocol(std::make_unique<Lines>(false));
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("BYE\nafter\n"));  // the line after comes in the same read
    const auto first = client.read_exactly(10);
    REQUIRE(first.ok());
    CHECK(first.data == "BYE\nafter\n");
    // Still open: the new protocol does not end at BYE.
    REQUIRE(client.send_all("BYE\n"));
    const auto second = client.read_exactly(4);
    REQUIRE(second.ok());
    CHECK(second.data == "BYE\n");
    CHECK(h.events.closes_of(id).empty());
}
