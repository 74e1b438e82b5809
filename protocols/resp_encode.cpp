#include "resp_encode.hpp"

#include <charconv>
#include <limits>

namespace reactor::protocols::resp {

namespace {

// A type line such as ":42\r\n" or "$1024\r\n", built on the stack.
class CountLine {
  public:
    template <typename Integer>
    CountLine(char type, Integer value) {
        bytes_[0] = type;
        const auto result = std::to_chars(bytes_ + 1, bytes_ + sizeof(bytes_) - 2, value);
        char* end = result.ptr;
        *end++ = '\r';
        *end++ = '\n';
        size_ = static_cast<std::size_t>(end - bytes_);
    }
    std::string_view view() const { return {bytes_, size_}; }

  private:
    char bytes_[24];
    std::size_t size_;
};

// Appends type, text with CR and LF made spaces, then CRLF.
void append_line(std::string& out, char type, std::string_view text) {
    const std::size_t at = out.size();
    out.resize(at + text.size() + 3);
    char* p = out.data() + at;
    *p++ = type;
    for (const char c : text) *p++ = c == '\r' || c == '\n' ? ' ' : c;
    *p++ = '\r';
    *p = '\n';
}

void append_line(FrameOutput& out, char type, std::string_view text) {
    if (text.find_first_of("\r\n") == std::string_view::npos) {
        const char prefix[1] = {type};
        out.append_pieces({std::string_view(prefix, 1), text, "\r\n"});
        return;
    }
    std::string line;
    append_line(line, type, text);
    out.append(line);
}

}  // namespace

void append_simple_string(FrameOutput& out, std::string_view text) {
    append_line(out, '+', text);
}
void append_simple_string(std::string& out, std::string_view text) {
    append_line(out, '+', text);
}
void append_error(FrameOutput& out, std::string_view text) {
    append_line(out, '-', text);
}
void append_error(std::string& out, std::string_view text) {
    append_line(out, '-', text);
}

void append_integer(FrameOutput& out, std::int64_t value) {
    out.append(CountLine(':', value).view());
}
void append_integer(std::string& out, std::int64_t value) {
    out.append(CountLine(':', value).view());
}

void append_bulk(FrameOutput& out, std::string_view bytes) {
    out.append_pieces({CountLine('$', bytes.size()).view(), bytes, "\r\n"});
}
void append_bulk(std::string& out, std::string_view bytes) {
    out.append(CountLine('$', bytes.size()).view());
    out.append(bytes);
    out.append("\r\n");
}

void append_null_bulk(FrameOutput& out) {
    out.append("$-1\r\n");
}
void append_null_bulk(std::string& out) {
    out.append("$-1\r\n");
}

void append_array_header(FrameOutput& out, std::size_t count) {
    out.append(CountLine('*', count).view());
}
void append_array_header(std::string& out, std::size_t count) {
    out.append(CountLine('*', count).view());
}

void append_bulk_array(FrameOutput& out, std::span<const std::string_view> items) {
    append_array_header(out, items.size());
    for (const auto item : items) append_bulk(out, item);
}
void append_bulk_array(std::string& out, std::span<const std::string_view> items) {
    append_array_header(out, items.size());
    for (const auto item : items) append_bulk(out, item);
}

bool parse_integer(std::string_view text, std::int64_t& value) {
    // Longest text an int64 can have: "-9223372036854775808".
    constexpr std::size_t kMaxDigits = 20;
    if (text.empty() || text.size() > kMaxDigits) return false;
    if (text == "0") {
        value = 0;
        return true;
    }
    const bool negative = text.front() == '-';
    if (negative) text.remove_prefix(1);
    if (text.empty() || text.front() < '1' || text.front() > '9') return false;
    std::uint64_t magnitude = 0;
    const std::uint64_t limit =
        negative ? std::uint64_t{1} << 63
                 : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (magnitude > (limit - digit) / 10) return false;
        magnitude = magnitude * 10 + digit;
    }
    value =
        negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
    return true;
}

}  // namespace reactor::protocols::resp
