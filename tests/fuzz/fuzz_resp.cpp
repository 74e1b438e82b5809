// Fuzz target for the "resp" protocol (Redis requests: multibulk arrays and inline commands).
//
// Option bytes (see fuzz_input.hpp for the layout):
//   [2]  max_bulk (left out when 0)
//   [3]  max_args (left out when 0)
//   [4]  max_inline (left out when 0)
//   limit selector: max_frame = 1 + selector % 4096 (1 MiB when 0)
//
// Checks: the framing contract (codec_driver.hpp); a multibulk request is delivered with the whole
// request as payload, its arguments inside it, within max_args and max_bulk, the whole within
// max_frame plus max_bulk; an inline
// command's payload is its line without the ending, within max_inline; at most a request's worth
// plus one count line stays buffered; whole and
// chunked feeds agree. An error's last reply is one "-ERR Protocol error: ..." line with no other
// CR or LF, and its reason carries none either. Round trips: arguments written as a
// multibulk request (resp::append_bulk_array) and as a quoted inline command decode back to the
// same arguments; encode() writes a bulk string that reads back as its payload.

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "codec_driver.hpp"
#include "fuzz_input.hpp"
#include "reactor/config_error.hpp"
#include "resp_encode.hpp"

namespace {

struct Limits {
    std::size_t max_bulk = 0;
    std::size_t max_args = 0;
    std::size_t max_inline = 0;
    std::size_t max_frame = 0;
};

std::size_t digits(std::size_t n) {
    return std::to_string(n).size();
}

// A request of these arguments in multibulk form, or empty when a limit refuses it.
std::string multibulk_request(const std::vector<std::string>& args, const Limits& limits) {
    if (args.empty() || args.size() > limits.max_args) return {};
    if (1 + digits(args.size()) > limits.max_inline) return {};
    std::vector<std::string_view> views;
    for (const std::string& arg : args) {
        if (arg.size() > limits.max_bulk || 1 + digits(arg.size()) > limits.max_inline) return {};
        views.emplace_back(arg);
    }
    std::string request;
    reactor::protocols::resp::append_bulk_array(request, views);
    return request.size() <= limits.max_frame + limits.max_bulk ? request : std::string();
}

// The same arguments as one inline line, every byte written as a "\xHH" escape inside double
// quotes; empty when the line is longer than max_inline.
std::string inline_request(const std::vector<std::string>& args, const Limits& limits) {
    static const char kHex[] = "0123456789abcdef";
    std::string line;
    for (const std::string& arg : args) {
        if (!line.empty()) line.push_back(' ');
        line.push_back('"');
        for (const char c : arg) {
            const auto u = static_cast<unsigned char>(c);
            line += "\\x";
            line.push_back(kHex[u >> 4]);
            line.push_back(kHex[u & 15]);
        }
        line.push_back('"');
    }
    // The decoder looks for the "\n" within max_inline + 1 bytes, so with "\r\n" a line may have
    // max_inline - 1 bytes.
    if (args.empty() || line.size() + 1 > limits.max_inline) return {};
    return line + "\r\n";
}

// Reads back what RespProtocol::encode wrote: "$N\r\n", N bytes, "\r\n".
bool read_bulk_reply(std::string_view reply, std::string_view& payload) {
    if (reply.size() < 4 || reply[0] != '$') return false;
    const std::size_t cr = reply.find("\r\n");
    if (cr == std::string_view::npos) return false;
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(reply.data() + 1, reply.data() + cr, n);
    if (ec != std::errc{} || end != reply.data() + cr) return false;
    if (reply.size() != cr + 2 + n + 2 || reply.substr(cr + 2 + n) != "\r\n") return false;
    payload = reply.substr(cr + 2, n);
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fuzz::FuzzInput input(data, size);

    reactor::ProtocolConfig config;
    config.max_frame = input.max_frame(4096);
    Limits limits;
    limits.max_frame = config.max_frame;
    limits.max_bulk = std::min<std::size_t>(std::size_t{512} << 20, config.max_frame);
    limits.max_args = static_cast<std::size_t>(std::numeric_limits<int>::max());
    limits.max_inline = std::min<std::size_t>(std::size_t{64} << 10, config.max_frame);
    if (input.byte(2) != 0) config.options["max_bulk"] = limits.max_bulk = input.byte(2);
    if (input.byte(3) != 0) config.options["max_args"] = limits.max_args = input.byte(3);
    if (input.byte(4) != 0) config.options["max_inline"] = limits.max_inline = input.byte(4);

    std::shared_ptr<const reactor::ProtocolFactory> factory;
    try {
        factory = reactor::protocols::make_resp(config);
    } catch (const reactor::ConfigError&) {
        return 0;
    }

    fuzz::CodecRules rules;
    // A request's size is checked at each bulk header, so while a bulk header line is read there
    // may be a whole request's worth before it (max_frame plus max_bulk, or, at the first bulk,
    // the count line, which may pass a tiny max_frame), then one count line of at most max_inline
    // bytes and its "\r".
    rules.max_buffered =
        std::max(limits.max_frame + limits.max_bulk, limits.max_inline + 2) + limits.max_inline + 1;
    // Inline arguments are unquoted into the protocol's storage; multibulk ones are views.
    rules.args_may_be_owned = [](const reactor::Message& m) {
        return m.payload.empty() || m.payload.front() != '*';
    };
    rules.check_frame = [&](const fuzz::Captured& message, std::string_view frame) {
        FUZZ_CHECK(!message.args.empty(), "a request without arguments was delivered");
        if (!frame.empty() && frame.front() == '*') {
            FUZZ_CHECK(message.payload == frame, "a multibulk payload is not its whole request");
            FUZZ_CHECK(message.args.size() <= limits.max_args, "%zu arguments passed max_args %zu",
                       message.args.size(), limits.max_args);
            for (const std::string& arg : message.args) {
                FUZZ_CHECK(arg.size() <= limits.max_bulk, "a %zu-byte bulk passed max_bulk %zu",
                           arg.size(), limits.max_bulk);
            }
            FUZZ_CHECK(frame.size() <= limits.max_frame + limits.max_bulk,
                       "a %zu-byte request passed max_frame %zu plus max_bulk %zu", frame.size(),
                       limits.max_frame, limits.max_bulk);
            return;
        }
        FUZZ_CHECK(frame.back() == '\n', "an inline command '%s' without its line ending",
                   fuzz::printable(frame).c_str());
        std::string_view line = frame.substr(0, frame.size() - 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        FUZZ_CHECK(message.payload == line, "inline payload '%s' of line '%s'",
                   fuzz::printable(message.payload).c_str(), fuzz::printable(line).c_str());
        FUZZ_CHECK(line.size() <= limits.max_inline, "a %zu-byte inline line passed max_inline %zu",
                   line.size(), limits.max_inline);
        std::size_t arg_bytes = 0;
        for (const std::string& arg : message.args) arg_bytes += arg.size();
        FUZZ_CHECK(arg_bytes <= line.size(), "%zu argument bytes from a %zu-byte line", arg_bytes,
                   line.size());
    };

    const fuzz::FeedResult decoded = fuzz::check_decoding(*factory, input, rules);
    if (decoded.failed && !decoded.last_reply.empty()) {
        const std::string_view reply = decoded.last_reply;
        constexpr std::string_view kPrefix = "-ERR Protocol error: ";
        FUZZ_CHECK(reply.substr(0, kPrefix.size()) == kPrefix &&
                       reply.size() >= kPrefix.size() + 2 &&
                       reply.substr(reply.size() - 2) == "\r\n",
                   "error reply '%s' is not Redis's", fuzz::printable(reply).c_str());
        const std::string_view text = reply.substr(1, reply.size() - 3);
        FUZZ_CHECK(text.find_first_of("\r\n") == std::string_view::npos,
                   "error reply '%s' carries CR or LF", fuzz::printable(reply).c_str());
    }
    FUZZ_CHECK(decoded.reason.find_first_of("\r\n") == std::string::npos,
               "error reason '%s' carries CR or LF", fuzz::printable(decoded.reason).c_str());

    // Round trips: all pieces as one command in both forms, then each piece as a command.
    std::vector<std::string> pieces;
    for (const std::string_view piece : input.pieces()) pieces.emplace_back(piece);
    std::vector<std::pair<std::string, std::vector<std::string>>> requests;
    requests.emplace_back(multibulk_request(pieces, limits), pieces);
    requests.emplace_back(inline_request(pieces, limits), pieces);
    for (const std::string& piece : pieces) {
        requests.emplace_back(multibulk_request({piece}, limits), std::vector<std::string>{piece});
    }
    std::string encoded;
    std::vector<fuzz::Captured> expected;
    for (const auto& [request, args] : requests) {
        if (request.empty()) break;  // a limit refuses it: the decoder's answer is not predicted
        encoded += request;
        const bool is_inline = request.front() != '*';
        expected.push_back(
            fuzz::message_of(is_inline ? request.substr(0, request.size() - 2) : request, args));
    }
    fuzz::check_round_trip(*factory, encoded, expected, rules);

    const auto protocol = factory->create();
    for (const std::string& piece : pieces) {
        reactor::Buffer reply;
        reactor::FrameOutput out(reply);
        protocol->encode(piece, out);
        const std::string bytes = reply.to_string();
        std::string_view payload;
        FUZZ_CHECK(read_bulk_reply(bytes, payload) && payload == piece,
                   "encode('%s') wrote '%s', not a bulk string of it",
                   fuzz::printable(piece).c_str(), fuzz::printable(bytes).c_str());
    }
    return 0;
}
