#pragma once

// Length-field framing with the options of Netty's LengthFieldBasedFrameDecoder and
// LengthFieldPrepender.
//
// Inbound frame: length_field_offset header bytes, the length field (length_field_length bytes,
// byte_order), then the rest. The frame's total size is
//     field value + length_adjustment + length_field_offset + length_field_length
// and the message payload is that frame without its first initial_bytes_to_strip bytes (by default
// the header and the field, so the payload only). A frame larger than max_frame fails as soon as
// its length field is read, before its body arrives; so do a negative size, a size that ends inside
// the header, and a frame shorter than initial_bytes_to_strip.
//
// Outbound, encode() does what LengthFieldPrepender does: it writes the length field (the payload
// size, plus length_field_length when length_includes_header), then the payload. It writes no
// header bytes and no adjustment: length_field_offset, length_adjustment and
// initial_bytes_to_strip describe inbound frames only. The decoder reads encoded frames back as the
// same payload when the offset is 0, the strip is the default and length_adjustment is
// -length_field_length with length_includes_header (0 without). A payload whose size does not fit
// the field throws std::length_error.

#include <array>
#include <cstddef>
#include <cstdint>

#include "reactor/protocol.hpp"
#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

struct LengthSettings {
    std::size_t field_offset = 0;
    std::size_t field_length = 4;  // 1, 2, 3, 4 or 8
    bool big_endian = true;
    std::int64_t adjustment = 0;
    std::size_t strip = 4;
    std::size_t max_frame = 0;
    bool length_includes_header = false;  // encoder only
};

// Throws ConfigError naming the option.
LengthSettings read_length_settings(const ProtocolConfig& config);

class LengthProtocol final : public Protocol {
  public:
    explicit LengthProtocol(const LengthSettings& settings) : settings_(settings) {}

    Decoded decode(Buffer& in, MessageSink& out) override;
    void encode(std::string_view payload, FrameOutput& out) override;
    std::size_t max_payload() const override;
    // "ERR max connections reached" in a frame of its own, or nothing where the length field
    // cannot carry it.
    std::string busy_notice() const override;

  private:
    // The length field of a payload of this size, in its first field_length bytes; throws
    // std::length_error when the value does not fit.
    std::array<unsigned char, 8> length_field(std::size_t payload_size) const;

    LengthSettings settings_;
};

}  // namespace reactor::protocols
