// Fuzz target for the "websocket" protocol: frames and, with option bit 0, the HTTP handshake
// before them, fed in chunks.
//
// Input: [0] options: bit 0 handshake first; bits 1-2 max_message 125, 4096, 65536 or 16 MiB;
//        [1] chunk size: 1 + [1] bytes per feed (1 to 256); the rest is the client's stream.
//
// Checks: nothing the client sends crashes or leaks; a delivered message is never larger than
// max_message and a text message is valid UTF-8; a failure carries a reason; what the decoder
// keeps buffered stays within a frame header plus the handshake limit; after a failure or the
// close nothing more is decoded.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_input.hpp"
#include "reactor/buffer.hpp"
#include "reactor/protocol.hpp"
#include "websocket.hpp"
#include "websocket_utf8.hpp"

namespace {

class CheckingSink final : public reactor::MessageSink {
  public:
    explicit CheckingSink(std::size_t max_message) : max_message_(max_message) {}
    void deliver(reactor::Message& message) override {
        const auto* detail = message.get<reactor::protocols::WebSocketMessage>();
        FUZZ_CHECK(detail != nullptr, "a websocket message has its detail");
        FUZZ_CHECK(message.payload.size() <= max_message_, "message %zu > max_message %zu",
                   message.payload.size(), max_message_);
        if (detail->is_text()) {
            reactor::protocols::Utf8Validator utf8;
            FUZZ_CHECK(utf8.feed(message.payload) && utf8.complete(), "text is UTF-8");
        }
    }
    void write_interim(std::string_view) override {}

  private:
    std::size_t max_message_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    static constexpr std::size_t kLimits[] = {125, 4096, 65536, 16 << 20};
    reactor::protocols::WebSocketSettings settings;
    settings.max_message = kLimits[(data[0] >> 1) & 3];
    settings.max_frame = settings.max_message;
    const bool handshake_first = (data[0] & 1) != 0;
    const std::size_t chunk = 1 + data[1];
    std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

    auto protocol = reactor::protocols::make_websocket_protocol(settings, handshake_first);
    CheckingSink sink(settings.max_message);
    reactor::Buffer in;
    bool ended = false;
    while (!stream.empty() && !ended) {
        const std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        in.append(piece);
        const reactor::DecodeOutcome outcome = reactor::decode_all(*protocol, in, sink);
        if (outcome.failed) {
            FUZZ_CHECK(!outcome.error.reason.empty(), "a failure says why");
            ended = true;
        }
        if (outcome.last_frame) ended = true;
        // A frame's payload is consumed as it arrives: only a header (at most 14 bytes) or the
        // handshake (at most max_handshake) waits in the input.
        FUZZ_CHECK(ended || in.size() <= settings.max_handshake + 14, "%zu bytes buffered",
                   in.size());
    }
    return 0;
}
