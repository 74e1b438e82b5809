#include "daemon.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "apps/admin_commands.hpp"
#include "reactor/log.hpp"
#include "reactor/version.hpp"

namespace reactord {

using reactor::ConfigError;

Plan make_plan(const Config& config, const reactor::ProtocolRegistry& registry) {
    Plan plan;
    auto all = config.listeners;
    if (config.admin.enabled) {
        ListenerConfig admin;
        admin.name = "admin";
        admin.endpoint = config.admin.endpoint;
        admin.protocol = "line";
        const AdminConfig& a = config.admin;
        // A line over max_line is answered and skipped, not a reason to drop the session.
        admin.protocol_options = {{"max_line", a.max_line}, {"too_long", "report"}};
        admin.app = "admin";
        admin.app_options = {{"token", a.token},
                             {"max_sessions", a.max_sessions},
                             {"max_unauthenticated", a.max_unauthenticated},
                             {"auth_timeout_ms", a.auth_timeout.count()},
                             {"idle_timeout_ms", a.idle_timeout.count()},
                             {"max_auth_failures", a.max_auth_failures},
                             {"auth_failure_delay_ms", a.auth_failure_delay.count()}};
        // The app refuses sessions over its caps with a reason; this is the backstop.
        admin.limits.max_connections = a.max_sessions + a.max_unauthenticated;
        admin.max_frame = std::max<std::size_t>(64 * 1024, a.max_line);
        all.push_back(admin);
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
        const bool is_admin = i >= config.listeners.size();
        const std::string path = is_admin ? "admin" : "listeners[" + std::to_string(i) + "]";
        const auto& lc = all[i];
        Plan::Listener entry;
        entry.config = lc;
        try {
            entry.protocol = registry.build(lc.protocol, {lc.protocol_options, lc.max_frame});
        } catch (const ConfigError& e) {
            throw e.prefixed(path + ".protocol");
        }
        const auto& specs = app_specs();
        const auto spec = specs.find(lc.app);
        if (spec == specs.end()) {
            std::string known;
            for (const auto& [name, s] : specs) known += (known.empty() ? "" : ", ") + name;
            throw ConfigError(path + ".app.name",
                              "unknown app '" + lc.app + "' (known: " + known + ")");
        }
        if (!spec->second.protocols.empty() && spec->second.protocols.count(lc.protocol) == 0) {
            std::string speaks;
            for (const auto& p : spec->second.protocols) speaks += (speaks.empty() ? "" : ", ") + p;
            throw ConfigError(path + ".app.name", "app '" + lc.app + "' cannot speak protocol '" +
                                                      lc.protocol + "' (it speaks " + speaks + ")");
        }
        try {
            entry.make_app = spec->second.prepare(lc.app_options);
        } catch (const ConfigError& e) {
            throw e.prefixed(path + ".app");
        }
        if (lc.tls) {
            try {
                entry.tls = std::make_shared<reactor::TlsServer>(*lc.tls);
            } catch (const ConfigError& e) {
                throw ConfigError(tls_config_path(lc, e.path()), e.problem())
                    .prefixed(path + ".tls");
            }
        }
        plan.listeners.push_back(std::move(entry));
    }
    return plan;
}

Daemon::Daemon(const Config& config, Plan plan, std::string config_path)
    : config_(config), plan_(std::move(plan)), config_path_(std::move(config_path)) {
    server_ = std::make_unique<reactor::Server>(loop_, config.threads);
    server_->set_output_budget(config.output_budget);
}

Daemon::~Daemon() {
    server_.reset();
    apps_.clear();
}

int Daemon::run(bool console) {
    // What each listener's protocol can frame, for apps that relay to other listeners.
    auto max_payloads = std::make_shared<std::map<std::string, std::size_t, std::less<>>>();
    for (auto& entry : plan_.listeners)
        (*max_payloads)[entry.config.name] = entry.protocol->create()->max_payload();
    auto max_payload = [max_payloads](std::string_view listener) {
        const auto it = max_payloads->find(listener);
        return it == max_payloads->end() ? static_cast<std::size_t>(-1) : it->second;
    };
    commands_ = std::make_unique<AdminCommands>(*server_, stats_, max_payload);
    for (auto& entry : plan_.listeners) {
        Stats::Listener* stats = &stats_.add_listener(entry.config.name);
        contexts_.push_back(std::make_unique<AppContext>(
            AppContext{*server_, stats_, entry.config.name, max_payload}));
        apps_.push_back(entry.make_app(*contexts_.back()));
        App* app = apps_.back().get();
        reactor::ListenOptions options;
        options.name = entry.config.name;
        options.endpoint = entry.config.endpoint;
        options.backlog = entry.config.backlog;
        options.protocol = entry.protocol;
        options.limits = entry.config.limits;
        options.accept = entry.config.accept;
        options.share_port = entry.config.share_port;
        if (entry.tls) options.transport = entry.tls->factory();
        options.handlers.on_open = [app, stats](reactor::Connection& conn) {
            stats->opened();
            app->on_open(conn);
        };
        options.handlers.on_message = [app, stats](reactor::Connection& conn, reactor::Message& m) {
            stats->message();
            app->on_message(conn, m);
        };
        options.handlers.on_close = [app, stats](reactor::Connection& conn,
                                                 reactor::CloseReason why) {
            stats->closed(conn, why);
            app->on_close(conn, why);
        };
        options.handlers.on_peer_closed = [app](reactor::Connection& conn) {
            app->on_peer_closed(conn);
        };
        options.handlers.on_refused = [stats](const std::string&) { stats->refused(); };
        if (options.backlog > somaxconn()) {
            reactor::log(reactor::LogLevel::warn, "listener=", options.name, " backlog ",
                         options.backlog, " is above net.core.somaxconn: the kernel uses ",
                         somaxconn());
        }
        const reactor::ConnectionLimits limits = options.limits;
        try {
            server_->listen(std::move(options));
        } catch (const std::system_error& e) {
            const auto index = static_cast<std::size_t>(&entry - plan_.listeners.data());
            const std::string path = index < config_.listeners.size()
                                         ? "listeners[" + std::to_string(index) + "]"
                                         : std::string("admin");
            // With SO_REUSEPORT the kernel would let a second process take half of the clients:
            // the listener refuses, and says so.
            const std::string why = e.code() == std::errc::address_in_use
                                        ? "address already in use by another process"
                                        : e.code().message();
            throw StartError(path + ": cannot listen on " + entry.config.endpoint.to_string() +
                             ": " + why);
        }
        reactor::log(reactor::LogLevel::info, "listener=", entry.config.name, " backlog ",
                     entry.config.backlog, ", idle_timeout_ms ", limits.idle_timeout.count(),
                     ", max_connections ", limits.max_connections,
                     entry.config.share_port ? ", port shared" : "");
    }
    loop_.on_signal(SIGINT, [this] { begin_shutdown(); });
    loop_.on_signal(SIGTERM, [this] { begin_shutdown(); });
    // Their default action ends the process: an operator's habit (a reload, a log reopen) must
    // not take the server down. main() ignores them until here, and SIGPIPE for good.
    const bool has_tls = std::any_of(plan_.listeners.begin(), plan_.listeners.end(),
                                     [](const Plan::Listener& l) { return l.tls != nullptr; });
    if (has_tls) loop_.on_signal(SIGHUP, [this] { reload_tls(); });
    for (const auto& [signo, name] : {std::pair{SIGHUP, "SIGHUP"}, std::pair{SIGUSR1, "SIGUSR1"},
                                      std::pair{SIGUSR2, "SIGUSR2"}}) {
        if (signo == SIGHUP && has_tls) continue;
        loop_.on_signal(signo, [name = name] {
            reactor::log(reactor::LogLevel::warn, name,
                         " ignored: reactord reloads nothing; SIGTERM stops it");
        });
    }
    if (console) start_console();
    reactor::log(reactor::LogLevel::info, "reactord ", reactor::version(), " ready");
    loop_.run();
    reactor::log(reactor::LogLevel::info, "reactord stopped");
    return 0;
}

void Daemon::reload_tls() {
    // Only certificates and TLS options change; the rest of the file is read but not applied.
    Config fresh;
    bool have_fresh = false;
    if (!config_path_.empty()) {
        std::ifstream in(config_path_, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        try {
            if (!in) throw ConfigError("", "cannot read the file");
            fresh = parse_config(text);
            have_fresh = true;
        } catch (const ConfigError& e) {
            reactor::log(reactor::LogLevel::error, "SIGHUP: ", config_path_, ": ", e.describe(),
                         ": TLS certificates not reloaded, the old ones stay");
            return;
        }
    }
    for (std::size_t i = 0; i < plan_.listeners.size(); ++i) {
        Plan::Listener& entry = plan_.listeners[i];
        if (!entry.tls) continue;
        // The listener of the same name in the file as it is now; gone or without TLS there:
        // its own files again (a renewed certificate at the same path).
        const ListenerConfig* now = &entry.config;
        if (have_fresh) {
            for (const auto& l : fresh.listeners) {
                if (l.name == entry.config.name && l.tls) now = &l;
            }
        }
        const std::string path =
            i < config_.listeners.size() ? "listeners[" + std::to_string(i) + "]" : "admin";
        try {
            entry.tls->reload(*now->tls);
            reactor::log(reactor::LogLevel::info, "listener=", entry.config.name,
                         " TLS certificates reloaded for new handshakes");
        } catch (const ConfigError& e) {
            const ConfigError at =
                ConfigError(tls_config_path(*now, e.path()), e.problem()).prefixed(path + ".tls");
            reactor::log(reactor::LogLevel::error, "listener=", entry.config.name,
                         " TLS reload failed, the old certificates stay: ", at.describe());
        }
    }
}

void Daemon::begin_shutdown() {
    if (stopping_) {
        reactor::log(reactor::LogLevel::warn, "second signal: exiting now");
        reactor::flush_log(std::chrono::milliseconds(200));
        ::_exit(kExitForced);
    }
    stopping_ = true;
    reactor::log(reactor::LogLevel::info, "shutting down: draining ", server_->connection_count(),
                 " connections (at most ", config_.drain_timeout.count(), " ms)");
    server_->shutdown([this] { loop_.stop(); });
    loop_.run_after(config_.drain_timeout, [this] {
        reactor::log(reactor::LogLevel::warn, "drain timeout: closing ",
                     server_->connection_count(), " connections");
        loop_.stop();
    });
}

void Daemon::start_console() {
    // The console reads stdin on its own thread and runs each command on loop 0, one at a time, so
    // that replies print in order.
    std::thread([this] {
        std::string line;
        while (std::getline(std::cin, line)) {
            auto replied = std::make_shared<std::promise<void>>();
            loop_.post([this, line, replied] {
                commands_->execute(line, [replied](AdminCommands::Reply reply) {
                    std::fwrite(reply.text.data(), 1, reply.text.size(), stdout);
                    std::fflush(stdout);
                    replied->set_value();
                });
            });
            replied->get_future().wait();
        }
    }).detach();
}

}  // namespace reactord
