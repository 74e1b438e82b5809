// Fuzz target for reactord's configuration: the input is the config file's text.
//
// Checks: parse_config() either returns a Config or throws reactor::ConfigError, and then so does
// resolving that Config's protocols and apps (make_plan, with the built-in protocols registered;
// plugin paths are never loaded). No other exception type escapes. A ConfigError names a JSON
// path that leads through the document to the offending value (or to the object that lacks it);
// only text that is not a JSON object gets an error without a path. A parsed Config keeps the
// documented bounds, among them options nested at most 64 levels deep in the document (so that
// nothing recursive later meets a deep tree) and no key given twice in one object.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <typeinfo>

#include "builtin.hpp"
#include "config.hpp"
#include "daemon.hpp"
#include "fuzz_input.hpp"
#include "reactor/config_error.hpp"
#include "reactor/protocol_registry.hpp"

namespace {

const reactor::ProtocolRegistry& registry() {
    static const reactor::ProtocolRegistry instance = [] {
        reactor::ProtocolRegistry r;
        reactor::protocols::register_builtin(r);
        return r;
    }();
    return instance;
}

// Whether path ("listeners[0].protocol.max_line") leads from node through the document. Keys may
// hold '.' and '[' themselves, so every key of an object that the path starts with is tried. The
// last step may name a key that is absent (a missing or defaulted value), as long as the value it
// would be in is an object, or a string standing for {"name": ...}. A key that starts with '['
// follows its object without a '.' (ConfigError::prefixed() takes it for an index).
bool resolves(const nlohmann::json& node, std::string_view path, bool top) {
    if (path.empty()) return true;
    if (path.front() == '[' && node.is_array()) {
        const std::size_t close = path.find(']');
        if (close == std::string_view::npos || close == 1) return false;
        std::size_t index = 0;
        for (const char c : path.substr(1, close - 1)) {
            if (c < '0' || c > '9') return false;
            index = index * 10 + static_cast<std::size_t>(c - '0');
            if (index > node.size()) return false;
        }
        return index < node.size() && resolves(node[index], path.substr(close + 1), false);
    }
    // ConfigError::prefixed() joins a key that starts with '[' without a '.', as if an index.
    if (!top && path.front() != '[') {
        if (path.front() != '.') return false;
        path.remove_prefix(1);
    }
    if (node.is_object()) {
        for (const auto& [key, value] : node.items()) {
            if (path.substr(0, key.size()) != key) continue;
            const std::string_view rest = path.substr(key.size());
            if ((rest.empty() || rest.front() == '.' || rest.front() == '[') &&
                resolves(value, rest, false)) {
                return true;
            }
        }
    }
    const bool last_step = path.find_first_of(".[") == std::string_view::npos;
    return last_step && !path.empty() && (node.is_object() || node.is_string());
}

void check_error(const reactor::ConfigError& e, const std::string& text, const char* stage) {
    FUZZ_CHECK(!e.problem().empty(), "%s: a ConfigError without a problem", stage);
    const nlohmann::json root = nlohmann::json::parse(text, nullptr, false);
    const bool is_object = !root.is_discarded() && root.is_object();
    if (e.path().empty()) {
        // An unknown key "" at the top level has the empty path.
        FUZZ_CHECK(!is_object || root.contains(""), "%s: '%s' names no path for a JSON object",
                   stage, e.describe().c_str());
        FUZZ_CHECK(e.describe() == e.problem(), "%s: describe() '%s'", stage, e.describe().c_str());
        return;
    }
    FUZZ_CHECK(is_object, "%s: '%s' names a path in text that is not a JSON object", stage,
               e.describe().c_str());
    FUZZ_CHECK(resolves(root, e.path(), true), "%s: path '%s' is not in the document ('%s')", stage,
               fuzz::printable(e.path()).c_str(), fuzz::printable(e.problem()).c_str());
    FUZZ_CHECK(e.describe() == e.path() + ": " + e.problem(), "%s: describe() '%s'", stage,
               e.describe().c_str());
}

// Levels below node (a scalar has none); recursion is safe as the loader bounds the depth.
std::size_t depth(const nlohmann::json& node) {
    std::size_t deepest = 0;
    if (node.is_structured()) {
        for (const auto& child : node) deepest = std::max(deepest, depth(child));
        return deepest + 1;
    }
    return 0;
}

void check_config(const reactord::Config& config) {
    FUZZ_CHECK(config.threads >= 1 && config.threads <= 256, "threads %u", config.threads);
    FUZZ_CHECK(!config.listeners.empty(), "a config without listeners");
    std::set<std::string> names;
    for (const reactord::ListenerConfig& l : config.listeners) {
        FUZZ_CHECK(!l.name.empty() && names.insert(l.name).second, "listener name '%s'",
                   l.name.c_str());
        FUZZ_CHECK(!l.protocol.empty() && !l.app.empty(), "listener '%s' without protocol or app",
                   l.name.c_str());
        FUZZ_CHECK(l.protocol_options.is_object() && l.app_options.is_object() &&
                       !l.protocol_options.contains("name") && !l.app_options.contains("name"),
                   "listener '%s': options are not objects without their name", l.name.c_str());
        // The options sit 4 levels down: {"listeners": [{"protocol": {...}}]}.
        FUZZ_CHECK(depth(l.protocol_options) <= 60 && depth(l.app_options) <= 60,
                   "listener '%s': options nested deeper than the limit", l.name.c_str());
        FUZZ_CHECK(l.max_frame >= 16, "listener '%s': max_frame %zu", l.name.c_str(), l.max_frame);
        FUZZ_CHECK(l.limits.output_limit >= l.limits.output_high_water,
                   "listener '%s': output_limit below output_high_water", l.name.c_str());
        FUZZ_CHECK(l.endpoint.is_unix() || !l.endpoint.host.empty(), "listener '%s' without host",
                   l.name.c_str());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const char* stage = "parse_config";
    try {
        const reactord::Config config = reactord::parse_config(text);
        check_config(config);
        stage = "make_plan";
        const reactord::Plan plan = reactord::make_plan(config, registry());
        FUZZ_CHECK(
            plan.listeners.size() == config.listeners.size() + (config.admin.enabled ? 1 : 0),
            "a plan of %zu listeners for %zu", plan.listeners.size(), config.listeners.size());
    } catch (const reactor::ConfigError& e) {
        check_error(e, text, stage);
    } catch (const std::exception& e) {
        FUZZ_CHECK(false, "%s threw %s, not a ConfigError: %s", stage, typeid(e).name(), e.what());
    } catch (...) {
        FUZZ_CHECK(false, "%s threw something that is not a std::exception", stage);
    }
    return 0;
}
