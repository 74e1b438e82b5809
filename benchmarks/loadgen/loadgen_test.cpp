// Codec tests of loadgen's reply framers and its histogram: no sockets, bytes in, replies out.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "histogram.hpp"
#include "reactor/buffer.hpp"
#include "reactor/protocol.hpp"
#include "reply_framers.hpp"

namespace {

struct Collect final : reactor::MessageSink {
    std::vector<std::string> payloads;
    void deliver(reactor::Message& m) override { payloads.emplace_back(m.payload); }
};

struct Outcome {
    std::vector<std::string> payloads;
    bool failed = false;
    std::size_t left = 0;
};

// Feeds `wire` in two pieces split at `split`, decoding after each piece.
Outcome feed(const reactor::ProtocolFactory& factory, const std::string& wire, std::size_t split) {
    auto protocol = factory.create();
    reactor::Buffer in;
    Collect sink;
    Outcome out;
    for (const std::string& piece : {wire.substr(0, split), wire.substr(split)}) {
        in.append(piece);
        if (reactor::decode_all(*protocol, in, sink).failed) out.failed = true;
    }
    out.payloads = sink.payloads;
    out.left = in.size();
    return out;
}

// Every split point gives the same replies as the whole input at once.
void check_every_split(const reactor::ProtocolFactory& factory, const std::string& wire,
                       const std::vector<std::string>& expected) {
    for (std::size_t split = 0; split <= wire.size(); ++split) {
        CAPTURE(split);
        const Outcome out = feed(factory, wire, split);
        CHECK_FALSE(out.failed);
        CHECK(out.payloads == expected);
        CHECK(out.left == 0);
    }
}

}  // namespace

TEST_CASE("resp replies: every reply type, pipelined, split anywhere") {
    const std::string wire =
        "+OK\r\n-ERR "
        "wrong\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n*-1\r\n$0\r\n\r\n";
    check_every_split(*loadgen::resp_replies(), wire,
                      {"+OK", "-ERR wrong", ":42", "$5", "$-1", "*2", "*-1", "$0"});
}

TEST_CASE("resp replies: a bulk whose payload holds CRLF is framed by its length") {
    check_every_split(*loadgen::resp_replies(), "$4\r\n\r\n\r\n\r\n+OK\r\n", {"$4", "+OK"});
}

TEST_CASE("resp replies: garbage fails instead of waiting") {
    CHECK(feed(*loadgen::resp_replies(), "HTTP/1.1 200 OK\r\n", 0).failed);
    CHECK(feed(*loadgen::resp_replies(), "$abc\r\n", 0).failed);
    CHECK(feed(*loadgen::resp_replies(), "$-2\r\n", 0).failed);
}

TEST_CASE("http responses: Content-Length bodies, pipelined, split anywhere") {
    const std::string wire =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!"
        "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
        "HTTP/1.1 404 Not Found\r\nContent-Length:  9 \r\n\r\nNot Found";
    check_every_split(*loadgen::http_responses(), wire,
                      {"HTTP/1.1 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 404 Not Found"});
}

TEST_CASE("http responses: unsupported or broken framing fails") {
    CHECK(feed(*loadgen::http_responses(),
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 0)
              .failed);
    CHECK(feed(*loadgen::http_responses(), "HTTP/1.1 200 OK\r\n\r\nbody", 0).failed);
    CHECK(
        feed(*loadgen::http_responses(), "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0).failed);
    CHECK(feed(*loadgen::http_responses(), "SSH-2.0-OpenSSH\r\n\r\n", 0).failed);
}

TEST_CASE("fixed-size replies: one reply per `size` bytes, whatever the reads") {
    const auto factory = loadgen::fixed_size_replies(5);
    check_every_split(*factory, std::string(15, 'x'), {"", "", ""});
    const Outcome partial = feed(*factory, std::string(7, 'x'), 3);
    CHECK(partial.payloads.size() == 1);
    CHECK(partial.left == 2);
}

TEST_CASE("histogram: percentiles within 1/128 of the exact value, exact max") {
    loadgen::Histogram h;
    for (std::uint64_t v = 1; v <= 1'000'000; ++v) h.record(v);
    CHECK(h.count() == 1'000'000);
    CHECK(h.max() == 1'000'000);
    CHECK(h.min() == 1);
    CHECK(h.mean() == doctest::Approx(500'000.5));
    for (const double q : {0.5, 0.9, 0.99, 0.999}) {
        CAPTURE(q);
        const double exact = q * 1'000'000;
        const double got = static_cast<double>(h.percentile(q));
        CHECK(got >= exact);
        CHECK(got <= exact * (1.0 + 1.0 / 128));
    }
    CHECK(h.percentile(1.0) == 1'000'000);
}

TEST_CASE("histogram: small values are exact, huge ones fit, merge adds") {
    loadgen::Histogram a;
    loadgen::Histogram b;
    for (std::uint64_t v = 0; v < 100; ++v) a.record(v);
    CHECK(a.percentile(0.5) == 49);
    b.record(UINT64_MAX);
    b.record(3'600'000'000'000ULL);  // an hour in ns
    a.merge(b);
    CHECK(a.count() == 102);
    CHECK(a.max() == UINT64_MAX);
    CHECK(a.percentile(0.005) == 0);
    const double hour = static_cast<double>(a.percentile(100.5 / 102));
    CHECK(std::abs(hour - 3.6e12) <= 3.6e12 / 128);
}
