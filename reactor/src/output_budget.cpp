#include "output_budget.hpp"

#include <malloc.h>

#include <chrono>

#include "reactor/event_loop.hpp"
#include "server_impl.hpp"

namespace reactor {

namespace {
// Below this much freed at once, glibc's own trimming at the top of the heap is enough; the 64 KiB
// messages of a busy echo never come here (only a connection's end does).
constexpr std::size_t kTrimAfter = 8 << 20;
constexpr std::chrono::milliseconds kTrimDelay{200};
constexpr std::chrono::milliseconds kTrimInterval{1000};

std::atomic<std::size_t> g_released{0};
std::atomic<bool> g_trim_scheduled{false};
std::atomic<std::int64_t> g_last_trim_ms{-1000000};

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
}  // namespace

void released_memory(EventLoop& loop, std::size_t bytes) {
    if (g_released.fetch_add(bytes, std::memory_order_relaxed) + bytes < kTrimAfter) return;
    if (g_trim_scheduled.exchange(true)) return;
    // One trim for a whole episode (many clients closed in a burst), and none more often than once
    // a second: a trim walks every arena.
    const std::int64_t since = now_ms() - g_last_trim_ms.load();
    const auto delay = std::max(kTrimDelay, kTrimInterval - std::chrono::milliseconds(since));
    loop.run_after(delay, [] {
        g_released.store(0, std::memory_order_relaxed);
        g_last_trim_ms.store(now_ms());
        ::malloc_trim(0);
        g_trim_scheduled.store(false);
    });
}

}  // namespace reactor

// The Server's part of the budget; the rest of the Server is in server.cpp.
namespace reactor {

void Server::set_output_budget(std::size_t bytes) {
    impl_->budget->limit = bytes;
}

std::size_t Server::output_budget_pending() const {
    return impl_->budget->pending.load(std::memory_order_relaxed);
}

std::uint64_t Server::output_budget_closed() const {
    return impl_->budget->closed.load(std::memory_order_relaxed);
}

}  // namespace reactor
