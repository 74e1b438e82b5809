#pragma once

// reactord's running state: the loop, the server, one app per listener, signals and shutdown.

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/admin_commands.hpp"
#include "apps/app.hpp"
#include "config.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/protocol_registry.hpp"
#include "reactor/server.hpp"
#include "stats.hpp"

namespace reactord {

// Everything the config names, resolved before anything binds: throws reactor::ConfigError.
struct Plan {
    struct Listener {
        ListenerConfig config;
        std::shared_ptr<const reactor::ProtocolFactory> protocol;
        std::function<std::unique_ptr<App>(AppContext&)> make_app;
        std::shared_ptr<reactor::TlsServer> tls;  // its certificates loaded; null: plain TCP
    };
    std::vector<Listener> listeners;
};
Plan make_plan(const Config& config, const reactor::ProtocolRegistry& registry);

// reactord's exit codes (documented in --help and the README).
constexpr int kExitOk = 0;      // stopped by SIGINT/SIGTERM after draining, or nothing to run
constexpr int kExitStart = 1;   // could not start: a listener could not listen (StartError)
constexpr int kExitConfig = 2;  // bad arguments, unreadable or invalid configuration
constexpr int kExitForced = 3;  // a second SIGINT/SIGTERM ended the drain early

// A listener that could not listen: "listeners[1]: cannot listen on 127.0.0.1:80: ...".
struct StartError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Daemon {
  public:
    // config_path: the file config came from, re-read on SIGHUP; empty: the embedded default.
    Daemon(const Config& config, Plan plan, std::string config_path = {});
    ~Daemon();

    // Binds every listener (throws StartError), then serves until SIGINT/SIGTERM.
    // With console, operator commands are read from stdin. Returns the exit code.
    int run(bool console);

  private:
    void start_console();
    void begin_shutdown();
    // SIGHUP: loads the TLS listeners' certificates again, from the config file as it is now;
    // a listener whose new TLS options fail keeps its old ones, and the log says why.
    void reload_tls();

    const Config& config_;
    Plan plan_;
    std::string config_path_;
    reactor::EventLoop loop_;
    std::unique_ptr<reactor::Server> server_;
    Stats stats_;
    std::vector<std::unique_ptr<AppContext>> contexts_;
    std::vector<std::unique_ptr<App>> apps_;
    std::unique_ptr<AdminCommands> commands_;  // the console's
    bool stopping_ = false;
};

}  // namespace reactord
