// The log: lines formatted by the caller, queued in memory, written by one thread of the log's own.
// A loop thread never writes to the destination itself, so a destination that does not drain (a
// pipe nobody reads, a stopped terminal) costs dropped lines, never a blocked loop.

#include "reactor/log.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace reactor {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
std::atomic<std::uint64_t> g_suppressed{0};

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "DEBUG";
        case LogLevel::info:
            return "INFO";
        case LogLevel::warn:
            return "WARN";
        case LogLevel::error:
            return "ERROR";
        case LogLevel::off:
            break;
    }
    return "OFF";
}

std::string format_line(LogLevel level, std::string_view text) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[48];
    const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ %-5s ", static_cast<int>(millis),
                  level_name(level));
    std::string line;
    line.reserve(32 + text.size());
    line.append(stamp).append(text).push_back('\n');
    return line;
}

// Everything the writer thread shares with the callers, under one mutex. Never destroyed: the
// writer may still run while the process exits.
struct Sink {
    std::mutex mutex;
    std::condition_variable wake;     // the writer: lines queued
    std::condition_variable written;  // flush_log(): lines written
    std::string queue;                // whole lines, oldest first, at most kLogQueueBytes
    std::uint64_t queued_lines = 0;
    std::uint64_t accepted = 0;  // lines accepted into the queue, ever
    std::uint64_t done = 0;      // of those, written (or given up on)
    std::uint64_t written_lines = 0;
    std::uint64_t dropped_total = 0;
    std::uint64_t dropped_unreported = 0;
    int fd = STDERR_FILENO;
    bool started = false;
    std::vector<LogRate*> rates;
};

Sink& sink() {
    static Sink* const instance = new Sink;
    return *instance;
}

// Writes all of bytes, waiting for a non-blocking descriptor to take them. False when the
// descriptor fails for good (closed, EPIPE): the bytes are given up.
bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, 1000);
            continue;
        }
        return false;
    }
    return true;
}

void writer_main() {
    Sink& s = sink();
    auto next_rate_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::unique_lock lock(s.mutex);
    for (;;) {
        s.wake.wait_until(lock, next_rate_check, [&] { return !s.queue.empty(); });
        std::string batch;
        batch.swap(s.queue);
        const std::uint64_t lines = s.queued_lines;
        s.queued_lines = 0;
        const std::uint64_t dropped = s.dropped_unreported;
        s.dropped_unreported = 0;
        const int fd = s.fd;
        std::vector<std::pair<LogLevel, std::string>> stale;
        const auto now = std::chrono::steady_clock::now();
        if (now >= next_rate_check) {
            next_rate_check = now + std::chrono::seconds(1);
            for (LogRate* rate : s.rates) {
                if (rate->level() < log_level()) continue;
                if (const std::uint64_t n = rate->take_stale(now); n != 0) {
                    stale.emplace_back(rate->level(), rate->kind() + ": " + std::to_string(n) +
                                                          " similar lines suppressed");
                }
            }
        }
        lock.unlock();
        // The destination may block here for as long as it likes: callers only queue.
        std::uint64_t out = 0;
        if (!batch.empty() && write_all(fd, batch)) out += lines;
        std::string extra;
        // Written once the destination took the lines before it: it drains again.
        if (dropped != 0) {
            extra += format_line(LogLevel::warn, std::to_string(dropped) +
                                                     " log lines dropped (log destination " +
                                                     "did not keep up)");
        }
        for (const auto& [level, text] : stale) extra += format_line(level, text);
        if (!extra.empty() && write_all(fd, extra)) {
            out += (dropped != 0 ? 1 : 0) + stale.size();
        }
        lock.lock();
        s.written_lines += out;
        s.done += lines;
        s.written.notify_all();
    }
}

void flush_at_exit() {
    flush_log(std::chrono::milliseconds(1000));
}

// Starts the writer on first use. Called with the mutex held.
void ensure_writer(Sink& s) {
    if (s.started) return;
    s.started = true;
    std::thread(writer_main).detach();
    std::atexit(flush_at_exit);
}
}  // namespace

void set_log_level(LogLevel level) {
    g_level.store(level, std::memory_order_relaxed);
}

LogLevel log_level() {
    return g_level.load(std::memory_order_relaxed);
}

LogLevel parse_log_level(std::string_view name) {
    if (name == "debug") return LogLevel::debug;
    if (name == "info") return LogLevel::info;
    if (name == "warn") return LogLevel::warn;
    if (name == "error") return LogLevel::error;
    if (name == "off") return LogLevel::off;
    throw std::invalid_argument("expected one of debug, info, warn, error, off");
}

void log_line(LogLevel level, std::string_view text) {
    if (level < log_level()) return;
    const std::string line = format_line(level, text);
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    ensure_writer(s);
    if (s.queue.size() + line.size() > kLogQueueBytes) {
        ++s.dropped_total;
        ++s.dropped_unreported;
        return;
    }
    const bool was_empty = s.queue.empty();
    s.queue += line;
    ++s.queued_lines;
    ++s.accepted;
    if (was_empty) s.wake.notify_one();
}

bool flush_log(std::chrono::milliseconds timeout) {
    Sink& s = sink();
    std::unique_lock lock(s.mutex);
    if (!s.started) return true;
    const std::uint64_t target = s.accepted;
    return s.written.wait_for(lock, timeout, [&] { return s.done >= target; });
}

int set_log_fd(int fd) {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    const int previous = s.fd;
    s.fd = fd;
    return previous;
}

LogCounters log_counters() {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    return {s.written_lines, s.dropped_total, g_suppressed.load(std::memory_order_relaxed)};
}

LogRate::LogRate(std::string_view kind, LogLevel level, unsigned burst, unsigned per_second)
    : kind_(kind),
      level_(level),
      burst_(std::max(1u, burst)),
      per_second_(per_second),
      tokens_(std::max(1u, burst)),
      refilled_(std::chrono::steady_clock::now()),
      reported_(refilled_) {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    s.rates.push_back(this);
}

LogRate::~LogRate() {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    s.rates.erase(std::remove(s.rates.begin(), s.rates.end(), this), s.rates.end());
}

bool LogRate::admit(std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    const std::chrono::duration<double> since = now - refilled_;
    tokens_ = std::min(burst_, tokens_ + since.count() * per_second_);
    refilled_ = now;
    if (tokens_ < 1.0) {
        ++suppressed_;
        g_suppressed.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    tokens_ -= 1.0;
    suppressed = suppressed_;
    suppressed_ = 0;
    reported_ = now;
    return true;
}

std::uint64_t LogRate::take_stale(std::chrono::steady_clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (suppressed_ == 0 || now - reported_ < std::chrono::seconds(1)) return 0;
    reported_ = now;
    return std::exchange(suppressed_, 0);
}

}  // namespace reactor
