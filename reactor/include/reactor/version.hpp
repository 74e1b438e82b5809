#pragma once

namespace reactor {
// The library version, "MAJOR.MINOR.PATCH".
const char* version();
}  // namespace reactor
