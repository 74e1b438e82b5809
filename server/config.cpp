#include "config.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>

#include "config_tls.hpp"
#include "config_within.hpp"
#include "options.hpp"

namespace reactord {

using reactor::ConfigError;
using reactor::protocols::Options;

namespace {

constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 40;
// Deeper JSON is refused while it is parsed: whatever walks the document later (a copy, a dump)
// recurses once per level. reactord's own format needs 4 levels, a protocol's options a few more.
constexpr std::size_t kMaxDepth = 64;
// An HTTP connection with no complete request for this long is closed (nginx's keepalive_timeout).
constexpr std::uint64_t kHttpIdleTimeoutMs = 75000;

// Watches nlohmann's parser (which is iterative) event by event: refuses nesting deeper than
// kMaxDepth before the tree holds it, and a key given twice in one object (nlohmann would keep
// the last silently). It keeps the path it is at, for the error. The first problem is kept and
// reported once the text parsed, so that text that is not JSON still reads "invalid JSON".
class ParseGuard {
  public:
    bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        // nlohmann calls no end event for a container it discarded: depth tells where we are.
        const auto level = static_cast<std::size_t>(depth);
        if (frames_.size() > level) frames_.resize(level);
        switch (event) {
            case Event::object_start:
            case Event::array_start:
                next_element();
                if (level >= kMaxDepth) {
                    fail(path(), "nested deeper than " + std::to_string(kMaxDepth) + " levels");
                    return false;  // dropped, children and all
                }
                frames_.push_back({event == Event::array_start, 0, {}, {}});
                return true;
            case Event::key: {
                if (frames_.empty()) return true;
                Frame& object = frames_.back();
                object.key = parsed.get<std::string>();
                if (!object.keys.insert(object.key).second) {
                    fail(path(), "duplicate key");
                }
                return true;
            }
            case Event::value:
                next_element();
                return true;
            case Event::object_end:
            case Event::array_end:
                return true;
        }
        return true;
    }

    // Throws the first problem seen, if any.
    void check() const {
        if (problem_) throw *problem_;
    }

  private:
    struct Frame {
        bool array = false;
        std::size_t count = 0;  // elements begun (arrays)
        std::string key;        // the current key (objects)
        std::set<std::string> keys;
    };

    void next_element() {
        if (!frames_.empty() && frames_.back().array) ++frames_.back().count;
    }

    // The JSON path of the value being read, as ConfigError::prefixed() would join it.
    std::string path() const {
        std::string out;
        for (const Frame& f : frames_) {
            if (f.array) {
                if (f.count > 0) out += "[" + std::to_string(f.count - 1) + "]";
            } else if (out.empty() || (!f.key.empty() && f.key.front() == '[')) {
                out += f.key;
            } else {
                out += "." + f.key;
            }
        }
        return out;
    }

    void fail(std::string where, const std::string& problem) {
        if (!problem_) problem_ = std::make_unique<ConfigError>(std::move(where), problem);
    }

    std::vector<Frame> frames_;
    std::unique_ptr<ConfigError> problem_;
};

// The listen() backlog when a listener gives none: the kernel's own cap, net.core.somaxconn
// (4096 on Linux since 5.4), as a larger value is cut to it anyway.
std::uint64_t system_somaxconn() {
    static const std::uint64_t value = [] {
        std::ifstream in("/proc/sys/net/core/somaxconn");
        long long n = 0;
        if (!(in >> n) || n < 1) return std::uint64_t{4096};
        return static_cast<std::uint64_t>(std::min<long long>(n, 65535));
    }();
    return value;
}

bool is_host_name(const std::string& host) {
    // Letters, digits, '-' and '.' (RFC 1123), which covers IPv4 literals too.
    return std::all_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '.';
    });
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
        if (unix_path.size() >= sizeof(sockaddr_un::sun_path)) {
            throw ConfigError("unix", "path longer than " +
                                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                          " bytes, the limit of a Unix socket address");
        }
        return reactor::Endpoint::unix_socket(unix_path);
    }
    const std::string host = in.string("address", "127.0.0.1");
    if (host.empty()) throw ConfigError("address", "expected a host address");
    in6_addr v6{};
    if (host.find(':') != std::string::npos ? ::inet_pton(AF_INET6, host.c_str(), &v6) != 1
                                            : !is_host_name(host)) {
        throw ConfigError("address",
                          "expected an IPv4 or IPv6 address (without brackets) or a host name");
    }
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

reactor::ConnectionLimits read_limits(const nlohmann::json* value, std::size_t& max_frame,
                                      const std::string& protocol) {
    reactor::ConnectionLimits limits;
    limits.max_connections = 10000;
    // HTTP clients reconnect at will, so an idle keep-alive connection is closed after 75 s as
    // nginx does; clients of the other protocols (redis clients, chat sessions) expect to stay
    // connected while quiet, so they are never closed for idleness unless the config says so.
    const std::uint64_t default_idle = protocol == "http" ? kHttpIdleTimeoutMs : 0;
    limits.idle_timeout = std::chrono::milliseconds(default_idle);
    if (value == nullptr) return limits;
    Options in(*value);
    limits.max_connections = in.integer("max_connections", limits.max_connections, 1, 1000000);
    limits.idle_timeout = std::chrono::milliseconds(
        in.integer("idle_timeout_ms", default_idle, 0, 24ULL * 3600 * 1000));
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
    out.backlog = static_cast<int>(in.integer("backlog", system_somaxconn(), 1, 65535));
    out.accept = in.choice("accept", "reuseport", {"reuseport", "round_robin"}) == "round_robin"
                     ? reactor::AcceptMode::round_robin
                     : reactor::AcceptMode::reuse_port;
    out.share_port = in.boolean("share_port", false);
    std::tie(out.protocol, out.protocol_options) =
        within("protocol", [&] { return read_named(in.get("protocol"), "protocol"); });
    std::tie(out.app, out.app_options) =
        within("app", [&] { return read_named(in.get("app"), "app"); });
    out.limits = within("limits",
                        [&] { return read_limits(in.get("limits"), out.max_frame, out.protocol); });
    if (const auto* tls = in.get("tls")) {
        if (out.endpoint.is_unix()) throw ConfigError("tls", "TLS is for TCP listeners");
        std::tie(out.tls, out.tls_paths) =
            within("tls", [&] { return read_tls(*tls, out.protocol); });
    }
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
    ParseGuard guard;
    try {
        root = nlohmann::json::parse(text, std::ref(guard));
    } catch (const nlohmann::json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double ("1e400").
        throw ConfigError("", std::string("invalid JSON: ") + e.what());
    }
    if (!root.is_object()) throw ConfigError("", "expected a JSON object at the top level");
    guard.check();
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
    config.output_budget = static_cast<std::size_t>(
        in.integer("output_budget", default_output_budget(), 0, 1ULL << 40));
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

namespace {

bool nonlocal_bind_allowed(int family) {
    std::ifstream in(family == AF_INET6 ? "/proc/sys/net/ipv6/ip_nonlocal_bind"
                                        : "/proc/sys/net/ipv4/ip_nonlocal_bind");
    int allowed = 0;
    return (in >> allowed) && allowed != 0;
}

// Whether the kernel would let a socket bind to address: a wildcard, loopback, or an address of
// one of this host's interfaces.
bool is_local_address(const sockaddr* address) {
    if (address->sa_family == AF_INET) {
        const auto ip = ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr);
        if (ip == INADDR_ANY || (ip >> 24) == 127) return true;
    } else if (address->sa_family == AF_INET6) {
        const in6_addr& ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
        if (IN6_IS_ADDR_UNSPECIFIED(&ip) || IN6_IS_ADDR_LOOPBACK(&ip)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&ip)) {  // ::ffff:a.b.c.d binds as a.b.c.d
            sockaddr_in v4{};
            v4.sin_family = AF_INET;
            std::memcpy(&v4.sin_addr, &ip.s6_addr[12], sizeof v4.sin_addr);
            return is_local_address(reinterpret_cast<const sockaddr*>(&v4));
        }
    } else {
        return false;
    }
    if (nonlocal_bind_allowed(address->sa_family)) return true;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return true;  // cannot tell: the bind will
    bool found = false;
    for (const ifaddrs* i = list; i != nullptr && !found; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != address->sa_family) continue;
        if (address->sa_family == AF_INET) {
            found = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr ==
                    reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr;
        } else {
            found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                                &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr,
                                sizeof(in6_addr)) == 0;
        }
    }
    ::freeifaddrs(list);
    return found;
}

void check_endpoint(const reactor::Endpoint& endpoint, const std::string& path) {
    if (endpoint.is_unix()) {
        const std::string& file = endpoint.unix_path;
        const auto slash = file.rfind('/');
        const std::string dir = slash == std::string::npos ? "."
                                : slash == 0               ? "/"
                                                           : file.substr(0, slash);
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0) {
            throw ConfigError(path + ".unix", "directory " + dir + ": " + std::strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) throw ConfigError(path + ".unix", dir + " is not a directory");
        if (::access(dir.c_str(), W_OK | X_OK) != 0) {
            throw ConfigError(path + ".unix",
                              "cannot create a socket in " + dir + ": " + std::strerror(errno));
        }
        if (::lstat(file.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
            throw ConfigError(path + ".unix", file + " exists and is not a socket");
        }
        return;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || found == nullptr) {
        throw ConfigError(path + ".address",
                          "cannot resolve '" + endpoint.host + "': " + ::gai_strerror(rc));
    }
    // The listener binds the first address, as reactor::Server does.
    const bool local = is_local_address(found->ai_addr);
    ::freeaddrinfo(found);
    if (!local) {
        throw ConfigError(
            path + ".address",
            endpoint.host + " is not an address of this host (nothing could bind it)");
    }
}

}  // namespace

void check_host(const Config& config) {
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        check_endpoint(config.listeners[i].endpoint, "listeners[" + std::to_string(i) + "]");
    }
    if (config.admin.enabled) check_endpoint(config.admin.endpoint, "admin");
}

std::size_t default_output_budget() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    constexpr std::size_t kCap = std::size_t{1} << 30;
    if (pages <= 0 || page <= 0) return kCap;
    return std::min(kCap, static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 4);
}

int somaxconn() {
    return static_cast<int>(system_somaxconn());
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
