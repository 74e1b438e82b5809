// FrameOutput appends the same bytes to a string (a connection's output stage) and to a Buffer (its
// output buffer), after what each already holds.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "reactor/buffer.hpp"
#include "reactor/frame_output.hpp"

namespace {

// Writes the same frame into both kinds of target and returns what each holds after "kept|".
std::pair<std::string, std::string> both(void (*write)(reactor::FrameOutput&)) {
    std::string text = "kept|";
    reactor::FrameOutput into_string(text);
    write(into_string);
    reactor::Buffer buffer;
    buffer.append("kept|");
    reactor::FrameOutput into_buffer(buffer);
    write(into_buffer);
    return {text, buffer.to_string()};
}

}  // namespace

TEST_CASE("append writes views and raw bytes") {
    const auto [text, buffered] = both([](reactor::FrameOutput& out) {
        out.append("abc");
        const char raw[] = {'\0', 'x'};
        out.append(raw, sizeof raw);
        out.append(std::string_view());
    });
    CHECK(text == std::string("kept|abc\0x", 10));
    CHECK(buffered == text);
}

TEST_CASE("append_pieces writes every piece in order, small or large") {
    const auto [small_text, small_buffered] = both([](reactor::FrameOutput& out) {
        out.append_pieces({"$3\r\n", "", "foo", "\r\n"});
    });
    CHECK(small_text == "kept|$3\r\nfoo\r\n");
    CHECK(small_buffered == small_text);

    static const std::string large(reactor::FrameOutput::kGatherBytes + 1, 'z');
    const auto [large_text, large_buffered] = both([](reactor::FrameOutput& out) {
        out.append_pieces({"head:", large, ":tail"});
    });
    CHECK(large_text == "kept|head:" + large + ":tail");
    CHECK(large_buffered == large_text);

    // Exactly as much as is gathered in one go.
    static const std::string fits(reactor::FrameOutput::kGatherBytes - 2, 'y');
    const auto [fit_text, fit_buffered] = both([](reactor::FrameOutput& out) {
        out.append_pieces({"<", fits, ">"});
    });
    CHECK(fit_text == "kept|<" + fits + ">");
    CHECK(fit_buffered == fit_text);
}
