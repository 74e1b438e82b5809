#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <event2/buffer.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "buffer_internals.hpp"
#include "reactor/buffer.hpp"

using reactor::Buffer;

namespace {

// How many separate chunks (evbuffer chains) hold the bytes.
int chunk_count(Buffer& buffer) {
    return evbuffer_peek(reactor::BufferInternals::storage(buffer), -1, nullptr, nullptr, 0);
}

// Appends each piece as its own chunk: append(Buffer&) moves chunks without merging them.
void append_as_chunks(Buffer& buffer, const std::vector<std::string>& pieces) {
    for (const auto& piece : pieces) {
        Buffer part;
        part.append(piece);
        buffer.append(part);
    }
}

// What find() promises, computed on a plain string: the needle lies wholly inside [start, end).
std::size_t expected_find(const std::string& text, std::string_view needle, std::size_t start,
                          std::size_t end) {
    end = std::min(end, text.size());
    if (needle.empty() || start >= end) return Buffer::npos;
    const std::size_t pos = text.find(needle, start);
    if (pos == std::string::npos || pos + needle.size() > end) return Buffer::npos;
    return pos;
}

}  // namespace

TEST_CASE("an empty buffer") {
    Buffer buffer;
    CHECK(buffer.size() == 0);
    CHECK(buffer.empty());
    CHECK(buffer.peek(10).empty());
    CHECK(buffer.find("a") == Buffer::npos);
    CHECK(buffer.take(5).empty());
    char out[4];
    CHECK(buffer.copy_out(0, out, sizeof out) == 0);
    buffer.drain(3);  // draining more than there is empties, no error
    CHECK(buffer.to_string().empty());
}

TEST_CASE("append, peek and to_string") {
    Buffer buffer;
    buffer.append(std::string_view("hello "));
    buffer.append("world", 5);
    buffer.append("", 0);
    CHECK(buffer.size() == 11);
    CHECK(buffer.to_string() == "hello world");
    CHECK(buffer.peek(5) == "hello");
    CHECK(buffer.peek(100) == "hello world");  // clamped to size()
    CHECK(buffer.peek(0).empty());
    CHECK(buffer.size() == 11);  // peeking consumes nothing

    const std::string binary("a\0b\0c", 5);
    Buffer bytes;
    bytes.append(binary);
    CHECK(bytes.size() == 5);
    CHECK(bytes.to_string() == binary);
}

TEST_CASE("peek makes a prefix that spans chunks contiguous") {
    Buffer buffer;
    append_as_chunks(buffer, {"abc", "def", "ghi", "jkl"});
    REQUIRE(chunk_count(buffer) == 4);
    CHECK(buffer.peek(7) == "abcdefg");
    CHECK(buffer.peek(12) == "abcdefghijkl");
    CHECK(buffer.to_string() == "abcdefghijkl");
}

TEST_CASE("contiguous_front is the first chunk, read in place") {
    Buffer buffer;
    CHECK(buffer.contiguous_front().empty());
    append_as_chunks(buffer, {"abc", "def"});
    CHECK(buffer.contiguous_front() == "abc");
    buffer.drain(1);
    CHECK(buffer.contiguous_front() == "bc");
    buffer.drain(2);
    CHECK(buffer.contiguous_front() == "def");
    CHECK(buffer.peek(3).data() == buffer.contiguous_front().data());  // no copy was made
}

TEST_CASE("find with bounds") {
    Buffer buffer;
    buffer.append("one\r\ntwo\r\nthree\r\n");
    CHECK(buffer.find("\r\n") == 3);
    CHECK(buffer.find("\r\n", 4) == 8);
    CHECK(buffer.find("\r\n", 3) == 3);
    CHECK(buffer.find("three") == 10);
    CHECK(buffer.find("four") == Buffer::npos);
    CHECK(buffer.find("") == Buffer::npos);

    // end bounds the whole needle, not just its start.
    CHECK(buffer.find("\r\n", 4, 9) == Buffer::npos);
    CHECK(buffer.find("\r\n", 4, 10) == 8);
    CHECK(buffer.find("three", 0, 14) == Buffer::npos);
    CHECK(buffer.find("three", 0, 15) == 10);
    CHECK(buffer.find("three", 10, 15) == 10);
    CHECK(buffer.find("three", 11) == Buffer::npos);

    // Degenerate ranges.
    CHECK(buffer.find("o", 5, 5) == Buffer::npos);
    CHECK(buffer.find("o", 9, 2) == Buffer::npos);
    CHECK(buffer.find("o", 100) == Buffer::npos);
    CHECK(buffer.find("n", 0, 1000) == 1);                           // end clamped to size()
    CHECK(buffer.find("one\r\ntwo\r\nthree\r\n!") == Buffer::npos);  // longer than the buffer
}

TEST_CASE("find a needle that crosses chunk boundaries") {
    Buffer buffer;
    // Many small pieces, each its own chunk; the delimiter is split between pieces.
    std::vector<std::string> pieces;
    for (int i = 0; i < 200; ++i) pieces.push_back("x" + std::to_string(i % 10));
    pieces.push_back("\r");
    pieces.push_back("\n");
    pieces.push_back("tail");
    append_as_chunks(buffer, pieces);
    REQUIRE(chunk_count(buffer) > 100);
    const std::string flat = buffer.to_string();
    const std::size_t at = flat.find("\r\n");
    REQUIRE(at != std::string::npos);
    CHECK(buffer.find("\r\n") == at);
    CHECK(buffer.find("\r\n", at) == at);
    CHECK(buffer.find("\r\n", at + 1) == Buffer::npos);
    CHECK(buffer.find("\r\n", 0, at + 1) == Buffer::npos);
    CHECK(buffer.find("\r\n", 0, at + 2) == at);
    CHECK(buffer.find("x9x0x1") == flat.find("x9x0x1"));
    CHECK(buffer.find("\ntail") == at + 1);
}

TEST_CASE("find agrees with std::string::find for every range over many chunks") {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> letter(0, 2);
    std::uniform_int_distribution<int> piece_length(1, 5);
    std::vector<std::string> pieces;
    std::string text;
    while (text.size() < 120) {
        std::string piece;
        const int n = piece_length(rng);
        for (int i = 0; i < n; ++i) piece.push_back(static_cast<char>('a' + letter(rng)));
        text += piece;
        pieces.push_back(piece);
    }
    Buffer buffer;
    append_as_chunks(buffer, pieces);
    REQUIRE(chunk_count(buffer) == static_cast<int>(pieces.size()));
    REQUIRE(buffer.to_string() == text);

    const std::vector<std::string> needles{"a", "ab", "cab", "abca", "bbb", "ccccc"};
    int mismatches = 0;
    for (const auto& needle : needles) {
        for (std::size_t start = 0; start <= text.size() + 1; ++start) {
            for (std::size_t end = start; end <= text.size() + 2; ++end) {
                const std::size_t got = buffer.find(needle, start, end);
                const std::size_t want = expected_find(text, needle, start, end);
                if (got != want) {
                    if (++mismatches <= 5) {
                        INFO("needle " << needle << " range [" << start << ", " << end << ")");
                        CHECK(got == want);
                    }
                }
            }
        }
        CHECK(buffer.find(needle) == expected_find(text, needle, 0, Buffer::npos));
    }
    CHECK(mismatches == 0);
    CHECK(buffer.to_string() == text);  // searching changed nothing
}

TEST_CASE("copy_out reads at an offset without consuming") {
    Buffer buffer;
    append_as_chunks(buffer, {"0123", "4567", "89"});
    char out[16] = {};
    CHECK(buffer.copy_out(0, out, 3) == 3);
    CHECK(std::string(out, 3) == "012");
    CHECK(buffer.copy_out(2, out, 5) == 5);  // across a chunk boundary
    CHECK(std::string(out, 5) == "23456");
    CHECK(buffer.copy_out(7, out, 16) == 3);  // clamped to what is there
    CHECK(std::string(out, 3) == "789");
    CHECK(buffer.copy_out(9, out, 16) == 1);
    CHECK(out[0] == '9');
    CHECK(buffer.copy_out(10, out, 16) == 0);
    CHECK(buffer.copy_out(100, out, 16) == 0);
    CHECK(buffer.copy_out(0, out, 0) == 0);
    CHECK(buffer.size() == 10);
    CHECK(buffer.to_string() == "0123456789");
}

TEST_CASE("drain and take consume from the front") {
    Buffer buffer;
    append_as_chunks(buffer, {"abc", "defg", "hij"});
    buffer.drain(2);
    CHECK(buffer.to_string() == "cdefghij");
    CHECK(buffer.take(3) == "cde");  // across a chunk boundary
    CHECK(buffer.size() == 5);
    CHECK(buffer.take(0).empty());
    CHECK(buffer.take(100) == "fghij");  // clamped
    CHECK(buffer.empty());
    buffer.append("again");
    buffer.drain(100);
    CHECK(buffer.empty());
    buffer.append("xyz");
    buffer.clear();
    CHECK(buffer.empty());
}

TEST_CASE("append(Buffer&) moves every byte and leaves the source empty") {
    Buffer head;
    head.append("head:");
    Buffer tail;
    append_as_chunks(tail, {"one,", "two,", "three"});
    head.append(tail);
    CHECK(head.to_string() == "head:one,two,three");
    CHECK(tail.empty());
    tail.append("reused");  // the source stays usable
    CHECK(tail.to_string() == "reused");
    Buffer empty;
    head.append(empty);
    CHECK(head.size() == 18);
}

TEST_CASE("many small appends span several chunks and keep their order") {
    Buffer buffer;
    std::string expected;
    for (int i = 0; i < 20000; ++i) {
        const std::string piece = std::to_string(i) + ",";
        buffer.append(piece);
        expected += piece;
    }
    CHECK(chunk_count(buffer) > 1);
    CHECK(buffer.size() == expected.size());
    CHECK(buffer.find("19999,") == expected.find("19999,"));
    CHECK(buffer.find("12345,12346,") == expected.find("12345,12346,"));
    CHECK(buffer.peek(expected.size()) == expected);
    CHECK(buffer.take(expected.size()) == expected);
}

TEST_CASE("a moved-from buffer gives its bytes to the new one") {
    Buffer original;
    original.append("payload");
    Buffer moved(std::move(original));
    CHECK(moved.to_string() == "payload");
}

TEST_CASE("borrowed front bytes read like owned ones, and are copied when kept") {
    std::string lent = "GET /a\r\nGET /b\r\nGE";
    Buffer buffer;
    reactor::BufferInternals::lend(buffer, lent);
    CHECK(buffer.size() == lent.size());
    CHECK(buffer.contiguous_front().data() == lent.data());  // in place, no copy
    CHECK(buffer.peek(6) == "GET /a");
    CHECK(buffer.find("\r\n") == 6);
    CHECK(buffer.find("\r\n", 7) == 14);
    CHECK(buffer.find("\r\n", 0, 7) == Buffer::npos);
    CHECK(buffer.find("/b", 0, 13) == Buffer::npos);
    CHECK(buffer.find("/b", 0, 14) == 12);
    char copy[4] = {};
    CHECK(buffer.copy_out(4, copy, 4) == 4);
    CHECK(std::string_view(copy, 4) == "/a\r\n");
    CHECK(buffer.copy_out(lent.size() - 1, copy, 4) == 1);
    CHECK(buffer.take(8) == "GET /a\r\n");
    buffer.drain(8);
    CHECK(buffer.to_string() == "GE");

    SUBCASE("keep_lent copies what is left; the lent memory may then change") {
        reactor::BufferInternals::keep_lent(buffer);
        lent.assign(lent.size(), '#');
        CHECK(buffer.to_string() == "GE");
        buffer.append("T /c\r\n");
        CHECK(buffer.to_string() == "GET /c\r\n");
    }
    SUBCASE("appending keeps the borrowed bytes first") {
        buffer.append("T /c\r\n");
        lent.assign(lent.size(), '#');
        CHECK(buffer.to_string() == "GET /c\r\n");
    }
    SUBCASE("moving the buffer into another keeps the order") {
        Buffer other;
        other.append(">");
        other.append(buffer);
        lent.assign(lent.size(), '#');
        CHECK(buffer.empty());
        CHECK(other.to_string() == ">GE");
    }
    SUBCASE("draining past the end empties it") {
        buffer.drain(100);
        CHECK(buffer.empty());
        CHECK(buffer.contiguous_front().empty());
    }
}
