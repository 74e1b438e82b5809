#include "apps/admin_commands.hpp"
#include "apps/builtin_apps.hpp"

namespace reactord {

namespace {

struct AdminSession {
    bool authenticated = false;
};

// The admin console over the line protocol. With a token configured, the first line must be
// "auth TOKEN"; a wrong token closes the connection.
class AdminApp final : public App {
public:
    AdminApp(AppContext& context, std::string token)
        : commands_(context.server, context.stats), token_(std::move(token)) {}

    void on_open(reactor::Connection& conn) override {
        conn.context = AdminSession{token_.empty()};
        conn.send(token_.empty() ? "reactord admin: type help" : "reactord admin: auth TOKEN first");
    }

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        std::string_view line = message.payload;
        if (!session.authenticated) {
            constexpr std::string_view prefix = "auth ";
            if (line.substr(0, prefix.size()) != prefix) {
                conn.send("ERR authentication required");
                return;
            }
            if (line.substr(prefix.size()) != token_) {
                conn.send("ERR invalid token");
                conn.close();
                return;
            }
            session.authenticated = true;
            conn.send("OK");
            return;
        }
        const auto reply = commands_.execute(line);
        std::string_view text = reply.text;
        if (!text.empty() && text.back() == '\n') text.remove_suffix(1);  // the protocol adds it back
        if (!text.empty()) conn.send(text);
        if (reply.quit) conn.close();
    }

private:
    AdminCommands commands_;
    std::string token_;
};

}  // namespace

AppSpec admin_app_spec() {
    AppSpec spec;
    spec.protocols = {"line"};
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options in(options);
        std::string token = in.string("token", "");
        in.finish();
        return [token](AppContext& context) -> std::unique_ptr<App> {
            return std::make_unique<AdminApp>(context, token);
        };
    };
    return spec;
}

}  // namespace reactord
