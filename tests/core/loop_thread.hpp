#pragma once

// Runs an EventLoop on its own thread for a test, and waits for work on it with deadlines, so a
// broken loop fails the test instead of hanging it.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "reactor/event_loop.hpp"

namespace test {

class LoopThread {
  public:
    explicit LoopThread(reactor::EventLoop& loop) : loop_(loop) {
        std::promise<void> started;
        auto started_future = started.get_future();
        thread_ = std::thread([this, started = std::move(started)]() mutable {
            // Announce from inside a task, so in_loop_thread() is already true for the caller.
            loop_.post([&started] { started.set_value(); });
            loop_.run();
            finished_.set_value();
        });
        if (started_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
            give_up("loop thread did not start");
        }
    }

    ~LoopThread() { stop_and_join(); }

    LoopThread(const LoopThread&) = delete;
    LoopThread& operator=(const LoopThread&) = delete;

    // Waits for run() to return without asking it to: for tests where the loop stops itself.
    // False if it did not within the deadline (the thread is then still joined at destruction).
    bool wait_finished(std::chrono::milliseconds deadline) {
        if (!thread_.joinable()) return true;
        if (finished_future_.wait_for(deadline) != std::future_status::ready) return false;
        thread_.join();
        return true;
    }

    void stop_and_join(std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
        if (!thread_.joinable()) return;
        loop_.stop();
        if (!wait_finished(deadline)) give_up("loop thread did not stop");
    }

    std::thread::native_handle_type native_handle() { return thread_.native_handle(); }

  private:
    // A loop that never returns cannot be joined, and the test cannot continue safely.
    [[noreturn]] static void give_up(const char* what) {
        std::fprintf(stderr, "watchdog: %s\n", what);
        std::fflush(stderr);
        std::abort();
    }

    reactor::EventLoop& loop_;
    std::promise<void> finished_;
    std::future<void> finished_future_ = finished_.get_future();
    std::thread thread_;
};

// Runs fn on the loop thread and returns its result; throws if it does not run within the deadline.
template <typename Fn>
auto on_loop(reactor::EventLoop& loop, Fn fn,
             std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    using Result = std::invoke_result_t<Fn&>;
    auto promise = std::make_shared<std::promise<Result>>();
    auto future = promise->get_future();
    loop.post([promise, fn = std::move(fn)]() mutable {
        try {
            if constexpr (std::is_void_v<Result>) {
                fn();
                promise->set_value();
            } else {
                promise->set_value(fn());
            }
        } catch (...) {
            promise->set_exception(std::current_exception());
        }
    });
    if (future.wait_for(deadline) != std::future_status::ready) {
        throw std::runtime_error("task on the loop thread did not run before the deadline");
    }
    return future.get();
}

// Polls cond until it holds or the deadline passes. For states no callback announces (the
// process's descriptor count after libevent finalised a socket).
template <typename Cond>
bool eventually(Cond cond, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!cond()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

}  // namespace test
