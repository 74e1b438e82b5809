#pragma once

// How reactord's configuration readers name where an error is: the enclosing object's path is
// prefixed as the error travels out. Internal to the config readers.

#include <string>

#include "reactor/config_error.hpp"

namespace reactord {

// Runs fn, prefixing any ConfigError it throws with path.
template <typename Fn>
auto within(const std::string& path, Fn fn) {
    try {
        return fn();
    } catch (const reactor::ConfigError& e) {
        throw e.prefixed(path);
    }
}

}  // namespace reactord
