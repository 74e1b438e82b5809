#include "length.hpp"

#include <array>
#include <limits>
#include <stdexcept>
#include <string>

#include "builtin.hpp"
#include "options.hpp"

namespace reactor::protocols {

namespace {

class LengthFactory final : public ProtocolFactory {
  public:
    explicit LengthFactory(const LengthSettings& settings) : settings_(settings) {}
    std::string_view name() const override { return "length"; }
    std::unique_ptr<Protocol> create() const override {
        return std::make_unique<LengthProtocol>(settings_);
    }

  private:
    LengthSettings settings_;
};

// Field values above this are reported as oversize without further arithmetic, which keeps every
// size computation below within int64.
constexpr std::uint64_t kHugeValue = std::uint64_t{1} << 62;
// Netty's adjustment is a Java int.
constexpr std::int64_t kMaxAdjustment = std::numeric_limits<std::int32_t>::max();

std::uint64_t read_field(const unsigned char* bytes, std::size_t n, bool big_endian) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned char b = big_endian ? bytes[i] : bytes[n - 1 - i];
        value = (value << 8) | b;
    }
    return value;
}

std::string n_bytes(std::int64_t n) {
    return std::to_string(n) + " bytes";
}

}  // namespace

LengthSettings read_length_settings(const ProtocolConfig& config) {
    Options options(config.options);
    LengthSettings s;
    s.max_frame = options.integer("max_frame", config.max_frame, 1, config.max_frame);
    s.field_length = options.integer("length_field_length", 4, 1, 8);
    if (s.field_length == 5 || s.field_length == 6 || s.field_length == 7) {
        throw ConfigError("length_field_length", "expected 1, 2, 3, 4 or 8");
    }
    if (s.field_length > s.max_frame) {
        throw ConfigError("length_field_length", "longer than max_frame");
    }
    s.field_offset = options.integer("length_field_offset", 0, 0, s.max_frame - s.field_length);
    s.big_endian = options.choice("byte_order", "big", {"big", "little"}) == "big";
    s.adjustment = options.signed_integer("length_adjustment", 0, -kMaxAdjustment, kMaxAdjustment);
    s.strip =
        options.integer("initial_bytes_to_strip", s.field_offset + s.field_length, 0, s.max_frame);
    s.length_includes_header = options.boolean("length_includes_header", false);
    options.finish();
    return s;
}

std::shared_ptr<const ProtocolFactory> make_length(const ProtocolConfig& config) {
    return std::make_shared<LengthFactory>(read_length_settings(config));
}

Decoded LengthProtocol::decode(Buffer& in, MessageSink& out) {
    const std::size_t header_end = settings_.field_offset + settings_.field_length;
    if (in.size() < header_end) return Decoded::need_more();

    std::array<unsigned char, 8> field{};
    in.copy_out(settings_.field_offset, field.data(), settings_.field_length);
    const std::uint64_t value =
        read_field(field.data(), settings_.field_length, settings_.big_endian);
    const std::size_t max_frame = settings_.max_frame;
    if (value >= kHugeValue) {
        return Decoded::fail("frame length field " + std::to_string(value) +
                             " exceeds max_frame of " +
                             n_bytes(static_cast<std::int64_t>(max_frame)));
    }
    const std::int64_t frame = static_cast<std::int64_t>(value) + settings_.adjustment +
                               static_cast<std::int64_t>(header_end);
    if (frame < 0) return Decoded::fail("negative frame length " + std::to_string(frame));
    if (frame < static_cast<std::int64_t>(header_end)) {
        return Decoded::fail("frame of " + n_bytes(frame) + " ends inside its " +
                             n_bytes(static_cast<std::int64_t>(header_end)) + " header");
    }
    if (static_cast<std::uint64_t>(frame) > max_frame) {
        return Decoded::fail("frame of " + n_bytes(frame) + " exceeds max_frame of " +
                             n_bytes(static_cast<std::int64_t>(max_frame)));
    }
    const auto frame_size = static_cast<std::size_t>(frame);
    if (frame_size < settings_.strip) {
        return Decoded::fail("frame of " + n_bytes(frame) +
                             " is shorter than initial_bytes_to_strip " +
                             std::to_string(settings_.strip));
    }
    if (in.size() < frame_size) return Decoded::need_more();

    Message message;
    message.payload = in.peek(frame_size).substr(settings_.strip);
    out.deliver(message);
    in.drain(frame_size);
    return Decoded::frame();
}

std::array<unsigned char, 8> LengthProtocol::length_field(std::size_t payload_size) const {
    const std::size_t n = settings_.field_length;
    std::uint64_t value = payload_size;
    if (settings_.length_includes_header) value += n;
    if (n < 8 && value >> (8 * n) != 0) {
        throw std::length_error("length: a payload of " + std::to_string(payload_size) +
                                " bytes does not fit a " + std::to_string(n) +
                                "-byte length field");
    }
    std::array<unsigned char, 8> field{};
    for (std::size_t i = 0; i < n; ++i) {
        const auto b = static_cast<unsigned char>(value >> (8 * i));
        field[settings_.big_endian ? n - 1 - i : i] = b;
    }
    return field;
}

std::size_t LengthProtocol::max_payload() const {
    const std::size_t n = settings_.field_length;
    if (n >= 8) return std::numeric_limits<std::size_t>::max();
    const std::uint64_t largest = (std::uint64_t{1} << (8 * n)) - 1;
    return static_cast<std::size_t>(settings_.length_includes_header ? largest - n : largest);
}

void LengthProtocol::encode(std::string_view payload, FrameOutput& out) {
    const auto field = length_field(payload.size());
    out.append_pieces(
        {std::string_view(reinterpret_cast<const char*>(field.data()), settings_.field_length),
         payload});
}

std::string LengthProtocol::busy_notice() const {
    constexpr std::string_view notice = "ERR max connections reached";
    if (notice.size() > max_payload()) return {};
    const auto field = length_field(notice.size());
    std::string framed(reinterpret_cast<const char*>(field.data()), settings_.field_length);
    framed.append(notice);
    return framed;
}

}  // namespace reactor::protocols
