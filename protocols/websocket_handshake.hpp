#pragma once

// The WebSocket opening handshake (RFC 6455 §4.2), server side, reusable by any HTTP application:
// checks an HTTP request for a valid upgrade and builds the answer.
//
//     if (request->upgrade) accept_websocket(conn, *request, settings);  // in on_message
//
// Valid: GET, HTTP/1.1 or later, "Upgrade" with the token "websocket", "Connection" with the
// token "upgrade" (ASCII case-insensitive, in any of its lines), "Sec-WebSocket-Key" that is the
// base64 of 16 bytes, "Sec-WebSocket-Version: 13". The answer is 101 with Sec-WebSocket-Accept
// and, when the client offers one of the configured subprotocols, Sec-WebSocket-Protocol (the
// first offered that is configured); otherwise 400, or 426 with "Sec-WebSocket-Version: 13" for
// another version, both closing the connection.

#include <string>
#include <string_view>
#include <vector>

#include "http.hpp"
#include "websocket.hpp"

namespace reactor::protocols {

struct WebSocketHandshake {
    bool accepted = false;
    HttpResponse response;    // 101, 400 or 426
    std::string subprotocol;  // chosen, or empty
    std::string error;        // why it was refused, for a log line
};

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept_key(std::string_view key);

WebSocketHandshake check_websocket_handshake(const HttpRequest& request,
                                             const std::vector<std::string>& subprotocols);

// Answers request (during its delivery on an "http" connection): on success sends the 101 and
// switches the connection to protocol "websocket" with settings, returning true; otherwise sends
// the 400 or 426, which closes the connection, and returns false.
bool accept_websocket(Connection& conn, const HttpRequest& request,
                      const WebSocketSettings& settings);

}  // namespace reactor::protocols
