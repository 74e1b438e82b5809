#include "apps/builtin_apps.hpp"

namespace reactord {

namespace {
// Replies with each message, framed again by the listener's protocol.
class EchoApp final : public App {
  public:
    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        conn.send(message.payload);
        if (message.http != nullptr && !message.http->keep_alive) conn.close();
    }
};
}  // namespace

AppSpec echo_app_spec() {
    AppSpec spec;
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options(options).finish();
        return [](AppContext&) -> std::unique_ptr<App> { return std::make_unique<EchoApp>(); };
    };
    return spec;
}

}  // namespace reactord
