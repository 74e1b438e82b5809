#pragma once

// WebSocket framing (RFC 6455 §5): the opcodes, close status codes, reading a frame header and
// writing the server's (unmasked) frames. Used by the websocket protocol's decoder and its typed
// sends; no state.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/frame_output.hpp"

namespace reactor::protocols {

enum class WebSocketOpcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

// Close status codes (RFC 6455 §7.4.1) the server sends.
namespace websocket_close {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t invalid_payload = 1007;  // text that is not UTF-8
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace websocket_close

// A code that may appear in a close frame on the wire: 1000-1003, 1007-1014, 3000-4999.
bool valid_close_code(std::uint32_t code);

// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
inline constexpr std::size_t kMaxFrameHeader = 14;
// Control frames carry at most this much (RFC 6455 §5.5).
inline constexpr std::size_t kMaxControlPayload = 125;

struct FrameHeader {
    bool fin = false;
    std::uint8_t rsv = 0;  // the three RSV bits, in the low bits
    std::uint8_t opcode = 0;
    bool masked = false;
    std::uint8_t mask[4] = {0, 0, 0, 0};
    std::uint64_t length = 0;
    std::size_t header_size = 0;  // bytes of the header on the wire
    bool length_top_bit = false;  // a 64-bit length with its most significant bit set

    bool is_control() const { return (opcode & 0x8) != 0; }
};

// Reads the header at the front of bytes (at least 2, up to kMaxFrameHeader of them). False when
// more bytes are needed; header.header_size tells how many once the first two are there.
bool parse_frame_header(std::string_view bytes, FrameHeader& header);

// XORs n bytes with the mask, starting at mask position offset (the payload's byte index).
void unmask(char* data, std::size_t n, const std::uint8_t mask[4], std::uint64_t offset);

// An unmasked server frame header with FIN set: at most 10 bytes, written to out, size returned.
std::size_t write_frame_header(char out[10], WebSocketOpcode opcode, std::uint64_t length);

// Appends one whole unmasked frame: header and payload, the payload copied once.
void write_frame(FrameOutput& out, WebSocketOpcode opcode, std::string_view payload);
// Appends a close frame: the code (none when 0) and reason.
void write_close_frame(FrameOutput& out, std::uint16_t code, std::string_view reason);
std::string close_frame(std::uint16_t code, std::string_view reason = {});

}  // namespace reactor::protocols
