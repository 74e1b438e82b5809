#pragma once

// reactord's configuration: the JSON format, parsed and validated before anything binds. Every
// error names its JSON path ("listeners[1].protocol.max_line: expected ...").

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "reactor/config_error.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/log.hpp"
#include "reactor/server.hpp"
#include "reactor/tls.hpp"

namespace reactord {

struct ListenerConfig {
    std::string name;
    reactor::Endpoint endpoint;
    int backlog = 4096;  // default: net.core.somaxconn
    reactor::AcceptMode accept = reactor::AcceptMode::reuse_port;
    bool share_port = false;          // let another process join the TCP port (a hand-over)
    std::string protocol;             // registry name
    nlohmann::json protocol_options;  // the protocol object without "name"
    std::string app;
    nlohmann::json app_options;  // the app object without "name"
    reactor::ConnectionLimits limits;
    std::size_t max_frame = 1 << 20;
    // "tls": the listener's certificates and TLS options; the files are loaded by make_plan().
    std::optional<reactor::TlsServerOptions> tls;
    // How the library's option paths read in this config ("certificates[0]" written as the
    // object's own "cert" and "key" is ""): see tls_config_path().
    std::vector<std::pair<std::string, std::string>> tls_paths;
};

// The config's JSON path, below "tls", of a reactor::TlsServer option path.
std::string tls_config_path(const ListenerConfig& listener, const std::string& option_path);

struct AdminConfig {
    bool enabled = false;
    reactor::Endpoint endpoint = reactor::Endpoint::tcp("127.0.0.1", 9900);
    std::string token;  // empty: no authentication
    bool allow_remote = false;
    // The console's own limits (see the admin app): the longest command line, sessions open at
    // once, and the time and attempts an unauthenticated session gets.
    std::size_t max_line = 4096;
    std::size_t max_sessions = 16;
    std::size_t max_unauthenticated = 4;
    std::chrono::milliseconds auth_timeout{10000};
    std::chrono::milliseconds idle_timeout{900000};  // authenticated sessions; 0: none
    std::size_t max_auth_failures = 3;
    std::chrono::milliseconds auth_failure_delay{1000};
};

struct Config {
    unsigned threads = 1;
    reactor::LogLevel log_level = reactor::LogLevel::info;
    std::chrono::milliseconds drain_timeout{5000};
    // Bytes pending for all clients together (Server::set_output_budget); 0: none. Default: a
    // quarter of physical memory, at most 1 GiB.
    std::size_t output_budget = 0;
    std::vector<std::string> plugins;
    AdminConfig admin;
    std::vector<ListenerConfig> listeners;
};

// Parses JSON text; throws reactor::ConfigError. Checks the format only: protocol and app names
// are checked by check_names() once plugins are loaded.
Config parse_config(const std::string& text);
// What can be checked about the configuration on this host without binding anything: each TCP
// address resolves to one of this host's addresses (or a wildcard), each Unix socket's directory
// exists. Throws reactor::ConfigError with the path of the listener.
void check_host(const Config& config);
// The kernel's cap on a listen() backlog (net.core.somaxconn), at most 65535.
int somaxconn();
// The default output_budget on this host.
std::size_t default_output_budget();
// The embedded default: a demo of every built-in protocol on loopback ports.
const std::string& default_config_text();

}  // namespace reactord
