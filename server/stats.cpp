#include "stats.hpp"

#include <nlohmann/json.hpp>

namespace reactord {

void Stats::opened(const reactor::Connection& conn) {
    auto& s = listeners[conn.listener()];
    ++s.open;
    ++s.accepted;
}

void Stats::message(const reactor::Connection& conn) { ++listeners[conn.listener()].messages_in; }

void Stats::closed(const reactor::Connection& conn, reactor::CloseReason reason) {
    auto& s = listeners[conn.listener()];
    --s.open;
    s.bytes_in += conn.stats().bytes_in;
    s.bytes_out += conn.stats().bytes_out;
    ++s.closed_by_reason[std::string(reactor::to_string(reason))];
}

std::string Stats::to_json() const {
    nlohmann::json out = nlohmann::json::object();
    std::uint64_t connections = 0;
    std::uint64_t messages = 0;
    nlohmann::json per = nlohmann::json::object();
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [name, s] : listeners) {
        per[name] = {{"connections", s.open},
                     {"accepted", s.accepted},
                     {"messages", s.messages_in},
                     {"bytes_in_closed", s.bytes_in},
                     {"bytes_out_closed", s.bytes_out},
                     {"closed", s.closed_by_reason}};
        connections += s.open;
        messages += s.messages_in;
        for (const auto& [reason, n] : s.closed_by_reason) {
            errors[reason] = errors.value(reason, std::uint64_t{0}) + n;
        }
    }
    out["connections"] = connections;
    out["messages"] = messages;
    out["closed"] = errors;
    out["listeners"] = per;
    return out.dump();
}

}  // namespace reactord
