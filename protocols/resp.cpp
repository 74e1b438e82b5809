#include "builtin.hpp"
#include "options.hpp"

namespace reactor::protocols {

std::shared_ptr<const ProtocolFactory> make_resp(const ProtocolConfig& config) {
    Options(config.options).finish();
    throw ConfigError("name", "protocol 'resp' is not built yet");
}

}  // namespace reactor::protocols
