#include "http_date.hpp"

#include <chrono>

namespace reactor::protocols {

namespace {

std::time_t wall_clock_seconds() {
    return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
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

HttpDateCache::HttpDateCache(Clock clock)
    : clock_(clock ? std::move(clock) : Clock(&wall_clock_seconds)) {}

std::string_view HttpDateCache::now() {
    const std::time_t second = clock_();
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
