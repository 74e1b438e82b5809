#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>

#include "builtin.hpp"
#include "codec_harness.hpp"

using codec_test::build;
using codec_test::check_all_feeds;
using codec_test::config_error;
using codec_test::encoded;
using codec_test::feed_bytewise;
using codec_test::feed_whole;
using codec_test::payload;
using reactor::protocols::make_line;
using json = nlohmann::json;

TEST_CASE("line: valid frames at every split point") {
    struct Case {
        json options;
        std::string bytes;
        std::vector<codec_test::Captured> expected;
    };
    const std::vector<Case> cases = {
        {json::object(), "hello\n", {payload("hello")}},
        {json::object(), "hello\r\n", {payload("hello")}},
        {json::object(), "\n", {payload("")}},
        {json::object(), "\r\n", {payload("")}},
        {json::object(), "a\rb\n", {payload("a\rb")}},
        {json::object(), "one\ntwo\r\nthree\n", {payload("one"), payload("two"), payload("three")}},
        {json::object(),
         std::string("nul\0inside\n", 11),
         {payload(std::string("nul\0inside", 10))}},
        {{{"strip_delimiter", false}}, "x\r\ny\n", {payload("x\r\n"), payload("y\n")}},
        {{{"delimiter", "||"}}, "ab||a|b||", {payload("ab"), payload("a|b")}},
        {{{"delimiter", "||"}}, "cr\r\n||", {payload("cr\r\n")}},
        {{{"delimiter", "\r\n"}}, "x\ny\r\n", {payload("x\ny")}},
        {{{"delimiter", "<END>"}, {"strip_delimiter", false}}, "a<EN<END>", {payload("a<EN<END>")}},
        {{{"max_line", 5}}, "12345\n12345\r\n", {payload("12345"), payload("12345")}},
        {{{"delimiter", "aab"}, {"max_line", 2}}, "xaaab", {payload("xa")}},
    };
    for (const auto& c : cases) {
        INFO("options " << c.options.dump() << " bytes \"" << c.bytes << "\"");
        const auto factory = build(make_line, c.options);
        CHECK(factory->name() == "line");
        check_all_feeds(*factory, c.bytes, c.expected);
    }
}

TEST_CASE("line: 1000 pipelined lines are all delivered by one decode_all call") {
    std::string bytes;
    for (int i = 0; i < 1000; ++i) bytes += "line " + std::to_string(i) + (i % 2 ? "\r\n" : "\n");
    const auto result = feed_whole(*build(make_line), bytes);
    CHECK_FALSE(result.failed);
    REQUIRE(result.messages.size() == 1000);
    CHECK(result.largest_batch == 1000);
    CHECK(result.messages[0].payload == "line 0");
    CHECK(result.messages[999].payload == "line 999");
    CHECK(result.left == 0);
}

TEST_CASE("line: max_line is enforced before the delimiter arrives") {
    SUBCASE("a ninth byte that cannot start an ending fails at once") {
        const auto result = feed_bytewise(*build(make_line, {{"max_line", 8}}), "123456789abc\n");
        CHECK(result.failed);
        CHECK(result.fed_at_failure == 9);
        CHECK(result.error.reason == "line longer than 8 bytes");
        CHECK(result.error.last_reply.empty());
    }
    SUBCASE("a \\r after max_line bytes may still be the ending") {
        const auto factory = build(make_line, {{"max_line", 8}});
        auto ok = feed_bytewise(*factory, "12345678\r\n");
        CHECK_FALSE(ok.failed);
        REQUIRE(ok.messages.size() == 1);
        CHECK(ok.messages[0].payload == "12345678");
        auto bad = feed_bytewise(*factory, "12345678\rX");
        CHECK(bad.failed);
        CHECK(bad.fed_at_failure == 10);
        auto bare = feed_whole(*factory, "12345678\r\n123456789\n");
        CHECK(bare.failed);
        CHECK(bare.messages.size() == 1);
    }
    SUBCASE("a long line with a delimiter far after the limit, fed whole") {
        const auto result = feed_whole(*build(make_line, {{"max_line", 4}}), "hello world\n");
        CHECK(result.failed);
        CHECK(result.messages.empty());
        CHECK(result.error.reason == "line longer than 4 bytes");
    }
    SUBCASE("a \\r\\n line whose content is one byte too long") {
        const auto result = feed_whole(*build(make_line, {{"max_line", 4}}), "12345\r\n");
        CHECK(result.failed);
    }
    SUBCASE("a multi-byte delimiter is awaited only while it could still start in time") {
        const auto factory = build(make_line, {{"delimiter", "<END>"}, {"max_line", 4}});
        auto waiting = feed_bytewise(*factory, "abcd<EN");
        CHECK_FALSE(waiting.failed);
        CHECK(waiting.left == 7);
        auto late = feed_bytewise(*factory, "abc<E<END>");
        CHECK(late.failed);
        CHECK(late.fed_at_failure == 6);
        auto plain = feed_bytewise(*factory, "abcdefgh");
        CHECK(plain.failed);
        CHECK(plain.fed_at_failure == 5);
    }
    SUBCASE("the default limit is the listener's max_frame") {
        const auto factory = build(make_line, json::object(), 16);
        CHECK_FALSE(feed_whole(*factory, std::string(16, 'x') + "\n").failed);
        const auto result = feed_bytewise(*factory, std::string(40, 'x'));
        CHECK(result.failed);
        CHECK(result.fed_at_failure == 17);
        CHECK(result.error.reason == "line longer than 16 bytes");
    }
}

namespace {
// Records payloads and reported errors ("!reason") in order.
class ReportSink final : public reactor::MessageSink {
  public:
    void deliver(reactor::Message& message) override {
        got.push_back(message.error.empty() ? std::string(message.payload)
                                            : "!" + std::string(message.error));
    }
    std::vector<std::string> got;
};

// Feeds bytes in pieces of `step`, decoding after each; returns what was delivered and the
// largest input the protocol kept buffered.
std::vector<std::string> feed_report(const json& options, const std::string& bytes,
                                     std::size_t step, std::size_t* most_buffered = nullptr) {
    const auto protocol = build(make_line, options)->create();
    reactor::Buffer in;
    ReportSink sink;
    for (std::size_t at = 0; at < bytes.size(); at += step) {
        in.append(std::string_view(bytes).substr(at, step));
        const auto outcome = reactor::decode_all(*protocol, in, sink);
        REQUIRE_FALSE(outcome.failed);
        if (most_buffered != nullptr) *most_buffered = std::max(*most_buffered, in.size());
    }
    return sink.got;
}
}  // namespace

TEST_CASE("line: too_long report skips an oversize line and goes on") {
    const json report = {{"max_line", 4}, {"too_long", "report"}};
    const std::string bytes = "ab\n" + std::string(100, 'x') + "\r\ncd\n1234\n12345\nef\n";
    const std::vector<std::string> expected = {"ab",   "!line longer than 4 bytes", "cd",
                                               "1234", "!line longer than 4 bytes", "ef"};
    for (std::size_t step = 1; step <= bytes.size(); ++step) {
        INFO("pieces of " << step);
        std::size_t most = 0;
        CHECK(feed_report(report, bytes, step, &most) == expected);
        // Fail-fast: never more than a line's worth, plus one read, is held.
        CHECK(most <= 4 + 2 + step);
    }
    SUBCASE("the report comes as soon as the limit is passed, before any delimiter") {
        CHECK(feed_report(report, "123456", 1) ==
              std::vector<std::string>{"!line longer than 4 bytes"});
    }
    SUBCASE("a multi-byte delimiter split across reads ends the discarded line") {
        const json options = {{"delimiter", "<END>"}, {"max_line", 4}, {"too_long", "report"}};
        const std::string wire = std::string(50, 'y') + "<END>ok<END>";
        for (std::size_t step = 1; step <= wire.size(); ++step) {
            INFO("pieces of " << step);
            CHECK(feed_report(options, wire, step) ==
                  std::vector<std::string>{"!line longer than 4 bytes", "ok"});
        }
    }
    SUBCASE("the default still fails the connection") {
        const auto result = feed_whole(*build(make_line, {{"max_line", 4}}), "12345\n");
        CHECK(result.failed);
        CHECK(config_error(make_line, {{"too_long", "skip"}}).problem() ==
              "expected one of close, report");
    }
}

TEST_CASE("line: an unterminated last line is dropped at end of stream") {
    const auto protocol = build(make_line)->create();
    reactor::Buffer in;
    in.append("done\npartial");
    codec_test::CapturingSink sink;
    const auto outcome = reactor::decode_eof(*protocol, in, sink);
    CHECK_FALSE(outcome.failed);
    REQUIRE(sink.messages.size() == 1);
    CHECK(sink.messages[0].payload == "done");
}

TEST_CASE("line: encode appends the delimiter and decodes back") {
    const std::vector<json> configs = {
        json::object(), {{"delimiter", "\r\n"}}, {{"delimiter", "<END>"}}, {{"max_line", 64}}};
    const std::vector<std::string> payloads = {"", "hello", "with spaces and \t tabs",
                                               std::string(64, 'z')};
    for (const auto& options : configs) {
        const auto factory = build(make_line, options);
        for (const auto& p : payloads) {
            INFO("options " << options.dump() << " payload " << p);
            const std::string wire = encoded(*factory->create(), p);
            CHECK(wire == p + options.value("delimiter", std::string("\n")));
            check_all_feeds(*factory, wire, {payload(p)});
        }
    }
}

TEST_CASE("line: option errors name the option") {
    struct Case {
        json options;
        std::string path;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {{{"max_line", 0}}, "max_line", "expected an integer from 1 to 1024"},
        {{{"max_line", 1025}}, "max_line", "expected an integer from 1 to 1024"},
        {{{"max_line", -1}}, "max_line", "expected an integer from 1 to 1024"},
        {{{"max_line", "10"}}, "max_line", "expected an integer from 1 to 1024"},
        {{{"max_line", 1.5}}, "max_line", "expected an integer from 1 to 1024"},
        {{{"delimiter", 10}}, "delimiter", "expected a string"},
        {{{"delimiter", ""}}, "delimiter", "expected a non-empty string"},
        {{{"delimiter", std::string(65, '-')}}, "delimiter", "expected at most 64 bytes"},
        {{{"strip_delimiter", "yes"}}, "strip_delimiter", "expected true or false"},
        {{{"max_lines", 10}}, "max_lines", "unknown option"},
    };
    for (const auto& c : cases) {
        INFO("options " << c.options.dump());
        const auto error = config_error(make_line, c.options, 1024);
        CHECK(error.path() == c.path);
        CHECK(error.problem() == c.problem);
    }
    CHECK(config_error(make_line, json::array()).problem() == "expected an object");
    CHECK_NOTHROW(build(make_line, {{"name", "line"}, {"max_line", 1024}}, 1024));
}
