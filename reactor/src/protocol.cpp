#include "reactor/protocol.hpp"

#include <cassert>
#include <stdexcept>
#include <utility>

#include "decode_frames.hpp"

namespace reactor {

namespace {
// Counts deliveries for decode_all's callers.
class CountingSink final : public MessageSink {
  public:
    explicit CountingSink(MessageSink& inner) : inner_(inner) {}
    void deliver(Message& message) override {
        ++count;
        inner_.deliver(message);
    }
    bool accepting() const override { return inner_.accepting(); }
    void write_interim(std::string_view bytes) override { inner_.write_interim(bytes); }
    void switch_protocol(std::unique_ptr<Protocol> next) override {
        inner_.switch_protocol(std::move(next));
    }
    std::size_t count = 0;

  private:
    MessageSink& inner_;
};

}  // namespace

const ProtocolError& Decoded::no_error() {
    static const ProtocolError none;
    return none;
}

void MessageSink::switch_protocol(std::unique_ptr<Protocol> next) {
    (void)next;
    throw std::logic_error("this message sink has no connection whose protocol could switch");
}

DecodeOutcome decode_frames(Protocol& protocol, Buffer& in, MessageSink& out) {
    DecodeOutcome outcome;
    std::size_t before = in.size();
    while (before != 0 && out.accepting()) {
        const Decoded result = protocol.decode(in, out);
        if (result.status() == Decoded::Status::error) {
            outcome.failed = true;
            outcome.error = result.error();
            break;
        }
        if (result.status() == Decoded::Status::need_more) break;
        if (result.status() == Decoded::Status::last_frame) {
            // Nothing is decoded after it, so even a last frame that consumed nothing ends here.
            outcome.last_frame = true;
            break;
        }
        const std::size_t after = in.size();
        if (after >= before) {
            // The framing contract says a frame consumes input; looping again would never end.
            assert(!"Protocol::decode returned frame() without consuming input");
            outcome.failed = true;
            outcome.error.reason = "decoder made no progress";
            break;
        }
        before = after;
    }
    return outcome;
}

DecodeOutcome decode_all(Protocol& protocol, Buffer& in, MessageSink& out) {
    CountingSink sink(out);
    DecodeOutcome outcome = decode_frames(protocol, in, sink);
    outcome.messages = sink.count;
    return outcome;
}

DecodeOutcome decode_eof(Protocol& protocol, Buffer& in, MessageSink& out) {
    DecodeOutcome outcome = decode_all(protocol, in, out);
    if (outcome.failed || outcome.last_frame || !out.accepting()) return outcome;
    CountingSink sink(out);
    const Decoded result = protocol.decode_eof(in, sink);
    outcome.messages += sink.count;
    if (result.status() == Decoded::Status::error) {
        outcome.failed = true;
        outcome.error = result.error();
    }
    outcome.last_frame = result.status() == Decoded::Status::last_frame;
    return outcome;
}

}  // namespace reactor
