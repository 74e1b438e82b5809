#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reactor/config_error.hpp"
#include "reactor/protocol.hpp"

namespace reactor {

// What a protocol is built from: its JSON options (the listener's "protocol" object without "name")
// and the listener's frame limit, which every protocol must respect.
struct ProtocolConfig {
    nlohmann::json options = nlohmann::json::object();
    std::size_t max_frame = 1 << 20;
};

// Protocols by name. A builder validates its options once, throwing ConfigError naming the option
// ("max_line: expected a positive integer"), and returns the factory shared by all connections.
// Not thread-safe: fill it before serving.
class ProtocolRegistry {
  public:
    using Builder = std::function<std::shared_ptr<const ProtocolFactory>(const ProtocolConfig&)>;

    // Throws std::invalid_argument when the name is taken.
    void add(const std::string& name, Builder builder);
    bool contains(const std::string& name) const;
    std::vector<std::string> names() const;
    // Throws ConfigError for an unknown name or bad options.
    std::shared_ptr<const ProtocolFactory> build(const std::string& name,
                                                 const ProtocolConfig& config) const;

  private:
    std::map<std::string, Builder> builders_;
};

}  // namespace reactor
