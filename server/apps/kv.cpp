#include "apps/builtin_apps.hpp"

namespace reactord {

AppSpec kv_app_spec() {
    AppSpec spec;
    spec.protocols = {"resp"};
    spec.prepare = [](const nlohmann::json&) -> std::function<std::unique_ptr<App>(AppContext&)> {
        throw reactor::ConfigError("name", "app 'kv' is not built yet");
    };
    return spec;
}

}  // namespace reactord
