#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "histogram.hpp"
#include "settings.hpp"

namespace loadgen {

// The whole run, merged over the client threads.
struct RunResult {
    Histogram latency;  // ns
    std::uint64_t completed = 0;
    std::uint64_t connects = 0;
    std::size_t connections_open = 0;  // idle mode: open at the end of the connect phase
    double elapsed_s = 0;
    std::map<std::string, std::uint64_t> errors;
};

std::string mode_name(const Settings& settings);
// One line per figure, for people.
std::string format_text(const Settings& settings, const RunResult& result);
// One JSON object, for the benchmark runner.
std::string format_json(const Settings& settings, const RunResult& result);

}  // namespace loadgen
