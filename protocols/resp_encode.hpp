#pragma once

// Builders for RESP2 replies, appending to a std::string or to a reactor::FrameOutput (an
// encoder's output, a Buffer's end), and Redis's reading of an integer argument.
//
// Simple strings and errors cannot carry "\r" or "\n": those bytes are written as spaces, as Redis
// does for its error replies. Errors take the whole text after "-", e.g. "ERR unknown command".

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "reactor/frame_output.hpp"

namespace reactor::protocols::resp {

void append_simple_string(FrameOutput& out, std::string_view text);  // +OK
void append_simple_string(std::string& out, std::string_view text);
void append_error(FrameOutput& out, std::string_view text);  // -ERR ...
void append_error(std::string& out, std::string_view text);
void append_integer(FrameOutput& out, std::int64_t value);  // :1
void append_integer(std::string& out, std::int64_t value);
void append_bulk(FrameOutput& out, std::string_view bytes);  // $3\r\nfoo\r\n
void append_bulk(std::string& out, std::string_view bytes);
void append_null_bulk(FrameOutput& out);  // $-1
void append_null_bulk(std::string& out);
void append_array_header(FrameOutput& out, std::size_t count);  // *N, then N elements follow
void append_array_header(std::string& out, std::size_t count);
void append_bulk_array(FrameOutput& out, std::span<const std::string_view> items);
void append_bulk_array(std::string& out, std::span<const std::string_view> items);

// Redis's strict integer syntax (its string2ll), used for counts, lengths and every integer
// argument: an optional '-', then "0" alone or digits without a leading zero, nothing else (no
// '+', no spaces, no "-0"), within int64. False, with value unchanged, for anything else.
bool parse_integer(std::string_view text, std::int64_t& value);

}  // namespace reactor::protocols::resp
