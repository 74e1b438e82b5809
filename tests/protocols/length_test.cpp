#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <stdexcept>

#include "builtin.hpp"
#include "codec_harness.hpp"

using codec_test::build;
using codec_test::check_all_feeds;
using codec_test::config_error;
using codec_test::encoded;
using codec_test::feed_bytewise;
using codec_test::feed_whole;
using codec_test::payload;
using reactor::protocols::make_length;
using json = nlohmann::json;

namespace {
std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (const int v : values) out.push_back(static_cast<char>(v));
    return out;
}
}  // namespace

TEST_CASE("length: valid frames at every split point") {
    struct Case {
        const char* what;
        json options;
        std::string wire;
        std::vector<codec_test::Captured> expected;
    };
    const std::string hello = "HELLO, WORLD";  // 12 bytes
    const std::vector<Case> cases = {
        {"default 4-byte big-endian field, payload only",
         json::object(),
         bytes({0, 0, 0, 5}) + "hello",
         {payload("hello")}},
        {"an empty frame", json::object(), bytes({0, 0, 0, 0}), {payload("")}},
        {"two frames",
         json::object(),
         bytes({0, 0, 0, 1}) + "a" + bytes({0, 0, 0, 2}) + "bc",
         {payload("a"), payload("bc")}},
        {"2-byte field kept in the payload",
         {{"length_field_length", 2}, {"initial_bytes_to_strip", 0}},
         bytes({0, 12}) + hello,
         {payload(bytes({0, 12}) + hello)}},
        {"2-byte field stripped",
         {{"length_field_length", 2}, {"initial_bytes_to_strip", 2}},
         bytes({0, 12}) + hello,
         {payload(hello)}},
        {"length counts the field itself",
         {{"length_field_length", 2}, {"length_adjustment", -2}, {"initial_bytes_to_strip", 0}},
         bytes({0, 14}) + hello,
         {payload(bytes({0, 14}) + hello)}},
        {"2-byte header before a 3-byte field",
         {{"length_field_offset", 2}, {"length_field_length", 3}, {"initial_bytes_to_strip", 0}},
         bytes({0xCA, 0xFE, 0, 0, 12}) + hello,
         {payload(bytes({0xCA, 0xFE, 0, 0, 12}) + hello)}},
        {"2-byte header after a 3-byte field",
         {{"length_field_length", 3}, {"length_adjustment", 2}, {"initial_bytes_to_strip", 0}},
         bytes({0, 0, 12, 0xCA, 0xFE}) + hello,
         {payload(bytes({0, 0, 12, 0xCA, 0xFE}) + hello)}},
        {"header, field, header; keep the second header",
         {{"length_field_offset", 1},
          {"length_field_length", 2},
          {"length_adjustment", 1},
          {"initial_bytes_to_strip", 3}},
         bytes({0xCA, 0, 12, 0xFE}) + hello,
         {payload(bytes({0xFE}) + hello)}},
        {"as above with a length counting the whole frame",
         {{"length_field_offset", 1},
          {"length_field_length", 2},
          {"length_adjustment", -3},
          {"initial_bytes_to_strip", 3}},
         bytes({0xCA, 0, 16, 0xFE}) + hello,
         {payload(bytes({0xFE}) + hello)}},
        {"little-endian 2-byte field",
         {{"length_field_length", 2}, {"byte_order", "little"}},
         bytes({3, 0}) + "abc" + bytes({0, 0}),
         {payload("abc"), payload("")}},
        {"1-byte field",
         {{"length_field_length", 1}},
         bytes({255}) + std::string(255, 'q'),
         {payload(std::string(255, 'q'))}},
        {"8-byte field",
         {{"length_field_length", 8}},
         bytes({0, 0, 0, 0, 0, 0, 1, 2}) + std::string(258, 'w'),
         {payload(std::string(258, 'w'))}},
        {"8-byte little-endian field",
         {{"length_field_length", 8}, {"byte_order", "little"}},
         bytes({2, 1, 0, 0, 0, 0, 0, 0}) + std::string(258, 'w'),
         {payload(std::string(258, 'w'))}},
        {"3-byte field needing all three bytes",
         {{"length_field_length", 3}},
         bytes({0, 1, 1}) + std::string(257, 'e'),
         {payload(std::string(257, 'e'))}},
        {"a frame of exactly max_frame",
         {{"max_frame", 10}},
         bytes({0, 0, 0, 6}) + "123456",
         {payload("123456")}},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const auto factory = build(make_length, c.options);
        CHECK(factory->name() == "length");
        check_all_feeds(*factory, c.wire, c.expected);
    }
}

TEST_CASE("length: 1000 pipelined frames are all delivered by one decode_all call") {
    std::string wire;
    for (int i = 0; i < 1000; ++i) {
        const std::string body = "frame " + std::to_string(i);
        wire += bytes({0, 0, 0, static_cast<int>(body.size())}) + body;
    }
    const auto result = feed_whole(*build(make_length), wire);
    CHECK_FALSE(result.failed);
    REQUIRE(result.messages.size() == 1000);
    CHECK(result.largest_batch == 1000);
    CHECK(result.messages[0].payload == "frame 0");
    CHECK(result.messages[999].payload == "frame 999");
}

TEST_CASE("length: an oversize frame fails as soon as its length field is read") {
    SUBCASE("declared body over max_frame") {
        const auto factory = build(make_length, {{"max_frame", 100}});
        const std::string wire = bytes({0, 0, 3, 0xE8}) + std::string(1000, 'x');
        const auto result = feed_bytewise(*factory, wire);
        CHECK(result.failed);
        CHECK(result.fed_at_failure == 4);
        CHECK(result.error.reason == "frame of 1004 bytes exceeds max_frame of 100 bytes");
        CHECK(result.error.last_reply.empty());
    }
    SUBCASE("one byte over, with a header before the field") {
        const auto factory =
            build(make_length,
                  {{"max_frame", 10}, {"length_field_offset", 2}, {"length_field_length", 1}});
        const auto result = feed_bytewise(*factory, bytes({7, 7, 8}) + std::string(8, 'x'));
        CHECK(result.failed);
        CHECK(result.fed_at_failure == 3);
        CHECK(result.error.reason == "frame of 11 bytes exceeds max_frame of 10 bytes");
    }
    SUBCASE("the listener's max_frame is the default") {
        const auto factory = build(make_length, json::object(), 64);
        CHECK(feed_whole(*factory, bytes({0, 0, 0, 61})).failed);
        CHECK_FALSE(feed_whole(*factory, bytes({0, 0, 0, 60})).failed);
    }
    SUBCASE("an 8-byte field with a huge value") {
        const auto factory = build(make_length, {{"length_field_length", 8}});
        const auto result =
            feed_whole(*factory, bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
        CHECK(result.failed);
        CHECK(result.error.reason.find("exceeds max_frame of 1048576 bytes") != std::string::npos);
    }
    SUBCASE("the failure comes after the frames before it were delivered") {
        const auto factory = build(make_length, {{"max_frame", 16}});
        const auto result =
            feed_whole(*factory, bytes({0, 0, 0, 1}) + "a" + bytes({0, 0, 0, 100}) + "b");
        CHECK(result.failed);
        REQUIRE(result.messages.size() == 1);
        CHECK(result.messages[0].payload == "a");
    }
}

TEST_CASE("length: malformed lengths fail") {
    SUBCASE("negative frame length") {
        const auto factory = build(make_length, {{"length_adjustment", -10}});
        const auto result = feed_whole(*factory, bytes({0, 0, 0, 3}) + "abc");
        CHECK(result.failed);
        CHECK(result.error.reason == "negative frame length -3");
    }
    SUBCASE("a frame that ends inside its own header") {
        const auto factory = build(make_length, {{"length_adjustment", -4}});
        const auto result = feed_whole(*factory, bytes({0, 0, 0, 2}) + "ab");
        CHECK(result.failed);
        CHECK(result.error.reason == "frame of 2 bytes ends inside its 4 bytes header");
    }
    SUBCASE("a frame shorter than initial_bytes_to_strip") {
        const auto factory =
            build(make_length, {{"length_field_length", 1}, {"initial_bytes_to_strip", 5}});
        const auto result = feed_whole(*factory, bytes({2}) + "ab");
        CHECK(result.failed);
        CHECK(result.error.reason == "frame of 3 bytes is shorter than initial_bytes_to_strip 5");
    }
}

TEST_CASE("length: encode prepends the field and decodes back") {
    const std::vector<json> configs = {
        json::object(),
        {{"byte_order", "little"}},
        {{"length_field_length", 1}},
        {{"length_field_length", 2}, {"byte_order", "little"}},
        {{"length_field_length", 3}},
        {{"length_field_length", 8}},
        {{"length_includes_header", true}, {"length_adjustment", -4}},
        {{"length_field_length", 2}, {"length_includes_header", true}, {"length_adjustment", -2}},
    };
    const std::vector<std::string> payloads = {"", "x", "hello world", std::string(200, 'p')};
    for (const auto& options : configs) {
        const auto factory = build(make_length, options);
        for (const auto& p : payloads) {
            INFO("options " << options.dump() << " payload size " << p.size());
            const std::string wire = encoded(*factory->create(), p);
            const std::size_t field = options.value("length_field_length", std::size_t{4});
            CHECK(wire.size() == field + p.size());
            CHECK(wire.substr(field) == p);
            check_all_feeds(*factory, wire, {payload(p)});
        }
    }
}

TEST_CASE("length: encode writes the field as configured and refuses what does not fit") {
    reactor::Buffer buffer;
    reactor::FrameOutput out(buffer);
    build(make_length)->create()->encode("abc", out);
    CHECK(buffer.to_string() == bytes({0, 0, 0, 3}) + "abc");
    buffer.clear();
    build(make_length, {{"byte_order", "little"}, {"length_includes_header", true}})
        ->create()
        ->encode("abc", out);
    CHECK(buffer.to_string() == bytes({7, 0, 0, 0}) + "abc");
    buffer.clear();
    // Offset and adjustment describe inbound frames; the encoder writes the field first.
    build(make_length, {{"length_field_offset", 2}, {"length_adjustment", 5}})
        ->create()
        ->encode("ab", out);
    CHECK(buffer.to_string() == bytes({0, 0, 0, 2}) + "ab");
    buffer.clear();

    const auto one_byte = build(make_length, {{"length_field_length", 1}})->create();
    CHECK_NOTHROW(one_byte->encode(std::string(255, 'a'), out));
    buffer.clear();
    CHECK_THROWS_AS(one_byte->encode(std::string(256, 'a'), out), std::length_error);
    CHECK(buffer.empty());  // refused before anything is written
    std::string staged;
    reactor::FrameOutput into_string(staged);
    CHECK_THROWS_AS(one_byte->encode(std::string(256, 'a'), into_string), std::length_error);
    CHECK(staged.empty());
    const auto one_byte_inclusive =
        build(make_length, {{"length_field_length", 1}, {"length_includes_header", true}})
            ->create();
    CHECK_THROWS_AS(one_byte_inclusive->encode(std::string(255, 'a'), out), std::length_error);
    // max_payload() says where that limit is, so that relaying apps can check before sending.
    CHECK(one_byte->max_payload() == 255);
    CHECK(one_byte_inclusive->max_payload() == 254);
    CHECK_NOTHROW(one_byte_inclusive->encode(std::string(254, 'a'), out));
    CHECK(build(make_length, {{"length_field_length", 2}})->create()->max_payload() == 65535);
    CHECK(build(make_length, {{"length_field_length", 8}})->create()->max_payload() ==
          static_cast<std::size_t>(-1));
}

TEST_CASE("length: option errors name the option") {
    struct Case {
        json options;
        std::string path;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {{{"length_field_length", 5}}, "length_field_length", "expected 1, 2, 3, 4 or 8"},
        {{{"length_field_length", 0}}, "length_field_length", "expected an integer from 1 to 8"},
        {{{"length_field_length", 16}}, "length_field_length", "expected an integer from 1 to 8"},
        {{{"length_field_length", "4"}}, "length_field_length", "expected an integer from 1 to 8"},
        {{{"length_field_offset", 1021}},
         "length_field_offset",
         "expected an integer from 0 to 1020"},
        {{{"length_field_offset", -1}},
         "length_field_offset",
         "expected an integer from 0 to 1020"},
        {{{"byte_order", "middle"}}, "byte_order", "expected one of big, little"},
        {{{"byte_order", 1}}, "byte_order", "expected a string"},
        {{{"length_adjustment", "x"}},
         "length_adjustment",
         "expected an integer from -2147483647 to 2147483647"},
        {{{"length_adjustment", 3000000000LL}},
         "length_adjustment",
         "expected an integer from -2147483647 to 2147483647"},
        {{{"length_adjustment", 18446744073709551615ULL}},
         "length_adjustment",
         "expected an integer from -2147483647 to 2147483647"},
        {{{"initial_bytes_to_strip", 1025}},
         "initial_bytes_to_strip",
         "expected an integer from 0 to 1024"},
        {{{"max_frame", 2048}}, "max_frame", "expected an integer from 1 to 1024"},
        {{{"max_frame", 0}}, "max_frame", "expected an integer from 1 to 1024"},
        {{{"max_frame", 2}}, "length_field_length", "longer than max_frame"},
        {{{"length_includes_header", 1}}, "length_includes_header", "expected true or false"},
        {{{"lenght_field_length", 2}}, "lenght_field_length", "unknown option"},
    };
    for (const auto& c : cases) {
        INFO("options " << c.options.dump());
        const auto error = config_error(make_length, c.options, 1024);
        CHECK(error.path() == c.path);
        CHECK(error.problem() == c.problem);
    }
    CHECK_NOTHROW(build(make_length, {{"length_adjustment", -2147483647}}));
    CHECK_NOTHROW(build(make_length, {{"length_field_offset", 1020}}, 1024));
}
