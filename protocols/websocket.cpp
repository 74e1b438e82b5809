#include "websocket.hpp"

#include <algorithm>
#include <stdexcept>

#include "builtin.hpp"
#include "http.hpp"
#include "options.hpp"
#include "websocket_frame.hpp"
#include "websocket_handshake.hpp"
#include "websocket_utf8.hpp"

namespace reactor::protocols {

namespace {

// A message's buffer is given back after a message larger than this.
constexpr std::size_t kKeptCapacity = 64 * 1024;

// Reads the HTTP upgrade request in front of the frames: the http codec delivers it here, and
// the answer is decided while its views are valid.
class HandshakeSink final : public MessageSink {
  public:
    HandshakeSink(MessageSink& outer, const WebSocketSettings& settings)
        : outer_(outer), settings_(settings) {}

    void deliver(Message& message) override {
        const auto* request = message.get<HttpRequest>();
        if (request == nullptr) return;
        WebSocketHandshake handshake = check_websocket_handshake(*request, settings_.subprotocols);
        answer = handshake.response.to_string();
        accepted = handshake.accepted;
        error = std::move(handshake.error);
        answered = true;
    }
    bool accepting() const override { return outer_.accepting(); }
    void write_interim(std::string_view bytes) override { outer_.write_interim(bytes); }

    bool answered = false;
    bool accepted = false;
    std::string answer;
    std::string error;

  private:
    MessageSink& outer_;
    const WebSocketSettings& settings_;
};

class WebSocketProtocol final : public Protocol {
  public:
    WebSocketProtocol(const WebSocketSettings& settings, bool handshake_first)
        : settings_(settings) {
        if (handshake_first) {
            HttpLimits limits;
            limits.max_header_bytes = settings_.max_handshake;
            limits.max_body = 0;
            http_ = make_http_protocol(limits);
        }
    }

    Decoded decode(Buffer& in, MessageSink& out) override {
        if (http_ != nullptr) return decode_handshake(in, out);
        if (frame_left_ > 0) return read_payload(in, out);
        return decode_frame(in, out);
    }

    void encode(std::string_view payload, FrameOutput& out) override {
        write_frame(out, WebSocketOpcode::text, payload);
    }

    std::string busy_notice() const override {
        // Before the handshake is answered the peer speaks HTTP: the HTTP codec's own 503.
        if (http_ != nullptr) return http_->busy_notice();
        return close_frame(1013, "server busy");
    }

  private:
    Decoded decode_handshake(Buffer& in, MessageSink& out);
    Decoded decode_frame(Buffer& in, MessageSink& out);
    Decoded control_frame(const FrameHeader& header, Buffer& in, MessageSink& out);
    Decoded close_frame_received(std::string_view payload, MessageSink& out);
    Decoded read_payload(Buffer& in, MessageSink& out);
    Decoded end_of_frame(MessageSink& out);
    static Decoded fail(std::uint16_t code, std::string_view reason) {
        return Decoded::fail("websocket: " + std::string(reason), close_frame(code, reason));
    }

    const WebSocketSettings settings_;
    std::unique_ptr<Protocol> http_;  // the handshake's codec, until it is answered

    // The data frame being read: its payload bytes still to come, where it is in its mask.
    std::uint64_t frame_left_ = 0;
    std::uint64_t frame_offset_ = 0;
    std::uint8_t mask_[4] = {0, 0, 0, 0};
    bool frame_fin_ = false;

    // The message being assembled across its fragments.
    bool in_message_ = false;
    WebSocketMessage detail_;
    std::string message_;
    Utf8Validator utf8_;
};

Decoded WebSocketProtocol::decode_handshake(Buffer& in, MessageSink& out) {
    HandshakeSink sink(out, settings_);
    const Decoded result = http_->decode(in, sink);
    if (result.status() == Decoded::Status::error) {
        const std::string reason = "websocket handshake: " + result.error().reason;
        return Decoded::fail(reason, HttpResponse(400)
                                         .header("Content-Type", "text/plain")
                                         .close_connection()
                                         .body("bad websocket handshake\n")
                                         .to_string());
    }
    if (result.status() == Decoded::Status::need_more) return Decoded::need_more();
    if (!sink.answered) return Decoded::frame();  // bytes skipped before a request
    if (!sink.accepted) {
        return Decoded::fail("websocket handshake: " + sink.error, std::move(sink.answer));
    }
    out.write_interim(sink.answer);
    http_.reset();  // its decode() has returned; frames follow
    return Decoded::frame();
}

Decoded WebSocketProtocol::decode_frame(Buffer& in, MessageSink& out) {
    char bytes[kMaxFrameHeader];
    const std::size_t n = in.copy_out(0, bytes, sizeof bytes);
    FrameHeader header;
    if (!parse_frame_header(std::string_view(bytes, n), header)) return Decoded::need_more();
    if (header.rsv != 0) return fail(websocket_close::protocol_error, "reserved bits set");
    const auto opcode = static_cast<WebSocketOpcode>(header.opcode);
    const bool known = opcode == WebSocketOpcode::continuation || opcode == WebSocketOpcode::text ||
                       opcode == WebSocketOpcode::binary || opcode == WebSocketOpcode::close ||
                       opcode == WebSocketOpcode::ping || opcode == WebSocketOpcode::pong;
    if (!known) return fail(websocket_close::protocol_error, "unknown opcode");
    if (!header.masked) return fail(websocket_close::protocol_error, "client frame not masked");
    if (header.length_top_bit) {
        return fail(websocket_close::protocol_error, "64-bit length with the top bit set");
    }
    if (header.is_control()) return control_frame(header, in, out);

    if (opcode == WebSocketOpcode::continuation && !in_message_) {
        return fail(websocket_close::protocol_error, "continuation without a message");
    }
    if (opcode != WebSocketOpcode::continuation && in_message_) {
        return fail(websocket_close::protocol_error, "new message inside a fragmented one");
    }
    if (header.length > settings_.max_frame ||
        header.length > settings_.max_message - message_.size()) {
        return fail(websocket_close::message_too_big, "message too big");
    }
    if (!in_message_) {
        in_message_ = true;
        detail_.kind = opcode == WebSocketOpcode::text ? WebSocketMessage::Kind::text
                                                       : WebSocketMessage::Kind::binary;
        utf8_.reset();
    }
    in.drain(header.header_size);
    std::copy(header.mask, header.mask + 4, mask_);
    frame_left_ = header.length;
    frame_offset_ = 0;
    frame_fin_ = header.fin;
    if (frame_left_ == 0) return end_of_frame(out);
    return in.empty() ? Decoded::frame() : read_payload(in, out);
}

Decoded WebSocketProtocol::control_frame(const FrameHeader& header, Buffer& in, MessageSink& out) {
    if (!header.fin) return fail(websocket_close::protocol_error, "fragmented control frame");
    if (header.length > kMaxControlPayload) {
        return fail(websocket_close::protocol_error, "control frame longer than 125 bytes");
    }
    const std::size_t length = static_cast<std::size_t>(header.length);
    if (in.size() < header.header_size + length) return Decoded::need_more();
    char payload[kMaxControlPayload];
    in.copy_out(header.header_size, payload, length);
    unmask(payload, length, header.mask, 0);
    in.drain(header.header_size + length);
    const std::string_view bytes(payload, length);
    switch (static_cast<WebSocketOpcode>(header.opcode)) {
        case WebSocketOpcode::ping: {
            std::string pong;
            FrameOutput pong_out(pong);
            write_frame(pong_out, WebSocketOpcode::pong, bytes);
            out.write_interim(pong);
            return Decoded::frame();
        }
        case WebSocketOpcode::close:
            return close_frame_received(bytes, out);
        default:  // pong: unsolicited or not, nothing to do
            return Decoded::frame();
    }
}

Decoded WebSocketProtocol::close_frame_received(std::string_view payload, MessageSink& out) {
    if (payload.empty()) {
        out.write_interim(close_frame(0));
        return Decoded::last_frame();
    }
    if (payload.size() == 1)
        return fail(websocket_close::protocol_error, "close payload of 1 byte");
    const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                 static_cast<std::uint8_t>(payload[1]));
    if (!valid_close_code(code)) return fail(websocket_close::protocol_error, "invalid close code");
    if (!valid_utf8(payload.substr(2))) {
        return fail(websocket_close::invalid_payload, "close reason not UTF-8");
    }
    out.write_interim(close_frame(code));
    return Decoded::last_frame();
}

Decoded WebSocketProtocol::read_payload(Buffer& in, MessageSink& out) {
    const std::size_t n = static_cast<std::size_t>(
        std::min<std::uint64_t>(frame_left_, static_cast<std::uint64_t>(in.size())));
    const std::size_t at = message_.size();
    message_.resize(at + n);
    in.copy_out(0, message_.data() + at, n);
    in.drain(n);
    unmask(message_.data() + at, n, mask_, frame_offset_);
    frame_left_ -= n;
    frame_offset_ += n;
    if (detail_.is_text() && !utf8_.feed(std::string_view(message_.data() + at, n))) {
        return fail(websocket_close::invalid_payload, "text not UTF-8");
    }
    if (frame_left_ > 0) return Decoded::frame();
    return end_of_frame(out);
}

Decoded WebSocketProtocol::end_of_frame(MessageSink& out) {
    if (!frame_fin_) return Decoded::frame();
    if (detail_.is_text() && !utf8_.complete()) {
        return fail(websocket_close::invalid_payload, "text not UTF-8");
    }
    Message message;
    message.payload = message_;
    message.set(&detail_);
    out.deliver(message);
    in_message_ = false;
    if (message_.capacity() > kKeptCapacity) {
        std::string().swap(message_);
    } else {
        message_.clear();
    }
    return Decoded::frame();
}

class WebSocketFactory final : public ProtocolFactory {
  public:
    explicit WebSocketFactory(WebSocketSettings settings) : settings_(std::move(settings)) {}
    std::string_view name() const override { return "websocket"; }
    std::unique_ptr<Protocol> create() const override {
        return make_websocket_protocol(settings_, true);
    }

  private:
    WebSocketSettings settings_;
};

void send_frame_of(Connection& conn, WebSocketOpcode opcode, std::string_view payload) {
    conn.send_frame(payload.size() + 10,
                    [&](FrameOutput& out) { write_frame(out, opcode, payload); });
}

}  // namespace

WebSocketSettings read_websocket_settings(const ProtocolConfig& config) {
    Options options(config.options);
    WebSocketSettings settings;
    const std::size_t message_default = std::min(settings.max_message, config.max_frame);
    settings.max_message = options.integer("max_message", message_default, 0, config.max_frame);
    settings.max_frame =
        options.integer("max_frame", settings.max_message, 0, settings.max_message);
    settings.max_handshake =
        options.integer("max_handshake", settings.max_handshake, 256, 1024 * 1024);
    if (const nlohmann::json* list = options.get("subprotocols")) {
        const char* expected = "expected a list of non-empty strings";
        if (!list->is_array()) throw ConfigError("subprotocols", expected);
        for (const auto& name : *list) {
            if (!name.is_string() || name.get<std::string>().empty()) {
                throw ConfigError("subprotocols", expected);
            }
            settings.subprotocols.push_back(name.get<std::string>());
        }
    }
    options.finish();
    return settings;
}

std::unique_ptr<Protocol> make_websocket_protocol(const WebSocketSettings& settings,
                                                  bool handshake_first) {
    return std::make_unique<WebSocketProtocol>(settings, handshake_first);
}

std::shared_ptr<const ProtocolFactory> make_websocket(const ProtocolConfig& config) {
    return std::make_shared<WebSocketFactory>(read_websocket_settings(config));
}

void send_websocket_text(Connection& conn, std::string_view payload) {
    send_frame_of(conn, WebSocketOpcode::text, payload);
}

void send_websocket_binary(Connection& conn, std::string_view payload) {
    send_frame_of(conn, WebSocketOpcode::binary, payload);
}

void send_websocket_ping(Connection& conn, std::string_view payload) {
    if (payload.size() > kMaxControlPayload) {
        throw std::invalid_argument("websocket ping payload longer than 125 bytes");
    }
    send_frame_of(conn, WebSocketOpcode::ping, payload);
}

void send_websocket_close(Connection& conn, std::uint16_t code, std::string_view reason) {
    if (code != 0 && !valid_close_code(code)) {
        throw std::invalid_argument("websocket close code may not be sent");
    }
    if (reason.size() > kMaxControlPayload - 2 || !valid_utf8(reason) ||
        (code == 0 && !reason.empty())) {
        throw std::invalid_argument("websocket close reason not UTF-8, too long, or without code");
    }
    conn.send_frame(reason.size() + 12,
                    [&](FrameOutput& out) { write_close_frame(out, code, reason); });
    conn.close(CloseMode::flush);
}

}  // namespace reactor::protocols
