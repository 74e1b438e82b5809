#pragma once

// The protocols that ship with reactor, and their builders. Each builder validates its options and
// throws reactor::ConfigError naming the offending option.

#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

std::shared_ptr<const ProtocolFactory> make_raw(const ProtocolConfig& config);
std::shared_ptr<const ProtocolFactory> make_line(const ProtocolConfig& config);
std::shared_ptr<const ProtocolFactory> make_length(const ProtocolConfig& config);
std::shared_ptr<const ProtocolFactory> make_resp(const ProtocolConfig& config);
std::shared_ptr<const ProtocolFactory> make_http(const ProtocolConfig& config);
std::shared_ptr<const ProtocolFactory> make_websocket(const ProtocolConfig& config);

// Registers raw, line, length, resp, http and websocket.
void register_builtin(ProtocolRegistry& registry);

}  // namespace reactor::protocols
