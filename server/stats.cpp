#include "stats.hpp"

#include <nlohmann/json.hpp>

namespace reactord {

Stats::Listener& Stats::add_listener(const std::string& name) {
    auto& slot = listeners_[name];
    if (!slot) slot = std::make_unique<Listener>();
    return *slot;
}

void Stats::Listener::opened() {
    ++open;
    ++accepted;
}

void Stats::Listener::closed(const reactor::Connection& conn, reactor::CloseReason reason) {
    --open;
    bytes_in += conn.stats().bytes_in;
    bytes_out += conn.stats().bytes_out;
    std::lock_guard lock(closed_mutex);
    ++closes[std::string(reactor::to_string(reason))];
}

std::string Stats::to_json(const std::vector<reactor::LoopStats>& loops) const {
    nlohmann::json out = nlohmann::json::object();
    std::uint64_t connections = 0;
    std::uint64_t messages = 0;
    std::uint64_t rejected = 0;  // redis's rejected_connections
    nlohmann::json per = nlohmann::json::object();
    nlohmann::json closed = nlohmann::json::object();
    for (const auto& [name, s] : listeners_) {
        std::map<std::string, std::uint64_t> by_reason;
        {
            std::lock_guard lock(s->closed_mutex);
            by_reason = s->closes;
        }
        per[name] = {
            {"connections", s->open.load()},           {"accepted", s->accepted.load()},
            {"messages", s->messages.load()},          {"bytes_in_closed", s->bytes_in.load()},
            {"bytes_out_closed", s->bytes_out.load()}, {"closed", by_reason},
            {"rejected", s->refusals.load()}};
        connections += s->open.load();
        rejected += s->refusals.load();
        messages += s->messages.load();
        for (const auto& [reason, n] : by_reason)
            closed[reason] = closed.value(reason, std::uint64_t{0}) + n;
    }
    nlohmann::json per_loop = nlohmann::json::array();
    for (const auto& loop : loops) {
        per_loop.push_back({{"connections", loop.connections},
                            {"messages", loop.messages},
                            {"lag_us", loop.lag.count()}});
    }
    out["connections"] = connections;
    out["messages"] = messages;
    out["rejected_connections"] = rejected;
    out["closed"] = closed;
    out["listeners"] = per;
    out["loops"] = per_loop;
    return out.dump();
}

}  // namespace reactord
