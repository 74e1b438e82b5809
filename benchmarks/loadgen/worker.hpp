#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "histogram.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/server.hpp"
#include "settings.hpp"
#include "workload.hpp"

namespace loadgen {

using Nanos = std::int64_t;
Nanos now_ns();

// What one client thread measured; read after join().
struct WorkerResult {
    Histogram latency;            // ns, from the intended send time to the reply
    std::uint64_t completed = 0;  // good replies
    std::uint64_t connects = 0;   // connections opened
    std::map<std::string, std::uint64_t> errors;
    Nanos finished_at = 0;  // last reply or the end of the grace period
};

// One client thread: its own EventLoop and reactor::Server, a share of the connections and of the
// request budget.
//
// Threading: the constructor, start(), wait_connected(), begin(), stop(), join() and the progress
// getters belong to the controlling thread; everything else runs on the worker's loop thread.
class Worker {
  public:
    Worker(const Settings& settings, const Workload& workload, std::size_t first_connection,
           std::size_t connections, std::uint64_t budget);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Starts the thread and the connects.
    void start();
    // Waits up to `timeout` for every connect to succeed or fail; then returns how many are open.
    std::optional<std::size_t> wait_connected(std::chrono::milliseconds timeout);
    // Starts sending (not in idle mode); start and deadline on the now_ns() clock.
    void begin(Nanos start, Nanos deadline);
    // Ends the run early (a signal); the worker finishes as if the grace period ran out.
    void stop();
    void join();

    std::uint64_t completed_so_far() const {
        return completed_shared_.load(std::memory_order_relaxed);
    }
    std::uint64_t errors_so_far() const { return errors_shared_.load(std::memory_order_relaxed); }
    std::size_t open_connections() const { return open_shared_.load(std::memory_order_relaxed); }
    const WorkerResult& result() const { return result_; }

  private:
    struct Slot {
        std::size_t index = 0;  // among all connections of the run
        reactor::Connection* conn = nullptr;
        bool closing_by_us = false;
        std::deque<Nanos> in_flight;  // intended send time of each request awaiting its reply
        std::deque<Nanos> waiting;    // open loop: due but held back by the in-flight cap
        std::uint64_t replies_on_connection = 0;
        Nanos next_due = 0;  // open loop
    };

    void run_thread();
    void connect(Slot& slot);
    void on_connected(Slot& slot, reactor::ConnectionId id, const std::string& error);
    void on_reply(Slot& slot, reactor::Connection& conn, const reactor::Message& reply);
    void on_closed(Slot& slot, reactor::CloseReason reason);
    void start_load();
    // Sends what this slot may send now: up to the pipeline depth (closed loop) or the due
    // requests (open loop).
    void fill(Slot& slot, Nanos now);
    void send_one(Slot& slot, Nanos intended);
    bool may_start_request(Nanos now) const;
    void open_loop_tick();
    void maybe_finish(Nanos now);
    void finish(Nanos now);
    void count_error(const std::string& kind, std::uint64_t n = 1);

    const Settings& settings_;
    const Workload& workload_;
    std::uint64_t budget_;  // requests left to start; UINT64_MAX: unlimited
    std::vector<std::unique_ptr<Slot>> slots_;

    std::thread thread_;
    std::unique_ptr<reactor::EventLoop> loop_;
    std::unique_ptr<reactor::Server> server_;
    std::shared_ptr<const reactor::TransportFactory> transport_;  // --tls; null: plain TCP
    std::promise<std::size_t> connected_promise_;
    std::future<std::size_t> connected_future_;

    // Loop thread state.
    std::size_t next_connect_ = 0;
    std::size_t connects_pending_ = 0;
    std::size_t initial_connects_done_ = 0;
    bool connect_phase_ = true;
    bool started_ = false;
    bool finished_ = false;
    Nanos start_ = 0;
    Nanos deadline_ = 0;
    double interval_ns_ = 0;  // open loop, per connection
    std::uint64_t in_flight_total_ = 0;
    std::uint64_t waiting_total_ = 0;
    std::size_t open_ = 0;
    WorkerResult result_;

    std::atomic<std::uint64_t> completed_shared_{0};
    std::atomic<std::uint64_t> errors_shared_{0};
    std::atomic<std::size_t> open_shared_{0};
};

}  // namespace loadgen
