#include "builtin.hpp"

#include "options.hpp"

namespace reactor::protocols {

std::shared_ptr<const ProtocolFactory> make_raw(const ProtocolConfig& config) {
    Options(config.options).finish();
    return raw_protocol();
}

void register_builtin(ProtocolRegistry& registry) {
    registry.add("raw", &make_raw);
    registry.add("line", &make_line);
    registry.add("length", &make_length);
    registry.add("resp", &make_resp);
    registry.add("http", &make_http);
    registry.add("websocket", &make_websocket);
}

}  // namespace reactor::protocols
