#pragma once

// What the library's own code reaches inside an EventLoop. Internal header.

#include <event2/event.h>

#include "reactor/event_loop.hpp"

namespace reactor {

// The loop's event_base, where the library's sockets and timers register.
event_base* event_base_of(EventLoop& loop);

}  // namespace reactor
