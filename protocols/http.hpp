#pragma once

// Protocol "http": HTTP/1.1 request framing (RFC 9112). llhttp parses the request line and the
// header section; a chunked body, its chunk extensions and its trailers are decoded by the codec
// itself, because llhttp 8.1 (Debian 12's) skips the CRLF after chunk data unchecked and refuses
// valid extensions.
//
// decode() hands over one request per call, so pipelined requests are delivered in order within
// one read. The Message carries the HttpRequest below (message.get<HttpRequest>(): method,
// target, version, headers, body, keep_alive) and .payload = the body; every view is valid only
// while the message is being delivered. Trailer fields of a chunked body are checked and bounded
// but not exposed.
//
// Keep-alive: a request with "Connection: close", an HTTP/1.0 request without
// "Connection: keep-alive", and a CONNECT or Upgrade request arrive with keep_alive == false, and
// decode() returns Decoded::last_frame() for them: nothing after the request is decoded, and the
// connection closes (CloseReason::protocol_done) once the replies written while it was delivered
// are out. So such a request is answered during its delivery, with send_response(), which then
// says "Connection: close", or with send(), whose reply encode() marks so too.
//
// Replies: send_response() below writes an HttpResponse (status, headers, body) as the reply to a
// request, through the same path as send(): during a read, into the output stage that gathers the
// replies of pipelined requests into one write. Connection::send(payload) frames the payload as a
// "200 OK" text/plain reply to the last request delivered.
//
// Upgrade: a CONNECT or Upgrade request arrives with HttpRequest::upgrade set and its headers
// (Upgrade, Connection, Sec-WebSocket-*) as sent. This codec decodes nothing after it. An
// application that answers 101 Switching Protocols (send_response with
// HttpResponse(101).header("Connection", "Upgrade")...) and calls Connection::switch_protocol
// during the delivery hands the bytes after the request, in the same read and later, to the new
// protocol; without a switch the connection ends after the reply, as for any request that does
// not keep it alive.
//
// Errors, each answered with Content-Length: 0 and Connection: close, then the connection closes:
//  - 431 Request Header Fields Too Large: the request line and headers, through the blank line that
//    ends them, pass max_header_bytes, reported as soon as that many bytes are buffered without the
//    end of the headers;
//  - 413 Payload Too Large: a Content-Length above max_body (before any body byte arrives), a
//    chunked body whose declared chunk sizes add up past max_body, or a request longer than
//    2 * (max_header_bytes + max_body) in all, which bounds chunk framing and trailers;
//  - 431 also for a trailer section longer than max_header_bytes;
//  - 400 Bad Request: anything llhttp rejects; whitespace before a field's colon, obs-fold line
//    folding, an empty field name (headers and trailers alike); an HTTP/1.1 request without
//    Host, any request with two Host lines or an invalid Host; "*" as the target of anything but
//    OPTIONS, a target neither origin-form nor absolute-form (but for CONNECT); Transfer-Encoding
//    in an HTTP/1.0 request; chunk data not followed by CRLF, a chunk line outside the RFC's
//    grammar (whitespace before its CRLF is allowed) or longer than 4096 bytes; "HTTP/0.9";
//  - 501 Not Implemented: a Transfer-Encoding other than exactly one "chunked" (gzip, identity,
//    "gzip, chunked", ...): the body would reach the application still encoded;
//  - 505 HTTP Version Not Supported: a major version above 1 (HTTP/2.0 in HTTP/1 syntax), or an
//    HTTP/0.9 request line ("GET /", no version), answered as soon as that line ends.
// HTTP/1.2 to HTTP/1.9 are served as HTTP/1.1 (RFC 9110 §2.5: the highest minor version
// supported); absolute-form targets arrive as sent, and the application reads the path from them.
// A request cut off by the end of input is dropped without a reply: nobody is left to read one
// reliably, and a half-sent request is not worth an answer.
//
// "Expect: 100-continue" on a request with a body is answered "HTTP/1.1 100 Continue" once,
// when its headers have arrived and the rest of it has not.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/connection.hpp"
#include "reactor/frame_output.hpp"
#include "reactor/protocol.hpp"

namespace reactor::protocols {

struct HttpHeader {
    std::string_view name;
    std::string_view value;
};

// ASCII case-insensitive equality, as HTTP header names compare.
bool ascii_iequals(std::string_view a, std::string_view b);

// A parsed HTTP/1.x request, the detail of every message of protocol "http". Every view points
// into connection-owned storage and is valid only for the duration of the on_message callback.
struct HttpRequest {
    std::string_view method;
    std::string_view target;
    int version_major = 1;
    int version_minor = 1;
    std::vector<HttpHeader> headers;
    std::string_view body;
    bool keep_alive = true;
    // An Upgrade request (with "Connection: upgrade") or a CONNECT: the bytes after it belong to
    // the next protocol. Answer 101 (200 for CONNECT) and Connection::switch_protocol to take
    // them over; without a switch they are discarded and the connection ends after the reply, as
    // keep_alive is false.
    bool upgrade = false;

    // First header with this name (ASCII case-insensitive), or an empty view.
    std::string_view header(std::string_view name) const;
};

// One response: status, reason, header lines, body and what it says of the connection. Date and
// Content-Length are always written by the writer (Content-Length not for a 1xx or 204, which has
// no body), so they cannot be set as headers. A response
// holds no view: it may be built once and sent any number of times, from any thread.
//
//     send_response(conn, request, HttpResponse(404).header("Content-Type", "text/plain")
//                                      .body("no such key\n"));
class HttpResponse {
  public:
    // The reason phrase defaults to the standard one for the status. Throws std::invalid_argument
    // for a status outside 100..999 or a reason with CR or LF.
    explicit HttpResponse(int status = 200, std::string_view reason = {});

    // Adds a header line. Throws std::invalid_argument for an empty or malformed name, a value
    // with CR or LF (response splitting), or Date / Content-Length. "Connection: close" and
    // "keep-alive" are stated with close_connection() and connection_for(), or by send_response().
    HttpResponse& header(std::string_view name, std::string_view value);
    // "Connection: close". Sent with send_response(), the connection closes after it.
    HttpResponse& close_connection();
    // The Connection header a reply to request needs: "close" when the request does not keep the
    // connection alive, "keep-alive" for an HTTP/1.0 request that does (HTTP/1.0 clients assume
    // close otherwise), none for HTTP/1.1. send_response() does this by itself.
    HttpResponse& connection_for(const HttpRequest& request);
    HttpResponse& body(std::string_view body);
    // For a HEAD request: the head announces the body's Content-Length, but no body bytes follow.
    // send_response() does this by itself for a HEAD request.
    HttpResponse& omit_body(bool omit = true);

    int status() const { return status_; }
    std::string_view reason() const;
    std::string_view body() const { return body_; }
    bool closes_connection() const { return persistence_ == Persistence::close; }

    // Appends the whole response, as built.
    void write_to(FrameOutput& out) const;
    // Appends it as the reply to request, as send_response() sends it.
    void write_to(FrameOutput& out, const HttpRequest& request) const;
    std::string to_string() const;
    // About how many bytes write_to() appends.
    std::size_t size_hint() const;

  private:
    enum class Persistence : unsigned char { unstated, keep_alive, close };
    void write(FrameOutput& out, Persistence persistence, bool omit_body) const;
    Persistence persistence_for(const HttpRequest& request) const;
    void set_length_line();

    // Kept as the pieces of the bytes around what each send adds (the Date, the Connection line,
    // the body or not), so that sending a response built once is a few appends.
    std::string head_;              // "HTTP/1.1 200 OK\r\nDate: "
    std::string headers_ = "\r\n";  // the end of the Date line, then "Name: value\r\n" lines
    std::string body_;
    char length_line_[40];  // "Content-Length: N\r\n\r\n", or only "\r\n" without content
    unsigned char length_line_size_ = 0;
    int status_;
    Persistence persistence_ = Persistence::unstated;
    bool omit_body_ = false;
};

// Sends response as the reply to request, through the connection's output path as send() does
// (during a read, the output stage: the replies to pipelined requests leave in one write). What
// the request needs is added: "Connection: close" when it ends the connection, "Connection:
// keep-alive" for an HTTP/1.0 request that keeps it, no body bytes for HEAD; a 101 or, to a
// CONNECT, 2xx answer to an upgrade, which hands the connection on, gets only what the response
// itself states. After a response marked close_connection() the connection closes (flushing,
// CloseReason::app_closed). Loop thread only, as Connection::send.
void send_response(Connection& conn, const HttpRequest& request, const HttpResponse& response);

struct HttpLimits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body = 1024 * 1024;
};

// One connection's HTTP codec.
std::unique_ptr<Protocol> make_http_protocol(const HttpLimits& limits);

}  // namespace reactor::protocols
