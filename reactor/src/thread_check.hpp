#pragma once

// Debug builds check the threading rules the public headers state. A method that belongs to a
// loop's thread, called from another thread while that loop runs, is reported: the line names the
// method, and the process aborts (muduo's assertInLoopThread). Before a loop runs and after it
// stopped, any one thread may set it up or take it down, as the headers allow. Builds with NDEBUG
// check nothing. Internal header.

#include "reactor/event_loop.hpp"

namespace reactor::detail {

// True when the calling thread may use what belongs to the loop's thread.
inline bool owns_loop(const EventLoop& loop) {
    return loop.in_loop_thread() || !loop.running();
}

[[noreturn]] void wrong_thread(const char* method);

}  // namespace reactor::detail

#ifdef NDEBUG
#define REACTOR_LOOP_THREAD_ONLY(loop, method) ((void)0)
#else
#define REACTOR_LOOP_THREAD_ONLY(loop, method)                                            \
    do {                                                                                  \
        if (!::reactor::detail::owns_loop(loop)) ::reactor::detail::wrong_thread(method); \
    } while (0)
#endif
