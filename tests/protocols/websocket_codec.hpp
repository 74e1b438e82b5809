#pragma once

// Socket-free WebSocket codec testing: client frames built by hand, fed to the protocol through
// reactor::decode_all in any chunking, and a transcript of what it delivered and answered.

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/buffer.hpp"
#include "reactor/protocol.hpp"
#include "websocket.hpp"
#include "websocket_frame.hpp"

namespace ws_test {

using reactor::protocols::WebSocketOpcode;
using reactor::protocols::WebSocketSettings;

// A client frame: masked unless told otherwise; length_code forces the 7-bit length field
// (126/127 with the matching extended length) where a test needs a non-minimal encoding.
struct FrameSpec {
    std::uint8_t opcode = 1;
    std::string payload;
    bool fin = true;
    bool masked = true;
    std::uint8_t rsv = 0;
};

inline std::string client_frame(const FrameSpec& spec) {
    static constexpr std::uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
    std::string out;
    out.push_back(static_cast<char>((spec.fin ? 0x80 : 0) | (spec.rsv << 4) | spec.opcode));
    const std::uint64_t n = spec.payload.size();
    const char mask_bit = spec.masked ? static_cast<char>(0x80) : 0;
    if (n < 126) {
        out.push_back(static_cast<char>(mask_bit | static_cast<char>(n)));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    if (!spec.masked) return out + spec.payload;
    for (const std::uint8_t m : kMask) out.push_back(static_cast<char>(m));
    for (std::size_t i = 0; i < spec.payload.size(); ++i) {
        out.push_back(static_cast<char>(spec.payload[i] ^ static_cast<char>(kMask[i % 4])));
    }
    return out;
}

inline std::string text(std::string payload, bool fin = true) {
    return client_frame({1, std::move(payload), fin});
}
inline std::string binary(std::string payload, bool fin = true) {
    return client_frame({2, std::move(payload), fin});
}
inline std::string continuation(std::string payload, bool fin = true) {
    return client_frame({0, std::move(payload), fin});
}
inline std::string ping(std::string payload) {
    return client_frame({9, std::move(payload)});
}
inline std::string pong(std::string payload) {
    return client_frame({10, std::move(payload)});
}
inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
    std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    return p + std::string(reason);
}
inline std::string close(std::string payload) {
    return client_frame({8, std::move(payload)});
}

// A server frame written by the codec, as one transcript entry: "pong:<payload>",
// "close:<code>" (close: for an empty one), "opcode N:<payload>".
inline std::string describe_server_frame(std::string_view bytes) {
    REQUIRE(bytes.size() >= 2);
    const auto b0 = static_cast<std::uint8_t>(bytes[0]);
    const auto b1 = static_cast<std::uint8_t>(bytes[1]);
    CHECK((b0 & 0x80) != 0);  // FIN
    CHECK((b1 & 0x80) == 0);  // a server never masks
    std::size_t at = 2;
    std::uint64_t n = b1 & 0x7F;
    if (n == 126) {
        n = (static_cast<std::uint8_t>(bytes[2]) << 8) | static_cast<std::uint8_t>(bytes[3]);
        at = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<std::uint8_t>(bytes[2 + i]);
        at = 10;
    }
    REQUIRE(bytes.size() == at + n);
    const std::string_view payload = bytes.substr(at);
    switch (b0 & 0x0F) {
        case 0xA:
            return "pong:" + std::string(payload);
        case 0x8:
            if (payload.size() < 2) return "close:";
            return "close:" + std::to_string((static_cast<std::uint8_t>(payload[0]) << 8) |
                                             static_cast<std::uint8_t>(payload[1]));
        default:
            return "opcode " + std::to_string(b0 & 0x0F) + ":" + std::string(payload);
    }
}

class TranscriptSink final : public reactor::MessageSink {
  public:
    void deliver(reactor::Message& message) override {
        const auto* detail = message.get<reactor::protocols::WebSocketMessage>();
        REQUIRE(detail != nullptr);
        events.push_back((detail->is_text() ? "text:" : "binary:") + std::string(message.payload));
    }
    void write_interim(std::string_view bytes) override {
        if (bytes.rfind("HTTP/", 0) == 0) {  // the handshake's answer: its status line
            events.push_back("http:" + std::string(bytes.substr(0, bytes.find('\r'))));
            handshake.assign(bytes);
            return;
        }
        events.push_back(describe_server_frame(bytes));
    }
    std::vector<std::string> events;
    std::string handshake;
};

struct Result {
    std::vector<std::string> events;
    bool failed = false;
    int close_code = 0;  // of the last reply to a failure; -1 without one
    std::string reason;
    bool last_frame = false;
    std::size_t fed = 0;  // bytes handed over before the protocol failed or ended
    std::size_t left = 0;
    std::string handshake;  // the whole 101 response, when one was written
    std::string last_reply;

    bool operator==(const Result& o) const {
        return events == o.events && failed == o.failed && close_code == o.close_code &&
               last_frame == o.last_frame;
    }
};

inline std::string describe(const Result& r) {
    std::string out = r.failed ? "failed " + std::to_string(r.close_code) + " (" + r.reason + ")"
                               : (r.last_frame ? "ended" : "open");
    out += ", events:";
    for (const auto& e : r.events) out += "\n  " + (e.size() > 80 ? e.substr(0, 80) + "..." : e);
    return out;
}

inline WebSocketSettings default_settings() {
    return WebSocketSettings{};
}

inline Result feed(const std::vector<std::string_view>& chunks,
                   const WebSocketSettings& settings = default_settings(),
                   bool handshake_first = false) {
    const auto protocol = reactor::protocols::make_websocket_protocol(settings, handshake_first);
    TranscriptSink sink;
    reactor::Buffer in;
    Result result;
    for (const auto chunk : chunks) {
        reactor::Buffer segment;
        segment.append(chunk);
        in.append(segment);
        result.fed += chunk.size();
        const reactor::DecodeOutcome outcome = reactor::decode_all(*protocol, in, sink);
        if (outcome.failed) {
            result.failed = true;
            result.reason = outcome.error.reason;
            const std::string& reply = outcome.error.last_reply;
            result.last_reply = reply;
            if (reply.empty()) {
                result.close_code = -1;
            } else if (handshake_first && reply.rfind("HTTP/", 0) == 0) {
                result.close_code = std::stoi(reply.substr(9, 3));  // the HTTP status
            } else {
                const std::string entry = describe_server_frame(reply);
                REQUIRE(entry.rfind("close:", 0) == 0);
                result.close_code = entry.size() > 6 ? std::stoi(entry.substr(6)) : 0;
            }
            break;
        }
        if (outcome.last_frame) {
            result.last_frame = true;
            break;
        }
    }
    result.events = std::move(sink.events);
    result.handshake = std::move(sink.handshake);
    result.left = in.size();
    return result;
}

inline Result feed_whole(std::string_view bytes, const WebSocketSettings& s = default_settings()) {
    return feed({bytes}, s);
}

// Feeds bytes whole, split at every point (up to max_splits of them, spread over the input) and
// byte by byte (when short enough); every way must give the same result, which is returned.
inline Result feed_every_way(std::string_view bytes,
                             const WebSocketSettings& s = default_settings(),
                             std::size_t max_splits = 300) {
    const Result whole = feed_whole(bytes, s);
    const std::size_t step = bytes.size() <= max_splits ? 1 : bytes.size() / max_splits;
    for (std::size_t at = 1; at < bytes.size(); at += step) {
        const Result split = feed({bytes.substr(0, at), bytes.substr(at)}, s);
        CHECK_MESSAGE(split == whole, "split at " << at << ": " << describe(split)
                                                  << "\nwhole: " << describe(whole));
    }
    if (bytes.size() <= 4096) {
        std::vector<std::string_view> chunks;
        for (std::size_t i = 0; i < bytes.size(); ++i) chunks.push_back(bytes.substr(i, 1));
        const Result bytewise = feed(chunks, s);
        CHECK_MESSAGE(bytewise == whole,
                      "byte by byte: " << describe(bytewise) << "\nwhole: " << describe(whole));
    }
    return whole;
}

// Expects bytes, fed every way, to deliver events and stay open with nothing left over.
inline void check_delivers(std::string_view bytes, const std::vector<std::string>& events,
                           const WebSocketSettings& s = default_settings()) {
    const Result r = feed_every_way(bytes, s);
    CHECK_MESSAGE(!r.failed, describe(r));
    CHECK(!r.last_frame);
    CHECK(r.left == 0);
    CHECK(r.events == events);
}

// Expects bytes, fed every way, to fail with close code `code` after events.
inline void check_fails(std::string_view bytes, int code,
                        const std::vector<std::string>& events = {},
                        const WebSocketSettings& s = default_settings()) {
    const Result r = feed_every_way(bytes, s);
    CHECK_MESSAGE(r.failed, describe(r));
    CHECK(r.close_code == code);
    CHECK(r.events == events);
}

// Expects bytes to end the conversation in order (a close answered) after events.
inline void check_ends(std::string_view bytes, const std::vector<std::string>& events) {
    const Result r = feed_every_way(bytes);
    CHECK_MESSAGE(!r.failed, describe(r));
    CHECK(r.last_frame);
    CHECK(r.events == events);
}

}  // namespace ws_test
