#include "apps/builtin_apps.hpp"
#include "websocket.hpp"

namespace reactord {

namespace {
// Replies with each message, framed again by the listener's protocol (a WebSocket binary
// message as binary). A frame skipped by the protocol (line's "too_long": "report") gets no
// reply; a payload the framing cannot send back (a length field narrower than what the decoder
// accepts) is the peer's protocol error.
class EchoApp final : public App {
  public:
    explicit EchoApp(std::size_t max_payload) : max_payload_(max_payload) {}

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        if (!message.error.empty()) return;
        if (message.payload.size() > max_payload_) {
            conn.close(reactor::CloseMode::flush, reactor::CloseReason::protocol_error);
            return;
        }
        // A WebSocket binary message goes back as binary; send() frames text.
        if (const auto* ws = message.get<reactor::protocols::WebSocketMessage>();
            ws != nullptr && ws->is_binary()) {
            reactor::protocols::send_websocket_binary(conn, message.payload);
            return;
        }
        conn.send(message.payload);
    }

  private:
    const std::size_t max_payload_;  // the listener's, read once
};
}  // namespace

AppSpec echo_app_spec() {
    AppSpec spec;
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options(options).finish();
        return [](AppContext& context) -> std::unique_ptr<App> {
            return std::make_unique<EchoApp>(context.max_payload
                                                 ? context.max_payload(context.listener)
                                                 : static_cast<std::size_t>(-1));
        };
    };
    return spec;
}

}  // namespace reactord
