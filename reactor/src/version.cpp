#include "reactor/version.hpp"

namespace reactor {
const char* version() {
    return REACTOR_VERSION;
}
}  // namespace reactor
