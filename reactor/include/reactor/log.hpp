#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

namespace reactor {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

// Process-wide log threshold; safe from any thread.
void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug", "info", "warn", "error", "off"; throws std::invalid_argument otherwise.
LogLevel parse_log_level(std::string_view name);

// Queues one line (time, level, then the text) for the log's writer thread, which writes it to the
// log's descriptor (stderr unless set_log_fd() says otherwise). Never blocks on the destination:
// when the queue is full (kLogQueueBytes) the line is dropped and counted, and the writer reports
// "N log lines dropped" once the destination takes lines again. Safe from any thread.
void log_line(LogLevel level, std::string_view text);

// Writes what is queued and waits until it is written, or for at most `timeout` when the
// destination does not take it. True when everything was written. Any thread; also runs at exit
// (with a 1 s bound), so the last lines before a clean exit are not lost.
bool flush_log(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Where log lines go from now on (queued lines included); returns the previous descriptor. The
// descriptor is written with write(2) from the writer thread only. Any thread.
int set_log_fd(int fd);

inline constexpr std::size_t kLogQueueBytes = 1 << 20;

struct LogCounters {
    std::uint64_t written = 0;     // lines written to the destination
    std::uint64_t dropped = 0;     // lines dropped because the queue was full
    std::uint64_t suppressed = 0;  // lines held back by LogRate limits
};
LogCounters log_counters();

// A limit for one kind of line that a remote peer can trigger once per event (a protocol error,
// an output overflow, a reset): a burst of `burst` lines, then at most `per_second`. What it holds
// back is counted and reported as "(M similar suppressed)" on the next line it lets through, or,
// if none comes within a second, by the writer thread as "<kind>: M similar lines suppressed".
// Meant to be a static object per call site; must outlive its last use. Safe from any thread.
class LogRate {
  public:
    explicit LogRate(std::string_view kind, LogLevel level = LogLevel::info, unsigned burst = 20,
                     unsigned per_second = 10);
    ~LogRate();
    LogRate(const LogRate&) = delete;
    LogRate& operator=(const LogRate&) = delete;

    LogLevel level() const { return level_; }
    // True when a line may be written now; suppressed is then how many were held back since the
    // last line of this kind was reported. False counts one more held back.
    bool admit(std::uint64_t& suppressed);
    // Takes the count held back, if the last report is at least a second old (the writer thread's
    // timer).
    std::uint64_t take_stale(std::chrono::steady_clock::time_point now);
    const std::string& kind() const { return kind_; }

  private:
    const std::string kind_;
    const LogLevel level_;
    const double burst_;
    const double per_second_;
    std::mutex mutex_;
    double tokens_;
    std::uint64_t suppressed_ = 0;
    std::chrono::steady_clock::time_point refilled_;
    std::chrono::steady_clock::time_point reported_;
};

// log(LogLevel::info, "listener=", name, " conn=", id, " opened")
template <typename... Parts>
void log(LogLevel level, const Parts&... parts) {
    if (level < log_level()) return;
    std::ostringstream out;
    (out << ... << parts);
    log_line(level, out.str());
}

// log_limited(rate, "listener=", name, " conn=", id, " protocol error: ", why), at rate's level.
template <typename... Parts>
void log_limited(LogRate& rate, const Parts&... parts) {
    if (rate.level() < log_level()) return;
    std::uint64_t suppressed = 0;
    if (!rate.admit(suppressed)) return;
    std::ostringstream out;
    (out << ... << parts);
    if (suppressed != 0) out << " (" << suppressed << " similar suppressed)";
    log_line(rate.level(), out.str());
}

}  // namespace reactor
