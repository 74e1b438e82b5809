#include "apps/builtin_apps.hpp"

namespace reactord {

AppSpec http_app_spec() {
    AppSpec spec;
    spec.protocols = {"http"};
    spec.prepare = [](const nlohmann::json&) -> std::function<std::unique_ptr<App>(AppContext&)> {
        throw reactor::ConfigError("name", "app 'http' is not built yet");
    };
    return spec;
}

}  // namespace reactord
