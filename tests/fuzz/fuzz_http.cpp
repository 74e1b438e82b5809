// Fuzz target for the "http" protocol (HTTP/1.1 requests through llhttp).
//
// Option bytes (see fuzz_input.hpp for the layout):
//   [2..3]  max_header_bytes = 256 + value % 4096 (left out when 0)
//   [4..5]  max_body = (value - 1) % (max_frame + 1) (left out when 0)
//   limit selector: max_frame = 1 + selector % 4096 (1 MiB when 0)
//
// Checks: the framing contract (codec_driver.hpp): target and header views point into the request
// that was consumed, only the method name and a chunked body live elsewhere; the body is at most
// max_body, the request line and headers at most max_header_bytes, a whole request at most
// 2 * (max_header_bytes + max_body); at most that much stays buffered; nothing is delivered after a
// request that ends the connection; at most one "100 Continue" per request; whole and chunked
// feeds agree. RFC 9112 rules on every delivered request: HTTP/1.x only; one Host in HTTP/1.1,
// at most one otherwise; "*" only for OPTIONS; Transfer-Encoding only in HTTP/1.1, and then
// exactly "chunked". Round trip: encode() writes a response that an HTTP response parser reads back
// with the payload as body (none after HEAD) and the Connection header the last request asked for.

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "codec_driver.hpp"
#include "fuzz_input.hpp"
#include "reactor/config_error.hpp"

namespace {

struct ParsedResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool complete = false;
    bool head = false;  // a reply to HEAD: no body follows its Content-Length

    std::string header(std::string_view name) const {
        for (const auto& [n, v] : headers) {
            if (reactor::protocols::ascii_iequals(n, name)) return v;
        }
        return {};
    }
};

ParsedResponse& response_of(llhttp_t* parser) {
    return *static_cast<ParsedResponse*>(parser->data);
}

// Parses one response with llhttp; false when it is not exactly one well-formed response.
bool parse_response(std::string_view bytes, ParsedResponse& out) {
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
        auto& r = response_of(p);
        if (r.headers.empty() || !r.headers.back().second.empty()) r.headers.emplace_back();
        r.headers.back().first.append(at, n);
        return 0;
    };
    settings.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
        response_of(p).headers.back().second.append(at, n);
        return 0;
    };
    settings.on_headers_complete = [](llhttp_t* p) {
        auto& r = response_of(p);
        r.status = p->status_code;
        return r.head ? 1 : 0;  // 1: no body, as after HEAD
    };
    settings.on_body = [](llhttp_t* p, const char* at, std::size_t n) {
        response_of(p).body.append(at, n);
        return 0;
    };
    settings.on_message_complete = [](llhttp_t* p) {
        response_of(p).complete = true;
        return static_cast<int>(HPE_PAUSED);
    };
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    parser.data = &out;
    const llhttp_errno_t status = llhttp_execute(&parser, bytes.data(), bytes.size());
    return status == HPE_PAUSED && out.complete &&
           llhttp_get_error_pos(&parser) == bytes.data() + bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fuzz::FuzzInput input(data, size);

    reactor::ProtocolConfig config;
    config.max_frame = input.max_frame(4096);
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body = std::min<std::size_t>(1024 * 1024, config.max_frame);
    if (input.word(2) != 0) {
        config.options["max_header_bytes"] = max_header_bytes = 256 + input.word(2) % 4096u;
    }
    if (input.word(4) != 0) {
        config.options["max_body"] = max_body = (input.word(4) - 1u) % (config.max_frame + 1);
    }

    std::shared_ptr<const reactor::ProtocolFactory> factory;
    try {
        factory = reactor::protocols::make_http(config);
    } catch (const reactor::ConfigError&) {
        return 0;
    }
    const std::size_t max_request = 2 * (max_header_bytes + max_body);

    fuzz::CodecRules rules;
    rules.max_buffered = max_request;
    rules.method_may_be_owned = true;   // llhttp's static method names
    rules.payload_may_be_owned = true;  // a chunked body, joined in the protocol's storage
    rules.check_frame = [&](const fuzz::Captured& message, std::string_view frame) {
        FUZZ_CHECK(message.is_http, "an HTTP message without its request");
        FUZZ_CHECK(message.payload.size() <= max_body, "a %zu-byte body passed max_body %zu",
                   message.payload.size(), max_body);
        std::size_t head = message.target.size();
        for (const auto& [name, value] : message.headers) head += name.size() + value.size();
        FUZZ_CHECK(head <= max_header_bytes, "%zu bytes of target and headers passed %zu", head,
                   max_header_bytes);
        FUZZ_CHECK(message.version_major == 1, "HTTP/%d.%d delivered", message.version_major,
                   message.version_minor);
        std::size_t hosts = 0;
        for (const auto& [name, value] : message.headers) {
            if (reactor::protocols::ascii_iequals(name, "Host")) ++hosts;
            if (reactor::protocols::ascii_iequals(name, "Transfer-Encoding")) {
                FUZZ_CHECK(message.version_minor >= 1, "Transfer-Encoding in HTTP/1.0 delivered");
                // A line may hold the list's empty elements only (RFC 9110 §5.6.1).
                std::string coding;
                for (const char c : value) {
                    if (c != ' ' && c != '\t' && c != ',') coding += c;
                }
                FUZZ_CHECK(coding.empty() || reactor::protocols::ascii_iequals(coding, "chunked"),
                           "Transfer-Encoding '%s' delivered", fuzz::printable(value).c_str());
            }
        }
        FUZZ_CHECK(hosts <= 1 && (hosts == 1 || message.version_minor == 0),
                   "%zu Host headers in HTTP/1.%d", hosts, message.version_minor);
        FUZZ_CHECK(message.target != "*" || message.method == "OPTIONS", "%s * delivered",
                   message.method.c_str());
        FUZZ_CHECK(frame.size() <= max_request, "a %zu-byte request passed %zu", frame.size(),
                   max_request);
    };

    const fuzz::FeedResult whole = fuzz::check_decoding(*factory, input, rules);
    for (std::size_t i = 0; i + 1 < whole.messages.size(); ++i) {
        FUZZ_CHECK(whole.messages[i].keep_alive, "request %zu came after one that closes", i + 1);
    }
    // A request that does not keep the connection ends it, in order, and only such a request.
    FUZZ_CHECK(whole.ended == (!whole.messages.empty() && !whole.messages.back().keep_alive),
               "the stream %s after a request that %s the connection",
               whole.ended ? "ended" : "went on",
               !whole.messages.empty() && !whole.messages.back().keep_alive ? "ends" : "keeps");
    FUZZ_CHECK(whole.interim_replies <= whole.messages.size() + 1,
               "%zu interim replies for %zu requests", whole.interim_replies,
               whole.messages.size());

    // Round trip: the replies encode() writes after the stream's last request.
    const auto protocol = factory->create();
    {
        reactor::Buffer in;
        in.append(input.stream());
        fuzz::CountingSink sink;
        reactor::decode_all(*protocol, in, sink);
    }
    const fuzz::Captured* last = whole.messages.empty() ? nullptr : &whole.messages.back();
    for (const std::string_view payload : input.pieces()) {
        std::string bytes;
        reactor::FrameOutput out(bytes);
        protocol->encode(payload, out);
        ParsedResponse response;
        response.head = last != nullptr && last->method == "HEAD";
        FUZZ_CHECK(parse_response(bytes, response), "encode() wrote no single response: '%s'",
                   fuzz::printable(bytes).c_str());
        FUZZ_CHECK(response.status == 200, "encode() wrote status %d", response.status);
        FUZZ_CHECK(response.header("Content-Length") == std::to_string(payload.size()),
                   "Content-Length '%s' for a %zu-byte payload",
                   response.header("Content-Length").c_str(), payload.size());
        FUZZ_CHECK(response.body == (response.head ? std::string_view() : payload),
                   "the response body is not the payload");
        std::string connection = "";
        if (last != nullptr && !last->keep_alive) {
            connection = "close";
        } else if (last != nullptr && last->version_major == 1 && last->version_minor == 0) {
            connection = "keep-alive";
        }
        FUZZ_CHECK(response.header("Connection") == connection,
                   "Connection '%s' where the last request wants '%s'",
                   response.header("Connection").c_str(), connection.c_str());
    }
    return 0;
}
