// loadgen: a load generator for reactord and its peers, built on reactor's own client side.

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "reactor/config_error.hpp"
#include "report.hpp"
#include "settings.hpp"
#include "worker.hpp"
#include "workload.hpp"

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int signo) {
    g_stop_signal = signo;
}

std::uint64_t share(std::uint64_t total, std::size_t index, std::size_t parts) {
    return total / parts + (index < total % parts ? 1 : 0);
}

}  // namespace

int main(int argc, char** argv) {
    using loadgen::now_ns;
    const loadgen::Settings settings = loadgen::parse_settings(argc, argv);
    loadgen::Workload workload;
    try {
        workload = loadgen::make_workload(settings);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "loadgen: %s\n", e.what());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);

    std::vector<std::unique_ptr<loadgen::Worker>> workers;
    std::size_t first = 0;
    for (std::size_t t = 0; t < settings.threads; ++t) {
        const std::size_t n = share(settings.connections, t, settings.threads);
        // The request budget is split like the connections, so threads finish together.
        const std::uint64_t budget =
            settings.requests == 0 ? 0
                                   : std::max<std::uint64_t>(
                                         1, settings.requests * (first + n) / settings.connections -
                                                settings.requests * first / settings.connections);
        try {
            workers.push_back(
                std::make_unique<loadgen::Worker>(settings, workload, first, n, budget));
        } catch (const reactor::ConfigError& e) {
            std::fprintf(stderr, "loadgen: --tls-ca: %s\n", e.problem().c_str());
            return 2;
        }
        first += n;
    }
    for (auto& w : workers) w->start();
    std::size_t open = 0;
    for (auto& w : workers) {
        std::optional<std::size_t> n;
        while (!(n = w->wait_connected(std::chrono::milliseconds(20)))) {
            if (g_stop_signal != 0) w->stop();
        }
        open += *n;
    }
    if (settings.progress || settings.idle) {
        std::fprintf(stderr, "loadgen: %zu of %zu connections open\n", open, settings.connections);
    }

    const auto start = now_ns();
    const auto deadline = start + settings.duration.count() * 1'000'000;
    if (open != 0) {
        for (auto& w : workers) w->begin(start, deadline);
    } else {
        for (auto& w : workers) w->stop();
    }

    // Progress once a second until every worker is done; a signal ends the run early.
    std::vector<std::thread> joiners;
    std::atomic<std::size_t> running{workers.size()};
    for (auto& w : workers) {
        joiners.emplace_back([&w, &running] {
            w->join();
            running.fetch_sub(1);
        });
    }
    std::uint64_t last_completed = 0;
    auto next_report = start + 1'000'000'000;
    bool stop_sent = false;
    while (running.load() != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (g_stop_signal != 0 && !stop_sent) {
            for (auto& w : workers) w->stop();
            stop_sent = true;
        }
        const auto now = now_ns();
        if (now < next_report) continue;
        next_report += 1'000'000'000;
        std::uint64_t completed = 0;
        std::uint64_t errors = 0;
        std::size_t connections = 0;
        for (auto& w : workers) {
            completed += w->completed_so_far();
            errors += w->errors_so_far();
            connections += w->open_connections();
        }
        if (settings.progress) {
            std::fprintf(
                stderr, "loadgen: t=%.0fs requests=%llu rate=%llu/s connections=%zu errors=%llu\n",
                static_cast<double>(now - start) / 1e9, static_cast<unsigned long long>(completed),
                static_cast<unsigned long long>(completed - last_completed), connections,
                static_cast<unsigned long long>(errors));
        }
        last_completed = completed;
    }
    for (auto& j : joiners) j.join();

    loadgen::RunResult result;
    result.connections_open = open;
    loadgen::Nanos finished = start;
    for (auto& w : workers) {
        const auto& r = w->result();
        result.latency.merge(r.latency);
        result.completed += r.completed;
        result.connects += r.connects;
        for (const auto& [kind, n] : r.errors) result.errors[kind] += n;
        finished = std::max(finished, r.finished_at);
    }
    result.elapsed_s = static_cast<double>(finished - start) / 1e9;
    const std::string out = settings.json ? loadgen::format_json(settings, result) + "\n"
                                          : loadgen::format_text(settings, result);
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    const bool any_error = !result.errors.empty();
    return any_error ? 1 : 0;
}
