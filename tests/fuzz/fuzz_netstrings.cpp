// Fuzz target for the example "netstrings" protocol plugin, loaded from its shared object through
// the plugin loader, as reactord loads it: decoding goes through the host's C ABI bridge (bounded
// input view, consume/expect/deliver callbacks) into the plugin.
//
// Option bytes (see fuzz_input.hpp for the layout):
//   [2]  max_length (left out when 0)
//   limit selector: max_frame = 1 + selector % 4096 (1 MiB when 0)
//
// Checks: the framing contract (codec_driver.hpp); each frame is exactly "N:payload," with N
// written without leading zeros and at most max_length; the messages and the failure match a
// direct reading of the netstring format (input ending inside a netstring fails at end of input);
// no more than one header and max_length bytes stay buffered; whole and chunked feeds agree;
// encode() output decodes back to its payloads.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "codec_driver.hpp"
#include "fuzz_input.hpp"
#include "plugin_loader.hpp"
#include "reactor/config_error.hpp"
#include "reactor/protocol_registry.hpp"

#ifndef NETSTRINGS_PLUGIN
#error "NETSTRINGS_PLUGIN must name the plugin's shared object"
#endif

namespace {

const reactor::ProtocolRegistry& registry() {
    static const reactor::ProtocolRegistry instance = [] {
        reactor::ProtocolRegistry r;
        reactor::protocols::load_protocol_plugin(NETSTRINGS_PLUGIN, r);
        return r;
    }();
    return instance;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The netstring format, read directly.
fuzz::FeedResult reference_decode(std::string_view stream, std::size_t max_length) {
    fuzz::FeedResult result;
    std::size_t pos = 0;
    while (pos < stream.size()) {
        const std::string_view rest = stream.substr(pos);
        std::size_t i = 0;
        std::size_t length = 0;
        bool bad = false;
        while (i < rest.size() && is_digit(rest[i])) {
            if (i == 1 && rest[0] == '0') bad = true;  // a leading zero
            length = length * 10 + static_cast<std::size_t>(rest[i] - '0');
            if (bad || length > max_length) break;
            ++i;
        }
        if (bad || length > max_length || (i < rest.size() && (i == 0 || rest[i] != ':'))) {
            result.failed = true;
            break;
        }
        if (i == rest.size() || rest.size() < i + 1 + length + 1) break;  // incomplete
        if (rest[i + 1 + length] != ',') {
            result.failed = true;
            break;
        }
        result.messages.push_back(fuzz::message_of(std::string(rest.substr(i + 1, length))));
        pos += i + 1 + length + 1;
    }
    result.consumed = pos;
    if (pos < stream.size()) result.failed = true;  // decode_eof refuses leftover bytes
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fuzz::FuzzInput input(data, size);

    reactor::ProtocolConfig config;
    config.max_frame = input.max_frame(4096);
    std::size_t max_length = config.max_frame;
    if (input.byte(2) != 0) config.options["max_length"] = max_length = input.byte(2);

    std::shared_ptr<const reactor::ProtocolFactory> factory;
    try {
        factory = registry().build("netstrings", config);
    } catch (const reactor::ConfigError& e) {
        FUZZ_CHECK(max_length > config.max_frame && e.path() == "max_length",
                   "the plugin refused max_length %zu with max_frame %zu: %s", max_length,
                   config.max_frame, e.describe().c_str());
        return 0;
    }
    FUZZ_CHECK(max_length <= config.max_frame, "the plugin took max_length %zu over max_frame %zu",
               max_length, config.max_frame);

    fuzz::CodecRules rules;
    rules.max_buffered = max_length + std::to_string(max_length).size() + 1;
    rules.check_frame = [&](const fuzz::Captured& message, std::string_view frame) {
        const std::string expected =
            std::to_string(message.payload.size()) + ":" + message.payload + ",";
        FUZZ_CHECK(frame == expected, "frame '%s' delivered payload '%s'",
                   fuzz::printable(frame).c_str(), fuzz::printable(message.payload).c_str());
        FUZZ_CHECK(message.payload.size() <= max_length, "a %zu-byte netstring passed %zu",
                   message.payload.size(), max_length);
    };

    const fuzz::FeedResult whole = fuzz::check_decoding(*factory, input, rules);
    const fuzz::FeedResult reference = reference_decode(input.stream(), max_length);
    fuzz::compare(reference, "to the netstring format", whole, "to the plugin");

    // Round trip.
    const auto protocol = factory->create();
    reactor::Buffer encoded;
    std::vector<fuzz::Captured> expected;
    for (const std::string_view payload : input.pieces()) {
        if (payload.size() > max_length) break;
        reactor::FrameOutput out(encoded);
        protocol->encode(payload, out);
        expected.push_back(fuzz::message_of(std::string(payload)));
    }
    fuzz::check_round_trip(*factory, encoded.to_string(), expected, rules);
    return 0;
}
