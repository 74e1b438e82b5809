#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string_view>

#include "builtin.hpp"
#include "codec_harness.hpp"
#include "http.hpp"
#include "resp_encode.hpp"

using codec_test::build;
using codec_test::Captured;
using codec_test::check_all_feeds;
using codec_test::command;
using codec_test::config_error;
using codec_test::encoded;
using codec_test::feed_bytewise;
using codec_test::feed_split;
using codec_test::feed_whole;
using reactor::protocols::make_resp;
using json = nlohmann::json;
using namespace std::string_literals;

namespace {

std::string multibulk(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
}

// The Redis reply for a protocol error.
std::string redis_error(const std::string& what) {
    return "-ERR Protocol error: " + what + "\r\n";
}

}  // namespace

TEST_CASE("resp: valid requests at every split point") {
    struct Case {
        std::string wire;
        std::vector<Captured> expected;
    };
    const std::vector<Case> cases = {
        {"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", {command({"GET", "k"})}},
        {"*1\r\n$4\r\nPING\r\n", {command({"PING"})}},
        {multibulk({"SET", "k", "binary\r\n\0value"s}),
         {command({"SET", "k", "binary\r\n\0value"s})}},
        {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", {command({"SET", "k", ""})}},
        {"PING\r\n", {command({"PING"})}},
        {"PING\n", {command({"PING"})}},
        {"set  a \t b\r\n", {command({"set", "a", "b"})}},
        {"  leading and trailing  \r\n", {command({"leading", "and", "trailing"})}},
        {"SET k \"hello world\"\r\n", {command({"SET", "k", "hello world"})}},
        {"ECHO \"a\\x41\\n\\t\\\"q\\\"\\z\"\r\n", {command({"ECHO", "aA\n\t\"q\"z"})}},
        {"ECHO \"\\x4\"\r\n", {command({"ECHO", "x4"})}},
        {"ECHO 'it\\'s' 'a\\nb'\r\n", {command({"ECHO", "it's", "a\\nb"})}},
        {"ECHO \"\" ''\r\n", {command({"ECHO", "", ""})}},
        {"ECHO foo\"bar baz\"\r\n", {command({"ECHO", "foobar baz"})}},
        {"\r\n\nPING\r\n", {command({"PING"})}},
        {"*0\r\n*-1\r\n*-10\r\n*1\r\n$4\r\nPING\r\n", {command({"PING"})}},
        {"*1\r\n$3\r\nfoo\r\nINLINE x\r\n*1\r\n$3\r\nbar\r\n",
         {command({"foo"}), command({"INLINE", "x"}), command({"bar"})}},
        {"$not-a-star\r\n", {command({"$not-a-star"})}},
        // The bytes after a bulk and after a count line's "\r" are skipped unread, on the fast
        // path (a whole request in one chunk) as on the general one.
        {"*1\r\n$4\r\nPINGab*1\r\n$1\r\nx\r\n", {command({"PING"}), command({"x"})}},
        {"*1\r!$4\r?PING\r\n", {command({"PING"})}},
        {"*1\r\n$0\r\n\r\n", {command({""})}},
        {"*1\r\n$" + std::to_string(100) + "\r\n" + std::string(100, 'v') + "\r\n",
         {command({std::string(100, 'v')})}},
    };
    const auto factory = build(make_resp);
    CHECK(factory->name() == "resp");
    for (const auto& c : cases) {
        INFO("wire \"" << c.wire << "\"");
        check_all_feeds(*factory, c.wire, c.expected);
    }
}

TEST_CASE("resp: payload is the request as received") {
    const auto factory = build(make_resp);
    const std::string wire = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    auto result = feed_whole(*factory, wire + "GET  k\r\n");
    REQUIRE(result.messages.size() == 2);
    CHECK(result.messages[0].payload == wire);
    CHECK(result.messages[1].payload == "GET  k");
}

TEST_CASE("resp: 1000 pipelined commands are all delivered by one decode_all call") {
    std::string wire;
    for (int i = 0; i < 1000; ++i) {
        wire +=
            i % 10 == 9 ? "INCR counter\r\n" : multibulk({"SET", "key:" + std::to_string(i), "v"});
    }
    const auto result = feed_whole(*build(make_resp), wire);
    CHECK_FALSE(result.failed);
    REQUIRE(result.messages.size() == 1000);
    CHECK(result.largest_batch == 1000);
    CHECK(result.messages[0].args == std::vector<std::string>{"SET", "key:0", "v"});
    CHECK(result.messages[999].args == std::vector<std::string>{"INCR", "counter"});
    CHECK(result.left == 0);
}

TEST_CASE("resp: a request with many arguments arriving in pieces") {
    std::vector<std::string> args{"MSET"};
    for (int i = 0; i < 20000; ++i) args.push_back("k" + std::to_string(i));
    const std::string wire = multibulk(args);
    const auto protocol = build(make_resp, json::object(), 4 << 20)->create();
    std::vector<std::string_view> chunks;
    for (std::size_t at = 0; at < wire.size(); at += 7) {
        chunks.push_back(std::string_view(wire).substr(at, 7));
    }
    const auto result = codec_test::feed_chunks(*protocol, chunks, false);
    CHECK_FALSE(result.failed);
    REQUIRE(result.messages.size() == 1);
    CHECK(result.messages[0].args == args);
}

TEST_CASE("resp: protocol errors answer Redis's reply") {
    struct Case {
        std::string wire;
        std::string what;
    };
    const std::vector<Case> cases = {
        {"*abc\r\n", "invalid multibulk length"},
        {"*\r\n", "invalid multibulk length"},
        {"*+1\r\n", "invalid multibulk length"},
        {"*01\r\n", "invalid multibulk length"},
        {"*2147483648\r\n", "invalid multibulk length"},
        {"*99999999999999999999\r\n", "invalid multibulk length"},
        {"*-0\r\n", "invalid multibulk length"},
        {"*1\r\n$-0\r\n", "invalid bulk length"},
        {"*1\r\n$+1\r\n", "invalid bulk length"},
        {"*1\r\n$ 1\r\n", "invalid bulk length"},
        {"*1\r\n$-1\r\n", "invalid bulk length"},
        {"*1\r\n$abc\r\n", "invalid bulk length"},
        {"*1\r\n$\r\n", "invalid bulk length"},
        {"*1\r\n$" + std::string(30, '1') + "\r\n", "invalid bulk length"},
        {"*1\r\n$536870913\r\n", "invalid bulk length"},
        {"*1\r\n$0001\r\n", "invalid bulk length"},
        {"*1\r\n$1234567890123456789\r\n", "invalid bulk length"},
        {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "expected '$', got 'f'"},
        {"*1\r\n:1\r\n", "expected '$', got ':'"},
        {"SET k \"abc\r\n", "unbalanced quotes in request"},
        {"SET k 'abc\r\n", "unbalanced quotes in request"},
        {"SET k \"abc\"def\r\n", "unbalanced quotes in request"},
        {"SET k 'abc'def\r\n", "unbalanced quotes in request"},
    };
    const auto factory = build(make_resp, json::object(), std::size_t{1} << 30);
    for (const auto& c : cases) {
        INFO("wire \"" << c.wire << "\"");
        for (const auto& result : {feed_whole(*factory, c.wire), feed_bytewise(*factory, c.wire)}) {
            CHECK(result.failed);
            CHECK(result.messages.empty());
            CHECK(result.error.reason == "Protocol error: " + c.what);
            CHECK(result.error.last_reply == redis_error(c.what));
        }
    }
}

TEST_CASE("resp: errors come after the commands before them") {
    const auto result = feed_whole(*build(make_resp), "PING\r\n*1\r\n$x\r\nPING\r\n");
    CHECK(result.failed);
    REQUIRE(result.messages.size() == 1);
    CHECK(result.error.last_reply == redis_error("invalid bulk length"));
}

TEST_CASE("resp: limits fail fast") {
    SUBCASE("a declared bulk over max_bulk fails before the bulk arrives") {
        const auto factory = build(make_resp, {{"max_bulk", 10}});
        const std::string header = "*2\r\n$3\r\nSET\r\n$11\r\n";
        const auto result = feed_bytewise(*factory, header + std::string(11, 'v') + "\r\n");
        CHECK(result.failed);
        CHECK(result.fed_at_failure == header.size());
        CHECK(result.error.last_reply == redis_error("invalid bulk length"));
        CHECK_FALSE(feed_whole(*factory, multibulk({"SET", std::string(10, 'v')})).failed);
    }
    SUBCASE("the default max_bulk is capped to max_frame") {
        const auto factory = build(make_resp, json::object(), 1000);
        const auto result = feed_whole(*factory, "*1\r\n$1001\r\n");
        CHECK(result.failed);
        CHECK(result.error.last_reply == redis_error("invalid bulk length"));
    }
    SUBCASE("a multibulk count over max_args") {
        const auto factory = build(make_resp, {{"max_args", 3}});
        CHECK_FALSE(feed_whole(*factory, multibulk({"a", "b", "c"})).failed);
        const auto result = feed_whole(*factory, "*4\r\n");
        CHECK(result.failed);
        CHECK(result.error.last_reply == redis_error("invalid multibulk length"));
    }
    SUBCASE("an inline line over max_inline") {
        const auto factory = build(make_resp, {{"max_inline", 16}});
        CHECK_FALSE(feed_whole(*factory, std::string(15, 'a') + "\r\n").failed);
        const auto result = feed_bytewise(*factory, std::string(100, 'a'));
        CHECK(result.failed);
        CHECK(result.fed_at_failure == 17);
        CHECK(result.error.last_reply == redis_error("too big inline request"));
    }
    SUBCASE("an inline line of the default 64 KiB limit") {
        const auto factory = build(make_resp);
        const std::string longest(64 * 1024, 'x');
        const auto ok = feed_whole(*factory, "ECHO " + longest.substr(5) + "\n");
        CHECK_FALSE(ok.failed);
        CHECK(ok.messages.size() == 1);
        const auto result = feed_whole(*factory, longest + "yy");
        CHECK(result.failed);
        CHECK(result.error.last_reply == redis_error("too big inline request"));
    }
    SUBCASE("count lines over max_inline") {
        const auto factory = build(make_resp, {{"max_inline", 16}});
        auto mbulk = feed_bytewise(*factory, "*" + std::string(40, '1'));
        CHECK(mbulk.failed);
        CHECK(mbulk.fed_at_failure == 17);
        CHECK(mbulk.error.last_reply == redis_error("too big mbulk count string"));
        auto bulk = feed_bytewise(*factory, "*1\r\n$" + std::string(40, '1'));
        CHECK(bulk.failed);
        CHECK(bulk.fed_at_failure == 4 + 17);
        CHECK(bulk.error.last_reply == redis_error("too big bulk count string"));
    }
    SUBCASE("a one-digit count line over a max_inline of 1") {
        // The whole request lies in one chunk, so the fast path sees it first and must decline.
        const auto factory = build(make_resp, {{"max_inline", 1}});
        const auto result = feed_whole(*factory, "*1\r\n$4\r\nPING\r\n");
        CHECK(result.failed);
        CHECK(result.error.last_reply == redis_error("too big mbulk count string"));
    }
    SUBCASE("a wrong bulk header fails at its first byte") {
        const std::string wire = "*2\r\n$3\r\nGET\r\nk";
        const auto result = feed_bytewise(*build(make_resp), wire + "ey\r\n");
        CHECK(result.failed);
        CHECK(result.fed_at_failure == wire.size());
        CHECK(result.error.last_reply == redis_error("expected '$', got 'k'"));
    }
    SUBCASE("a request longer than max_frame plus max_bulk closes without a reply") {
        // max_bulk defaults to max_frame here: 64 + 64 bytes for a whole request.
        const auto factory = build(make_resp, json::object(), 64);
        const std::vector<std::string> longest{std::string(50, 'a'), std::string(60, 'b')};
        check_all_feeds(*factory, multibulk(longest), {command(longest)});  // 128 bytes
        const std::string start = "*2\r\n$50\r\n" + std::string(50, 'a') + "\r\n$61\r\n";
        const auto result = feed_bytewise(*factory, start + std::string(61, 'b') + "\r\n");
        CHECK(result.failed);
        CHECK(result.fed_at_failure == start.size());
        CHECK(result.error.reason == "request longer than max_frame plus max_bulk, 128 bytes");
        CHECK(result.error.last_reply.empty());
        // Framing counts too: 20 empty arguments take 5 + 20 * 6 = 125 bytes, 21 take 131.
        const std::vector<std::string> twenty(20, "");
        check_all_feeds(*factory, multibulk(twenty), {command(twenty)});
        const auto framing = feed_bytewise(*factory, multibulk(std::vector<std::string>(21, "")));
        CHECK(framing.failed);
        CHECK(framing.fed_at_failure == 5 + 20 * 6 + 4);
        CHECK(framing.messages.empty());
        CHECK(framing.error.last_reply.empty());
    }
}

TEST_CASE("resp: an argument of max_bulk fits, with the default max_bulk of max_frame too") {
    // The listener's default max_frame of 1 MiB caps the default max_bulk to 1 MiB; a SET of a
    // value of that size is a request of more than 1 MiB, and must still be delivered.
    const std::size_t mib = std::size_t{1} << 20;
    const auto factory = build(make_resp, json::object(), mib);
    for (const std::size_t size : {mib - 29, mib - 1, mib}) {
        INFO("value of " << size << " bytes");
        const std::string value(size, 'v');
        const std::string wire = multibulk({"SET", "key", value});
        for (const auto& result : std::vector<codec_test::FeedResult>{
                 feed_whole(*factory, wire), feed_split(*factory, wire, 20),
                 feed_split(*factory, wire, wire.size() - 1)}) {
            CHECK_FALSE(result.failed);
            REQUIRE(result.messages.size() == 1);
            CHECK(result.messages[0].args == std::vector<std::string>{"SET", "key", value});
            CHECK(result.left == 0);
        }
    }
    // One byte more is Redis's error, at the header.
    const std::string header = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$1048577\r\n";
    for (const auto& result : {feed_whole(*factory, header), feed_bytewise(*factory, header)}) {
        CHECK(result.failed);
        CHECK(result.fed_at_failure == header.size());
        CHECK(result.error.last_reply == redis_error("invalid bulk length"));
    }
    // Two arguments of max_bulk each pass the 2 MiB a request may hold: closed, no reply.
    const std::string two = "*2\r\n$1048576\r\n" + std::string(mib, 'a') + "\r\n$1048576\r\n";
    const auto result = feed_whole(*factory, two);
    CHECK(result.failed);
    CHECK(result.error.last_reply.empty());
}

TEST_CASE("resp: multibulk counts up to INT_MAX are Redis's, bounded by max_frame") {
    const auto factory = build(make_resp);
    // Accepted and waited on, as Redis does.
    for (const std::string& count : {"1048577"s, "20000000"s, "2147483647"s}) {
        INFO("count " << count);
        const auto result = feed_whole(*factory, "*" + count + "\r\n$1\r\nx\r\n");
        CHECK_FALSE(result.failed);
        CHECK(result.messages.empty());
    }
    // A large count whose arguments come is delivered.
    std::vector<std::string> args(1048577, "");
    args[0] = "MSET";
    const auto big = build(make_resp, json::object(), std::size_t{8} << 20);
    const auto delivered = feed_whole(*big, multibulk(args));
    CHECK_FALSE(delivered.failed);
    REQUIRE(delivered.messages.size() == 1);
    CHECK(delivered.messages[0].args.size() == args.size());
}

TEST_CASE("resp: protocol error replies carry no CR or LF, at every split point") {
    // Redis writes the quoted byte as a space; the logged reason is the same text.
    struct Case {
        std::string wire;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {"*1\r\n\r\r\n", "-ERR Protocol error: expected '$', got ' '\r\n"},
        {"*1\r\n\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n"},
        {"*2\r\n$1\r\nx\r\n\r\r\n", "-ERR Protocol error: expected '$', got ' '\r\n"},
    };
    const auto factory = build(make_resp);
    for (const auto& c : cases) {
        for (std::size_t at = 0; at <= c.wire.size(); ++at) {
            INFO("wire \"" << c.wire << "\" split at " << at);
            const auto result = at == c.wire.size() ? feed_bytewise(*factory, c.wire)
                                                    : feed_split(*factory, c.wire, at);
            CHECK(result.failed);
            CHECK(result.error.last_reply == c.reply);
            CHECK(result.error.reason == "Protocol error: expected '$', got ' '");
        }
    }
}

TEST_CASE("resp: Redis's integer syntax for arguments") {
    namespace resp = reactor::protocols::resp;
    for (const auto& entry : std::vector<std::pair<std::string, std::int64_t>>{
             {"0", 0},
             {"5", 5},
             {"-5", -5},
             {"9223372036854775807", 9223372036854775807LL},
             {"-9223372036854775808", -9223372036854775807LL - 1}}) {
        // Named, not bound: clang 14 does not let the check's lambda capture a binding.
        const std::string& text = entry.first;
        const std::int64_t value = entry.second;
        std::int64_t got = 42;
        CHECK_MESSAGE(resp::parse_integer(text, got), text);
        CHECK(got == value);
    }
    for (const std::string& text : std::vector<std::string>{
             "", "-", "05", "-0", "-05", "00", "+5", " 5", "5 ", "5x", "0x10", "1e3",
             "9223372036854775808", "-9223372036854775809", "99999999999999999999", "5\0"s}) {
        std::int64_t got = 42;
        CHECK_FALSE_MESSAGE(resp::parse_integer(text, got), text);
        CHECK(got == 42);
    }
}

TEST_CASE("resp: encode writes a bulk string that decodes back") {
    const auto factory = build(make_resp);
    for (const std::string& p :
         {""s, "hello"s, "with\r\nCRLF and \0 NUL"s, std::string(1000, 'b')}) {
        INFO("payload " << p);
        const std::string bulk = encoded(*factory->create(), p);
        CHECK(bulk == "$" + std::to_string(p.size()) + "\r\n" + p + "\r\n");
        check_all_feeds(*factory, "*1\r\n" + bulk, {command({p})});
    }
}

TEST_CASE("resp: busy notice") {
    CHECK(build(make_resp)->create()->busy_notice() == "-ERR max number of clients reached\r\n");
}

TEST_CASE("resp: reply builders") {
    namespace resp = reactor::protocols::resp;
    const std::vector<std::string_view> items{"a", "", "ccc"};
    std::string s;
    reactor::Buffer buffer;
    reactor::FrameOutput b(buffer);
    resp::append_simple_string(s, "OK");
    resp::append_simple_string(b, "OK");
    resp::append_error(s, "ERR bad\r\nthing");
    resp::append_error(b, "ERR bad\r\nthing");
    resp::append_integer(s, 1);
    resp::append_integer(b, 1);
    resp::append_integer(s, -9223372036854775807LL - 1);
    resp::append_integer(b, -9223372036854775807LL - 1);
    resp::append_bulk(s, "foo");
    resp::append_bulk(b, "foo");
    resp::append_null_bulk(s);
    resp::append_null_bulk(b);
    resp::append_array_header(s, 2);
    resp::append_array_header(b, 2);
    resp::append_bulk_array(s, items);
    resp::append_bulk_array(b, items);
    const std::string expected =
        "+OK\r\n-ERR bad  thing\r\n:1\r\n:-9223372036854775808\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n"
        "*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\nccc\r\n";
    CHECK(s == expected);
    CHECK(buffer.to_string() == expected);
}

TEST_CASE("resp: option errors name the option") {
    struct Case {
        json options;
        std::string path;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {{{"max_bulk", 0}}, "max_bulk", "expected an integer from 1 to 1024"},
        {{{"max_bulk", 1025}}, "max_bulk", "expected an integer from 1 to 1024"},
        {{{"max_bulk", "1k"}}, "max_bulk", "expected an integer from 1 to 1024"},
        {{{"max_args", 0}}, "max_args", "expected an integer from 1 to 2147483647"},
        {{{"max_args", 2147483648LL}}, "max_args", "expected an integer from 1 to 2147483647"},
        {{{"max_inline", 2048}}, "max_inline", "expected an integer from 1 to 1024"},
        {{{"max_inline", true}}, "max_inline", "expected an integer from 1 to 1024"},
        {{{"maxclients", 1}}, "maxclients", "unknown option"},
    };
    for (const auto& c : cases) {
        INFO("options " << c.options.dump());
        const auto error = config_error(make_resp, c.options, 1024);
        CHECK(error.path() == c.path);
        CHECK(error.problem() == c.problem);
    }
    CHECK_NOTHROW(
        build(make_resp, {{"max_bulk", 1024}, {"max_args", 10}, {"max_inline", 1024}}, 1024));
}

TEST_CASE("resp: a message carries its arguments as a RespCommand, and no other detail") {
    struct Sink final : reactor::MessageSink {
        void deliver(reactor::Message& message) override {
            const auto* command = message.get<reactor::protocols::RespCommand>();
            REQUIRE(command != nullptr);
            REQUIRE(command->args.size() == 2);
            CHECK(command->args[0] == "GET");
            CHECK(command->args[1] == "k");
            // Multibulk arguments are views into the request itself.
            CHECK(command->args[1].data() >= message.payload.data());
            CHECK(command->args[1].data() < message.payload.data() + message.payload.size());
            CHECK(message.get<reactor::protocols::HttpRequest>() == nullptr);
            ++delivered;
        }
        int delivered = 0;
    } sink;
    const auto protocol = build(make_resp)->create();
    reactor::Buffer in;
    in.append("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    const auto outcome = reactor::decode_all(*protocol, in, sink);
    CHECK_FALSE(outcome.failed);
    CHECK(sink.delivered == 1);
}
