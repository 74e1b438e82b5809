#pragma once

// Drives a Protocol the way a connection does (append what was read, decode until need_more, then
// decode_eof at the end; nothing after a last frame) and checks the framing contract on every
// decode call:
//  - a call consumes at most what is buffered; frame() consumes something, need_more() consumes
//    and delivers nothing, and a call delivers at most one message;
//  - every view of a delivered message lies inside the bytes that call consumed, and its bytes are
//    those of the input at that place; only views a codec documents as its own storage (RESP's
//    unquoted inline arguments, HTTP's method name and chunked body) may point elsewhere, and then
//    they are no longer than what the call consumed;
//  - when a call returns need_more(), no more than a bounded number of bytes is buffered (frame
//    limits are enforced fail-fast, not once the frame is complete).
// The same input is fed whole and in chunks; both must deliver the same messages and agree on
// whether the protocol failed.

#include <event2/buffer.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "buffer_internals.hpp"
#include "fuzz_input.hpp"
#include "http.hpp"
#include "reactor/buffer.hpp"
#include "reactor/message.hpp"
#include "reactor/protocol.hpp"
#include "resp.hpp"

namespace fuzz {

// A delivered message, copied out of views that are only valid during delivery.
struct Captured {
    std::string payload;
    std::vector<std::string> args;
    bool is_http = false;
    std::string method;
    std::string target;
    int version_major = 0;
    int version_minor = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    bool keep_alive = false;
    bool operator==(const Captured&) const = default;
};

// A plain message: a payload and, for commands, arguments.
inline Captured message_of(std::string payload, std::vector<std::string> args = {}) {
    Captured m;
    m.payload = std::move(payload);
    m.args = std::move(args);
    return m;
}

inline std::string describe(const Captured& m) {
    std::string out = "{payload=\"" + printable(m.payload) + "\"";
    if (!m.args.empty()) {
        out += " args=[";
        for (std::size_t i = 0; i < m.args.size(); ++i) {
            out += (i ? ",\"" : "\"") + printable(m.args[i]) + "\"";
        }
        out += "]";
    }
    if (m.is_http) {
        out += " " + m.method + " \"" + printable(m.target) + "\" HTTP/" +
               std::to_string(m.version_major) + "." + std::to_string(m.version_minor) + " " +
               std::to_string(m.headers.size()) + " headers" +
               (m.keep_alive ? " keep-alive" : " close");
    }
    return out + "}";
}

// What a codec promises beyond the contract, checked by the driver.
struct CodecRules {
    // Most bytes that may stay buffered when decode() returns need_more().
    std::size_t max_buffered = 0;
    // Views that may point into the protocol's own storage rather than the input.
    std::function<bool(const reactor::Message&)> args_may_be_owned;
    bool payload_may_be_owned = false;
    bool method_may_be_owned = false;
    // Further checks of one delivered message against the exact bytes its decode call consumed.
    std::function<void(const Captured& message, std::string_view consumed)> check_frame;
};

struct FeedResult {
    std::vector<Captured> messages;
    bool failed = false;
    bool failed_at_eof = false;
    bool ended = false;  // a call returned last_frame(): a connection decodes nothing more
    std::string reason;
    std::string last_reply;
    std::size_t consumed = 0;  // bytes drained from the front of the stream
    std::size_t left = 0;      // bytes still buffered at the end
    std::size_t interim_replies = 0;
};

namespace detail {

// The segments of a buffer, to tell where a view points.
class BufferMap {
  public:
    explicit BufferMap(reactor::Buffer& buffer) {
        auto* handle = reactor::BufferInternals::storage(buffer);
        const int n = evbuffer_peek(handle, -1, nullptr, nullptr, 0);
        if (n <= 0) {
            // Lent bytes (BufferInternals::lend) are the whole content while the evbuffer is empty.
            const std::string_view lent = buffer.contiguous_front();
            if (!lent.empty()) segments_.push_back({const_cast<char*>(lent.data()), lent.size()});
            return;
        }
        segments_.resize(static_cast<std::size_t>(n));
        evbuffer_peek(handle, -1, nullptr, segments_.data(), n);
    }

    // The offset from the buffer's front of [data, data + size), when it lies inside one segment.
    bool locate(const char* data, std::size_t size, std::size_t& offset) const {
        const auto p = reinterpret_cast<std::uintptr_t>(data);
        std::size_t front = 0;
        for (const evbuffer_iovec& s : segments_) {
            const auto base = reinterpret_cast<std::uintptr_t>(s.iov_base);
            if (p >= base && p - base <= s.iov_len && size <= s.iov_len - (p - base)) {
                offset = front + (p - base);
                return true;
            }
            front += s.iov_len;
        }
        return false;
    }

  private:
    std::vector<evbuffer_iovec> segments_;
};

class CheckingSink final : public reactor::MessageSink {
  public:
    CheckingSink(reactor::Buffer& in, std::string_view stream, const CodecRules& rules)
        : in_(in), stream_(stream), rules_(rules) {}

    void begin_call(std::size_t front) {
        front_ = front;
        delivered_ = false;
        input_end_ = 0;
        owned_size_ = 0;
    }

    void deliver(reactor::Message& message) override {
        FUZZ_CHECK(!delivered_, "a decode call delivered a second message");
        delivered_ = true;
        const BufferMap map(in_);
        Captured copy;
        copy.payload = place(map, message.payload, rules_.payload_may_be_owned, "payload");
        if (const auto* command = message.get<reactor::protocols::RespCommand>()) {
            const bool owned = rules_.args_may_be_owned && rules_.args_may_be_owned(message);
            for (const std::string_view arg : command->args) {
                copy.args.push_back(place(map, arg, owned, "argument"));
            }
        }
        if (const auto* request = message.get<reactor::protocols::HttpRequest>()) {
            const reactor::protocols::HttpRequest& r = *request;
            copy.is_http = true;
            copy.method = place(map, r.method, rules_.method_may_be_owned, "method");
            copy.target = place(map, r.target, false, "target");
            copy.version_major = r.version_major;
            copy.version_minor = r.version_minor;
            for (const reactor::protocols::HttpHeader& h : r.headers) {
                copy.headers.emplace_back(place(map, h.name, false, "header name"),
                                          place(map, h.value, false, "header value"));
            }
            copy.keep_alive = r.keep_alive;
            FUZZ_CHECK(
                r.body.data() == message.payload.data() && r.body.size() == message.payload.size(),
                "an HTTP message's payload is not its body");
        }
        messages.push_back(std::move(copy));
    }

    void write_interim(std::string_view bytes) override {
        FUZZ_CHECK(bytes == "HTTP/1.1 100 Continue\r\n\r\n", "unexpected interim reply '%s'",
                   printable(bytes).c_str());
        ++interim_replies;
    }

    // After the call returned, having consumed `consumed` bytes.
    void end_call(std::size_t consumed) {
        if (!delivered_) return;
        FUZZ_CHECK(input_end_ <= consumed,
                   "a view reaches byte %zu of the input, but the call consumed only %zu",
                   input_end_, consumed);
        FUZZ_CHECK(owned_size_ <= consumed,
                   "an owned view of %zu bytes came from a call that consumed only %zu",
                   owned_size_, consumed);
        if (rules_.check_frame)
            rules_.check_frame(messages.back(), stream_.substr(front_, consumed));
    }

    bool delivered() const { return delivered_; }

    std::vector<Captured> messages;
    std::size_t interim_replies = 0;

  private:
    std::string place(const BufferMap& map, std::string_view view, bool may_be_owned,
                      const char* what) {
        if (view.empty()) return {};
        std::size_t offset = 0;
        if (map.locate(view.data(), view.size(), offset)) {
            input_end_ = std::max(input_end_, offset + view.size());
            FUZZ_CHECK(front_ + offset + view.size() <= stream_.size() &&
                           stream_.substr(front_ + offset, view.size()) == view,
                       "the %s's bytes differ from the input at its place", what);
        } else {
            FUZZ_CHECK(may_be_owned, "the %s '%s' points outside the input buffer", what,
                       printable(view).c_str());
            owned_size_ = std::max(owned_size_, view.size());
        }
        return std::string(view);
    }

    reactor::Buffer& in_;
    std::string_view stream_;
    const CodecRules& rules_;
    std::size_t front_ = 0;
    bool delivered_ = false;
    std::size_t input_end_ = 0;
    std::size_t owned_size_ = 0;
};

}  // namespace detail

// Feeds the chunks (which together are `stream`) to a fresh protocol, checking every call. With
// lend, a chunk that arrives at an empty buffer is lent to it in place, as a connection's small
// reads are (BufferInternals::lend), kept when the decode calls for it are done, and its memory
// then overwritten.
inline FeedResult feed_checked(reactor::Protocol& protocol, std::string_view stream,
                               const std::vector<std::string_view>& chunks, bool separate_segments,
                               const CodecRules& rules, bool lend = false) {
    FeedResult result;
    reactor::Buffer in;
    detail::CheckingSink sink(in, stream, rules);
    std::size_t appended = 0;

    // One decode or decode_eof call with its checks; false once the protocol failed.
    const auto call = [&](bool at_eof, reactor::Decoded::Status& status) {
        const std::size_t before = in.size();
        sink.begin_call(appended - before);
        const reactor::Decoded decoded =
            at_eof ? protocol.decode_eof(in, sink) : protocol.decode(in, sink);
        const std::size_t after = in.size();
        FUZZ_CHECK(after <= before, "decode grew the input from %zu to %zu bytes", before, after);
        const std::size_t consumed = before - after;
        sink.end_call(consumed);
        result.consumed += consumed;
        status = decoded.status();
        switch (status) {
            case reactor::Decoded::Status::frame:
                FUZZ_CHECK(consumed > 0 || at_eof, "frame() without consuming input");
                return true;
            case reactor::Decoded::Status::last_frame:
                FUZZ_CHECK(consumed > 0 || at_eof, "last_frame() without consuming input");
                result.ended = true;
                return true;
            case reactor::Decoded::Status::need_more:
                FUZZ_CHECK(consumed == 0 && !sink.delivered(),
                           "need_more() after consuming %zu bytes or delivering", consumed);
                FUZZ_CHECK(at_eof || after <= rules.max_buffered,
                           "need_more() with %zu bytes buffered, limit %zu (not fail-fast)", after,
                           rules.max_buffered);
                return true;
            case reactor::Decoded::Status::error:
                FUZZ_CHECK(!sink.delivered(), "a call both delivered and failed");
                result.failed = true;
                result.failed_at_eof = at_eof;
                result.reason = decoded.error().reason;
                result.last_reply = decoded.error().last_reply;
                return false;
        }
        return false;
    };

    std::string lent;
    for (const std::string_view chunk : chunks) {
        if (lend && in.empty()) {
            lent.assign(chunk);
            reactor::BufferInternals::lend(in, lent);
        } else if (separate_segments) {
            reactor::Buffer segment;
            segment.append(chunk);
            in.append(segment);
        } else {
            in.append(chunk);
        }
        appended += chunk.size();
        reactor::Decoded::Status status = reactor::Decoded::Status::frame;
        while (!in.empty() && status == reactor::Decoded::Status::frame) {
            if (!call(false, status)) break;
        }
        if (lend) {
            reactor::BufferInternals::keep_lent(in);
            lent.assign(lent.size(), '\xee');
        }
        if (result.failed || result.ended) break;
    }
    if (!result.failed && !result.ended) {
        reactor::Decoded::Status status{};
        call(true, status);
    }
    result.messages = std::move(sink.messages);
    result.left = in.size();
    result.interim_replies = sink.interim_replies;
    return result;
}

// Counts what reactor::decode_all and reactor::decode_eof deliver, the loop connections run.
class CountingSink final : public reactor::MessageSink {
  public:
    void deliver(reactor::Message&) override { ++messages; }
    std::size_t messages = 0;
};

inline void compare(const FeedResult& a, const char* a_name, const FeedResult& b,
                    const char* b_name) {
    const std::size_t n = std::min(a.messages.size(), b.messages.size());
    for (std::size_t i = 0; i < n; ++i) {
        FUZZ_CHECK(a.messages[i] == b.messages[i], "message %zu: fed %s %s, fed %s %s", i, a_name,
                   describe(a.messages[i]).c_str(), b_name, describe(b.messages[i]).c_str());
    }
    FUZZ_CHECK(a.messages.size() == b.messages.size(), "fed %s: %zu messages, fed %s: %zu", a_name,
               a.messages.size(), b_name, b.messages.size());
    FUZZ_CHECK(a.ended == b.ended, "fed %s: %s, fed %s: %s", a_name,
               a.ended ? "ended" : "not ended", b_name, b.ended ? "ended" : "not ended");
    FUZZ_CHECK(a.failed == b.failed, "fed %s: %s, fed %s: %s", a_name,
               a.failed ? ("failed (" + a.reason + ")").c_str() : "ok", b_name,
               b.failed ? ("failed (" + b.reason + ")").c_str() : "ok");
    if (!a.failed) {
        FUZZ_CHECK(a.consumed == b.consumed, "fed %s consumed %zu bytes, fed %s %zu", a_name,
                   a.consumed, b_name, b.consumed);
    }
}

// Decodes the input's stream whole and in the input's chunks, checking the contract and the
// codec's rules on each, and that both agree; returns the result of the whole feed.
inline FeedResult check_decoding(const reactor::ProtocolFactory& factory, const FuzzInput& input,
                                 const CodecRules& rules) {
    const std::string_view stream = input.stream();
    const FeedResult whole = feed_checked(*factory.create(), stream, {stream}, false, rules);

    // The framework's own loop agrees with the checked one.
    {
        const auto protocol = factory.create();
        reactor::Buffer in;
        in.append(stream);
        CountingSink sink;
        const reactor::DecodeOutcome outcome = reactor::decode_eof(*protocol, in, sink);
        FUZZ_CHECK(outcome.messages == sink.messages, "decode_eof miscounted its messages");
        FUZZ_CHECK(outcome.last_frame == whole.ended, "reactor::decode_eof %s, the checked loop %s",
                   outcome.last_frame ? "ended" : "did not end", whole.ended ? "ended" : "did not");
        FUZZ_CHECK(sink.messages == whole.messages.size() && outcome.failed == whole.failed,
                   "reactor::decode_eof: %zu messages%s; the checked loop: %zu%s", sink.messages,
                   outcome.failed ? " and failed" : "", whole.messages.size(),
                   whole.failed ? " and failed" : "");
    }

    const FeedResult split =
        feed_checked(*factory.create(), stream, input.chunks(), input.separate_segments(), rules);
    compare(whole, "whole", split, "in chunks");
    const FeedResult lent = feed_checked(*factory.create(), stream, input.chunks(), false, rules,
                                         /*lend=*/true);
    compare(whole, "whole", lent, "in lent chunks");
    return whole;
}

// Feeds bytes a codec's encode() produced, whole and split in the middle, and checks that they
// decode to exactly `expected` (payload and arguments), consuming everything without failing.
inline void check_round_trip(const reactor::ProtocolFactory& factory, std::string_view encoded,
                             const std::vector<Captured>& expected, const CodecRules& rules) {
    const std::size_t middle = encoded.size() / 2;
    for (const auto& chunks :
         {std::vector<std::string_view>{encoded},
          std::vector<std::string_view>{encoded.substr(0, middle), encoded.substr(middle)}}) {
        const FeedResult got = feed_checked(*factory.create(), encoded, chunks, true, rules);
        FUZZ_CHECK(!got.failed, "encoded frames failed to decode: %s", got.reason.c_str());
        FUZZ_CHECK(got.consumed == encoded.size(), "%zu of %zu encoded bytes consumed",
                   got.consumed, encoded.size());
        for (std::size_t i = 0; i < std::min(got.messages.size(), expected.size()); ++i) {
            FUZZ_CHECK(got.messages[i].payload == expected[i].payload &&
                           got.messages[i].args == expected[i].args,
                       "round trip %zu: encoded %s, decoded %s", i, describe(expected[i]).c_str(),
                       describe(got.messages[i]).c_str());
        }
        FUZZ_CHECK(got.messages.size() == expected.size(), "encoded %zu messages, decoded %zu",
                   expected.size(), got.messages.size());
    }
}

}  // namespace fuzz
