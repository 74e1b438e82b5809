#pragma once

// Protocol "websocket": the server side of RFC 6455 over an HTTP/1.1 Upgrade.
//
// Inbound: text and binary messages reach the application whole, one Message each, fragments
// reassembled; message.get<WebSocketMessage>() says text or binary, and .payload holds the
// unmasked bytes (valid during the delivery only). Control frames are handled by the codec: a ping
// is answered with a pong at once (also between the fragments of a message), a pong is ignored,
// a close is answered with a close frame echoing its code (an empty one for an empty close) and
// ends the connection once that is out (Decoded::last_frame, CloseReason::protocol_done).
//
// Checked, each failing the connection with a close frame carrying the code and a short reason
// as the last reply (then the connection closes, "protocol error"):
//  - 1002: an unmasked client frame; RSV bits (no extension is negotiated); opcodes 3-7 and 11-15;
//    a control frame longer than 125 bytes or fragmented; a continuation without a message
//    started, or a text/binary frame while one is; a 64-bit length with its top bit set; a close
//    frame with a 1-byte payload or an invalid code (valid: 1000-1003, 1007-1014, 3000-4999);
//  - 1007: text that is not UTF-8, reported at the first byte that can never become valid (even
//    mid-frame), or a message ending inside a sequence; a close reason that is not UTF-8;
//  - 1009: a frame longer than max_frame, or a message whose fragments add up past max_message,
//    reported as soon as the frame header that passes the limit arrives.
// The payload of a data frame is unmasked into the message as it arrives, so a large frame is
// not buffered twice; a message never holds more than max_message bytes.
//
// Outbound (unmasked frames, never fragmented): Connection::send(payload) sends one text frame;
// send_websocket_binary/ping/close below are the typed sends, written through
// Connection::send_frame into the same output stage as send(), the payload copied once.
//
// Options (JSON): "max_message" (bytes, default 16 MiB, at most the listener's max_frame: the
// default is the smaller of the two), "max_frame" (one frame's payload, default and at most
// max_message), "max_handshake" (bytes of the HTTP upgrade request, default 8 KiB),
// "subprotocols" (list of names; the first one the client offers that is listed is chosen).
//
// Used directly on a listener, the protocol first reads the HTTP handshake (GET with
// "Upgrade: websocket", see websocket_handshake.hpp) and answers it: 101 and framing from then
// on, or 400 (426 with Sec-WebSocket-Version: 13 for another version) and the connection closes.
// An HTTP application answers an upgrade itself with accept_websocket().
//
// No close-handshake timer of its own: send_websocket_close() closes the connection flushing,
// and the core's linger (shut down the write side, drop what the peer still sends, 2 s at most)
// is the wait for the peer's close frame.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/connection.hpp"
#include "reactor/protocol.hpp"
#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

// The detail of every message of protocol "websocket".
struct WebSocketMessage {
    enum class Kind : unsigned char { text, binary };
    Kind kind = Kind::text;
    bool is_text() const { return kind == Kind::text; }
    bool is_binary() const { return kind == Kind::binary; }
};

struct WebSocketSettings {
    std::size_t max_message = 16 * 1024 * 1024;
    std::size_t max_frame = 16 * 1024 * 1024;
    std::size_t max_handshake = 8 * 1024;
    std::vector<std::string> subprotocols;
};

// Throws ConfigError naming the option.
WebSocketSettings read_websocket_settings(const ProtocolConfig& config);

// One connection's codec. With handshake_first it reads the HTTP upgrade request before any frame
// (a listener of protocol "websocket"); without, framing starts at once (after an HTTP
// application's 101).
std::unique_ptr<Protocol> make_websocket_protocol(const WebSocketSettings& settings,
                                                  bool handshake_first);

// Typed sends, loop thread only, as Connection::send. Each writes one unmasked frame with FIN.
void send_websocket_text(Connection& conn, std::string_view payload);  // as conn.send()
void send_websocket_binary(Connection& conn, std::string_view payload);
// Throws std::invalid_argument for a payload over 125 bytes.
void send_websocket_ping(Connection& conn, std::string_view payload = {});
// Sends a close frame (code 0: none, an empty payload) and closes the connection, flushing.
// Throws std::invalid_argument for a code that may not be sent, or a reason that is not UTF-8 or
// longer than 123 bytes.
void send_websocket_close(Connection& conn, std::uint16_t code = 1000,
                          std::string_view reason = {});

}  // namespace reactor::protocols
