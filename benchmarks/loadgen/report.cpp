#include "report.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace loadgen {

namespace {

double micros(std::uint64_t ns) {
    return static_cast<double>(ns) / 1000.0;
}

double per_second(std::uint64_t n, double seconds) {
    return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

std::uint64_t total_errors(const RunResult& r) {
    std::uint64_t n = 0;
    for (const auto& [kind, count] : r.errors) n += count;
    return n;
}

}  // namespace

std::string mode_name(const Settings& s) {
    if (s.idle) return "idle";
    if (s.churn != 0) return s.rate > 0 ? "churn-open-loop" : "churn";
    return s.rate > 0 ? "open-loop" : "closed-loop";
}

std::string format_text(const Settings& s, const RunResult& r) {
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "workload     %s (%s) against %s:%u\n", s.workload.c_str(),
                  mode_name(s).c_str(), s.host.c_str(), s.port);
    out += line;
    std::snprintf(line, sizeof line,
                  "setup        %zu connections, %zu threads, pipeline %zu, %zu B\n", s.connections,
                  s.threads, s.pipeline, s.size);
    out += line;
    if (s.idle) {
        std::snprintf(line, sizeof line, "open         %zu connections\n", r.connections_open);
        out += line;
    } else {
        std::snprintf(line, sizeof line, "requests     %llu in %.3f s: %.0f req/s\n",
                      static_cast<unsigned long long>(r.completed), r.elapsed_s,
                      per_second(r.completed, r.elapsed_s));
        out += line;
        std::snprintf(
            line, sizeof line,
            "latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
            micros(r.latency.percentile(0.50)), micros(r.latency.percentile(0.90)),
            micros(r.latency.percentile(0.99)), micros(r.latency.percentile(0.999)),
            micros(r.latency.max()), r.latency.mean() / 1000.0);
        out += line;
        if (s.churn != 0) {
            std::snprintf(line, sizeof line, "connections  %llu opened: %.0f conn/s\n",
                          static_cast<unsigned long long>(r.connects),
                          per_second(r.connects, r.elapsed_s));
            out += line;
        }
    }
    std::snprintf(line, sizeof line, "errors       %llu",
                  static_cast<unsigned long long>(total_errors(r)));
    out += line;
    for (const auto& [kind, count] : r.errors) {
        std::snprintf(line, sizeof line, "  %s=%llu", kind.c_str(),
                      static_cast<unsigned long long>(count));
        out += line;
    }
    out += "\n";
    return out;
}

std::string format_json(const Settings& s, const RunResult& r) {
    nlohmann::json j;
    j["workload"] = s.workload;
    j["mode"] = mode_name(s);
    j["target"] = s.host + ":" + std::to_string(s.port);
    j["connections"] = s.connections;
    j["threads"] = s.threads;
    j["pipeline"] = s.pipeline;
    j["size"] = s.size;
    j["rate"] = s.rate;
    j["churn"] = s.churn;
    j["elapsed_s"] = r.elapsed_s;
    j["requests"] = r.completed;
    j["throughput_rps"] = per_second(r.completed, r.elapsed_s);
    j["connects"] = r.connects;
    j["connections_per_s"] = per_second(r.connects, r.elapsed_s);
    j["connections_open"] = r.connections_open;
    j["latency_us"] = {{"p50", micros(r.latency.percentile(0.50))},
                       {"p90", micros(r.latency.percentile(0.90))},
                       {"p99", micros(r.latency.percentile(0.99))},
                       {"p999", micros(r.latency.percentile(0.999))},
                       {"max", micros(r.latency.max())},
                       {"mean", r.latency.mean() / 1000.0}};
    j["errors"] = r.errors;
    j["errors_total"] = total_errors(r);
    return j.dump();
}

}  // namespace loadgen
