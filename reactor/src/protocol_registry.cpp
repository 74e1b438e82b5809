#include "reactor/protocol_registry.hpp"

#include <stdexcept>

namespace reactor {

void ProtocolRegistry::add(const std::string& name, Builder builder) {
    if (!builders_.emplace(name, std::move(builder)).second) {
        throw std::invalid_argument("protocol '" + name + "' is already registered");
    }
}

bool ProtocolRegistry::contains(const std::string& name) const {
    return builders_.count(name) != 0;
}

std::vector<std::string> ProtocolRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& [name, builder] : builders_) out.push_back(name);
    return out;
}

std::shared_ptr<const ProtocolFactory> ProtocolRegistry::build(const std::string& name,
                                                               const ProtocolConfig& config) const {
    const auto it = builders_.find(name);
    if (it == builders_.end()) {
        std::string known;
        for (const auto& [n, b] : builders_) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError("name", "unknown protocol '" + name + "' (known: " + known + ")");
    }
    return it->second(config);
}

}  // namespace reactor
