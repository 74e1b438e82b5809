#include <mutex>
#include <set>

#include "apps/builtin_apps.hpp"

namespace reactord {

namespace {
// Each message goes to every other connection of the listener, prefixed with the sender's id; joins
// and leaves are announced. Members may live on different loops: the set is guarded, and sends go
// through the thread-safe Server::send.
//
// Every member shares the listener's framing, so whether a relayed text can be framed is known
// once, before the fan-out: a message that would not fit (a 255-byte frame under a 1-byte length
// field becomes "ID: " and 255 bytes) is refused to its sender alone, and no receiver's encoder
// ever sees it.
class ChatApp final : public App {
  public:
    explicit ChatApp(AppContext& context)
        : server_(context.server),
          max_payload_(context.max_payload ? context.max_payload(context.listener)
                                           : static_cast<std::size_t>(-1)) {}

    void on_open(reactor::Connection& conn) override {
        announce(conn.id(), "* " + std::to_string(conn.id()) + " joined");
        {
            std::lock_guard lock(mutex_);
            members_.insert(conn.id());
        }
        reply(conn, "* you are " + std::to_string(conn.id()));
    }
    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        if (!message.error.empty()) {  // a line over the limit, skipped by the protocol
            reply(conn, "* not sent: " + std::string(message.error));
            return;
        }
        std::string line = std::to_string(conn.id()) + ": ";
        if (line.size() + message.payload.size() > max_payload_) {
            const std::size_t room = max_payload_ > line.size() ? max_payload_ - line.size() : 0;
            reply(conn, "* not sent: longer than " + std::to_string(room) + " bytes");
            return;
        }
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
    // To one member, when it fits the framing.
    void reply(reactor::Connection& conn, const std::string& text) {
        if (text.size() <= max_payload_) conn.send(text);
    }
    void announce(reactor::ConnectionId from, const std::string& text) {
        if (text.size() > max_payload_) return;
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
    const std::size_t max_payload_;
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
