#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace reactor {

// Process-unique connection id: starts at 1, never reused.
using ConnectionId = std::uint64_t;

struct HttpHeader {
    std::string_view name;
    std::string_view value;
};

// ASCII case-insensitive equality, as HTTP header names compare.
bool ascii_iequals(std::string_view a, std::string_view b);

// A parsed HTTP/1.x request. Every view points into connection-owned storage and is valid only for
// the duration of the on_message callback.
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

// One decoded frame handed to the application. Views are valid only during the callback that
// receives the message; copy what must outlive it.
struct Message {
    ConnectionId conn = 0;
    // The frame's payload: the bytes for raw, line and length framing; the body for HTTP.
    std::string_view payload;
    // Arguments of a command (RESP), empty otherwise.
    std::span<const std::string_view> args;
    // The request, for HTTP; null otherwise.
    const HttpRequest* http = nullptr;
    // A recoverable framing error: the protocol skipped a frame that broke its limit and the
    // connection goes on (only where the listener asks for it, e.g. line's "too_long": "report").
    // The reason, such as "line longer than 4096 bytes"; payload is then empty. Empty otherwise.
    std::string_view error;
};

}  // namespace reactor
