#include <deque>

#include "apps/admin_commands.hpp"
#include "apps/builtin_apps.hpp"
#include "reactor/event_loop.hpp"

namespace reactord {

namespace {

// One operator session. Commands run one at a time, so replies come back in the order the commands
// were sent even when a listing answers from another loop.
struct AdminSession {
    bool authenticated = false;
    bool busy = false;
    std::deque<std::string> queued;
    bool peer_ended = false;  // close once the queued commands are answered
};

// The admin console over the line protocol. With a token configured, the first line must be
// "auth TOKEN"; a wrong token closes the connection.
class AdminApp final : public App {
  public:
    AdminApp(AppContext& context, std::string token)
        : server_(context.server),
          commands_(context.server, context.stats),
          token_(std::move(token)) {}

    void on_open(reactor::Connection& conn) override {
        conn.context = AdminSession{token_.empty(), false, {}, false};
        conn.send(token_.empty() ? "reactord admin: type help"
                                 : "reactord admin: auth TOKEN first");
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
        session.queued.emplace_back(line);
        if (!session.busy) run_next(conn);
    }

    // `printf 'list\nstats\n' | nc -N`: every command sent before the half-close is answered.
    void on_peer_closed(reactor::Connection& conn) override {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        session.peer_ended = true;
        if (!session.busy) run_next(conn);
    }

  private:
    void run_next(reactor::Connection& conn) {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        if (conn.closing()) return;
        if (session.queued.empty()) {
            if (session.peer_ended)
                conn.close(reactor::CloseMode::flush, reactor::CloseReason::peer_closed);
            return;
        }
        session.busy = true;
        const std::string line = std::move(session.queued.front());
        session.queued.pop_front();
        reactor::EventLoop* loop = &conn.loop();
        const reactor::ConnectionId id = conn.id();
        commands_.execute(line, [this, loop, id](AdminCommands::Reply reply) {
            // Back on the session's own loop, where its connection lives.
            loop->run_in_loop([this, id, reply = std::move(reply)] {
                reactor::Connection* conn = server_.find(id);
                if (conn == nullptr) return;
                std::string_view text = reply.text;
                if (!text.empty() && text.back() == '\n')
                    text.remove_suffix(1);  // the protocol adds it
                if (!text.empty()) conn->send(text);
                if (reply.quit) {
                    conn->close();
                    return;
                }
                std::any_cast<AdminSession&>(conn->context).busy = false;
                run_next(*conn);
            });
        });
    }

    reactor::Server& server_;
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
