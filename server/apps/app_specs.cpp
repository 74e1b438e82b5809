#include "apps/builtin_apps.hpp"

namespace reactord {

const std::map<std::string, AppSpec>& app_specs() {
    static const std::map<std::string, AppSpec> specs = {
        {"echo", echo_app_spec()}, {"chat", chat_app_spec()},   {"kv", kv_app_spec()},
        {"http", http_app_spec()}, {"admin", admin_app_spec()},
    };
    return specs;
}

}  // namespace reactord
