#include "reactor/event_loop.hpp"
#include "loop_internals.hpp"
#include "thread_check.hpp"

#include <event2/event.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "libevent_handles.hpp"

namespace reactor {

struct EventLoop::Impl {
    EventLoop* self = nullptr;
    EventBasePtr base;
    int wake_fd = -1;
    EventPtr wake_event;
    EventPtr defer_event;

    std::mutex queue_mutex;
    std::vector<Task> queue;      // guarded by queue_mutex
    bool stop_requested = false;  // guarded by queue_mutex
    std::atomic<bool> notified{false};

    std::vector<Task> deferred;  // loop thread only
    std::atomic<std::thread::id> loop_thread{};
    std::atomic<bool> is_running{false};
    std::atomic<std::uint64_t> wakeups{0};

    struct Timer {
        Impl* owner = nullptr;
        std::uint64_t id = 0;
        EventPtr event;
        Task fn;
        bool repeat = false;
        std::chrono::milliseconds interval{0};
        std::chrono::steady_clock::time_point due;
    };
    void arm(Timer& timer, std::chrono::steady_clock::duration after);
    void start_timer(std::uint64_t id, std::chrono::milliseconds after, Task fn, bool repeat);
    std::atomic<std::uint64_t> next_timer_id{1};
    std::unordered_map<std::uint64_t, std::unique_ptr<Timer>> timers;  // loop thread only
    std::vector<EventPtr> signals;                                     // loop thread only
    std::vector<std::unique_ptr<Task>> signal_tasks;

    void wake() {
        // One eventfd write per batch: only the producer that flips the flag writes.
        if (notified.exchange(true, std::memory_order_acq_rel)) return;
        std::uint64_t one = 1;
        while (::write(wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }

    static void on_wake(evutil_socket_t fd, short, void* arg) {
        auto* impl = static_cast<Impl*>(arg);
        std::uint64_t count;
        while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
        }
        impl->notified.store(false, std::memory_order_release);
        impl->run_posted();
    }

    void run_posted() {
        std::vector<Task> batch;
        bool stop_now;
        {
            std::lock_guard lock(queue_mutex);
            batch.swap(queue);
            stop_now = stop_requested;
        }
        wakeups.fetch_add(1, std::memory_order_relaxed);
        for (auto& task : batch) task();
        if (stop_now) {
            // Tasks posted before stop() have run; leave the loop.
            std::lock_guard lock(queue_mutex);
            stop_requested = false;
            event_base_loopbreak(base.get());
        }
    }

    static void on_defer(evutil_socket_t, short, void* arg) {
        auto* impl = static_cast<Impl*>(arg);
        // Tasks deferred while running these run in a later pass of the same iteration.
        while (!impl->deferred.empty()) {
            std::vector<Task> batch;
            batch.swap(impl->deferred);
            for (auto& task : batch) task();
        }
    }

    static void on_timer(evutil_socket_t, short, void* arg);
};

void EventLoop::Impl::arm(Timer& timer, std::chrono::steady_clock::duration after) {
    const timeval tv = to_timeval(std::chrono::duration_cast<std::chrono::microseconds>(after));
    event_add(timer.event.get(), &tv);
}

void EventLoop::Impl::on_timer(evutil_socket_t, short, void* arg) {
    auto* timer = static_cast<Timer*>(arg);
    Impl* impl = timer->owner;
    const auto now = std::chrono::steady_clock::now();
    if (now < timer->due) {
        // libevent's coarse monotonic clock can run a few milliseconds behind: never fire early.
        impl->arm(*timer, timer->due - now);
        return;
    }
    if (timer->repeat) {
        timer->due += timer->interval;
        if (timer->due <= now) timer->due = now + timer->interval;  // no burst after a stall
        impl->arm(*timer, timer->due - now);
        // Copy: the task may cancel its own timer, which destroys the stored one.
        Task fn = timer->fn;
        fn();
    } else {
        auto it = impl->timers.find(timer->id);
        auto owned = std::move(it->second);
        impl->timers.erase(it);
        owned->fn();
    }
}

void EventLoop::Impl::start_timer(std::uint64_t id, std::chrono::milliseconds after, Task fn,
                                  bool repeat) {
    auto timer = std::make_unique<Timer>();
    timer->owner = this;
    timer->id = id;
    timer->fn = std::move(fn);
    timer->repeat = repeat;
    timer->interval = after;
    timer->due = std::chrono::steady_clock::now() + after;
    timer->event.reset(event_new(base.get(), -1, 0, &Impl::on_timer, timer.get()));
    arm(*timer, after);
    timers.emplace(id, std::move(timer));
}

namespace {
// Writing to a socket whose peer has gone raises SIGPIPE, which by default kills the process; the
// loop reports that write as an error on its connection instead. Done once, and only when nobody
// chose a disposition for SIGPIPE already.
void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current {};
        if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
            ::signal(SIGPIPE, SIG_IGN);
        }
    });
}
}  // namespace

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {
    ignore_sigpipe_once();
    impl_->self = this;
    // Not EVENT_BASE_FLAG_PRECISE_TIMER: with it libevent re-arms a timerfd on every loop iteration
    // while any timer is pending (a syscall per request). Its default coarse clock can fire a timer
    // a few ms early instead, which on_timer corrects by checking the due time itself.
    impl_->base.reset(event_base_new());
    if (!impl_->base) throw std::runtime_error("event_base_new failed");
    impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (impl_->wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    impl_->wake_event.reset(event_new(impl_->base.get(), impl_->wake_fd, EV_READ | EV_PERSIST,
                                      &Impl::on_wake, impl_.get()));
    event_add(impl_->wake_event.get(), nullptr);
    impl_->defer_event.reset(event_new(impl_->base.get(), -1, 0, &Impl::on_defer, impl_.get()));
}

EventLoop::~EventLoop() {
    // Deferred destruction still happens when the loop is destroyed without running again.
    Impl::on_defer(-1, 0, impl_.get());
    impl_->timers.clear();
    impl_->signals.clear();
    impl_->wake_event.reset();
    impl_->defer_event.reset();
    if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
}

void EventLoop::run() {
    impl_->loop_thread.store(std::this_thread::get_id());
    impl_->is_running.store(true);
    event_base_loop(impl_->base.get(), EVLOOP_NO_EXIT_ON_EMPTY);
    // Anything deferred by the last callbacks still runs.
    Impl::on_defer(-1, 0, impl_.get());
    impl_->is_running.store(false);
    impl_->loop_thread.store(std::thread::id{});
}

void EventLoop::stop() {
    {
        std::lock_guard lock(impl_->queue_mutex);
        impl_->stop_requested = true;
    }
    impl_->wake();
}

void EventLoop::post(Task fn) {
    {
        std::lock_guard lock(impl_->queue_mutex);
        impl_->queue.push_back(std::move(fn));
    }
    impl_->wake();
}

void EventLoop::run_in_loop(Task fn) {
    if (in_loop_thread()) {
        fn();
    } else {
        post(std::move(fn));
    }
}

void EventLoop::defer(Task fn) {
    REACTOR_LOOP_THREAD_ONLY(*this, "EventLoop::defer");
    impl_->deferred.push_back(std::move(fn));
    if (impl_->deferred.size() == 1) event_active(impl_->defer_event.get(), EV_TIMEOUT, 1);
}

TimerHandle EventLoop::run_after(std::chrono::milliseconds delay, Task fn) {
    const std::uint64_t id = impl_->next_timer_id.fetch_add(1);
    run_in_loop([impl = impl_.get(), id, delay, fn = std::move(fn)]() mutable {
        impl->start_timer(id, delay, std::move(fn), false);
    });
    return TimerHandle(this, id);
}

TimerHandle EventLoop::run_every(std::chrono::milliseconds interval, Task fn) {
    const std::uint64_t id = impl_->next_timer_id.fetch_add(1);
    run_in_loop([impl = impl_.get(), id, interval, fn = std::move(fn)]() mutable {
        impl->start_timer(id, interval, std::move(fn), true);
    });
    return TimerHandle(this, id);
}

void EventLoop::cancel_timer(std::uint64_t id) {
    // A loop that is not running has no thread to race with: cancel now, so that a timer whose
    // callback refers to something being destroyed cannot fire if the loop runs again.
    // A start still queued is undone by the queued erase, which runs after it (FIFO).
    if (!running()) impl_->timers.erase(id);
    run_in_loop([this, id] { impl_->timers.erase(id); });
}

void TimerHandle::cancel() const {
    if (loop_ != nullptr) loop_->cancel_timer(id_);
}

void EventLoop::on_signal(int signo, Task fn) {
    REACTOR_LOOP_THREAD_ONLY(*this, "EventLoop::on_signal");
    auto task = std::make_unique<Task>(std::move(fn));
    auto cb = [](evutil_socket_t, short, void* arg) { (*static_cast<Task*>(arg))(); };
    EventPtr ev(evsignal_new(impl_->base.get(), signo, cb, task.get()));
    event_add(ev.get(), nullptr);
    impl_->signals.push_back(std::move(ev));
    impl_->signal_tasks.push_back(std::move(task));
}

bool EventLoop::in_loop_thread() const {
    return impl_->loop_thread.load() == std::this_thread::get_id();
}

bool EventLoop::running() const {
    return impl_->is_running.load();
}

std::uint64_t EventLoop::wakeups() const {
    return impl_->wakeups.load();
}

event_base* event_base_of(EventLoop& loop) {
    return loop.impl_->base.get();
}

}  // namespace reactor
