#pragma once

// Loads protocols from shared objects built against reactor/protocol_plugin.h.

#include <string>

#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

// Opens the plugin at path, checks its ABI, and registers its protocol in registry under the name
// the plugin gives; returns that name. The shared object stays loaded while the registry entry or
// any factory or connection built from it lives.
//
// Throws std::runtime_error naming the path and the problem (cannot be opened, no entry point, ABI
// version or descriptor size it does not match, incomplete descriptor, name already registered);
// nothing is registered then.
std::string load_protocol_plugin(const std::string& path, ProtocolRegistry& registry);

}  // namespace reactor::protocols
