#pragma once

// The "tls" object of a reactord listener (config_tls.cpp): its format, read into
// reactor::TlsServerOptions, and how the library's option paths read in the config's terms.
// Internal to the config readers.

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "reactor/tls.hpp"

namespace reactord {

// Throws reactor::ConfigError with the path below "tls". The pairs map a library option path
// prefix ("certificates[0]") to the config's ("" when written as the object's own cert and key).
std::pair<reactor::TlsServerOptions, std::vector<std::pair<std::string, std::string>>> read_tls(
    const nlohmann::json& value, const std::string& protocol);

}  // namespace reactord
