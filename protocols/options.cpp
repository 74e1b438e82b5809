#include "options.hpp"

#include <limits>

namespace reactor::protocols {

Options::Options(const nlohmann::json& json) : json_(json) {
    if (!json_.is_object()) throw ConfigError("", "expected an object");
}

std::uint64_t Options::integer(const std::string& key, std::uint64_t fallback, std::uint64_t min,
                               std::uint64_t max) {
    const nlohmann::json* it = get(key);
    if (it == nullptr) return fallback;
    const std::string expected =
        "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (!it->is_number_integer()) throw ConfigError(key, expected);
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v < min || v > max) throw ConfigError(key, expected);
        return v;
    }
    const auto v = it->get<std::int64_t>();
    if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
        throw ConfigError(key, expected);
    }
    return static_cast<std::uint64_t>(v);
}

std::int64_t Options::signed_integer(const std::string& key, std::int64_t fallback,
                                     std::int64_t min, std::int64_t max) {
    const nlohmann::json* it = get(key);
    if (it == nullptr) return fallback;
    const std::string expected =
        "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (!it->is_number_integer()) throw ConfigError(key, expected);
    if (it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        throw ConfigError(key, expected);
    }
    const auto v = it->get<std::int64_t>();
    if (v < min || v > max) throw ConfigError(key, expected);
    return v;
}

bool Options::boolean(const std::string& key, bool fallback) {
    const nlohmann::json* it = get(key);
    if (it == nullptr) return fallback;
    if (!it->is_boolean()) throw ConfigError(key, "expected true or false");
    return it->get<bool>();
}

std::string Options::string(const std::string& key, const std::string& fallback) {
    const nlohmann::json* it = get(key);
    if (it == nullptr) return fallback;
    if (!it->is_string()) throw ConfigError(key, "expected a string");
    return it->get<std::string>();
}

std::string Options::choice(const std::string& key, const std::string& fallback,
                            const std::set<std::string>& choices) {
    const std::string value = string(key, fallback);
    if (choices.count(value) == 0) {
        std::string list;
        for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
        throw ConfigError(key, "expected one of " + list);
    }
    return value;
}

const nlohmann::json* Options::get(const std::string& key) {
    read_.insert(key);
    const auto it = json_.find(key);
    return it == json_.end() ? nullptr : &*it;
}

void Options::finish() const {
    for (const auto& [key, value] : json_.items()) {
        if (key == "name") continue;  // the registry key itself
        if (read_.count(key) == 0) throw ConfigError(key, "unknown option");
    }
}

}  // namespace reactor::protocols
