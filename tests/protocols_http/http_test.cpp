#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <ctime>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "buffer_internals.hpp"
#include "builtin.hpp"
#include "http.hpp"
#include "http_date.hpp"
#include "http_response.hpp"
#include "reactor/buffer.hpp"
#include "reactor/protocol.hpp"

using reactor::Buffer;
using reactor::DecodeOutcome;
using reactor::Message;
using reactor::MessageSink;
using reactor::Protocol;
using namespace reactor::protocols;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// A delivered request, copied out of the views that are only valid during delivery.
struct Request {
    std::string method;
    std::string target;
    int major = 1;
    int minor = 1;
    Headers headers;
    std::string body;
    bool keep_alive = true;
    bool operator==(const Request&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Request& r) {
    os << r.method << ' ' << r.target << " HTTP/" << r.major << '.' << r.minor
       << (r.keep_alive ? " keep-alive" : " close") << " {";
    for (const auto& [name, value] : r.headers) os << name << ": " << value << "; ";
    return os << "} body[" << r.body.size() << "]=" << r.body;
}

class CollectingSink final : public MessageSink {
  public:
    void deliver(Message& message) override {
        REQUIRE(message.get<HttpRequest>() != nullptr);
        const auto& http = *message.get<HttpRequest>();
        CHECK(message.payload.data() == http.body.data());
        CHECK(message.payload.size() == http.body.size());
        Request r{std::string(http.method),
                  std::string(http.target),
                  http.version_major,
                  http.version_minor,
                  {},
                  std::string(http.body),
                  http.keep_alive};
        for (const auto& h : http.headers) r.headers.emplace_back(h.name, h.value);
        requests.push_back(std::move(r));
        if (on_message) on_message(message);
    }
    std::vector<Request> requests;
    std::function<void(Message&)> on_message;
};

// Feeds the chunks one after another, decoding after each, as a connection would: until the
// protocol fails or ends the connection.
struct FeedResult {
    std::vector<Request> requests;
    DecodeOutcome last;
    std::size_t left = 0;  // bytes still buffered at the end
};

// With lend, a chunk that arrives at an empty buffer is lent to it in place, as a connection's
// small reads are, kept after decoding, and its memory then overwritten.
FeedResult feed(Protocol& protocol, const std::vector<std::string_view>& chunks,
                bool lend = false) {
    Buffer in;
    CollectingSink sink;
    FeedResult result;
    std::string lent;
    for (const auto chunk : chunks) {
        if (lend && in.empty()) {
            lent.assign(chunk);
            reactor::BufferInternals::lend(in, lent);
        } else {
            in.append(chunk);
        }
        result.last = reactor::decode_all(protocol, in, sink);
        if (lend) {
            reactor::BufferInternals::keep_lent(in);
            lent.assign(lent.size(), '#');
        }
        // A connection decodes nothing after a failure or a last frame.
        if (result.last.failed || result.last.last_frame) break;
    }
    result.requests = std::move(sink.requests);
    result.left = in.size();
    return result;
}

std::unique_ptr<Protocol> http(std::size_t max_header_bytes = 8 * 1024,
                               std::size_t max_body = 1024 * 1024) {
    return make_http_protocol(HttpLimits{max_header_bytes, max_body});
}

struct ValidCase {
    const char* name;
    std::string bytes;
    std::vector<Request> expected;
};

std::string many_headers_request() {
    std::string r = "GET /many HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 60; ++i) {
        r += "X-Header-" + std::to_string(i) + ": value-" + std::to_string(i) + "\r\n";
    }
    r += "X-Padded: \t padded value \t\r\nX-Empty:\r\nX-Blank:   \r\n\r\n";
    return r;
}

Headers many_headers() {
    Headers h{{"Host", "x"}};
    for (int i = 0; i < 60; ++i) {
        h.emplace_back("X-Header-" + std::to_string(i), "value-" + std::to_string(i));
    }
    h.emplace_back("X-Padded", "padded value");
    h.emplace_back("X-Empty", "");
    h.emplace_back("X-Blank", "");
    return h;
}

std::vector<ValidCase> valid_cases() {
    return {
        {"GET without body",
         "GET /index.html?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
         {{"GET",
           "/index.html?q=1&r=%20",
           1,
           1,
           {{"Host", "example.com"}, {"Accept", "*/*"}},
           "",
           true}}},
        {"POST with Content-Length",
         "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
         "Content-Length: 11\r\n\r\nhello world",
         {{"POST",
           "/submit",
           1,
           1,
           {{"Host", "x"}, {"Content-Type", "text/plain"}, {"Content-Length", "11"}},
           "hello world",
           true}}},
        // Chunk extensions as llhttp 8.1 accepts them: a name, or one name=value per chunk line.
        {"chunked POST with extensions and trailers",
         "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;name=value\r\nhello\r\n6;flag\r\n world\r\n"
         "1;q=\"a;b\"\r\n!\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
         {{"POST",
           "/upload",
           1,
           1,
           {{"Host", "x"}, {"Transfer-Encoding", "chunked"}},
           "hello world!",
           true}}},
        {"chunked POST with one chunk",
         "PUT /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
         "chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
         {{"PUT",
           "/one",
           1,
           1,
           {{"Host", "x"}, {"Transfer-Encoding", "chunked"}},
           "0123456789",
           true}}},
        {"HTTP/1.0",
         "GET /old HTTP/1.0\r\nHost: x\r\n\r\n",
         {{"GET", "/old", 1, 0, {{"Host", "x"}}, "", false}}},
        {"HTTP/1.0 with keep-alive",
         "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
         "HEAD /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
         {{"GET", "/old", 1, 0, {{"Connection", "keep-alive"}}, "", true},
          {"HEAD", "/again", 1, 0, {{"Connection", "keep-alive"}}, "", true}}},
        {"Connection: close",
         "POST /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
         {{"POST",
           "/bye",
           1,
           1,
           {{"Host", "x"}, {"Connection", "close"}, {"Content-Length", "2"}},
           "ok",
           false}}},
        {"many headers",
         many_headers_request(),
         {{"GET", "/many", 1, 1, many_headers(), "", true}}},
        {"pipelined, with an empty line between",
         "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n"
         "DELETE /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
         "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
         {{"GET", "/a", 1, 1, {{"Host", "x"}}, "", true},
          {"DELETE", "/b", 1, 1, {{"Host", "x"}, {"Content-Length", "3"}}, "xyz", true},
          {"OPTIONS", "*", 1, 1, {{"Host", "x"}}, "", true}}},
    };
}

void check_valid(const ValidCase& c, const std::vector<std::string_view>& chunks) {
    for (const bool lend : {false, true}) {
        INFO("lent: " << lend);
        auto protocol = http();
        const FeedResult result = feed(*protocol, chunks, lend);
        REQUIRE_FALSE(result.last.failed);
        CHECK(result.left == 0);
        REQUIRE(result.requests.size() == c.expected.size());
        for (std::size_t i = 0; i < c.expected.size(); ++i)
            CHECK(result.requests[i] == c.expected[i]);
    }
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". Checked by hand: std::regex trips GCC 12's
// maybe-uninitialized warning under the sanitizers.
bool is_http_date(std::string_view s) {
    static constexpr std::string_view kDays = "Mon Tue Wed Thu Fri Sat Sun";
    static constexpr std::string_view kMonths = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec";
    auto is_name = [](std::string_view names, std::string_view name) {
        return name.size() == 3 && names.find(name) != std::string_view::npos &&
               names.find(name) % 4 == 0;
    };
    auto is_digits = [](std::string_view digits) {
        for (const char c : digits) {
            if (c < '0' || c > '9') return false;
        }
        return true;
    };
    return s.size() == 29 && is_name(kDays, s.substr(0, 3)) && s.substr(3, 2) == ", " &&
           is_digits(s.substr(5, 2)) && s[7] == ' ' && is_name(kMonths, s.substr(8, 3)) &&
           s[11] == ' ' && is_digits(s.substr(12, 4)) && s[16] == ' ' &&
           is_digits(s.substr(17, 2)) && s[19] == ':' && is_digits(s.substr(20, 2)) &&
           s[22] == ':' && is_digits(s.substr(23, 2)) && s.substr(25) == " GMT";
}

// Replaces the Date header's value with "<date>" after checking its format.
std::string without_date(std::string response) {
    const std::string key = "\r\nDate: ";
    const auto at = response.find(key);
    REQUIRE(at != std::string::npos);
    const auto begin = at + key.size();
    const auto end = response.find("\r\n", begin);
    REQUIRE(end != std::string::npos);
    CHECK(is_http_date(std::string_view(response).substr(begin, end - begin)));
    response.replace(begin, end - begin, "<date>");
    return response;
}

std::string error_response(std::string_view status_line) {
    return std::string(status_line) +
           "\r\nDate: <date>\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
}

// Runs one request through a fresh codec and returns what encode() makes of payload into a
// Buffer; into a string it must make the same (but for the second in the Date header, which may
// tick between the two).
std::string reply_to(std::string_view request, std::string_view payload) {
    auto protocol = http();
    Buffer in;
    Buffer out;
    CollectingSink sink;
    std::string direct;
    sink.on_message = [&](Message&) {
        reactor::FrameOutput into_buffer(out);
        protocol->encode(payload, into_buffer);
        reactor::FrameOutput into_string(direct);
        protocol->encode(payload, into_string);
    };
    in.append(request);
    const DecodeOutcome outcome = reactor::decode_all(*protocol, in, sink);
    REQUIRE_FALSE(outcome.failed);
    REQUIRE(outcome.messages == 1);
    CHECK(without_date(direct) == without_date(out.to_string()));
    return out.to_string();
}

// RFC 9112 conformance: each request as one client sends it, and what the codec must make of it.
// status 0: every request is delivered; otherwise the codec fails with that status after
// delivering `delivered` requests. Found by comparing answers with nginx 1.22 (see
// tests/integration/test_http_conformance.py, which sends the same requests over sockets).
struct ConformanceCase {
    const char* name;
    std::string bytes;
    int status;
    std::size_t delivered;
    std::string body = {};  // of the first request, when one is delivered
    int minor = 1;          // HTTP/1.x version of the first request, when one is delivered
};

const std::string kChunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string kNext = "GET /json HTTP/1.1\r\nHost: x\r\n\r\n";

std::string with_te(std::string_view codings) {
    return "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + std::string(codings) +
           "\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
}

std::vector<ConformanceCase> conformance_cases() {
    return {
        // 1. The CRLF after chunk data is checked: without it, what follows is not a new request.
        {"chunk data without its CRLF", kChunked + "3\r\nabcXX0\r\n\r\n" + kNext, 400, 0},
        {"chunk data followed by LF alone", kChunked + "3\r\nabc\n0\r\n\r\n" + kNext, 400, 0},
        {"chunk data followed by CR alone", kChunked + "3\r\nabc\rX0\r\n\r\n", 400, 0},
        {"chunk data one byte longer than declared", kChunked + "3\r\nabcd\r\n0\r\n\r\n", 400, 0},
        // 2. HTTP/1.0 has no chunked framing (RFC 9112 §6.1).
        {"HTTP/1.0 chunked with keep-alive",
         "POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
             kNext,
         400, 0},
        {"HTTP/1.0 chunked",
         "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, 0},
        // 3. Host (RFC 9112 §3.2) and field names.
        {"HTTP/1.1 without Host", "GET /json HTTP/1.1\r\n\r\n", 400, 0},
        {"two Host lines", "GET /json HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, 0},
        {"two Host lines in HTTP/1.0", "GET /json HTTP/1.0\r\nHost: x\r\nhost: x\r\n\r\n", 400, 0},
        {"empty Host", "GET /json HTTP/1.1\r\nHost:\r\n\r\n", 400, 0},
        {"Host of spaces", "GET /json HTTP/1.1\r\nHost:   \r\n\r\n", 400, 0},
        {"Host with a space", "GET /json HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0},
        {"Host with a slash", "GET /json HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0},
        {"Host with a port and IPv6", "GET /json HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, 1},
        {"HTTP/1.0 without Host", "GET /json HTTP/1.0\r\n\r\n", 0, 1, "", 0},
        {"empty field name", "GET /json HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400, 0},
        // 4. Versions.
        {"HTTP/2.0", "GET /json HTTP/2.0\r\nHost: x\r\n\r\n", 505, 0},
        {"HTTP/3.0", "GET /json HTTP/3.0\r\nHost: x\r\n\r\n", 505, 0},
        {"HTTP/9.9", "GET /json HTTP/9.9\r\nHost: x\r\n\r\n", 505, 0},
        {"HTTP/1.9 is served as 1.1", "GET /json HTTP/1.9\r\nHost: x\r\n\r\n" + kNext, 0, 2},
        {"HTTP/1.9 with a body", "POST /echo HTTP/1.9\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 0,
         1, "hi"},
        {"HTTP/0.9 spelled out", "GET /json HTTP/0.9\r\nHost: x\r\n\r\n", 400, 0},
        {"two-digit minor version", "GET /json HTTP/1.10\r\nHost: x\r\n\r\n", 400, 0},
        // 5. Transfer codings: only chunked is implemented (RFC 9112 §6.1: 501 otherwise).
        {"Transfer-Encoding: gzip", with_te("gzip"), 501, 0},
        {"Transfer-Encoding: xchunked", with_te("xchunked"), 501, 0},
        {"Transfer-Encoding: chunked, identity", with_te("chunked, identity"), 501, 0},
        {"Transfer-Encoding: identity, chunked", with_te("identity, chunked"), 501, 0},
        {"Transfer-Encoding: gzip, chunked", with_te("gzip, chunked"), 501, 0},
        {"Transfer-Encoding: chunked, chunked", with_te("chunked, chunked"), 501, 0},
        {"Transfer-Encoding over two lines",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         501, 0},
        {"Transfer-Encoding: CHUNKED", with_te("CHUNKED"), 0, 1, "abc"},
        {"Transfer-Encoding with an empty element", with_te(" , chunked"), 0, 1, "abc"},
        {"Content-Length and Transfer-Encoding",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
         "\r\n3\r\nabc\r\n0\r\n\r\n",
         400, 0},
        // 6. Chunk extensions: the grammar of RFC 9112 §7.1.1, bounded.
        {"extensions a=b;c=d", kChunked + "3;a=b;c=d\r\nabc\r\n0\r\n\r\n" + kNext, 0, 2, "abc"},
        {"extension after a space", kChunked + "3; a=b\r\nabc\r\n0\r\n\r\n", 0, 1, "abc"},
        {"extension then a space", kChunked + "3;a=b \r\nabc\r\n0\r\n\r\n", 0, 1, "abc"},
        {"quoted extension then another", kChunked + "3;a=\"q\";c=d\r\nabc\r\n0\r\n\r\n", 0, 1,
         "abc"},
        {"BWS around = and a quoted-pair",
         kChunked + "3 ; a = \"x\\\"y;z\" ; flag\r\nabc\r\n0;last\r\n\r\n", 0, 1, "abc"},
        {"chunk size then a space", kChunked + "3 \r\nabc\r\n0\r\n\r\n", 0, 1, "abc"},
        {"extension without a name", kChunked + "3;=b\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"extension without a value", kChunked + "3;a=\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"semicolon alone", kChunked + "3;\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"unterminated quoted value", kChunked + "3;a=\"q\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"extension name with a control byte", kChunked + "3;a\x01=b\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"chunk line past 4096 bytes",
         kChunked + "3;a=" + std::string(5000, 'v') + "\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"5000 leading zeros in a chunk size", kChunked + std::string(5000, '0') + "3\r\nabc\r\n",
         400, 0},
        {"chunk size with 0x", kChunked + "0x3\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"negative chunk size", kChunked + "-3\r\nabc\r\n0\r\n\r\n", 400, 0},
        {"chunk size ended by LF alone", kChunked + "3\nabc\r\n0\r\n\r\n", 400, 0},
        {"chunk size past max_body", kChunked + "100001\r\n", 413, 0},
        // 7. Request targets (RFC 9112 §3.2).
        {"absolute-form", "GET http://x/json HTTP/1.1\r\nHost: x\r\n\r\n", 0, 1},
        {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 0, 1},
        {"GET *", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
        // 8. HTTP/0.9: refused at the end of the request line, not held for more input.
        {"HTTP/0.9 request line", "GET /\r\n", 505, 0},
        {"HTTP/0.9 request line, LF alone", "GET /\n", 505, 0},
        {"HTTP/0.9 request line, then another request", "GET /\r\n" + kNext, 505, 0},
        // 9. Trailer fields are checked like header fields.
        {"trailer with whitespace before the colon", kChunked + "3\r\nabc\r\n0\r\nX-T : v\r\n\r\n",
         400, 0},
        {"trailer folded over lines", kChunked + "3\r\nabc\r\n0\r\nX-T: v\r\n w\r\n\r\n", 400, 0},
        {"trailer without a colon", kChunked + "3\r\nabc\r\n0\r\nX-T\r\n\r\n", 400, 0},
        {"trailer without a name", kChunked + "3\r\nabc\r\n0\r\n: v\r\n\r\n", 400, 0},
        {"trailer with a bare LF", kChunked + "3\r\nabc\r\n0\r\nX-T: v\n\r\n", 400, 0},
        {"trailer with a CR in its value", kChunked + "3\r\nabc\r\n0\r\nX-T: a\rb\r\n\r\n", 400, 0},
        {"trailers that are valid",
         kChunked + "3\r\nabc\r\n0\r\nX-T: v\r\nX-Empty:\r\nX-Tab:\tv w\r\n\r\n" + kNext, 0, 2,
         "abc"},
        // Beyond the list: the same class of leniency in the header section.
        {"obs-fold", "GET /json HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, 0},
        {"bare LF line ends", "GET /json HTTP/1.1\nHost: x\n\n", 400, 0},
        {"CR inside a header value", "GET /json HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, 0},
        {"Content-Length with a sign",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400, 0},
        {"Content-Length as a list",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400, 0},
        {"whitespace before a colon", "GET /json HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n", 400, 0},
        {"whitespace before the first header", "GET /json HTTP/1.1\r\n Host: x\r\n\r\n", 400, 0},
    };
}

void check_conformance(const ConformanceCase& c, const std::vector<std::string_view>& chunks) {
    for (const bool lend : {false, true}) {
        INFO("lent: " << lend);
        auto protocol = http(8192, 1 << 20);
        const FeedResult result = feed(*protocol, chunks, lend);
        CHECK(result.requests.size() == c.delivered);
        if (c.status == 0) {
            CHECK_FALSE(result.last.failed);
            CHECK(result.left == 0);
        } else {
            CHECK(result.last.failed);
            const std::string status = "HTTP/1.1 " + std::to_string(c.status) + " ";
            CHECK(result.last.error.last_reply.rfind(status, 0) == 0);
            CHECK(result.last.error.last_reply.find("\r\nConnection: close\r\n") !=
                  std::string::npos);
        }
        if (!result.requests.empty()) {
            CHECK(result.requests[0].body == c.body);
            CHECK(result.requests[0].major == 1);
            CHECK(result.requests[0].minor == c.minor);
        }
    }
}

}  // namespace

TEST_CASE("RFC 9112 conformance, fed whole") {
    for (const auto& c : conformance_cases()) {
        const std::string name = c.name;
        CAPTURE(name);
        check_conformance(c, {c.bytes});
    }
}

TEST_CASE("RFC 9112 conformance, split at every point") {
    for (const auto& c : conformance_cases()) {
        const std::string name = c.name;
        CAPTURE(name);
        const std::string_view bytes = c.bytes;
        // The long cases are split near their interesting ends only.
        for (std::size_t split = 1; split < bytes.size(); ++split) {
            if (bytes.size() > 600 && split > 300 && split < bytes.size() - 300) continue;
            CAPTURE(split);
            check_conformance(c, {bytes.substr(0, split), bytes.substr(split)});
        }
    }
}

TEST_CASE("RFC 9112 conformance, fed byte by byte") {
    for (const auto& c : conformance_cases()) {
        const std::string name = c.name;
        CAPTURE(name);
        std::vector<std::string_view> bytes;
        for (std::size_t i = 0; i < c.bytes.size(); ++i) {
            bytes.push_back(std::string_view(c.bytes).substr(i, 1));
        }
        check_conformance(c, bytes);
    }
}

TEST_CASE("HTTP/0.9 is refused as soon as its line ends, with nothing after it") {
    auto protocol = http();
    Buffer in;
    CollectingSink sink;
    in.append("GET /\r\n");
    const DecodeOutcome outcome = reactor::decode_all(*protocol, in, sink);
    REQUIRE(outcome.failed);
    CHECK(outcome.error.last_reply.rfind("HTTP/1.1 505 ", 0) == 0);
}

TEST_CASE("a chunked body arrives whole however it is split, and the framing is not copied") {
    auto protocol = http();
    const std::string bytes = kChunked + "5;x=y\r\nhello\r\n0\r\n\r\n";
    Buffer in;
    CollectingSink sink;
    std::size_t body_offset = 0;
    sink.on_message = [&](Message& m) {
        // One chunk: the body is a view into the input, right after the chunk line.
        const std::string_view front = in.peek(in.size());
        CHECK(m.payload.data() == front.data() + body_offset);
    };
    body_offset = bytes.find("hello");
    in.append(bytes);
    CHECK(reactor::decode_all(*protocol, in, sink).messages == 1);
    REQUIRE(sink.requests.size() == 1);
    CHECK(sink.requests[0].body == "hello");
}

namespace {}  // namespace

TEST_CASE("valid requests fed whole") {
    for (const auto& c : valid_cases()) {
        CAPTURE(c.name);
        check_valid(c, {c.bytes});
    }
}

TEST_CASE("valid requests split at every point") {
    for (const auto& c : valid_cases()) {
        CAPTURE(c.name);
        const std::string_view bytes = c.bytes;
        for (std::size_t split = 1; split < bytes.size(); ++split) {
            CAPTURE(split);
            check_valid(c, {bytes.substr(0, split), bytes.substr(split)});
        }
    }
}

TEST_CASE("valid requests fed byte by byte") {
    for (const auto& c : valid_cases()) {
        CAPTURE(c.name);
        std::vector<std::string_view> bytes;
        for (std::size_t i = 0; i < c.bytes.size(); ++i) {
            bytes.push_back(std::string_view(c.bytes).substr(i, 1));
        }
        check_valid(c, bytes);
    }
}

TEST_CASE("an incomplete request stays buffered and is not delivered") {
    auto protocol = http();
    Buffer in;
    CollectingSink sink;
    in.append("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
    const auto size = in.size();
    const DecodeOutcome first = reactor::decode_all(*protocol, in, sink);
    CHECK_FALSE(first.failed);
    CHECK(first.messages == 0);
    CHECK(in.size() == size);
    in.append("cd");
    const DecodeOutcome second = reactor::decode_all(*protocol, in, sink);
    CHECK(second.messages == 1);
    CHECK(in.empty());
    REQUIRE(sink.requests.size() == 1);
    CHECK(sink.requests[0].body == "abcd");
}

TEST_CASE("1,000 pipelined requests in one buffer are all delivered by one decode_all") {
    std::string bytes;
    for (int i = 0; i < 1000; ++i) {
        if (i % 2 == 0) {
            bytes += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
        } else {
            const std::string body = "body" + std::to_string(i);
            bytes += "POST /r" + std::to_string(i) +
                     " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body;
        }
    }
    auto protocol = http();
    Buffer in;
    CollectingSink sink;
    in.append(bytes);
    const DecodeOutcome outcome = reactor::decode_all(*protocol, in, sink);
    CHECK_FALSE(outcome.failed);
    CHECK(outcome.messages == 1000);
    CHECK(in.empty());
    REQUIRE(sink.requests.size() == 1000);
    for (int i = 0; i < 1000; ++i) {
        CAPTURE(i);
        CHECK(sink.requests[i].target == "/r" + std::to_string(i));
        CHECK(sink.requests[i].body == (i % 2 == 0 ? "" : "body" + std::to_string(i)));
    }
}

TEST_CASE("a request that ends the connection is the last frame: nothing after it is decoded") {
    const std::string next = "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const std::string first :
         {"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /1 HTTP/1.0\r\n\r\n",
          "GET /1 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
          "Upgrade: websocket\r\n\r\n"}) {
        CAPTURE(first);
        const std::string stream = first + next;
        for (std::size_t split = 1; split < stream.size(); ++split) {
            CAPTURE(split);
            auto protocol = http();
            const std::string_view bytes = stream;
            const auto result = feed(*protocol, {bytes.substr(0, split), bytes.substr(split)});
            CHECK_FALSE(result.last.failed);
            CHECK(result.last.last_frame);  // not an error: the connection ends in order
            REQUIRE(result.requests.size() == 1);
            CHECK(result.requests[0].target == "/1");
            CHECK_FALSE(result.requests[0].keep_alive);
            // What came with the request stays undecoded; what would come later is not fed.
            CHECK(result.left == (split < first.size() ? next.size() : split - first.size()));
        }
    }
}

TEST_CASE("a request that keeps the connection is a frame like any other") {
    auto protocol = http();
    const auto result = feed(*protocol, {"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                         "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"});
    CHECK_FALSE(result.last.failed);
    CHECK_FALSE(result.last.last_frame);
    CHECK(result.requests.size() == 2);
    CHECK(result.left == 0);
}

// Stands in for a connection whose application switches protocols when an upgrade arrives.
class SwitchingSink final : public MessageSink {
  public:
    void deliver(Message& message) override {
        const auto* request = message.get<HttpRequest>();
        REQUIRE(request != nullptr);
        ++delivered;
        upgrade = request->upgrade;
        keep_alive = request->keep_alive;
        upgrade_header = std::string(request->header("upgrade"));
        if (upgrade) switched = true;  // the application's switch_protocol()
    }
    bool accepting() const override { return !switched; }
    int delivered = 0;
    bool upgrade = false;
    bool keep_alive = true;
    bool switched = false;
    std::string upgrade_header;
};

TEST_CASE("an upgrade request leaves the bytes after it, at every split, for the next protocol") {
    const std::string request =
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    const std::string next = "\x81\x05hello then more";
    const std::string stream = request + next;
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        CAPTURE(split);
        auto protocol = http();
        Buffer in;
        SwitchingSink sink;
        in.append(std::string_view(stream).substr(0, split));
        reactor::decode_all(*protocol, in, sink);
        if (!sink.switched) {
            in.append(std::string_view(stream).substr(split));
            reactor::decode_all(*protocol, in, sink);
        } else {
            in.append(std::string_view(stream).substr(split));  // arrives for the next protocol
        }
        REQUIRE(sink.delivered == 1);
        CHECK(sink.upgrade);
        CHECK_FALSE(sink.keep_alive);
        CHECK(sink.upgrade_header == "websocket");
        CHECK(in.size() == next.size());
        CHECK(std::string(in.peek(in.size())) == next);
    }
}

TEST_CASE("a request without Upgrade is not an upgrade") {
    auto protocol = http();
    const auto result = feed(*protocol, {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n"});
    REQUIRE(result.requests.size() == 1);
    // "Upgrade" without "Connection: upgrade" is only a header (RFC 9110 §7.8).
    CHECK(result.requests[0].keep_alive);
}

TEST_CASE("headers past max_header_bytes fail with 431 before the headers end") {
    const std::string expected = error_response("HTTP/1.1 431 Request Header Fields Too Large");
    SUBCASE("one long header, whole") {
        auto protocol = http(1024);
        const auto result = feed(*protocol, {"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " +
                                             std::string(2000, 'a')});  // no end yet
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
        CHECK(result.requests.empty());
    }
    SUBCASE("many headers, byte by byte: fails once the limit is passed") {
        auto protocol = http(1024);
        std::string bytes = "GET / HTTP/1.1\r\nHost: x\r\n";
        while (bytes.size() < 4096) bytes += "X-A: b\r\n";
        Buffer in;
        CollectingSink sink;
        std::size_t fed = 0;
        DecodeOutcome outcome;
        while (fed < bytes.size() && !outcome.failed) {
            in.append(std::string_view(bytes).substr(fed++, 1));
            outcome = reactor::decode_all(*protocol, in, sink);
        }
        REQUIRE(outcome.failed);
        CHECK(fed > 1000);
        CHECK(fed <= 1025);
        CHECK(without_date(outcome.error.last_reply) == expected);
    }
    SUBCASE("bytes outside any field: blank lines, whitespace before a value") {
        auto protocol = http(1024);
        CHECK(feed(*protocol, {std::string(1200, '\n')}).last.failed);
        auto other = http(1024);
        const auto result =
            feed(*other, {"GET / HTTP/1.1\r\nHost: x\r\nX:" + std::string(1200, ' ')});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
    SUBCASE("a long target") {
        auto protocol = http(1024);
        const auto result =
            feed(*protocol, {"GET /" + std::string(1100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
    SUBCASE("headers just within the limit pass") {
        const std::string request =
            "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(1000, 'v') + "\r\n\r\n";
        auto protocol = http(request.size());
        const auto result = feed(*protocol, {request});
        CHECK_FALSE(result.last.failed);
        CHECK(result.requests.size() == 1);
    }
}

TEST_CASE("a body past max_body fails with 413") {
    const std::string expected = error_response("HTTP/1.1 413 Payload Too Large");
    SUBCASE("a declared Content-Length fails before any body byte") {
        auto protocol = http();
        const auto result =
            feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
    SUBCASE("Content-Length at the limit passes") {
        auto protocol = http(8192, 16);
        const auto result = feed(
            *protocol,
            {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n" + std::string(16, 'b')});
        CHECK_FALSE(result.last.failed);
        REQUIRE(result.requests.size() == 1);
        CHECK(result.requests[0].body == std::string(16, 'b'));
    }
    SUBCASE("chunked: fails when the running total passes") {
        auto protocol = http(8192, 10);
        const auto result =
            feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\nabcdef\r\n",
                             "5\r\n"});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
        CHECK(result.requests.empty());
    }
    SUBCASE("chunked: a chunk size that would overflow") {
        auto protocol = http(8192, 10);
        const auto result =
            feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "ffffffffffffffff\r\n"});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
    SUBCASE("chunked: a request past 2 * (max_header_bytes + max_body) in all") {
        auto protocol = http(1024, 1024);
        std::string bytes = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        while (bytes.size() < 8192) bytes += "1;ext=" + std::string(100, 'e') + "\r\nb\r\n";
        const auto result = feed(*protocol, {bytes});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
}

TEST_CASE("a trailer section past max_header_bytes fails with 431") {
    const std::string expected = error_response("HTTP/1.1 431 Request Header Fields Too Large");
    SUBCASE("chunked: endless trailers") {
        auto protocol = http(1024, 1024);
        std::string bytes = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
        while (bytes.size() < 8192) bytes += "X-Trailer: yes\r\n";
        const auto result = feed(*protocol, {bytes});
        REQUIRE(result.last.failed);
        CHECK(without_date(result.last.error.last_reply) == expected);
    }
}

TEST_CASE("malformed requests fail with 400") {
    const std::string expected = error_response("HTTP/1.1 400 Bad Request");
    const std::vector<std::string> garbage = {
        "HELLO WORLD\r\n\r\n",
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS hello
        "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nName : value\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nA: first line\r\n folded\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: "
        "chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (const auto& bytes : garbage) {
        CAPTURE(bytes);
        auto protocol = http();
        const auto result = feed(*protocol, {bytes});
        REQUIRE(result.last.failed);
        CHECK(result.last.error.reason.rfind("bad request", 0) == 0);
        CHECK(without_date(result.last.error.last_reply) == expected);
        CHECK(result.requests.empty());
        // The error sticks: the connection is going away.
        Buffer in;
        CollectingSink sink;
        in.append("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(reactor::decode_all(*protocol, in, sink).failed);
    }
}

TEST_CASE("a request cut off by the end of input is dropped without a reply") {
    auto protocol = http();
    Buffer in;
    CollectingSink sink;
    in.append(
        "GET /done HTTP/1.1\r\nHost: x\r\n\r\nPOST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: "
        "10\r\n\r\nabc");
    const DecodeOutcome outcome = reactor::decode_eof(*protocol, in, sink);
    CHECK_FALSE(outcome.failed);
    CHECK(outcome.messages == 1);
    REQUIRE(sink.requests.size() == 1);
    CHECK(sink.requests[0].target == "/done");
}

TEST_CASE("encode() frames a 200 text/plain reply to the last request") {
    SUBCASE("keep-alive") {
        CHECK(without_date(reply_to("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello")) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
              "Content-Length: 5\r\n\r\nhello");
    }
    SUBCASE("Connection: close") {
        CHECK(
            without_date(reply_to("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "")) ==
            "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
            "Connection: close\r\nContent-Length: 0\r\n\r\n");
    }
    SUBCASE("HTTP/1.0 keep-alive is spelled out") {
        CHECK(without_date(reply_to("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "x")) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
              "Connection: keep-alive\r\nContent-Length: 1\r\n\r\nx");
    }
    SUBCASE("HEAD: the body's length, without the body") {
        CHECK(without_date(reply_to("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "hello")) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
              "Content-Length: 5\r\n\r\n");
    }
    SUBCASE("a large body") {
        const std::string body(100000, 'z');
        CHECK(without_date(reply_to("GET / HTTP/1.1\r\nHost: x\r\n\r\n", body)) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
              "Content-Length: 100000\r\n\r\n" +
                  body);
    }
}

TEST_CASE("busy notice is a 503 that closes") {
    auto protocol = http();
    CHECK(without_date(protocol->busy_notice()) ==
          "HTTP/1.1 503 Service Unavailable\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
          "Connection: close\r\nContent-Length: 12\r\n\r\nserver busy\n");
}

TEST_CASE("make_http reads and checks its options") {
    SUBCASE("defaults") {
        const auto factory = make_http(reactor::ProtocolConfig{});
        CHECK(factory->name() == "http");
        auto protocol = factory->create();
        const auto big =
            feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"});
        CHECK(big.last.failed);
    }
    SUBCASE("max_body defaults to the listener's max_frame when smaller") {
        reactor::ProtocolConfig config;
        config.max_frame = 100;
        auto protocol = make_http(config)->create();
        CHECK_FALSE(feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"})
                        .last.failed);
        auto other = make_http(config)->create();
        CHECK(feed(*other, {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"})
                  .last.failed);
    }
    SUBCASE("explicit limits") {
        reactor::ProtocolConfig config;
        config.options = {{"max_header_bytes", 512}, {"max_body", 8}};
        auto protocol = make_http(config)->create();
        CHECK(feed(*protocol, {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"})
                  .last.error.last_reply.rfind("HTTP/1.1 413 ", 0) == 0);
        auto other = make_http(config)->create();
        CHECK(feed(*other, {"GET /" + std::string(600, 'a')})
                  .last.error.last_reply.rfind("HTTP/1.1 431 ", 0) == 0);
    }
    auto error_path = [](nlohmann::json options, std::size_t max_frame = 1 << 20) {
        reactor::ProtocolConfig config;
        config.options = std::move(options);
        config.max_frame = max_frame;
        try {
            make_http(config);
        } catch (const reactor::ConfigError& e) {
            return e.path();
        }
        return std::string("<no error>");
    };
    CHECK(error_path({{"max_body", 2000}}, 1000) == "max_body");
    CHECK(error_path({{"max_body", -1}}) == "max_body");
    CHECK(error_path({{"max_header_bytes", "8k"}}) == "max_header_bytes");
    CHECK(error_path({{"max_header_bytes", 10}}) == "max_header_bytes");
    CHECK(error_path({{"max_headers", 10}}) == "max_headers");
}

TEST_CASE("HttpResponse writes exact responses") {
    SUBCASE("status, headers, body") {
        const auto text = HttpResponse(404)
                              .header("Content-Type", "text/plain")
                              .body("no such key\n")
                              .to_string();
        CHECK(without_date(text) ==
              "HTTP/1.1 404 Not Found\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
              "Content-Length: 12\r\n\r\nno such key\n");
    }
    SUBCASE("own reason phrase, close, no body") {
        CHECK(
            without_date(HttpResponse(299, "Fine").close_connection().to_string()) ==
            "HTTP/1.1 299 Fine\r\nDate: <date>\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        CHECK(without_date(HttpResponse(299).to_string()).rfind("HTTP/1.1 299 Unknown\r\n", 0) ==
              0);
    }
    SUBCASE("the Connection header a request needs") {
        HttpRequest request;
        CHECK(HttpResponse(204).connection_for(request).to_string().find("Connection") ==
              std::string::npos);
        request.keep_alive = false;
        CHECK(HttpResponse(204).connection_for(request).to_string().find(
                  "\r\nConnection: close\r\n") != std::string::npos);
        request.keep_alive = true;
        request.version_minor = 0;
        CHECK(HttpResponse(204).connection_for(request).to_string().find(
                  "\r\nConnection: keep-alive\r\n") != std::string::npos);
    }
    SUBCASE("1xx and 204 have no content: neither Content-Length nor body") {
        CHECK(without_date(HttpResponse(204).body("ignored").to_string()) ==
              "HTTP/1.1 204 No Content\r\nDate: <date>\r\n\r\n");
        CHECK(without_date(HttpResponse(101).header("Upgrade", "x").to_string()) ==
              "HTTP/1.1 101 Switching Protocols\r\nDate: <date>\r\nUpgrade: x\r\n\r\n");
    }
    SUBCASE("HEAD: Content-Length of the body, no body") {
        CHECK(without_date(HttpResponse(200).body("abc").omit_body().to_string()) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 3\r\n\r\n");
    }
    SUBCASE("into a Buffer, after what is there") {
        Buffer out;
        out.append("before|");
        reactor::FrameOutput into(out);
        HttpResponse(201).header("Location", "/k/1").body("made").write_to(into);
        CHECK(without_date(out.to_string()) ==
              "before|HTTP/1.1 201 Created\r\nDate: <date>\r\nLocation: /k/1\r\n"
              "Content-Length: 4\r\n\r\nmade");
    }
    SUBCASE("a large body after the head, into a Buffer and a string alike") {
        const std::string body(100000, 'b');
        const HttpResponse response = HttpResponse(200).body(body);
        Buffer buffer;
        reactor::FrameOutput into_buffer(buffer);
        response.write_to(into_buffer);
        const std::string text = response.to_string();
        CHECK(without_date(buffer.to_string()) == without_date(text));
        CHECK(without_date(text) ==
              "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 100000\r\n\r\n" + body);
    }
    SUBCASE("refuses what would break the framing") {
        HttpResponse r(200);
        CHECK_THROWS_AS(r.header("X", "a\r\nSet-Cookie: evil"), std::invalid_argument);
        CHECK_THROWS_AS(r.header("Bad Name", "v"), std::invalid_argument);
        CHECK_THROWS_AS(r.header("", "v"), std::invalid_argument);
        CHECK_THROWS_AS(r.header("content-length", "5"), std::invalid_argument);
        CHECK_THROWS_AS(r.header("Date", "today"), std::invalid_argument);
        CHECK_THROWS_AS(HttpResponse(200, "OK\r\nX: y"), std::invalid_argument);
        CHECK_THROWS_AS(HttpResponse(42), std::invalid_argument);
    }
    CHECK(http_reason_phrase(413) == "Payload Too Large");
    CHECK(http_reason_phrase(431) == "Request Header Fields Too Large");
}

// What write_to(out, request) makes of response as the reply to request, Date masked.
std::string reply_for(const HttpResponse& response, const HttpRequest& request) {
    std::string bytes;
    reactor::FrameOutput out(bytes);
    response.write_to(out, request);
    return without_date(bytes);
}

TEST_CASE("HttpResponse as the reply to a request adds what the request needs") {
    const HttpResponse page = HttpResponse(200).header("Content-Type", "text/plain").body("hello");
    const std::string head = "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\n";
    HttpRequest request;
    request.method = "GET";
    SUBCASE("HTTP/1.1 keep-alive: as built") {
        CHECK(reply_for(page, request) == head + "Content-Length: 5\r\n\r\nhello");
    }
    SUBCASE("a request that ends the connection: Connection: close") {
        request.keep_alive = false;
        CHECK(reply_for(page, request) ==
              head + "Connection: close\r\nContent-Length: 5\r\n\r\nhello");
    }
    SUBCASE("HTTP/1.0 keep-alive is spelled out") {
        request.version_minor = 0;
        CHECK(reply_for(page, request) ==
              head + "Connection: keep-alive\r\nContent-Length: 5\r\n\r\nhello");
    }
    SUBCASE("HEAD: the body's length, not its bytes") {
        request.method = "HEAD";
        CHECK(reply_for(page, request) == head + "Content-Length: 5\r\n\r\n");
    }
    SUBCASE("close_connection() wins over a request that keeps the connection") {
        HttpResponse closing = page;
        closing.close_connection();
        request.version_minor = 0;
        CHECK(reply_for(closing, request) ==
              head + "Connection: close\r\nContent-Length: 5\r\n\r\nhello");
    }
    SUBCASE("101 to an upgrade says only what the response says") {
        request.upgrade = true;
        request.keep_alive = false;
        const HttpResponse switching =
            HttpResponse(101).header("Connection", "Upgrade").header("Upgrade", "websocket");
        CHECK(reply_for(switching, request) ==
              "HTTP/1.1 101 Switching Protocols\r\nDate: <date>\r\nConnection: Upgrade\r\n"
              "Upgrade: websocket\r\n\r\n");
        // Refused instead, the upgrade ends the connection.
        CHECK(reply_for(HttpResponse(400), request) ==
              "HTTP/1.1 400 Bad Request\r\nDate: <date>\r\nConnection: close\r\n"
              "Content-Length: 0\r\n\r\n");
    }
    SUBCASE("the response itself is not changed: built once, sent to any request") {
        request.keep_alive = false;
        request.method = "HEAD";
        (void)reply_for(page, request);
        CHECK(without_date(page.to_string()) == head + "Content-Length: 5\r\n\r\nhello");
    }
}

TEST_CASE("HTTP dates") {
    CHECK(format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(format_http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
    CHECK(format_http_date(1735689599) == "Tue, 31 Dec 2024 23:59:59 GMT");
    CHECK(is_http_date(http_date_now()));
    CHECK_FALSE(is_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));
    CHECK_FALSE(is_http_date("Sux, 06 Nov 1994 08:49:37 GMT"));
    CHECK_FALSE(is_http_date("Sun, 06 Nov 1994 08:4x:37 GMT"));
    CHECK(http_date_now().size() == 29);
}

TEST_CASE("the Date cache formats at most once per second") {
    std::time_t clock = 784111777;
    HttpDateCache cache([&clock] { return clock; });
    CHECK(cache.formats() == 0);
    for (int i = 0; i < 1000; ++i) CHECK(cache.now() == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(cache.formats() == 1);
    clock += 1;
    CHECK(cache.now() == "Sun, 06 Nov 1994 08:49:38 GMT");
    CHECK(cache.now() == "Sun, 06 Nov 1994 08:49:38 GMT");
    CHECK(cache.formats() == 2);
    clock += 3600;
    CHECK(cache.now() == "Sun, 06 Nov 1994 09:49:38 GMT");
    CHECK(cache.formats() == 3);
}

TEST_CASE("HTTP/1.0 with a Transfer-Encoding line, even an empty one, is refused") {
    for (const std::string value : {"chunked", "", " "}) {
        CAPTURE(value);
        auto protocol = http();
        const auto result =
            feed(*protocol, {"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: " + value +
                             "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"});
        REQUIRE(result.last.failed);
        CHECK(result.requests.empty());
        CHECK(result.last.error.last_reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    }
}
