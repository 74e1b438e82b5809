#pragma once

// What reactord runs behind a listener: an app receives the decoded messages of every connection of
// its listener. Apps run on the loop thread; the Server's send/close/broadcast reach any connection
// of any listener.

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "reactor/connection.hpp"
#include "reactor/message.hpp"
#include "reactor/server.hpp"
#include "stats.hpp"

namespace reactord {

class App {
  public:
    virtual ~App() = default;
    virtual void on_open(reactor::Connection& conn) { (void)conn; }
    virtual void on_message(reactor::Connection& conn, reactor::Message& message) = 0;
    virtual void on_close(reactor::Connection& conn, reactor::CloseReason reason) {
        (void)conn;
        (void)reason;
    }
    // The peer half-closed after its last request. Apps whose replies come later override this
    // and close once they have answered.
    virtual void on_peer_closed(reactor::Connection& conn) {
        conn.close(reactor::CloseMode::flush, reactor::CloseReason::peer_closed);
    }
};

// What an app may use while it runs.
struct AppContext {
    reactor::Server& server;
    Stats& stats;
    std::string listener;  // the listener's name
    // The longest payload a listener's protocol can frame (Protocol::max_payload), SIZE_MAX for a
    // name it does not know. Any thread. Apps that relay a payload check it once, before fanning
    // out, and refuse the sender's request rather than let each receiver's encoder fail.
    std::function<std::size_t(std::string_view listener)> max_payload;
};

struct AppSpec {
    // Protocols the app can speak; empty means any framing protocol (messages are payloads).
    std::set<std::string> protocols;
    // Validates options (throwing reactor::ConfigError naming the option) and returns a builder.
    std::function<std::function<std::unique_ptr<App>(AppContext&)>(const nlohmann::json& options)>
        prepare;
};

// The apps by name: echo, chat, kv, http, admin.
const std::map<std::string, AppSpec>& app_specs();

}  // namespace reactord
