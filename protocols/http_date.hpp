#pragma once

// The HTTP Date header value, formatted at most once per second.

#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>

namespace reactor::protocols {

// IMF-fixdate, the one form HTTP senders use: "Sun, 06 Nov 1994 08:49:37 GMT" (always 29 bytes).
std::string format_http_date(std::time_t seconds);

// Keeps the formatted date together with the second it belongs to, so a busy server formats it
// once per second instead of once per response. Not thread-safe: one cache per thread.
class HttpDateCache {
  public:
    using Clock = std::function<std::time_t()>;

    // The wall clock (CLOCK_REALTIME_COARSE, read directly) by default; tests inject their own.
    explicit HttpDateCache(Clock clock = {});

    // The date for the clock's current second. Valid until the next call.
    std::string_view now();
    // How many times the date was formatted (for tests of the cache).
    std::uint64_t formats() const { return formats_; }

  private:
    Clock clock_;
    std::time_t second_ = -1;
    std::string text_;
    std::uint64_t formats_ = 0;
};

// The current date from this thread's cache. Valid until the thread's next call.
std::string_view http_date_now();

}  // namespace reactor::protocols
