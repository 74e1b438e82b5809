// The log never blocks its callers on a destination that does not drain, counts what it drops and
// says so once the destination drains; LogRate lets a burst through, then holds lines back and
// reports how many.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "reactor/log.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A pipe the log writes to; reading starts only when the test says so.
class LogPipe {
  public:
    LogPipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read_ = fds[0];
        write_ = fds[1];
        previous_ = reactor::set_log_fd(write_);
    }
    ~LogPipe() {
        start_reading();
        // What the writer still holds for this pipe goes out before the log moves back.
        reactor::flush_log(5s);
        reactor::set_log_fd(previous_);
        reactor::flush_log(5s);
        stop_ = true;
        reader_.join();
        ::close(write_);
        ::close(read_);
    }
    void start_reading() {
        if (reader_.joinable()) return;
        reader_ = std::thread([this] {
            char chunk[65536];
            while (!stop_) {
                pollfd p{read_, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                const ssize_t n = ::read(read_, chunk, sizeof chunk);
                if (n <= 0) continue;
                std::lock_guard lock(mutex_);
                text_.append(chunk, static_cast<std::size_t>(n));
                changed_.notify_all();
            }
        });
    }
    // True once the text read contains needle, false at the deadline.
    bool wait_for(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout,
                                 [&] { return text_.find(needle) != std::string::npos; });
    }
    // True once pred(text read so far) holds, false at the deadline.
    template <typename Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return pred(text_); });
    }
    std::string text() {
        std::lock_guard lock(mutex_);
        return text_;
    }

  private:
    int read_ = -1;
    int write_ = -1;
    int previous_ = -1;
    std::atomic<bool> stop_{false};
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string text_;
};

// The sum of N over every "N log lines dropped" report in text.
std::uint64_t dropped_reported(const std::string& text) {
    static constexpr std::string_view kReport = " log lines dropped";
    std::uint64_t sum = 0;
    for (std::size_t at = text.find(kReport); at != std::string::npos;
         at = text.find(kReport, at + 1)) {
        std::size_t digits = at;
        while (digits > 0 && text[digits - 1] >= '0' && text[digits - 1] <= '9') --digits;
        if (digits < at) sum += std::stoull(text.substr(digits, at - digits));
    }
    return sum;
}

}  // namespace

TEST_CASE("a destination nobody reads does not block callers; drops are counted and reported") {
    LogPipe pipe;
    const auto before = reactor::log_counters();
    const std::string filler(200, 'x');
    constexpr int kLines = 50000;  // 10 MB: far more than the pipe and the queue hold
    const auto start = Clock::now();
    for (int i = 0; i < kLines; ++i) reactor::log(reactor::LogLevel::warn, "line ", i, " ", filler);
    const auto elapsed = Clock::now() - start;
    CHECK(elapsed < 3s);  // about 50 ms; blocking in write() would never end
    const auto after = reactor::log_counters();
    const auto dropped = after.dropped - before.dropped;
    CHECK(dropped > 0);
    CHECK(dropped < static_cast<std::uint64_t>(kLines));
    // flush_log() gives up in bounded time while nobody reads.
    const auto flush_start = Clock::now();
    CHECK_FALSE(reactor::flush_log(200ms));
    CHECK(Clock::now() - flush_start < 2s);

    // Once the destination drains, what was kept arrives in order and the drops are reported.
    // The drops may be reported in more than one line (the writer reports what it counted each
    // time the destination took a batch): together they account for every dropped line.
    pipe.start_reading();
    CHECK(reactor::flush_log(10s));
    CHECK(pipe.wait_until(
        [&](const std::string& text) { return dropped_reported(text) >= dropped; }));
    const std::string text = pipe.text();
    CHECK(text.find("line 0 ") != std::string::npos);
    CHECK(dropped_reported(text) == dropped);
}

TEST_CASE("flush_log writes everything queued before a clean exit") {
    LogPipe pipe;
    pipe.start_reading();
    reactor::log(reactor::LogLevel::info, "the last words");
    CHECK(reactor::flush_log(5s));
    CHECK(pipe.wait_for("INFO  the last words\n", 1s));
}

TEST_CASE("LogRate lets a burst through, then reports what it held back on the next line") {
    LogPipe pipe;
    pipe.start_reading();
    static reactor::LogRate rate("test burst", reactor::LogLevel::warn, 5, 20);
    const auto before = reactor::log_counters();
    for (int i = 0; i < 1000; ++i) reactor::log_limited(rate, "burst line ", i);
    CHECK(reactor::log_counters().suppressed - before.suppressed >= 990);
    // A token comes back after 50 ms: the next line carries the count.
    const auto deadline = Clock::now() + 5s;
    std::uint64_t held = 0;
    while (!rate.admit(held) && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(held >= 995);
    CHECK(pipe.wait_for("burst line 4\n"));
    CHECK(pipe.text().find("burst line 5\n") == std::string::npos);
}

TEST_CASE("what a LogRate held back is reported by the writer when no line follows") {
    LogPipe pipe;
    pipe.start_reading();
    static reactor::LogRate rate("quiet kind", reactor::LogLevel::warn, 2, 1);
    for (int i = 0; i < 30; ++i) reactor::log_limited(rate, "quiet line ", i);
    CHECK(pipe.wait_for("quiet kind: 28 similar lines suppressed", 5s));
}

TEST_CASE("LogRate is safe from several threads and loses no count") {
    static reactor::LogRate rate("threads", reactor::LogLevel::debug, 10, 0);
    std::atomic<std::uint64_t> admitted{0};
    std::atomic<std::uint64_t> reported{0};
    std::thread threads[4];
    for (auto& t : threads) {
        t = std::thread([&] {
            for (int i = 0; i < 10000; ++i) {
                std::uint64_t held = 0;
                if (rate.admit(held)) ++admitted;
                reported += held;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(admitted.load() == 10);
    std::uint64_t held = 0;
    CHECK_FALSE(rate.admit(held));
    CHECK(rate.take_stale(Clock::now() + 2s) + reported.load() == 40000 - 10 + 1);
}
