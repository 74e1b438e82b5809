#include "worker.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "reactor/connection.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/tls.hpp"

namespace loadgen {

Nanos now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

namespace {

constexpr std::uint64_t kUnlimited = UINT64_MAX;

std::string error_kind(reactor::CloseReason reason) {
    switch (reason) {
        case reactor::CloseReason::peer_closed:
            return "closed_by_peer";
        case reactor::CloseReason::error:
            return "reset";
        case reactor::CloseReason::timeout:
            return "timeout";
        case reactor::CloseReason::protocol_error:
            return "bad_reply_framing";
        case reactor::CloseReason::output_overflow:
            return "output_overflow";
        case reactor::CloseReason::app_closed:
        case reactor::CloseReason::kicked:
        case reactor::CloseReason::protocol_done:
            return "closed_locally";
        case reactor::CloseReason::shutdown:
            return "shutdown";
        case reactor::CloseReason::rejected:
            return "rejected";
        case reactor::CloseReason::handshake_failed:
            return "handshake_failed";
    }
    return "closed";
}

std::chrono::milliseconds until(Nanos when, Nanos now) {
    return std::chrono::milliseconds(std::max<Nanos>(0, (when - now + 999'999) / 1'000'000));
}

}  // namespace

Worker::Worker(const Settings& settings, const Workload& workload, std::size_t first_connection,
               std::size_t connections, std::uint64_t budget)
    : settings_(settings),
      workload_(workload),
      budget_(budget == 0 ? kUnlimited : budget),
      loop_(std::make_unique<reactor::EventLoop>()) {
    // Made here, on the caller's thread: a CA that cannot be read throws ConfigError to main().
    if (settings_.tls) {
        reactor::TlsClientOptions tls;
        tls.verify = !settings_.tls_ca.empty();
        tls.ca_file = settings_.tls_ca;
        tls.server_name = settings_.host;  // an address: verified as one, never sent as SNI
        transport_ = reactor::tls_client(tls);
    }
    for (std::size_t i = 0; i < connections; ++i) {
        auto slot = std::make_unique<Slot>();
        slot->index = first_connection + i;
        slots_.push_back(std::move(slot));
    }
    connected_future_ = connected_promise_.get_future();
}

Worker::~Worker() {
    if (thread_.joinable()) {
        stop();
        thread_.join();
    }
}

void Worker::start() {
    thread_ = std::thread([this] { run_thread(); });
}

std::optional<std::size_t> Worker::wait_connected(std::chrono::milliseconds timeout) {
    if (connected_future_.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    return connected_future_.get();
}

void Worker::begin(Nanos start, Nanos deadline) {
    loop_->post([this, start, deadline] {
        start_ = start;
        deadline_ = deadline;
        start_load();
    });
}

void Worker::stop() {
    loop_->post([this] {
        if (!finished_) finish(now_ns());
    });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::run_thread() {
    server_ = std::make_unique<reactor::Server>(*loop_);
    loop_->post([this] {
        const std::size_t first = std::min(settings_.connect_concurrency, slots_.size());
        if (first == 0) {
            connect_phase_ = false;
            connected_promise_.set_value(0);
        }
        for (std::size_t i = 0; i < first; ++i) connect(*slots_[next_connect_++]);
    });
    loop_->run();
    // Open connections are dropped without callbacks: the run is over.
    server_.reset();
}

void Worker::connect(Slot& slot) {
    ++connects_pending_;
    reactor::ConnectOptions options;
    options.name = "loadgen";
    options.endpoint = reactor::Endpoint::tcp(settings_.host, settings_.port);
    options.timeout = settings_.connect_timeout;
    options.protocol = workload_.replies;
    options.transport = transport_;
    Slot* s = &slot;
    options.handlers.on_open = [this, s](reactor::Connection& conn) {
        s->conn = &conn;
        ++open_;
        open_shared_.store(open_, std::memory_order_relaxed);
    };
    options.handlers.on_message = [this, s](reactor::Connection& conn, reactor::Message& reply) {
        on_reply(*s, conn, reply);
    };
    options.handlers.on_close = [this, s](reactor::Connection&, reactor::CloseReason reason) {
        on_closed(*s, reason);
    };
    server_->connect(std::move(options),
                     [this, s](reactor::ConnectionId id, const std::string& error) {
                         on_connected(*s, id, error);
                     });
}

void Worker::on_connected(Slot& slot, reactor::ConnectionId, const std::string& error) {
    --connects_pending_;
    if (!error.empty()) {
        if (result_.errors.count("connect") == 0) {
            std::fprintf(stderr, "loadgen: %s\n", error.c_str());
        }
        count_error("connect");
    } else {
        ++result_.connects;
    }
    if (connect_phase_) {
        ++initial_connects_done_;
        if (next_connect_ < slots_.size()) connect(*slots_[next_connect_++]);
        if (initial_connects_done_ == slots_.size()) {
            connect_phase_ = false;
            connected_promise_.set_value(open_);
        }
        return;
    }
    if (finished_) return;
    const Nanos now = now_ns();
    if (error.empty()) {
        fill(slot, now);
    } else if (settings_.churn != 0 && may_start_request(now)) {
        connect(slot);
    }
    maybe_finish(now);
}

void Worker::start_load() {
    started_ = true;
    const Nanos now = now_ns();
    loop_->run_after(until(deadline_, now), [this] { maybe_finish(now_ns()); });
    loop_->run_after(until(deadline_ + settings_.grace.count() * 1'000'000, now), [this] {
        if (!finished_) finish(now_ns());
    });
    if (settings_.idle) return;
    if (settings_.rate > 0) {
        const double total = static_cast<double>(settings_.connections);
        interval_ns_ = 1e9 * total / settings_.rate;
        for (auto& slot : slots_) {
            // Spread the connections' schedules over one interval instead of bursting together.
            slot->next_due = start_ + static_cast<Nanos>(interval_ns_ *
                                                         static_cast<double>(slot->index) / total);
        }
        loop_->run_every(std::chrono::milliseconds(1), [this] { open_loop_tick(); });
        open_loop_tick();
        return;
    }
    for (auto& slot : slots_) fill(*slot, now);
    maybe_finish(now);
}

bool Worker::may_start_request(Nanos now) const {
    return budget_ > 0 && now < deadline_;
}

void Worker::send_one(Slot& slot, Nanos intended) {
    slot.conn->send_raw(workload_.request);
    slot.in_flight.push_back(intended);
    ++in_flight_total_;
}

void Worker::fill(Slot& slot, Nanos now) {
    if (!started_ || finished_ || slot.conn == nullptr || slot.closing_by_us || settings_.idle)
        return;
    const auto churn_allows = [&] {
        return settings_.churn == 0 ||
               slot.replies_on_connection + slot.in_flight.size() < settings_.churn;
    };
    if (settings_.rate > 0) {
        while (slot.in_flight.size() < settings_.pipeline && !slot.waiting.empty() &&
               churn_allows()) {
            send_one(slot, slot.waiting.front());
            slot.waiting.pop_front();
            --waiting_total_;
        }
        return;
    }
    while (slot.in_flight.size() < settings_.pipeline && churn_allows() && may_start_request(now)) {
        if (budget_ != kUnlimited) --budget_;
        send_one(slot, now);
    }
}

void Worker::open_loop_tick() {
    if (finished_) return;
    const Nanos now = now_ns();
    for (auto& slot : slots_) {
        while (slot->next_due <= now && slot->next_due < deadline_ && budget_ > 0) {
            if (budget_ != kUnlimited) --budget_;
            slot->waiting.push_back(slot->next_due);
            ++waiting_total_;
            slot->next_due += static_cast<Nanos>(interval_ns_);
        }
        fill(*slot, now);
    }
    maybe_finish(now);
}

void Worker::on_reply(Slot& slot, reactor::Connection& conn, const reactor::Message& reply) {
    if (finished_) return;
    const Nanos now = now_ns();
    if (slot.in_flight.empty()) {
        count_error("unexpected_reply");
        return;
    }
    result_.latency.record(
        static_cast<std::uint64_t>(std::max<Nanos>(0, now - slot.in_flight.front())));
    slot.in_flight.pop_front();
    --in_flight_total_;
    result_.finished_at = now;
    if (workload_.reply_ok(reply)) {
        ++result_.completed;
        completed_shared_.store(result_.completed, std::memory_order_relaxed);
    } else {
        count_error("bad_reply");
    }
    ++slot.replies_on_connection;
    if (settings_.churn != 0 && slot.replies_on_connection >= settings_.churn) {
        if (slot.in_flight.empty()) {
            slot.closing_by_us = true;
            conn.close(reactor::CloseMode::now);  // on_closed reconnects
        }
        return;
    }
    fill(slot, now);
    maybe_finish(now);
}

void Worker::on_closed(Slot& slot, reactor::CloseReason reason) {
    slot.conn = nullptr;
    --open_;
    open_shared_.store(open_, std::memory_order_relaxed);
    const std::size_t lost = slot.in_flight.size();
    in_flight_total_ -= lost;
    slot.in_flight.clear();
    if (finished_) return;
    const Nanos now = now_ns();
    if (slot.closing_by_us) {
        slot.closing_by_us = false;
        slot.replies_on_connection = 0;
        const bool wanted = settings_.rate > 0 ? (!slot.waiting.empty() || now < deadline_)
                                               : may_start_request(now);
        if (started_ && wanted) connect(slot);
    } else {
        count_error(error_kind(reason));
        if (lost != 0) count_error("unanswered", lost);
    }
    maybe_finish(now);
}

void Worker::maybe_finish(Nanos now) {
    if (finished_ || !started_) return;
    if (settings_.idle) {
        if (now >= deadline_) finish(now);
        return;
    }
    const bool generating = budget_ > 0 && now < deadline_;
    const bool nothing_left = in_flight_total_ == 0 && waiting_total_ == 0;
    const bool all_gone = open_ == 0 && connects_pending_ == 0;
    if ((!generating && nothing_left) || all_gone) finish(now);
}

void Worker::finish(Nanos now) {
    finished_ = true;
    if (result_.finished_at == 0) result_.finished_at = now;
    const std::uint64_t left = in_flight_total_ + waiting_total_;
    if (left != 0 && started_) count_error("unanswered", left);
    if (connect_phase_) {
        // Stopped before every connect finished: release whoever waits for them.
        connect_phase_ = false;
        connected_promise_.set_value(open_);
    }
    loop_->stop();
}

void Worker::count_error(const std::string& kind, std::uint64_t n) {
    result_.errors[kind] += n;
    errors_shared_.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace loadgen
