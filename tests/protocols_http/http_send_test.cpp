// HTTP replies over loopback sockets: send_response() writes an HttpResponse as the reply to the
// request being answered, through the connection's output stage, so the replies to pipelined
// requests leave together.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "http.hpp"
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
