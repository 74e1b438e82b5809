#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace reactor {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

// Process-wide log threshold; safe from any thread.
void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug", "info", "warn", "error", "off"; throws std::invalid_argument otherwise.
LogLevel parse_log_level(std::string_view name);

// Writes one line to stderr: time, level, then the text. Safe from any thread.
void log_line(LogLevel level, std::string_view text);

// log(LogLevel::info, "listener=", name, " conn=", id, " opened")
template <typename... Parts>
void log(LogLevel level, const Parts&... parts) {
    if (level < log_level()) return;
    std::ostringstream out;
    (out << ... << parts);
    log_line(level, out.str());
}

}  // namespace reactor
