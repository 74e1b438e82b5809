#pragma once

// The one writer of HTTP/1.1 responses: status line, Date (cached, see http_date.hpp), header
// lines, Connection, Content-Length, body. HttpResponse (http.hpp), the codec's encode(), its
// error replies and its busy notice all write through it.

#include <cstddef>
#include <string_view>

#include "http.hpp"
#include "reactor/frame_output.hpp"

namespace reactor::protocols {

// The reason phrase of a status code ("Not Found"), or "Unknown" for a code without one.
std::string_view http_reason_phrase(int status);

inline constexpr std::string_view kConnectionClose = "Connection: close\r\n";
inline constexpr std::string_view kConnectionKeepAlive = "Connection: keep-alive\r\n";

// Appends one response: header_lines (each ending in CRLF, not checked), then connection_line
// (empty, or one of the lines above), Content-Length of body, and the body unless omit_body; a 1xx
// or 204 response, which has no content, gets neither Content-Length nor body (RFC 9110). Written
// with FrameOutput::append_pieces: into a Buffer, a small response is one evbuffer_add.
void write_http_response(FrameOutput& out, int status, std::string_view reason,
                         std::string_view header_lines, std::string_view connection_line,
                         std::string_view body, bool omit_body);

}  // namespace reactor::protocols
