#include "config.hpp"

#include <arpa/inet.h>

#include <set>

#include "options.hpp"

namespace reactord {

using reactor::ConfigError;
using reactor::protocols::Options;

namespace {

constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 40;

// Runs fn, prefixing any ConfigError it throws with path.
template <typename Fn>
auto within(const std::string& path, Fn fn) {
    try {
        return fn();
    } catch (const ConfigError& e) {
        throw e.prefixed(path);
    }
}

bool is_loopback(const std::string& host) {
    if (host == "localhost" || host == "::1") return true;
    in_addr v4{};
    return ::inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

reactor::Endpoint read_endpoint(Options& in, std::uint16_t default_port, bool allow_unix) {
    const std::string unix_path = allow_unix ? in.string("unix", "") : "";
    if (!unix_path.empty()) {
        if (in.has("address") || in.has("port")) {
            throw ConfigError("unix", "give either unix or address/port, not both");
        }
        return reactor::Endpoint::unix_socket(unix_path);
    }
    const std::string host = in.string("address", "127.0.0.1");
    if (host.empty()) throw ConfigError("address", "expected a host address");
    const auto port = in.integer("port", default_port, 0, 65535);
    if (!in.has("port") && default_port == 0) throw ConfigError("port", "missing (or give unix)");
    return reactor::Endpoint::tcp(host, static_cast<std::uint16_t>(port));
}

// {"name": "...", options...} -> name and the options without it.
std::pair<std::string, nlohmann::json> read_named(const nlohmann::json* value, const char* what) {
    if (value == nullptr) throw ConfigError("", std::string("missing ") + what);
    if (value->is_string()) {
        // "protocol": "line" is {"name": "line"}, so its name may not be empty either.
        if (value->get<std::string>().empty()) throw ConfigError("", "expected a non-empty string");
        return {value->get<std::string>(), nlohmann::json::object()};
    }
    if (!value->is_object()) throw ConfigError("", "expected an object with a name");
    const auto it = value->find("name");
    if (it == value->end() || !it->is_string() || it->get<std::string>().empty()) {
        throw ConfigError("name", "expected a non-empty string");
    }
    nlohmann::json options = *value;
    options.erase("name");
    return {it->get<std::string>(), options};
}

reactor::ConnectionLimits read_limits(const nlohmann::json* value, std::size_t& max_frame) {
    reactor::ConnectionLimits limits;
    limits.max_connections = 10000;
    if (value == nullptr) return limits;
    Options in(*value);
    limits.max_connections = in.integer("max_connections", limits.max_connections, 1, 1000000);
    limits.idle_timeout =
        std::chrono::milliseconds(in.integer("idle_timeout_ms", 0, 0, 24ULL * 3600 * 1000));
    limits.output_high_water =
        in.integer("output_high_water", limits.output_high_water, 1, kMaxBytes);
    limits.output_limit = in.integer("output_limit", limits.output_limit, 1, kMaxBytes);
    max_frame = in.integer("max_frame", max_frame, 16, kMaxBytes);
    in.finish();
    if (limits.output_limit < limits.output_high_water) {
        throw ConfigError("output_limit", "must not be below output_high_water");
    }
    return limits;
}

ListenerConfig read_listener(const nlohmann::json& value, std::size_t index) {
    ListenerConfig out;
    Options in(value);
    out.name = in.string("name", "listener" + std::to_string(index));
    if (out.name.empty()) throw ConfigError("name", "expected a non-empty string");
    out.endpoint = read_endpoint(in, 0, true);
    out.backlog = static_cast<int>(in.integer("backlog", 1024, 1, 65535));
    out.accept = in.choice("accept", "reuseport", {"reuseport", "round_robin"}) == "round_robin"
                     ? reactor::AcceptMode::round_robin
                     : reactor::AcceptMode::reuse_port;
    std::tie(out.protocol, out.protocol_options) =
        within("protocol", [&] { return read_named(in.get("protocol"), "protocol"); });
    std::tie(out.app, out.app_options) =
        within("app", [&] { return read_named(in.get("app"), "app"); });
    out.limits = within("limits", [&] { return read_limits(in.get("limits"), out.max_frame); });
    in.finish();
    return out;
}

AdminConfig read_admin(const nlohmann::json& value) {
    AdminConfig out;
    if (value.is_boolean()) {
        out.enabled = value.get<bool>();
        return out;
    }
    Options in(value);
    out.enabled = in.boolean("enabled", true);
    out.endpoint = read_endpoint(in, 9900, true);
    out.token = in.string("token", "");
    out.allow_remote = in.boolean("allow_remote", false);
    out.max_line = in.integer("max_line", out.max_line, 16, 1 << 20);
    out.max_sessions = in.integer("max_sessions", out.max_sessions, 1, 1024);
    out.max_unauthenticated = in.integer("max_unauthenticated", out.max_unauthenticated, 1, 1024);
    out.auth_timeout = std::chrono::milliseconds(
        in.integer("auth_timeout_ms", out.auth_timeout.count(), 1, 3600000));
    out.idle_timeout = std::chrono::milliseconds(
        in.integer("idle_timeout_ms", out.idle_timeout.count(), 0, 86400000));
    out.max_auth_failures = in.integer("max_auth_failures", out.max_auth_failures, 1, 100);
    out.auth_failure_delay = std::chrono::milliseconds(
        in.integer("auth_failure_delay_ms", out.auth_failure_delay.count(), 0, 60000));
    in.finish();
    if (!out.endpoint.is_unix() && !out.allow_remote && !is_loopback(out.endpoint.host)) {
        throw ConfigError("address",
                          "the admin console listens on loopback only unless allow_remote is true");
    }
    return out;
}

}  // namespace

Config parse_config(const std::string& text) {
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double ("1e400").
        throw ConfigError("", std::string("invalid JSON: ") + e.what());
    }
    if (!root.is_object()) throw ConfigError("", "expected a JSON object at the top level");
    Config config;
    Options in(root);
    config.threads = static_cast<unsigned>(in.integer("threads", 1, 1, 256));
    if (const auto* log = in.get("log")) {
        within("log", [&] {
            Options log_in(*log);
            const std::string level =
                log_in.choice("level", "info", {"debug", "info", "warn", "error", "off"});
            config.log_level = reactor::parse_log_level(level);
            log_in.finish();
            return 0;
        });
    }
    config.drain_timeout =
        std::chrono::milliseconds(in.integer("drain_timeout_ms", 5000, 0, 3600 * 1000));
    if (const auto* plugins = in.get("plugins")) {
        if (!plugins->is_array()) throw ConfigError("plugins", "expected an array of paths");
        for (std::size_t i = 0; i < plugins->size(); ++i) {
            const auto& p = (*plugins)[i];
            if (!p.is_string() || p.get<std::string>().empty()) {
                throw ConfigError("plugins[" + std::to_string(i) + "]", "expected a path");
            }
            config.plugins.push_back(p.get<std::string>());
        }
    }
    if (const auto* admin = in.get("admin")) {
        config.admin = within("admin", [&] { return read_admin(*admin); });
    }
    const auto* listeners = in.get("listeners");
    if (listeners == nullptr || !listeners->is_array() || listeners->empty()) {
        throw ConfigError("listeners", "expected a non-empty array");
    }
    std::set<std::string> names;
    std::set<std::pair<std::string, std::uint16_t>> ports;
    std::set<std::string> paths;
    if (config.admin.enabled) {
        if (config.admin.endpoint.is_unix()) {
            paths.insert(config.admin.endpoint.unix_path);
        } else if (config.admin.endpoint.port != 0) {
            ports.insert({"", config.admin.endpoint.port});
        }
    }
    for (std::size_t i = 0; i < listeners->size(); ++i) {
        const std::string path = "listeners[" + std::to_string(i) + "]";
        auto listener = within(path, [&] { return read_listener((*listeners)[i], i); });
        if (!names.insert(listener.name).second) {
            throw ConfigError(path + ".name", "duplicate listener name '" + listener.name + "'");
        }
        const auto& ep = listener.endpoint;
        if (ep.is_unix()) {
            if (!paths.insert(ep.unix_path).second) {
                throw ConfigError(path + ".unix", "path " + ep.unix_path + " is used twice");
            }
        } else if (ep.port != 0 && !ports.insert({"", ep.port}).second) {
            throw ConfigError(path + ".port", "port " + std::to_string(ep.port) + " is used twice");
        }
        config.listeners.push_back(std::move(listener));
    }
    in.finish();
    return config;
}

const std::string& default_config_text() {
    static const std::string text = R"({
  "threads": 1,
  "log": {"level": "info"},
  "drain_timeout_ms": 5000,
  "admin": {"address": "127.0.0.1", "port": 9900},
  "listeners": [
    {"name": "echo", "address": "127.0.0.1", "port": 7000,
     "protocol": {"name": "line"}, "app": {"name": "echo"}},
    {"name": "kv", "address": "127.0.0.1", "port": 6380,
     "protocol": {"name": "resp"}, "app": {"name": "kv"}},
    {"name": "http", "address": "127.0.0.1", "port": 8080,
     "protocol": {"name": "http"}, "app": {"name": "http"}}
  ]
})";
    return text;
}

}  // namespace reactord
