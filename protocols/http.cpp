#include "builtin.hpp"
#include "options.hpp"

namespace reactor::protocols {

std::shared_ptr<const ProtocolFactory> make_http(const ProtocolConfig& config) {
    Options(config.options).finish();
    throw ConfigError("name", "protocol 'http' is not built yet");
}

}  // namespace reactor::protocols
