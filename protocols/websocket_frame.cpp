#include "websocket_frame.hpp"

#include <cstring>

namespace reactor::protocols {

bool valid_close_code(std::uint32_t code) {
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;  // 1012-1014 are registered (IANA)
    return code >= 3000 && code <= 4999;
}

bool parse_frame_header(std::string_view bytes, FrameHeader& header) {
    if (bytes.size() < 2) return false;
    const auto b0 = static_cast<std::uint8_t>(bytes[0]);
    const auto b1 = static_cast<std::uint8_t>(bytes[1]);
    header.fin = (b0 & 0x80) != 0;
    header.rsv = static_cast<std::uint8_t>((b0 >> 4) & 0x7);
    header.opcode = b0 & 0x0F;
    header.masked = (b1 & 0x80) != 0;
    const std::uint8_t short_length = b1 & 0x7F;
    const std::size_t length_bytes = short_length == 126 ? 2 : short_length == 127 ? 8 : 0;
    header.header_size = 2 + length_bytes + (header.masked ? 4 : 0);
    if (bytes.size() < header.header_size) return false;
    if (length_bytes == 0) {
        header.length = short_length;
    } else {
        std::uint64_t length = 0;
        for (std::size_t i = 0; i < length_bytes; ++i) {
            length = (length << 8) | static_cast<std::uint8_t>(bytes[2 + i]);
        }
        header.length = length;
    }
    header.length_top_bit = length_bytes == 8 && (header.length >> 63) != 0;
    if (header.masked) {
        for (std::size_t i = 0; i < 4; ++i) {
            header.mask[i] = static_cast<std::uint8_t>(bytes[2 + length_bytes + i]);
        }
    }
    return true;
}

void unmask(char* data, std::size_t n, const std::uint8_t mask[4], std::uint64_t offset) {
    std::size_t i = 0;
    // Byte by byte up to a mask boundary, then eight bytes at a time.
    for (; i < n && ((offset + i) & 3) != 0; ++i) {
        data[i] = static_cast<char>(data[i] ^ static_cast<char>(mask[(offset + i) & 3]));
    }
    std::uint8_t key_bytes[8];
    for (std::size_t k = 0; k < 8; ++k) key_bytes[k] = mask[k & 3];
    std::uint64_t key;
    std::memcpy(&key, key_bytes, 8);
    for (; i + 8 <= n; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, data + i, 8);
        word ^= key;
        std::memcpy(data + i, &word, 8);
    }
    for (; i < n; ++i) {
        data[i] = static_cast<char>(data[i] ^ static_cast<char>(mask[(offset + i) & 3]));
    }
}

std::size_t write_frame_header(char out[10], WebSocketOpcode opcode, std::uint64_t length) {
    out[0] = static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));
    if (length < 126) {
        out[1] = static_cast<char>(length);
        return 2;
    }
    if (length <= 0xFFFF) {
        out[1] = static_cast<char>(126);
        out[2] = static_cast<char>(length >> 8);
        out[3] = static_cast<char>(length & 0xFF);
        return 4;
    }
    out[1] = static_cast<char>(127);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>((length >> (56 - 8 * i)) & 0xFF);
    return 10;
}

void write_frame(FrameOutput& out, WebSocketOpcode opcode, std::string_view payload) {
    char header[10];
    const std::size_t n = write_frame_header(header, opcode, payload.size());
    out.append_pieces({std::string_view(header, n), payload});
}

void write_close_frame(FrameOutput& out, std::uint16_t code, std::string_view reason) {
    if (code == 0) {
        write_frame(out, WebSocketOpcode::close, {});
        return;
    }
    char header[10];
    const std::size_t n = write_frame_header(header, WebSocketOpcode::close, 2 + reason.size());
    const char code_bytes[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    out.append_pieces({std::string_view(header, n), std::string_view(code_bytes, 2), reason});
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
    std::string bytes;
    FrameOutput out(bytes);
    write_close_frame(out, code, reason);
    return bytes;
}

}  // namespace reactor::protocols
