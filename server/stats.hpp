#pragma once

// Counters reactord shows in /stats and the admin console. Loop thread only.

#include <cstdint>
#include <map>
#include <string>

#include "reactor/connection.hpp"

namespace reactord {

struct ListenerStats {
    std::uint64_t open = 0;
    std::uint64_t accepted = 0;
    std::uint64_t messages_in = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::map<std::string, std::uint64_t> closed_by_reason;
};

struct Stats {
    std::map<std::string, ListenerStats> listeners;

    void opened(const reactor::Connection& conn);
    void message(const reactor::Connection& conn);
    void closed(const reactor::Connection& conn, reactor::CloseReason reason);
    // {"listeners": {...}, "connections": N, "messages": N, ...}
    std::string to_json() const;
};

}  // namespace reactord
