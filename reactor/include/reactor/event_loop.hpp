#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

struct event_base;

namespace reactor {

class EventLoop;

// A timer started by EventLoop::run_after / run_every. Copyable and cheap.
// cancel() is safe from any thread, also after the timer fired or was cancelled; the handle must
// not outlive its loop.
class TimerHandle {
  public:
    TimerHandle() = default;
    void cancel() const;
    bool valid() const { return loop_ != nullptr; }

  private:
    friend class EventLoop;
    TimerHandle(EventLoop* loop, std::uint64_t id) : loop_(loop), id_(id) {}
    EventLoop* loop_ = nullptr;
    std::uint64_t id_ = 0;
};

// One event loop (a libevent event_base) driven by one thread: the thread inside run().
// The first EventLoop of a process sets SIGPIPE to ignored unless the program chose a disposition
// for it: a peer that goes away must close its connection, not kill the process.
//
// Threading: post(), run_in_loop(), stop(), run_after(), run_every(), TimerHandle::cancel() and
// in_loop_thread() are safe from any thread. Everything else that takes an EventLoop& (connections,
// listeners, servers) belongs to the loop thread; defer() and on_signal() abort in debug builds
// when called from another thread while the loop runs.
class EventLoop {
  public:
    using Task = std::function<void()>;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Runs until stop(). The calling thread becomes the loop thread for the duration.
    void run();
    // Makes run() return once the tasks posted before it have run. Safe from any thread, also
    // before run() starts (run() then returns at once after those tasks).
    void stop();

    // Queues fn to run on the loop thread. FIFO per producer thread; one wake-up per batch.
    void post(Task fn);
    // Runs fn now when called on the loop thread, otherwise posts it.
    void run_in_loop(Task fn);
    // Runs fn on the loop thread after the current callback returns, before the loop sleeps again.
    // Loop thread only. This is where connections are destroyed.
    void defer(Task fn);

    TimerHandle run_after(std::chrono::milliseconds delay, Task fn);
    TimerHandle run_every(std::chrono::milliseconds interval, Task fn);

    // Calls fn on the loop thread whenever signal signo arrives, while the loop runs. Loop thread
    // only; at most one loop in a process may watch signals.
    void on_signal(int signo, Task fn);

    bool in_loop_thread() const;
    bool running() const;

    // Number of loop iterations that ran posted tasks, for stats.
    std::uint64_t wakeups() const;

  private:
    friend class TimerHandle;
    friend event_base* event_base_of(EventLoop& loop);
    void cancel_timer(std::uint64_t id);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace reactor
