// WebSocket over loopback sockets: an HTTP application hands an upgrade to accept_websocket(),
// which answers 101 and switches the connection to the websocket codec (frames sent in the same
// write as the request are decoded by it); the typed sends write unmasked frames; a server close
// ends the connection once its close frame is out.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "builtin.hpp"
#include "http.hpp"
#include "server_harness.hpp"
#include "websocket.hpp"
#include "websocket_codec.hpp"
#include "websocket_handshake.hpp"

using reactor::CloseReason;
using reactor::protocols::HttpRequest;
using reactor::protocols::WebSocketMessage;
using test::ServerHarness;

namespace {

const std::string kUpgrade =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: chat\r\n\r\n";

// An HTTP listener that upgrades every request, then answers each WebSocket message: "ping" with
// a ping, "close" with a close 4001, binary with binary, text with text.
void listen_upgrading(ServerHarness& h) {
    reactor::ListenOptions options;
    options.protocol = reactor::protocols::make_http(reactor::ProtocolConfig{});
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        if (const auto* request = message.get<HttpRequest>()) {
            reactor::protocols::WebSocketSettings settings;
            settings.subprotocols = {"chat"};
            reactor::protocols::accept_websocket(conn, *request, settings);
            return;
        }
        const auto* ws = message.get<WebSocketMessage>();
        REQUIRE(ws != nullptr);
        if (message.payload == "ping") {
            reactor::protocols::send_websocket_ping(conn, "from server");
        } else if (message.payload == "close") {
            reactor::protocols::send_websocket_close(conn, 4001, "asked to");
        } else if (ws->is_binary()) {
            reactor::protocols::send_websocket_binary(conn, message.payload);
        } else {
            conn.send(message.payload);
        }
    };
    h.listen_primary(std::move(options));
}

// Reads one server frame from the client and describes it as the codec tests do.
std::string read_frame(test::TestClient& client) {
    const auto head = client.read_exactly(2);
    REQUIRE(head.ok());
    std::size_t n = static_cast<unsigned char>(head.data[1]) & 0x7F;
    std::string bytes = head.data;
    if (n >= 126) {
        const auto ext = client.read_exactly(n == 126 ? 2 : 8);
        REQUIRE(ext.ok());
        bytes += ext.data;
        n = 0;
        for (const char c : ext.data) n = (n << 8) | static_cast<unsigned char>(c);
    }
    if (n > 0) {
        const auto payload = client.read_exactly(n);
        REQUIRE(payload.ok());
        bytes += payload.data;
    }
    return ws_test::describe_server_frame(bytes);
}

}  // namespace

TEST_CASE("accept_websocket: 101, then frames from the same write, typed replies, server close") {
    ServerHarness h{test::NoListener{}};
    listen_upgrading(h);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(kUpgrade + ws_test::text("hello") + ws_test::binary("\x01\x02")));
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
        const auto byte = client.read_exactly(1);
        REQUIRE(byte.ok());
        head += byte.data;
    }
    CHECK(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    CHECK(head.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
          std::string::npos);
    CHECK(head.find("\r\nSec-WebSocket-Protocol: chat\r\n") != std::string::npos);
    CHECK(head.find("Connection: close") == std::string::npos);
    CHECK(read_frame(client) == "opcode 1:hello");
    CHECK(read_frame(client) == "opcode 2:\x01\x02");

    REQUIRE(client.send_all(ws_test::ping("p") + ws_test::text("ping")));
    CHECK(read_frame(client) == "pong:p");
    CHECK(read_frame(client) == "opcode 9:from server");

    REQUIRE(client.send_all(ws_test::text("close")));
    CHECK(read_frame(client) == "close:4001");
    CHECK(client.sees_eof());
    CHECK(h.events.wait_close_of(id) == CloseReason::app_closed);
}

TEST_CASE("accept_websocket: a bad handshake gets 400 and the connection ends") {
    ServerHarness h{test::NoListener{}};
    listen_upgrading(h);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(
        client.send_all("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(got.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(h.events.wait_close_of(id).has_value());
}

TEST_CASE("a client close is answered and the connection ends in order") {
    ServerHarness h{test::NoListener{}};
    listen_upgrading(h);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(kUpgrade + ws_test::text("a") +
                            ws_test::close(ws_test::close_payload(1001, "going"))));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    const std::string tail = got.data.substr(got.data.find("\r\n\r\n") + 4);
    CHECK(tail ==
          "\x81\x01"
          "a"
          "\x88\x02\x03\xe9");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
}

TEST_CASE("a protocol error sends its close frame last and the connection ends") {
    ServerHarness h{test::NoListener{}};
    listen_upgrading(h);
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(kUpgrade + ws_test::client_frame({1, "bare", true, false})));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    const std::string tail = got.data.substr(got.data.find("\r\n\r\n") + 4);
    REQUIRE(tail.size() >= 4);
    CHECK(ws_test::describe_server_frame(tail) == "close:1002");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_error);
}
