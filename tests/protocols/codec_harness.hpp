#pragma once

// Socket-free codec testing: feed bytes to a Protocol through reactor::decode_all the way a
// connection does (whole, split at every point, byte by byte) and collect copies of what it
// delivers.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "buffer_internals.hpp"
#include "reactor/buffer.hpp"
#include "reactor/protocol.hpp"
#include "reactor/protocol_registry.hpp"
#include "resp.hpp"

namespace codec_test {

// A delivered message, copied out of views that are only valid during delivery.
struct Captured {
    std::string payload;
    std::vector<std::string> args;
    bool operator==(const Captured&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Captured& m) {
    os << "{payload=\"" << m.payload << "\" args=[";
    for (std::size_t i = 0; i < m.args.size(); ++i) os << (i ? "," : "") << '"' << m.args[i] << '"';
    return os << "]}";
}

inline std::string describe(const std::vector<Captured>& messages) {
    std::string out = std::to_string(messages.size()) + " messages:";
    for (const auto& m : messages) {
        out += "\n  {payload=\"" + m.payload + "\" args=[";
        for (std::size_t i = 0; i < m.args.size(); ++i)
            out += (i ? ",\"" : "\"") + m.args[i] + "\"";
        out += "]}";
    }
    return out;
}

inline Captured payload(std::string p) {
    return Captured{std::move(p), {}};
}
// A command's arguments; payload is left out of the comparison by with_args().
inline Captured command(std::vector<std::string> args) {
    return Captured{{}, std::move(args)};
}

class CapturingSink final : public reactor::MessageSink {
  public:
    void deliver(reactor::Message& message) override {
        Captured copy;
        copy.payload.assign(message.payload);
        if (const auto* command = message.get<reactor::protocols::RespCommand>()) {
            for (const auto arg : command->args) copy.args.emplace_back(arg);
        }
        messages.push_back(std::move(copy));
    }
    std::vector<Captured> messages;
};

struct FeedResult {
    std::vector<Captured> messages;
    bool failed = false;
    reactor::ProtocolError error;
    std::size_t fed_at_failure = 0;  // bytes handed to the protocol when it failed
    std::size_t left = 0;            // bytes still buffered at the end
    std::size_t largest_batch = 0;   // most messages delivered by a single decode_all call
};

// Appends each chunk, running decode_all after each, until the protocol fails. By default each
// chunk becomes its own buffer segment, so frames straddle segment boundaries. Locating an offset
// in a buffer walks its segments, so for thousands of tiny chunks pass separate_segments = false:
// the chunks are then copied into the buffer's last segment, as socket reads are. With borrow, a
// chunk that arrives at an empty buffer is lent to it in place (BufferInternals::lend), as a
// connection's small reads are, and what is left is kept after decoding; the lent memory is then
// overwritten, so a view that outlived it shows.
inline FeedResult feed_chunks(reactor::Protocol& protocol,
                              const std::vector<std::string_view>& chunks,
                              bool separate_segments = true, bool borrow = false) {
    FeedResult result;
    CapturingSink sink;
    reactor::Buffer in;
    std::size_t fed = 0;
    std::string lent;
    for (const auto chunk : chunks) {
        if (borrow && in.empty()) {
            lent.assign(chunk);
            reactor::BufferInternals::lend(in, lent);
        } else if (separate_segments) {
            reactor::Buffer segment;
            segment.append(chunk);
            in.append(segment);
        } else {
            in.append(chunk);
        }
        fed += chunk.size();
        const std::size_t before = sink.messages.size();
        const reactor::DecodeOutcome outcome = reactor::decode_all(protocol, in, sink);
        if (borrow) {
            reactor::BufferInternals::keep_lent(in);
            lent.assign(lent.size(), '#');
        }
        REQUIRE(outcome.messages == sink.messages.size() - before);
        result.largest_batch = std::max(result.largest_batch, outcome.messages);
        if (outcome.failed) {
            result.failed = true;
            result.error = outcome.error;
            result.fed_at_failure = fed;
            break;
        }
    }
    result.messages = std::move(sink.messages);
    result.left = in.size();
    return result;
}

inline FeedResult feed_whole(const reactor::ProtocolFactory& factory, std::string_view bytes,
                             bool borrow = false) {
    const auto protocol = factory.create();
    return feed_chunks(*protocol, {bytes}, true, borrow);
}

inline FeedResult feed_split(const reactor::ProtocolFactory& factory, std::string_view bytes,
                             std::size_t at, bool borrow = false) {
    const auto protocol = factory.create();
    return feed_chunks(*protocol, {bytes.substr(0, at), bytes.substr(at)}, true, borrow);
}

inline FeedResult feed_bytewise(const reactor::ProtocolFactory& factory, std::string_view bytes,
                                bool borrow = false) {
    std::vector<std::string_view> chunks;
    for (std::size_t i = 0; i < bytes.size(); ++i) chunks.push_back(bytes.substr(i, 1));
    const auto protocol = factory.create();
    return feed_chunks(*protocol, chunks, true, borrow);
}

// Drops payloads from the comparison where the expectation gives arguments only.
inline std::vector<Captured> comparable(std::vector<Captured> got,
                                        const std::vector<Captured>& expected) {
    for (std::size_t i = 0; i < got.size() && i < expected.size(); ++i) {
        if (expected[i].payload.empty() && !expected[i].args.empty()) got[i].payload.clear();
    }
    return got;
}

inline void check_delivers(const FeedResult& result, const std::vector<Captured>& expected,
                           const std::string& how) {
    INFO("fed " << how);
    CHECK_MESSAGE(!result.failed, "failed: " << result.error.reason);
    CHECK(result.left == 0);
    const auto got = comparable(result.messages, expected);
    CHECK_MESSAGE(got == expected, "got " << describe(got) << "\nexpected " << describe(expected));
}

// Feeds bytes whole, split at every point and byte by byte; each must deliver expected exactly,
// consume everything and not fail.
// What protocol.encode() writes for payload into a Buffer, checked to be what it appends to a
// string (a connection's output stage) as well, after what the string held.
inline std::string encoded(reactor::Protocol& protocol, std::string_view payload) {
    reactor::Buffer buffer;
    reactor::FrameOutput into_buffer(buffer);
    protocol.encode(payload, into_buffer);
    std::string staged = "kept:";
    reactor::FrameOutput into_string(staged);
    protocol.encode(payload, into_string);
    CHECK(staged == "kept:" + buffer.to_string());
    return buffer.to_string();
}

inline void check_all_feeds(const reactor::ProtocolFactory& factory, std::string_view bytes,
                            const std::vector<Captured>& expected) {
    for (const bool borrow : {false, true}) {
        const std::string how = borrow ? " (lent)" : "";
        check_delivers(feed_whole(factory, bytes, borrow), expected, "whole" + how);
        for (std::size_t at = 1; at < bytes.size(); ++at) {
            check_delivers(feed_split(factory, bytes, at, borrow), expected,
                           "split at " + std::to_string(at) + how);
        }
        check_delivers(feed_bytewise(factory, bytes, borrow), expected, "byte by byte" + how);
    }
}

// Builds a protocol through its builder, the way a listener does.
template <typename Builder>
auto build(Builder builder, nlohmann::json options = nlohmann::json::object(),
           std::size_t max_frame = 1 << 20) {
    reactor::ProtocolConfig config;
    config.options = std::move(options);
    config.max_frame = max_frame;
    return builder(config);
}

// The ConfigError a builder throws for these options; fails the test when it throws none.
template <typename Builder>
reactor::ConfigError config_error(Builder builder, nlohmann::json options,
                                  std::size_t max_frame = 1 << 20) {
    try {
        build(builder, std::move(options), max_frame);
    } catch (const reactor::ConfigError& e) {
        return e;
    }
    FAIL("no ConfigError thrown");
    return reactor::ConfigError("", "");
}

}  // namespace codec_test
