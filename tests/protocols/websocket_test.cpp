// The websocket codec, fed bytes in memory, organised by the case groups of Autobahn|Testsuite
// (case numbers in the names). Each case is fed whole, split at every point and byte by byte, and
// checks the exact close code the server would send.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "websocket_codec.hpp"
#include "websocket_utf8.hpp"

using namespace ws_test;
using namespace std::string_literals;

TEST_CASE("1.1.1-1.1.8 text messages of 0, 125, 126, 127, 128, 65535 and 65536 bytes") {
    for (const std::size_t n : {0, 125, 126, 127, 128, 65535, 65536}) {
        INFO("length " << n);
        const std::string payload(n, '*');
        check_delivers(text(payload), {"text:" + payload});
    }
}

TEST_CASE("1.2.1-1.2.8 binary messages of 0, 125, 126, 127, 128, 65535 and 65536 bytes") {
    for (const std::size_t n : {0, 125, 126, 127, 128, 65535, 65536}) {
        INFO("length " << n);
        std::string payload(n, '\xfe');
        if (n > 0) payload[0] = '\0';
        check_delivers(binary(payload), {"binary:" + payload});
    }
}

TEST_CASE("1.x pipelined messages and an unmasked client frame") {
    check_delivers(text("a") + binary("b\0c"s) + text("κόσμε"),
                   {"text:a", "binary:b\0c"s, "text:κόσμε"});
    check_fails(client_frame({1, "Hello", true, false}), 1002);
    check_fails(text("ok") + client_frame({2, "x", true, false}), 1002, {"text:ok"});
}

TEST_CASE("2.1-2.4 pings answered with the same payload (0 to 125 bytes, binary)") {
    for (std::size_t n = 0; n <= 125; ++n) {
        INFO("length " << n);
        std::string payload(n, 'p');
        for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7);
        const Result r = feed_every_way(ping(payload), default_settings(), 40);
        CHECK(!r.failed);
        CHECK(r.events == std::vector<std::string>{"pong:" + payload});
    }
}

TEST_CASE("2.5 a ping of 126 bytes fails with 1002") {
    check_fails(ping(std::string(126, 'x')), 1002);
}

TEST_CASE("2.7-2.8 unsolicited pongs are ignored") {
    check_delivers(pong("") + pong("unsolicited") + text("after"), {"text:after"});
}

TEST_CASE("2.10-2.11 ten pings answered in order") {
    std::string wire;
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) {
        wire += ping("payload-" + std::to_string(i));
        expected.push_back("pong:payload-" + std::to_string(i));
    }
    check_delivers(wire, expected);
}

TEST_CASE("3.1-3.7 reserved bits fail with 1002") {
    for (std::uint8_t rsv = 1; rsv <= 7; ++rsv) {
        INFO("rsv " << int(rsv));
        check_fails(client_frame({1, "Hello", true, true, rsv}), 1002);
        // 3.2: after a valid message; 3.5-3.7 on binary, ping and close frames.
        check_fails(text("Hello") + client_frame({1, "Hello", true, true, rsv}) + ping(""), 1002,
                    {"text:Hello"});
        check_fails(client_frame({2, "\x01", true, true, rsv}), 1002);
        check_fails(client_frame({9, "", true, true, rsv}), 1002);
        check_fails(client_frame({8, close_payload(1000), true, true, rsv}), 1002);
    }
}

TEST_CASE("4.1.1-4.1.5 and 4.2.1-4.2.5 reserved opcodes fail with 1002") {
    for (const std::uint8_t opcode : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        INFO("opcode " << int(opcode));
        check_fails(client_frame({opcode, ""}), 1002);
        check_fails(text("Hello") + client_frame({opcode, "reserved"}) + ping(""), 1002,
                    {"text:Hello"});
    }
}

TEST_CASE("5.1-5.2 fragmented ping and pong fail with 1002") {
    check_fails(client_frame({9, "frag1", false}) + continuation("frag2"), 1002);
    check_fails(client_frame({10, "frag1", false}) + continuation("frag2"), 1002);
}

TEST_CASE("5.3-5.5 a text message in fragments arrives whole") {
    check_delivers(text("fragment1", false) + continuation("fragment2"),
                   {"text:fragment1fragment2"});
    check_delivers(
        binary("a", false) + continuation("", false) + continuation("b", false) + continuation("c"),
        {"binary:abc"});
    check_delivers(text("", false) + continuation(""), {"text:"});
}

TEST_CASE("5.6-5.8 and 5.19-5.20 pings between fragments are answered at once") {
    check_delivers(text("fragment1", false) + ping("ping") + continuation("fragment2"),
                   {"pong:ping", "text:fragment1fragment2"});
    check_delivers(text("f1", false) + continuation("f2", false) + ping("p1") +
                       continuation("f3", false) + ping("p2") + pong("x") + continuation("f4"),
                   {"pong:p1", "pong:p2", "text:f1f2f3f4"});
}

TEST_CASE("5.9-5.17 a continuation without a started message fails with 1002") {
    check_fails(continuation("non-continuation payload"), 1002);
    check_fails(continuation("fragment1", false) + text("fragment2"), 1002);
    check_fails(text("whole") + continuation("late"), 1002, {"text:whole"});
}

TEST_CASE("5.18 a new data frame during a fragmented message fails with 1002") {
    check_fails(text("fragment1", false) + text("fragment2"), 1002);
    check_fails(binary("fragment1", false) + text("fragment2", false), 1002);
}

namespace {

// A text message split into two fragments at every byte boundary, and fed every way.
void check_text_everywhere(const std::string& payload, bool valid) {
    for (std::size_t at = 0; at <= payload.size(); ++at) {
        INFO("fragmented at " << at);
        const std::string wire =
            text(payload.substr(0, at), false) + continuation(payload.substr(at));
        if (valid) {
            check_delivers(wire, {"text:" + payload});
        } else {
            check_fails(wire, 1007);
        }
    }
    if (valid) {
        check_delivers(text(payload), {"text:" + payload});
    } else {
        check_fails(text(payload), 1007);
    }
}

}  // namespace

TEST_CASE("6.2-6.3 and 6.5-6.7 valid UTF-8, split at every byte boundary") {
    for (const std::string s :
         {"Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf",
          "\xee\x80\x80", "\xef\xbf\xbd", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\x7f",
          "\xf0\x9f\x98\x80 emoji"}) {
        INFO("text " << s);
        check_text_everywhere(s, true);
    }
}

TEST_CASE("6.3-6.22 invalid UTF-8 fails with 1007, split at every byte boundary") {
    for (const std::string s :
         {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
          "\x80",
          "\xbf",
          "\x80\xbf\x80",  // lone continuations (6.8)
          "\xc0\xaf",
          "\xe0\x80\xaf",
          "\xf0\x80\x80\xaf",  // overlong "/" (6.10)
          "\xc1\xbf",
          "\xe0\x9f\xbf",
          "\xf0\x8f\xbf\xbf",  // maximal overlongs (6.11)
          "\xed\xa0\x80",
          "\xed\xbf\xbf",
          "\xed\xa0\x80\xed\xb0\x80",  // surrogates (6.20)
          "\xf4\x90\x80\x80",
          "\xf7\xbf\xbf\xbf",  // above U+10FFFF (6.6.x, 6.13)
          "\xf8\x88\x80\x80\x80",
          "\xfc\x84\x80\x80\x80\x80",
          "\xfe",
          "\xff",  // 6.12
          "\xc0 ",
          "\xe0\x80 ",
          "\xe2\x82",  // truncated sequences (6.14, 6.15)
          "a\xe2\x82\xac\xe2\x82"}) {
        INFO("bytes of length " << s.size());
        check_text_everywhere(s, false);
    }
}

TEST_CASE("6.4.1-6.4.4 invalid text fails fast, in the middle of a frame") {
    // 6.4.1: the message's first fragment is valid, the second breaks at its fifth byte, and the
    // frame declares far more bytes than are ever sent.
    const std::string good = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    const std::string bad = "\xf4\x90\x80\x80\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    const std::string declared = good + bad + std::string(4000, 'a');
    const std::string frame = text(declared);
    const std::size_t header = frame.size() - declared.size();
    const std::size_t invalid_at = header + good.size() + 1;  // 0x90 after 0xf4 cannot be valid
    std::vector<std::string_view> chunks;
    for (std::size_t i = 0; i < invalid_at + 20; ++i) {
        chunks.push_back(std::string_view(frame).substr(i, 1));
    }
    const Result r = feed(chunks);
    CHECK(r.failed);
    CHECK(r.close_code == 1007);
    CHECK(r.fed == invalid_at + 1);
    // The same with the first part in its own fragment: still at that byte.
    const std::string fragmented = text(good, false) + continuation(bad + std::string(4000, 'a'));
    std::vector<std::string_view> pieces;
    for (std::size_t i = 0; i < fragmented.size(); ++i) {
        pieces.push_back(std::string_view(fragmented).substr(i, 1));
    }
    const Result f = feed(pieces);
    CHECK(f.failed);
    CHECK(f.close_code == 1007);
    // The continuation's header (16-bit length: 8 bytes), then 0xf4 0x90.
    CHECK(f.fed == text(good, false).size() + 8 + 2);
}

TEST_CASE("6.x the incremental validator alone") {
    using reactor::protocols::Utf8Validator;
    Utf8Validator v;
    CHECK(v.feed("\xe2"));
    CHECK(!v.complete());
    CHECK(v.feed("\x82"));
    CHECK(v.feed("\xac"));
    CHECK(v.complete());
    CHECK(!v.feed("\xe2\x28"));
    CHECK(v.failed());
    CHECK(!v.feed("a"));  // stays failed
    CHECK(reactor::protocols::valid_utf8(std::string(1000, 'a') + "κόσμε"));
    CHECK(!reactor::protocols::valid_utf8(std::string(1000, 'a') + "\xff"));
}

TEST_CASE("7.1.1-7.1.6 a close is answered and ends the connection; nothing after it counts") {
    check_ends(text("Hello") + close(close_payload(1000)), {"text:Hello", "close:1000"});
    check_ends(close(close_payload(1000)) + text("after close") + ping("x"), {"close:1000"});
    check_ends(close(close_payload(1000)) + client_frame({1, "unmasked", true, false}),
               {"close:1000"});
}

TEST_CASE("7.3.1-7.3.6 close payloads") {
    check_ends(close(""), {"close:"});
    check_fails(close("\x03"), 1002);
    check_ends(close(close_payload(1000)), {"close:1000"});
    check_ends(close(close_payload(1000, "Hello World!")), {"close:1000"});
    check_ends(close(close_payload(1000, std::string(123, '*'))), {"close:1000"});
    check_fails(close(close_payload(1000, std::string(124, '*'))), 1002);
}

TEST_CASE("7.5.1 a close reason that is not UTF-8 fails with 1007") {
    check_fails(close(close_payload(1000,
                                    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0"
                                    "\x80\x65\x64\x69\x74\x65\x64")),
                1007);
    check_fails(close(close_payload(1000, "\xe2\x82")), 1007);
}

TEST_CASE("7.7.1-7.7.13 valid close codes are echoed") {
    for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                           3000, 3999, 4000, 4999}) {
        INFO("code " << code);
        check_ends(close(close_payload(static_cast<std::uint16_t>(code), "reason")),
                   {"close:" + std::to_string(code)});
    }
}

TEST_CASE("7.9.1-7.9.13 invalid close codes fail with 1002") {
    for (const int code :
         {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        INFO("code " << code);
        check_fails(close(close_payload(static_cast<std::uint16_t>(code))), 1002);
    }
}

TEST_CASE("9.1.6 and 9.2.6 a 16 MiB text and binary message") {
    WebSocketSettings settings;
    settings.max_message = 16 * 1024 * 1024;
    settings.max_frame = settings.max_message;
    const std::string payload(settings.max_message, 'x');
    for (const auto& wire : {text(payload), binary(payload)}) {
        std::vector<std::string_view> chunks;
        for (std::size_t at = 0; at < wire.size(); at += 65536) {
            chunks.push_back(std::string_view(wire).substr(at, 65536));
        }
        for (const Result& r : {feed({wire}, settings), feed(chunks, settings)}) {
            CHECK(!r.failed);
            REQUIRE(r.events.size() == 1);
            CHECK(r.events[0].size() == payload.size() + (wire[0] == '\x81' ? 5 : 7));
            CHECK(r.left == 0);
        }
    }
}

TEST_CASE("9.5-9.6 a 1 MiB message in many small frames") {
    std::string wire;
    std::string whole;
    const std::size_t frames = 4096;
    for (std::size_t i = 0; i < frames; ++i) {
        const std::string piece(256, static_cast<char>('a' + i % 26));
        whole += piece;
        wire += i == 0 ? text(piece, false) : continuation(piece, i + 1 == frames);
    }
    const Result r = feed_every_way(wire, default_settings(), 50);
    CHECK(!r.failed);
    CHECK(r.events == std::vector<std::string>{"text:" + whole});
}

TEST_CASE("9.x a message over max_message fails with 1009 before it is all received") {
    WebSocketSettings settings;
    settings.max_message = 1000;
    settings.max_frame = 1000;
    check_delivers(text(std::string(1000, 'a')), {"text:" + std::string(1000, 'a')}, settings);
    check_fails(text(std::string(1001, 'a')), 1009, {}, settings);
    // Across fragments: the second header alone, its payload never sent, already fails.
    const std::string first = text(std::string(600, 'a'), false);
    const std::string second = continuation(std::string(600, 'b'));
    const Result r = feed({first, std::string_view(second).substr(0, 8)}, settings);
    CHECK(r.failed);
    CHECK(r.close_code == 1009);
    // max_frame below max_message.
    settings.max_frame = 100;
    check_fails(text(std::string(101, 'a')), 1009, {}, settings);
    check_delivers(text(std::string(100, 'a'), false) + continuation(std::string(100, 'b')),
                   {"text:" + std::string(100, 'a') + std::string(100, 'b')}, settings);
}

TEST_CASE("9.x a declared 64-bit length with its top bit set fails with 1002") {
    std::string wire = "\x81\xff"s + "\x80\x00\x00\x00\x00\x00\x00\x01"s + "\x01\x02\x03\x04"s;
    check_fails(wire, 1002);
    // A huge length without the top bit is over max_message: 1009 at the header.
    wire[2] = '\x7f';
    check_fails(wire, 1009);
}

TEST_CASE("encode(): unmasked text frames of every length form; typed frames") {
    const auto protocol = reactor::protocols::make_websocket_protocol(default_settings(), false);
    for (const std::size_t n : {0, 125, 126, 65535, 65536}) {
        std::string out;
        reactor::FrameOutput frame_out(out);
        protocol->encode(std::string(n, 'z'), frame_out);
        CHECK(describe_server_frame(out) == "opcode 1:" + std::string(n, 'z'));
    }
    CHECK(describe_server_frame(reactor::protocols::close_frame(1001, "bye")) == "close:1001");
    CHECK(describe_server_frame(reactor::protocols::close_frame(0)) == "close:");
}

namespace {

// A stream of frames, most valid, some with a mutated byte, drawn from seed.
std::string random_stream(std::uint32_t seed) {
    std::uint32_t state = seed * 2654435761u + 1;
    const auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return state;
    };
    std::string wire;
    const int frames = 1 + static_cast<int>(next() % 8);
    for (int i = 0; i < frames; ++i) {
        FrameSpec spec;
        const std::uint8_t opcodes[] = {0, 1, 2, 8, 9, 10, 3, 11};
        spec.opcode = opcodes[next() % 8];
        spec.fin = next() % 4 != 0;
        spec.masked = next() % 16 != 0;
        spec.rsv = next() % 16 == 0 ? static_cast<std::uint8_t>(1 + next() % 7) : 0;
        const std::size_t sizes[] = {0, 1, 2, 5, 125, 126, 300, 70000};
        const std::size_t n = sizes[next() % 8];
        for (std::size_t k = 0; k < n; ++k) {
            const char alphabet[] = {'a', 'z', '\x80', '\xce', '\xba', '\xf4', '\xed', '\x03'};
            spec.payload.push_back(alphabet[next() % 8]);
        }
        std::string frame = client_frame(spec);
        if (next() % 8 == 0) frame[next() % frame.size()] = static_cast<char>(next());
        wire += frame;
    }
    return wire;
}

}  // namespace

TEST_CASE("any input: no crash, the same result however it is chunked, little buffered") {
    WebSocketSettings settings;
    settings.max_message = 100000;
    settings.max_frame = 80000;
    for (std::uint32_t seed = 1; seed <= 400; ++seed) {
        INFO("seed " << seed);
        const std::string wire = random_stream(seed);
        const Result whole = feed_whole(wire, settings);
        // Chunks of a seed-dependent size, and byte by byte for short streams.
        const std::size_t step = 1 + seed % 97;
        std::vector<std::string_view> chunks;
        for (std::size_t at = 0; at < wire.size(); at += step) {
            chunks.push_back(std::string_view(wire).substr(at, step));
        }
        const Result chunked = feed(chunks, settings);
        CHECK_MESSAGE(chunked == whole,
                      "chunked: " << describe(chunked) << "\nwhole: " << describe(whole));
        if (!whole.failed && !whole.last_frame) {
            // Only a frame header and a control frame's payload are ever held back.
            CHECK(whole.left <=
                  reactor::protocols::kMaxFrameHeader + reactor::protocols::kMaxControlPayload);
            CHECK(chunked.left <=
                  reactor::protocols::kMaxFrameHeader + reactor::protocols::kMaxControlPayload);
        }
        if (whole.failed) {
            CHECK(
                (whole.close_code == 1002 || whole.close_code == 1007 || whole.close_code == 1009));
        }
    }
}
