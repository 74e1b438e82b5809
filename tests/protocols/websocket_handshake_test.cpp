// The WebSocket opening handshake: the accept key (RFC 6455's own example), the checks of an
// upgrade request, and the "websocket" protocol reading it in front of its frames.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "builtin.hpp"
#include "codec_harness.hpp"
#include "websocket_codec.hpp"
#include "websocket_handshake.hpp"

using namespace ws_test;
using reactor::protocols::check_websocket_handshake;
using reactor::protocols::HttpRequest;
using json = nlohmann::json;

namespace {

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

HttpRequest upgrade_request() {
    HttpRequest request;
    request.method = "GET";
    request.target = "/chat";
    request.upgrade = true;
    request.keep_alive = false;
    request.headers = {{"Host", "server.example.com"},
                       {"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", kKey},
                       {"Sec-WebSocket-Version", "13"}};
    return request;
}

std::string wire_request(const std::string& extra = {}, const std::string& version = "13",
                         const std::string& method = "GET") {
    return method + " /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" +
           "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + std::string(kKey) +
           "\r\nSec-WebSocket-Version: " + version + "\r\n" + extra + "\r\n";
}

Result feed_handshake(std::string_view bytes, std::size_t split = 0) {
    if (split == 0) return feed({bytes}, default_settings(), true);
    return feed({bytes.substr(0, split), bytes.substr(split)}, default_settings(), true);
}

}  // namespace

TEST_CASE("handshake: the accept key of RFC 6455 section 1.3") {
    CHECK(reactor::protocols::websocket_accept_key(kKey) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(reactor::protocols::websocket_accept_key("x3JJHMbDL1EzLkh9GBhXDw==") ==
          "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("handshake: a valid upgrade gets 101 with Sec-WebSocket-Accept") {
    const auto result = check_websocket_handshake(upgrade_request(), {});
    CHECK(result.accepted);
    const std::string bytes = result.response.to_string();
    CHECK(bytes.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    CHECK(bytes.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
    CHECK(bytes.find("\r\nConnection: Upgrade\r\n") != std::string::npos);
    CHECK(bytes.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
          std::string::npos);
    CHECK(bytes.find("Sec-WebSocket-Protocol") == std::string::npos);
    CHECK(bytes.find("Content-Length") == std::string::npos);
}

TEST_CASE("handshake: tokens compare case-insensitively, in lists and repeated lines") {
    HttpRequest request = upgrade_request();
    request.headers[1].value = "WebSocket";
    request.headers[2].value = "keep-alive";
    request.headers.push_back({"connection", " UPGRADE "});
    CHECK(check_websocket_handshake(request, {}).accepted);
}

TEST_CASE("handshake: the subprotocol is the first offered that is configured") {
    HttpRequest request = upgrade_request();
    request.headers.push_back({"Sec-WebSocket-Protocol", "mqtt, chat"});
    request.headers.push_back({"Sec-WebSocket-Protocol", "superchat"});
    auto result = check_websocket_handshake(request, {"superchat", "chat"});
    CHECK(result.accepted);
    CHECK(result.subprotocol == "chat");
    CHECK(result.response.to_string().find("\r\nSec-WebSocket-Protocol: chat\r\n") !=
          std::string::npos);
    result = check_websocket_handshake(request, {"other"});
    CHECK(result.accepted);
    CHECK(result.subprotocol.empty());
}

TEST_CASE("handshake: refusals") {
    struct Case {
        const char* what;
        void (*edit)(HttpRequest&);
        int status;
    };
    const std::vector<Case> cases = {
        {"POST", [](HttpRequest& r) { r.method = "POST"; }, 400},
        {"HTTP/1.0", [](HttpRequest& r) { r.version_minor = 0; }, 400},
        {"no Upgrade", [](HttpRequest& r) { r.headers[1].value = "h2c"; }, 400},
        {"no upgrade token", [](HttpRequest& r) { r.headers[2].value = "keep-alive"; }, 400},
        {"no key", [](HttpRequest& r) { r.headers[3].name = "X-Key"; }, 400},
        {"short key", [](HttpRequest& r) { r.headers[3].value = "dGhlIHNhbXBsZQ=="; }, 400},
        {"key not base64", [](HttpRequest& r) { r.headers[3].value = "dGhlIHNhbXBsZSBub25jZ*=="; },
         400},
        {"version 8", [](HttpRequest& r) { r.headers[4].value = "8"; }, 426},
        {"no version", [](HttpRequest& r) { r.headers.pop_back(); }, 426},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        HttpRequest request = upgrade_request();
        c.edit(request);
        const auto result = check_websocket_handshake(request, {});
        CHECK(!result.accepted);
        CHECK(result.response.status() == c.status);
        CHECK(result.response.closes_connection());
        CHECK(!result.error.empty());
        if (c.status == 426) {
            CHECK(result.response.to_string().find("\r\nSec-WebSocket-Version: 13\r\n") !=
                  std::string::npos);
        }
    }
}

TEST_CASE("handshake first: 101, then the frames after it in the same read") {
    const std::string wire = wire_request() + text("hi") + ping("p");
    for (std::size_t split = 0; split < wire.size(); ++split) {
        INFO("split at " << split);
        const Result r = feed_handshake(wire, split);
        CHECK(!r.failed);
        CHECK(r.events == std::vector<std::string>{"http:HTTP/1.1 101 Switching Protocols",
                                                   "text:hi", "pong:p"});
        CHECK(r.handshake.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
              std::string::npos);
    }
}

TEST_CASE("handshake first: a bad handshake gets 400 or 426 and the connection fails") {
    CHECK(feed_handshake(wire_request({}, "8")).close_code == 426);
    CHECK(feed_handshake(wire_request({}, "13", "POST")).close_code == 400);
    CHECK(feed_handshake("GET / HTTP/1.1\r\nHost: x\r\n\r\n").close_code == 400);
    CHECK(feed_handshake("not http at all\r\n\r\n").close_code == 400);
    // A frame before any handshake.
    CHECK(feed_handshake(text("hello")).close_code == 400);
    // A body is no part of a handshake.
    CHECK(feed_handshake(wire_request("Content-Length: 5\r\n") + "hello").close_code == 400);
    const Result r = feed_handshake(wire_request({}, "8"));
    CHECK(r.failed);
    CHECK(r.events.empty());
}

TEST_CASE("handshake first: bounded at max_handshake, before the request ends") {
    const std::string big = "X-Filler: " + std::string(9000, 'f') + "\r\n";
    const std::string wire = wire_request(big);
    const Result r = feed({std::string_view(wire).substr(0, 8500)}, default_settings(), true);
    CHECK(r.failed);
    CHECK(r.close_code == 400);
}

TEST_CASE("options: defaults bounded by the listener's max_frame, and errors") {
    using reactor::protocols::read_websocket_settings;
    reactor::ProtocolConfig config;
    config.max_frame = 1 << 20;
    auto settings = read_websocket_settings(config);
    CHECK(settings.max_message == (1u << 20));
    CHECK(settings.max_frame == (1u << 20));
    config.max_frame = 64 << 20;
    settings = read_websocket_settings(config);
    CHECK(settings.max_message == (16u << 20));
    config.options =
        json{{"max_message", 4096}, {"max_frame", 1024}, {"subprotocols", {"chat", "echo"}}};
    settings = read_websocket_settings(config);
    CHECK(settings.max_message == 4096);
    CHECK(settings.max_frame == 1024);
    CHECK(settings.subprotocols == std::vector<std::string>{"chat", "echo"});
    using reactor::protocols::make_websocket;
    const auto path_of = [](nlohmann::json options) {
        return codec_test::config_error(make_websocket, std::move(options)).path();
    };
    CHECK(path_of({{"max_message", 2 << 20}}) == "max_message");  // over the listener's 1 MiB
    CHECK(path_of({{"max_message", 100}, {"max_frame", 200}}) == "max_frame");
    CHECK(path_of({{"subprotocols", "chat"}}) == "subprotocols");
    CHECK(path_of({{"subprotocols", {"chat", ""}}}) == "subprotocols");
    CHECK(path_of({{"max_handshake", 10}}) == "max_handshake");
    CHECK(path_of({{"bogus", 1}}) == "bogus");
    const auto factory = codec_test::build(make_websocket);
    CHECK(factory->name() == "websocket");
}
