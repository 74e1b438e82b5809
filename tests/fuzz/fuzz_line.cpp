// Fuzz target for the "line" protocol.
//
// Option bytes (see fuzz_input.hpp for the layout):
//   [2] % 8  delimiter: default "\n" (CRLF accepted too), "\r\n", "\0", ";", "ab", "aa",
//            "\r\n\r\n", or 1 to 3 bytes taken from [4..6] ([3] % 3 + 1 of them)
//   [3]      bit 6: strip_delimiter false
//   [7]      max_line (absent when 0)
//   limit selector: max_frame = 1 + selector % 1024 (1 MiB when 0)
//
// Checks: the framing contract (codec_driver.hpp); each frame is exactly content + ending, the
// content holds no earlier delimiter and is at most max_line bytes; at most max_line plus a partial
// ending stays buffered; whole and chunked feeds agree; payloads without a delimiter encode to
// lines that decode back to them.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "builtin.hpp"
#include "codec_driver.hpp"
#include "fuzz_input.hpp"
#include "reactor/config_error.hpp"

namespace {

std::string delimiter_of(const fuzz::FuzzInput& input) {
    static const char* const kFixed[] = {"\n", "\r\n", "", ";", "ab", "aa", "\r\n\r\n"};
    const std::size_t pick = input.byte(2) % 8;
    if (pick == 2) return std::string(1, '\0');
    if (pick < 7) return kFixed[pick];
    std::string custom;
    for (std::size_t i = 0; i < input.byte(3) % 3u + 1; ++i) {
        custom.push_back(static_cast<char>(input.byte(4 + i)));
    }
    return custom;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fuzz::FuzzInput input(data, size);
    const std::string delimiter = delimiter_of(input);
    const bool strip = (input.byte(3) & 0x40) == 0;

    reactor::ProtocolConfig config;
    config.max_frame = input.max_frame(1024);
    if (delimiter != "\n") config.options["delimiter"] = delimiter;
    if (!strip) config.options["strip_delimiter"] = false;
    if (input.byte(7) != 0) config.options["max_line"] = input.byte(7);

    std::shared_ptr<const reactor::ProtocolFactory> factory;
    try {
        factory = reactor::protocols::make_line(config);
    } catch (const reactor::ConfigError&) {
        return 0;  // options out of range for this max_frame
    }
    const std::size_t max_line = input.byte(7) != 0 ? input.byte(7) : config.max_frame;
    const bool accept_crlf = delimiter == "\n";
    const std::size_t longest_ending = accept_crlf ? 2 : delimiter.size();

    fuzz::CodecRules rules;
    rules.max_buffered = max_line + longest_ending - 1;
    rules.check_frame = [&](const fuzz::Captured& message, std::string_view frame) {
        const std::string_view ending =
            accept_crlf && ends_with(frame, "\r\n") ? std::string_view("\r\n") : delimiter;
        FUZZ_CHECK(ends_with(frame, ending), "frame '%s' does not end with its delimiter",
                   fuzz::printable(frame).c_str());
        FUZZ_CHECK(frame.find(delimiter) == frame.size() - delimiter.size(),
                   "frame '%s' holds an earlier delimiter", fuzz::printable(frame).c_str());
        const std::string_view content = frame.substr(0, frame.size() - ending.size());
        FUZZ_CHECK(content.size() <= max_line, "a line of %zu bytes passed max_line %zu",
                   content.size(), max_line);
        FUZZ_CHECK(message.payload == (strip ? content : frame), "payload '%s' of frame '%s'",
                   fuzz::printable(message.payload).c_str(), fuzz::printable(frame).c_str());
    };

    fuzz::check_decoding(*factory, input, rules);

    // Round trip: the leading payloads that a line can carry.
    const auto protocol = factory->create();
    reactor::Buffer encoded;
    std::vector<fuzz::Captured> expected;
    for (const std::string_view payload : input.pieces()) {
        const std::string line = std::string(payload) + delimiter;
        if (line.find(delimiter) != payload.size() || payload.size() > max_line) break;
        if (accept_crlf && ends_with(payload, "\r")) break;  // would read as a CRLF ending
        reactor::FrameOutput out(encoded);
        protocol->encode(payload, out);
        expected.push_back(fuzz::message_of(strip ? std::string(payload) : line));
    }
    fuzz::check_round_trip(*factory, encoded.to_string(), expected, rules);
    return 0;
}
