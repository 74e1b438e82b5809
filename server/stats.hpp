#pragma once

// Counters reactord shows in /stats and the admin console. Listeners are added during setup; the
// counting methods are then safe from any loop thread.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reactor/connection.hpp"
#include "reactor/server.hpp"

namespace reactord {

class Stats {
  public:
    // Setup only, before any connection.
    void add_listener(const std::string& name);
    bool has_listener(const std::string& name) const { return listeners_.count(name) != 0; }

    void opened(const reactor::Connection& conn);
    void message(const reactor::Connection& conn);
    void closed(const reactor::Connection& conn, reactor::CloseReason reason);

    // {"connections": N, "messages": N, "closed": {reason: N}, "listeners": {...}, "loops": [...]}
    std::string to_json(const std::vector<reactor::LoopStats>& loops) const;

  private:
    struct Listener {
        std::atomic<std::uint64_t> open{0};
        std::atomic<std::uint64_t> accepted{0};
        std::atomic<std::uint64_t> messages{0};
        std::atomic<std::uint64_t> bytes_in{0};   // of closed connections
        std::atomic<std::uint64_t> bytes_out{0};  // of closed connections
        mutable std::mutex closed_mutex;
        std::map<std::string, std::uint64_t> closed;  // by reason, guarded by closed_mutex
    };
    Listener& of(const reactor::Connection& conn) { return *listeners_.at(conn.listener()); }

    std::map<std::string, std::unique_ptr<Listener>> listeners_;
};

}  // namespace reactord
