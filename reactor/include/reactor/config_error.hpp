#pragma once

#include <stdexcept>
#include <string>

namespace reactor {

// A configuration value that cannot be used. path names the value in JSON path form relative to the
// object that was being read ("max_line", "limits.output_limit"); whoever reads an enclosing object
// prefixes its own part with prefixed().
class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string path, const std::string& problem)
        : std::runtime_error(problem), path_(std::move(path)), problem_(problem) {}

    const std::string& path() const { return path_; }
    const std::string& problem() const { return problem_; }
    // "path: problem", the form users see.
    std::string describe() const { return path_.empty() ? problem_ : path_ + ": " + problem_; }

    ConfigError prefixed(const std::string& outer) const {
        if (path_.empty()) return ConfigError(outer, problem_);
        return ConfigError(path_.front() == '[' ? outer + path_ : outer + "." + path_, problem_);
    }

  private:
    std::string path_;
    std::string problem_;
};

}  // namespace reactor
