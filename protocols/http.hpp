#pragma once

// Protocol "http": HTTP/1.1 request framing, parsed with llhttp.
//
// decode() hands over one request per call, so pipelined requests are delivered in order within
// one read. The Message has .http set (method, target, version, headers, body, keep_alive) and
// .payload = the body; every view is valid only while the message is being delivered. Trailer
// fields of a chunked body are checked and bounded but not exposed.
//
// Keep-alive: a request with "Connection: close", an HTTP/1.0 request without
// "Connection: keep-alive", and a CONNECT or Upgrade request (upgrades are not supported) arrive
// with keep_alive == false. The application closes the connection after replying to such a
// request; encode() marks that reply "Connection: close", and any bytes after the request are
// discarded unparsed.
//
// Errors, each answered with Content-Length: 0 and Connection: close, then the connection closes:
//  - 431 Request Header Fields Too Large: the request line and headers, through the blank line that
//    ends them, pass max_header_bytes, reported as soon as that many bytes are buffered without the
//    end of the headers;
//  - 413 Payload Too Large: a Content-Length above max_body (before any body byte arrives), a
//    chunked body whose declared chunk sizes add up past max_body, or a request longer than
//    2 * (max_header_bytes + max_body) in all, which bounds chunk framing and trailers;
//  - 400 Bad Request: anything llhttp rejects, whitespace before a header's colon, or obs-fold
//    line folding.
// A request cut off by the end of input is dropped without a reply: nobody is left to read one
// reliably, and a half-sent request is not worth an answer.
//
// Limitation: Expect: 100-continue is not answered (decoding has no output); clients that wait for
// it send the body after their own timeout.

#include <cstddef>
#include <memory>

#include "reactor/protocol.hpp"

namespace reactor::protocols {

struct HttpLimits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body = 1024 * 1024;
};

// One connection's HTTP codec.
std::unique_ptr<Protocol> make_http_protocol(const HttpLimits& limits);

}  // namespace reactor::protocols
