#include <mutex>
#include <set>

#include "apps/builtin_apps.hpp"

namespace reactord {

namespace {
// Each message goes to every other connection of the listener, prefixed with the sender's id; joins
// and leaves are announced. Members may live on different loops: the set is guarded, and sends go
// through the thread-safe Server::send.
class ChatApp final : public App {
  public:
    explicit ChatApp(AppContext& context) : server_(context.server) {}

    void on_open(reactor::Connection& conn) override {
        announce(conn.id(), "* " + std::to_string(conn.id()) + " joined");
        {
            std::lock_guard lock(mutex_);
            members_.insert(conn.id());
        }
        conn.send("* you are " + std::to_string(conn.id()));
    }
    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        std::string line = std::to_string(conn.id()) + ": ";
        line.append(message.payload);
        announce(conn.id(), line);
    }
    void on_close(reactor::Connection& conn, reactor::CloseReason) override {
        {
            std::lock_guard lock(mutex_);
            members_.erase(conn.id());
        }
        announce(conn.id(), "* " + std::to_string(conn.id()) + " left");
    }

  private:
    void announce(reactor::ConnectionId from, const std::string& text) {
        std::vector<reactor::ConnectionId> to;
        {
            std::lock_guard lock(mutex_);
            to.assign(members_.begin(), members_.end());
        }
        for (const auto id : to) {
            if (id != from) server_.send(id, text);
        }
    }
    reactor::Server& server_;
    std::mutex mutex_;
    std::set<reactor::ConnectionId> members_;
};
}  // namespace

AppSpec chat_app_spec() {
    AppSpec spec;
    spec.protocols = {"line", "length", "raw"};
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options(options).finish();
        return [](AppContext& context) -> std::unique_ptr<App> {
            return std::make_unique<ChatApp>(context);
        };
    };
    return spec;
}

}  // namespace reactord
