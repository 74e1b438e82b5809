#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "loop_thread.hpp"
#include "reactor/event_loop.hpp"

using namespace std::chrono_literals;
using reactor::EventLoop;
using reactor::TimerHandle;
using Clock = std::chrono::steady_clock;

namespace {

// Resolves once the loop has processed everything queued before it, including timer starts and
// cancellations posted from this thread.
void barrier(EventLoop& loop) {
    test::on_loop(loop, [] {});
}

// A one-shot timer that fires after delay; lets a test wait until a point in loop time has passed
// without sleeping on the test thread.
void wait_loop_time(EventLoop& loop, std::chrono::milliseconds delay) {
    auto fired = std::make_shared<std::promise<void>>();
    auto future = fired->get_future();
    loop.run_after(delay, [fired] { fired->set_value(); });
    REQUIRE(future.wait_for(delay + 5s) == std::future_status::ready);
}

}  // namespace

TEST_CASE("posts from 8 threads run exactly once and in order per producer") {
    constexpr int kProducers = 8;
    constexpr int kTasks = 10000;
    EventLoop loop;
    test::LoopThread thread(loop);

    // Touched only on the loop thread while producing, read after a barrier.
    std::vector<int> next_expected(kProducers, 0);
    int out_of_order = 0;
    int outside_loop_thread = 0;
    long total = 0;

    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            for (int i = 0; i < kTasks; ++i) {
                loop.post([&, p, i] {
                    if (!loop.in_loop_thread()) ++outside_loop_thread;
                    if (next_expected[p] != i) ++out_of_order;
                    next_expected[p] = i + 1;
                    ++total;
                });
            }
        });
    }
    for (auto& t : producers) t.join();
    barrier(loop);

    CHECK(total == kProducers * kTasks);
    CHECK(out_of_order == 0);
    CHECK(outside_loop_thread == 0);
    for (int p = 0; p < kProducers; ++p) CHECK(next_expected[p] == kTasks);
    // Wake-ups are coalesced: never more than one per task.
    CHECK(loop.wakeups() >= 1);
    CHECK(loop.wakeups() <= static_cast<std::uint64_t>(kProducers * kTasks + 1));
    MESSAGE("wake-ups for " << kProducers * kTasks << " posts: " << loop.wakeups());
}

TEST_CASE("stop before run: run returns promptly after the tasks posted before stop") {
    EventLoop loop;
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i) loop.post([&] { ++ran; });

    std::thread stopper([&] { loop.stop(); });
    stopper.join();

    std::promise<void> returned;
    auto returned_future = returned.get_future();
    const auto start = Clock::now();
    std::thread runner([&] {
        loop.run();
        returned.set_value();
    });
    const bool finished = returned_future.wait_for(5s) == std::future_status::ready;
    if (!finished) {
        // run() ignored the stop: stop it again so the thread can be joined, and fail.
        loop.stop();
    }
    runner.join();
    REQUIRE(finished);
    CHECK(Clock::now() - start < 2s);
    CHECK(ran == 100);
    CHECK_FALSE(loop.running());
}

TEST_CASE("stop from another thread while run() is busy") {
    EventLoop loop;
    test::LoopThread thread(loop);
    std::atomic<int> ran{0};
    constexpr int kTasks = 5000;
    std::thread producer([&] {
        for (int i = 0; i < kTasks; ++i) loop.post([&] { ++ran; });
        loop.stop();
    });
    producer.join();
    REQUIRE(thread.wait_finished(5s));
    CHECK(ran == kTasks);
    CHECK_FALSE(loop.running());
}

TEST_CASE("stop from inside a task") {
    EventLoop loop;
    test::LoopThread thread(loop);
    loop.post([&] { loop.stop(); });
    CHECK(thread.wait_finished(5s));
}

TEST_CASE("a loop can run again after stop") {
    EventLoop loop;
    { test::LoopThread first(loop); }
    std::atomic<bool> ran{false};
    test::LoopThread second(loop);
    test::on_loop(loop, [&] { ran = true; });
    CHECK(ran);
}

TEST_CASE("in_loop_thread is true inside tasks and false outside") {
    EventLoop loop;
    CHECK_FALSE(loop.in_loop_thread());
    {
        test::LoopThread thread(loop);
        CHECK(loop.running());
        CHECK_FALSE(loop.in_loop_thread());
        CHECK(test::on_loop(loop, [&] { return loop.in_loop_thread(); }));
        bool from_other = true;
        std::thread other([&] { from_other = loop.in_loop_thread(); });
        other.join();
        CHECK_FALSE(from_other);
    }
    CHECK_FALSE(loop.in_loop_thread());
    CHECK_FALSE(loop.running());
}

TEST_CASE("run_in_loop runs inline on the loop thread") {
    EventLoop loop;
    test::LoopThread thread(loop);
    const std::vector<int> order = test::on_loop(loop, [&] {
        std::vector<int> seen;
        seen.push_back(1);
        loop.run_in_loop([&] { seen.push_back(2); });
        seen.push_back(3);
        return seen;
    });
    CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE(
    "defer runs after the current callback, in order, also when deferred from a deferred task") {
    EventLoop loop;
    test::LoopThread thread(loop);
    auto order = std::make_shared<std::vector<std::string>>();
    auto done = std::make_shared<std::promise<void>>();
    auto done_future = done->get_future();
    loop.post([&loop, order, done] {
        order->push_back("task start");
        loop.defer([&loop, order, done] {
            order->push_back("deferred 1");
            loop.defer([order, done] {
                order->push_back("deferred from deferred");
                done->set_value();
            });
        });
        loop.defer([order] { order->push_back("deferred 2"); });
        order->push_back("task end");
    });
    REQUIRE(done_future.wait_for(5s) == std::future_status::ready);
    barrier(loop);
    CHECK(*order == std::vector<std::string>{"task start", "task end", "deferred 1", "deferred 2",
                                             "deferred from deferred"});
}

TEST_CASE("run_after fires once, not before its delay") {
    EventLoop loop;
    test::LoopThread thread(loop);

    struct Shot {
        std::chrono::milliseconds delay;
        Clock::time_point started;
        std::atomic<int> fired{0};
        Clock::time_point fired_at;
        std::promise<void> done;
    };
    const std::vector<std::chrono::milliseconds> delays{0ms, 1ms, 3ms, 7ms, 15ms, 30ms, 60ms};
    std::vector<std::unique_ptr<Shot>> shots;
    for (const auto delay : delays) {
        auto shot = std::make_unique<Shot>();
        shot->delay = delay;
        shot->started = Clock::now();
        Shot* raw = shot.get();
        loop.run_after(delay, [raw] {
            if (raw->fired++ == 0) {
                raw->fired_at = Clock::now();
                raw->done.set_value();
            }
        });
        shots.push_back(std::move(shot));
    }
    for (auto& shot : shots) {
        REQUIRE(shot->done.get_future().wait_for(5s) == std::future_status::ready);
    }
    // A one-shot timer that re-armed would have fired again well within this.
    wait_loop_time(loop, 150ms);
    barrier(loop);
    for (auto& shot : shots) {
        INFO("delay " << shot->delay.count() << " ms");
        CHECK(shot->fired == 1);
        const auto waited = shot->fired_at - shot->started;
        INFO("waited " << std::chrono::duration_cast<std::chrono::microseconds>(waited).count()
                       << " us");
        CHECK(waited >= shot->delay);
    }
}

TEST_CASE("run_after from the loop thread is not early either") {
    EventLoop loop;
    test::LoopThread thread(loop);
    // Keep the loop busy first, so a timer measured from a stale cached loop time would show.
    auto started = std::make_shared<Clock::time_point>();
    auto fired = std::make_shared<std::promise<Clock::time_point>>();
    auto fired_future = fired->get_future();
    loop.post([&loop, started, fired] {
        const auto busy_until = Clock::now() + 20ms;
        while (Clock::now() < busy_until) {
        }
        *started = Clock::now();
        loop.run_after(10ms, [fired] { fired->set_value(Clock::now()); });
    });
    REQUIRE(fired_future.wait_for(5s) == std::future_status::ready);
    const auto waited = fired_future.get() - *started;
    INFO("waited " << std::chrono::duration_cast<std::chrono::microseconds>(waited).count()
                   << " us for a 10 ms timer");
    CHECK(waited >= 10ms);
}

TEST_CASE("run_every repeats until cancelled") {
    EventLoop loop;
    test::LoopThread thread(loop);
    std::atomic<int> count{0};
    std::promise<void> five;
    auto five_future = five.get_future();
    const TimerHandle timer = loop.run_every(5ms, [&] {
        if (++count == 5) five.set_value();
    });
    CHECK(timer.valid());
    REQUIRE(five_future.wait_for(5s) == std::future_status::ready);
    timer.cancel();
    barrier(loop);
    const int at_cancel = count;
    wait_loop_time(loop, 60ms);
    CHECK(count == at_cancel);
    // Cancelling again, after it is gone, is harmless.
    timer.cancel();
    barrier(loop);
}

TEST_CASE("cancel prevents a timer from firing") {
    EventLoop loop;
    test::LoopThread thread(loop);
    std::atomic<int> fired{0};

    SUBCASE("cancel from the thread that started it") {
        const TimerHandle timer = loop.run_after(30ms, [&] { ++fired; });
        timer.cancel();
    }
    SUBCASE("cancel from another thread") {
        const TimerHandle timer = loop.run_after(30ms, [&] { ++fired; });
        std::thread other([timer] { timer.cancel(); });
        other.join();
    }
    SUBCASE("cancel of a repeating timer from another thread") {
        const TimerHandle timer = loop.run_every(30ms, [&] { ++fired; });
        std::thread other([timer] { timer.cancel(); });
        other.join();
    }
    SUBCASE("cancel on the loop thread") {
        test::on_loop(loop, [&] {
            const TimerHandle timer = loop.run_after(30ms, [&] { ++fired; });
            timer.cancel();
        });
    }
    wait_loop_time(loop, 100ms);
    barrier(loop);
    CHECK(fired == 0);
}

TEST_CASE("a repeating timer cancels itself inside its callback") {
    EventLoop loop;
    test::LoopThread thread(loop);
    auto handle = std::make_shared<TimerHandle>();
    auto count = std::make_shared<int>(0);  // loop thread only
    std::promise<void> third;
    auto third_future = third.get_future();
    test::on_loop(loop, [&] {
        // Started on the loop thread, so the handle is stored before the first firing.
        *handle = loop.run_every(2ms, [handle, count, &third] {
            if (++*count == 3) {
                handle->cancel();
                third.set_value();
            }
        });
    });
    REQUIRE(third_future.wait_for(5s) == std::future_status::ready);
    wait_loop_time(loop, 40ms);
    CHECK(test::on_loop(loop, [count] { return *count; }) == 3);
}

TEST_CASE("a one-shot timer may cancel itself and start another from its callback") {
    EventLoop loop;
    test::LoopThread thread(loop);
    auto handle = std::make_shared<TimerHandle>();
    std::promise<int> chained;
    auto chained_future = chained.get_future();
    test::on_loop(loop, [&] {
        *handle = loop.run_after(1ms, [&loop, handle, &chained] {
            handle->cancel();  // already fired: a no-op
            loop.run_after(1ms, [&chained] { chained.set_value(42); });
        });
    });
    REQUIRE(chained_future.wait_for(5s) == std::future_status::ready);
    CHECK(chained_future.get() == 42);
}

TEST_CASE("tasks and timers left when the loop is destroyed are released") {
    // Under ASan this shows leaks or use after free; otherwise it must simply not crash.
    auto token = std::make_shared<int>(7);
    {
        EventLoop loop;
        loop.post([token] {});
        loop.run_after(10s, [token] {});
        loop.run_every(10s, [token] {});
        { test::LoopThread thread(loop); }
        loop.run_after(10s, [token] {});
    }
    CHECK(token.use_count() == 1);
}
