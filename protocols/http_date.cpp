#include "http_date.hpp"

#include <time.h>

namespace reactor::protocols {

namespace {

// The coarse clock is read without a system call and in a few nanoseconds, where the precise one
// costs about 20 on a VM; its few milliseconds of resolution do not matter to a date in seconds.
std::time_t wall_clock_seconds() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return now.tv_sec;
}

void append_two_digits(std::string& out, int value) {
    out.push_back(static_cast<char>('0' + value / 10));
    out.push_back(static_cast<char>('0' + value % 10));
}

}  // namespace

std::string format_http_date(std::time_t seconds) {
    // Written by hand rather than with strftime: day and month names must be English whatever
    // the process locale is.
    static constexpr std::string_view kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    std::string out;
    out.reserve(29);
    out.append(kDays[tm.tm_wday]);
    out.append(", ");
    append_two_digits(out, tm.tm_mday);
    out.push_back(' ');
    out.append(kMonths[tm.tm_mon]);
    out.push_back(' ');
    out.append(std::to_string(tm.tm_year + 1900));
    out.push_back(' ');
    append_two_digits(out, tm.tm_hour);
    out.push_back(':');
    append_two_digits(out, tm.tm_min);
    out.push_back(':');
    append_two_digits(out, tm.tm_sec);
    out.append(" GMT");
    return out;
}

HttpDateCache::HttpDateCache(Clock clock) : clock_(std::move(clock)) {}

std::string_view HttpDateCache::now() {
    // Every response asks: the wall clock is called directly, not through a std::function.
    const std::time_t second = clock_ ? clock_() : wall_clock_seconds();
    if (second != second_) {
        text_ = format_http_date(second);
        second_ = second;
        ++formats_;
    }
    return text_;
}

std::string_view http_date_now() {
    thread_local HttpDateCache cache;
    return cache.now();
}

}  // namespace reactor::protocols
