#pragma once

// Builds HTTP/1.1 responses: status line, headers, Date, Content-Length, body.

#include <cstddef>
#include <string>
#include <string_view>

#include "http.hpp"
#include "reactor/buffer.hpp"

namespace reactor::protocols {

// The reason phrase of a status code ("Not Found"), or "Unknown" for a code without one.
std::string_view http_reason_phrase(int status);

// One response. Date (cached, see http_date.hpp) and Content-Length are always written by the
// builder, so they cannot be set as headers.
//
//     HttpResponse(404).header("Content-Type", "text/plain").body("no such key\n").write_to(out);
class HttpResponse {
  public:
    // The reason phrase defaults to the standard one for the status.
    explicit HttpResponse(int status = 200, std::string_view reason = {});

    // Adds a header line. Throws std::invalid_argument for an empty or malformed name, a value
    // with CR or LF (response splitting), or Date / Content-Length.
    HttpResponse& header(std::string_view name, std::string_view value);
    // Adds "Connection: close": the connection closes after this response.
    HttpResponse& close_connection();
    // The Connection header a reply to request needs: "close" when the request does not keep the
    // connection alive, "keep-alive" for an HTTP/1.0 request that does (HTTP/1.0 clients assume
    // close otherwise), none for HTTP/1.1.
    HttpResponse& connection_for(const HttpRequest& request);
    HttpResponse& body(std::string_view body);
    // For a HEAD request: the head announces the body's Content-Length, but no body bytes follow.
    HttpResponse& omit_body(bool omit = true);

    int status() const { return status_; }

    // Appends the whole response.
    void write_to(std::string& out) const;
    void write_to(Buffer& out) const;
    std::string to_string() const;

  private:
    void write_head(std::string& out) const;

    int status_;
    std::string reason_;
    std::string headers_;  // "Name: value\r\n" lines, in order
    std::string body_;
    bool omit_body_ = false;
};

// Appends a head ending with the blank line: status line, Date, the given header lines (each
// ending in CRLF, not checked), Content-Length. The hot path for replies whose headers are fixed.
void append_http_head(std::string& out, int status, std::string_view reason,
                      std::string_view header_lines, std::size_t content_length);

}  // namespace reactor::protocols
