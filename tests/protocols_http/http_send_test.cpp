// HTTP replies over loopback sockets: send_response() writes an HttpResponse as the reply to the
// request being answered, through the connection's output stage, so the replies to pipelined
// requests leave together; a request that does not keep the connection ends it in order after
// its reply; an upgrade goes on only with a switch.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "http.hpp"
#include "log_capture.hpp"
#include "server_harness.hpp"

using namespace std::chrono_literals;
using reactor::CloseReason;
using reactor::protocols::HttpRequest;
using reactor::protocols::HttpResponse;
using reactor::protocols::send_response;
using test::ServerHarness;

namespace {

using Responder = std::function<void(reactor::Connection&, const HttpRequest&)>;

// An HTTP listener whose on_message hands each request to respond.
void listen_http(ServerHarness& h, Responder respond) {
    reactor::ListenOptions options;
    options.protocol = reactor::protocols::make_http(reactor::ProtocolConfig{});
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [respond](reactor::Connection& conn, reactor::Message& message) {
        const auto* request = message.get<HttpRequest>();
        REQUIRE(request != nullptr);
        respond(conn, *request);
    };
    h.listen_primary(std::move(options));
}

// The Date header's value (always 29 bytes) replaced by "<date>", in each response of text.
std::string without_dates(std::string text) {
    constexpr std::string_view kDate = "\r\nDate: ";
    for (std::size_t at = text.find(kDate); at != std::string::npos;
         at = text.find(kDate, at + 1)) {
        text.replace(at + kDate.size(), 29, "<date>");
    }
    return text;
}

// Date is 29 bytes: a response with it masked is 23 bytes shorter on the wire.
std::size_t wire_size(std::string_view masked, std::size_t responses = 1) {
    return masked.size() + responses * (29 - std::string_view("<date>").size());
}

}  // namespace

TEST_CASE("send_response writes the status line, headers and body") {
    ServerHarness h{test::NoListener{}};
    listen_http(h, [](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request,
                      HttpResponse(201)
                          .header("Location", "/k/1")
                          .header("Content-Type", "text/plain")
                          .body("made " + std::string(request.target)));
    });
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all("PUT /k/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    const std::string want =
        "HTTP/1.1 201 Created\r\nDate: <date>\r\nLocation: /k/1\r\nContent-Type: text/plain\r\n"
        "Content-Length: 9\r\n\r\nmade /k/1";
    const auto got = client.read_exactly(wire_size(want));
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) == want);
    CHECK(client.read_exactly(1, 50ms).end == test::ReadEnd::timeout);  // nothing more
}

TEST_CASE("send_response adds what the request needs: HEAD, HTTP/1.0") {
    ServerHarness h{test::NoListener{}};
    listen_http(h, [](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request, HttpResponse(200).body("four"));
    });
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(
        client.send_all("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const std::string want =
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 4\r\n\r\n"
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\n"
        "four";
    const auto got = client.read_exactly(wire_size(want, 2));
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) == want);
}

TEST_CASE("the replies to pipelined requests are gathered and leave in one write") {
    // While the read that holds all three requests is decoded, each reply joins the ones before
    // it in the output stage: none is written until the last request has been answered.
    std::mutex mutex;
    std::vector<std::size_t> pending;
    ServerHarness h{test::NoListener{}};
    listen_http(h, [&](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request,
                      HttpResponse(200).header("X-Target", request.target).body("ok"));
        std::lock_guard lock(mutex);
        pending.push_back(conn.output_pending());
    });
    auto [client, id] = h.connect_and_wait_open();
    std::string requests;
    for (const char* target : {"/a", "/b", "/c"}) {
        requests += "GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    }
    REQUIRE(client.send_all(requests));  // one write: loopback delivers it to one read
    std::string want;
    for (const char* target : {"/a", "/b", "/c"}) {
        want += "HTTP/1.1 200 OK\r\nDate: <date>\r\nX-Target: " + std::string(target) +
                "\r\nContent-Length: 2\r\n\r\nok";
    }
    const auto got = client.read_exactly(wire_size(want, 3));
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) == want);
    std::lock_guard lock(mutex);
    REQUIRE(pending.size() == 3);
    const std::size_t each = got.data.size() / 3;
    CHECK(pending == std::vector<std::size_t>{each, 2 * each, 3 * each});
}

TEST_CASE("a response marked close_connection() ends the connection after it") {
    ServerHarness h{test::NoListener{}};
    listen_http(h, [](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request, HttpResponse(403).close_connection().body("go away"));
    });
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(
        client.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) ==
          "HTTP/1.1 403 Forbidden\r\nDate: <date>\r\nConnection: close\r\n"
          "Content-Length: 7\r\n\r\ngo away");
    CHECK(h.events.wait_close_of(id) == CloseReason::app_closed);
}

TEST_CASE("a request that does not keep the connection: its reply, then EOF, closed by protocol") {
    // The application only answers; the protocol ends the connection after the reply.
    for (const std::string request :
         {"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /a HTTP/1.0\r\n\r\n"}) {
        CAPTURE(request);
        test::LogCapture log;
        ServerHarness h{test::NoListener{}};
        listen_http(h, [](reactor::Connection& conn, const HttpRequest& request) {
            send_response(conn, request, HttpResponse(200).body("bye"));
        });
        auto [client, id] = h.connect_and_wait_open();
        // A request pipelined after it is never answered.
        REQUIRE(client.send_all(request + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
        const auto got = client.read_until_eof();
        REQUIRE(got.ok());
        CHECK(without_dates(got.data) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nConnection: close\r\nContent-Length: 3\r\n\r\n"
              "bye");
        CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
        const std::string text = log.text();
        CHECK(text.find(" closed: closed by protocol") != std::string::npos);
        CHECK(text.find("protocol error") == std::string::npos);
    }
}

TEST_CASE("pipelined requests up to one that closes are all answered, in one write") {
    std::mutex mutex;
    std::vector<std::string> targets;
    ServerHarness h{test::NoListener{}};
    listen_http(h, [&](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request, HttpResponse(200).body(request.target));
        std::lock_guard lock(mutex);
        targets.emplace_back(request.target);
    });
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(
        client.send_all("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) ==
          "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 2\r\n\r\n/1"
          "HTTP/1.1 200 OK\r\nDate: <date>\r\nConnection: close\r\nContent-Length: 2\r\n\r\n/2");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
    std::lock_guard lock(mutex);
    CHECK(targets == std::vector<std::string>{"/1", "/2"});
}

TEST_CASE("an upgrade answered 101 with a switch goes on with the next protocol") {
    ServerHarness h{test::NoListener{}};
    reactor::ListenOptions options;
    options.protocol = reactor::protocols::make_http(reactor::ProtocolConfig{});
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        const auto* request = message.get<HttpRequest>();
        if (request == nullptr) {
            conn.send(message.payload);  // raw framing, after the switch: an echo
            return;
        }
        REQUIRE(request->upgrade);
        send_response(conn, *request,
                      HttpResponse(101).header("Connection", "Upgrade").header("Upgrade", "echo"));
        conn.switch_protocol(reactor::raw_protocol()->create());
    };
    h.listen_primary(std::move(options));
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello"));
    const std::string want =
        "HTTP/1.1 101 Switching Protocols\r\nDate: <date>\r\nConnection: Upgrade\r\n"
        "Upgrade: echo\r\n\r\nhello";
    const auto got = client.read_exactly(wire_size(want));
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) == want);
    REQUIRE(client.send_all("more"));
    const auto more = client.read_exactly(4);
    REQUIRE(more.ok());
    CHECK(more.data == "more");
    CHECK(h.events.closes_of(id).empty());
}

TEST_CASE("an upgrade nobody switched for ends after its reply") {
    ServerHarness h{test::NoListener{}};
    listen_http(h, [](reactor::Connection& conn, const HttpRequest& request) {
        send_response(conn, request, HttpResponse(400).body("no"));
    });
    auto [client, id] = h.connect_and_wait_open();
    REQUIRE(client.send_all(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello"));
    const auto got = client.read_until_eof();
    REQUIRE(got.ok());
    CHECK(without_dates(got.data) ==
          "HTTP/1.1 400 Bad Request\r\nDate: <date>\r\nConnection: close\r\nContent-Length: 2\r\n"
          "\r\nno");
    CHECK(h.events.wait_close_of(id) == CloseReason::protocol_done);
}
