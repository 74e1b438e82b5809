#pragma once

// The server-wide output budget and the return of memory after large releases. Internal header.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace reactor {

class EventLoop;

// Bytes pending in the output buffers of all of a server's connections together (the per-thread
// output stage, at most 256 KiB a loop, is not counted). Above `limit`, a connection whose output
// grows while it holds at least its fair share (limit / connections) is closed: the clients that
// hold the most and keep growing go first, those that read their replies are not touched, and
// the total stays within the limit plus about one reply per connection. Shared by the server's
// loops: counters only.
struct OutputBudget {
    std::size_t limit = 0;  // zero: no budget
    std::atomic<std::size_t> pending{0};
    std::atomic<std::size_t> connections{0};
    std::atomic<std::uint64_t> closed{0};

    bool exceeded_by(std::size_t held) const {
        const std::size_t total = pending.load(std::memory_order_relaxed);
        if (total <= limit) return false;
        const std::size_t share = limit / std::max<std::size_t>(1, connections.load());
        return held >= share;
    }
};

// Records that `bytes` of buffered data were freed at once (a connection's buffers at its end);
// after enough of them, the loop hands free heap back to the system (malloc_trim) once, shortly
// after, at most once a second in the process. Loop thread.
void released_memory(EventLoop& loop, std::size_t bytes);

}  // namespace reactor
