// Fuzz target for the "length" protocol (length-field framing).
//
// Option bytes (see fuzz_input.hpp for the layout):
//   [2] % 5  length_field_length 1, 2, 3, 4 (the default, left out) or 8
//   [3] % 4  length_field_offset (left out when 0)
//   [4]      length_adjustment as a signed byte (left out when 0)
//   [5]      initial_bytes_to_strip: ([5] - 1) % (header + 4), left out when 0
//   [6]      bit 0: little endian; bit 1: length_includes_header
//   [7]      the protocol's own max_frame (left out when 0)
//   limit selector: the listener's max_frame = 1 + selector % 2048 (1 MiB when 0)
//
// Checks: the framing contract (codec_driver.hpp); the messages and the failure match a direct
// reading of the documented frame layout; no frame passes max_frame and fewer than max_frame bytes
// stay buffered; whole and chunked feeds agree; encode() output decodes back to its payloads with
// the matching decoder settings, and payloads too long for the field throw std::length_error.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "builtin.hpp"
#include "codec_driver.hpp"
#include "fuzz_input.hpp"
#include "reactor/config_error.hpp"

namespace {

struct Layout {
    std::size_t field_length = 4;
    std::size_t field_offset = 0;
    std::int64_t adjustment = 0;
    std::size_t strip = 0;
    bool little_endian = false;
    std::size_t max_frame = 0;
};

// The documented frame layout, read directly.
fuzz::FeedResult reference_decode(const Layout& layout, std::string_view stream) {
    fuzz::FeedResult result;
    const std::size_t header = layout.field_offset + layout.field_length;
    std::size_t pos = 0;
    while (pos < stream.size() && stream.size() - pos >= header) {
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < layout.field_length; ++i) {
            const std::size_t at = layout.little_endian ? layout.field_length - 1 - i : i;
            value =
                (value << 8) | static_cast<unsigned char>(stream[pos + layout.field_offset + at]);
        }
        // Any value this large is over every max_frame; below it the sum cannot overflow.
        if (value >= (std::uint64_t{1} << 62)) {
            result.failed = true;
            break;
        }
        const std::int64_t frame = static_cast<std::int64_t>(value) + layout.adjustment +
                                   static_cast<std::int64_t>(header);
        if (frame < static_cast<std::int64_t>(header) ||
            static_cast<std::uint64_t>(frame) > layout.max_frame ||
            static_cast<std::uint64_t>(frame) < layout.strip) {
            result.failed = true;
            break;
        }
        const auto size = static_cast<std::size_t>(frame);
        if (stream.size() - pos < size) break;
        result.messages.push_back(
            fuzz::message_of(std::string(stream.substr(pos + layout.strip, size - layout.strip))));
        pos += size;
    }
    result.consumed = pos;
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::size_t kFieldLengths[] = {1, 2, 3, 4, 8};
    const fuzz::FuzzInput input(data, size);

    Layout layout;
    layout.field_length = kFieldLengths[input.byte(2) % 5];
    layout.field_offset = input.byte(3) % 4;
    layout.adjustment = static_cast<std::int8_t>(input.byte(4));
    const std::size_t header = layout.field_offset + layout.field_length;
    layout.strip = input.byte(5) == 0 ? header : (input.byte(5) - 1u) % (header + 4);
    layout.little_endian = (input.byte(6) & 1) != 0;
    const bool includes_header = (input.byte(6) & 2) != 0;

    reactor::ProtocolConfig config;
    config.max_frame = input.max_frame(2048);
    layout.max_frame = input.byte(7) != 0 ? input.byte(7) : config.max_frame;
    nlohmann::json common = nlohmann::json::object();
    if (layout.field_length != 4) common["length_field_length"] = layout.field_length;
    if (layout.little_endian) common["byte_order"] = "little";
    if (input.byte(7) != 0) common["max_frame"] = input.byte(7);

    config.options = common;
    if (layout.field_offset != 0) config.options["length_field_offset"] = layout.field_offset;
    if (layout.adjustment != 0) config.options["length_adjustment"] = layout.adjustment;
    if (input.byte(5) != 0) config.options["initial_bytes_to_strip"] = layout.strip;
    if (includes_header) config.options["length_includes_header"] = true;

    std::shared_ptr<const reactor::ProtocolFactory> factory;
    try {
        factory = reactor::protocols::make_length(config);
    } catch (const reactor::ConfigError&) {
        return 0;
    }

    fuzz::CodecRules rules;
    rules.max_buffered = layout.max_frame;
    rules.check_frame = [&](const fuzz::Captured& message, std::string_view frame) {
        FUZZ_CHECK(frame.size() <= layout.max_frame, "a frame of %zu bytes passed max_frame %zu",
                   frame.size(), layout.max_frame);
        FUZZ_CHECK(frame.size() >= layout.strip && message.payload == frame.substr(layout.strip),
                   "payload '%s' is not frame '%s' without its first %zu bytes",
                   fuzz::printable(message.payload).c_str(), fuzz::printable(frame).c_str(),
                   layout.strip);
    };

    const fuzz::FeedResult whole = fuzz::check_decoding(*factory, input, rules);
    const fuzz::FeedResult reference = reference_decode(layout, input.stream());
    fuzz::compare(reference, "to the documented layout", whole, "to the decoder");

    // Round trip: what LengthFieldPrepender writes, read with the settings that undo it.
    reactor::ProtocolConfig trip = config;
    trip.options = common;
    if (includes_header) {
        trip.options["length_includes_header"] = true;
        trip.options["length_adjustment"] = -static_cast<std::int64_t>(layout.field_length);
    }
    std::shared_ptr<const reactor::ProtocolFactory> trip_factory;
    try {
        trip_factory = reactor::protocols::make_length(trip);
    } catch (const reactor::ConfigError&) {
        return 0;
    }
    const auto encoder = trip_factory->create();
    reactor::Buffer encoded;
    std::vector<fuzz::Captured> expected;
    for (const std::string_view payload : input.pieces()) {
        const std::uint64_t value = payload.size() + (includes_header ? layout.field_length : 0);
        const bool fits = layout.field_length == 8 || value >> (8 * layout.field_length) == 0;
        bool threw = false;
        try {
            reactor::Buffer frame;
            reactor::FrameOutput out(frame);
            encoder->encode(payload, out);
            FUZZ_CHECK(frame.size() == layout.field_length + payload.size(),
                       "encode() wrote %zu bytes for a %zu-byte payload", frame.size(),
                       payload.size());
            if (frame.size() > layout.max_frame) break;  // the decoder rightly refuses it
            encoded.append(frame);
        } catch (const std::length_error&) {
            threw = true;
        }
        FUZZ_CHECK(threw != fits, "a %zu-byte payload %s a %zu-byte field but encode() %s",
                   payload.size(), fits ? "fits" : "does not fit", layout.field_length,
                   threw ? "threw" : "did not throw");
        if (threw) break;
        expected.push_back(fuzz::message_of(std::string(payload)));
    }
    fuzz::CodecRules trip_rules;
    trip_rules.max_buffered = layout.max_frame;
    fuzz::check_round_trip(*trip_factory, encoded.to_string(), expected, trip_rules);
    return 0;
}
