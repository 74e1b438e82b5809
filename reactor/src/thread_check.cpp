#include "thread_check.hpp"

#include <cstdio>
#include <cstdlib>

namespace reactor::detail {

void wrong_thread(const char* method) {
    // Straight to stderr: the log's writer thread may never get to run before the abort.
    std::fprintf(stderr, "reactor: %s called from a thread other than its loop's\n", method);
    std::fflush(stderr);
    std::abort();
}

}  // namespace reactor::detail
