#pragma once

// The specs of reactord's built-in apps; app_specs() collects them by name.

#include "apps/app.hpp"
#include "options.hpp"

namespace reactord {

AppSpec echo_app_spec();
AppSpec chat_app_spec();
AppSpec kv_app_spec();
AppSpec http_app_spec();
AppSpec admin_app_spec();

}  // namespace reactord
