#pragma once

// Counters reactord shows in /stats and the admin console. Listeners are added during setup; each
// listener's counting methods are then safe from any loop thread.

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
    // One listener's counters. The handlers hold a reference, so counting a message is one
    // relaxed atomic add, with no lookup by name.
    class Listener {
      public:
        void opened();
        void message() { messages.fetch_add(1, std::memory_order_relaxed); }
        void refused() { refusals.fetch_add(1, std::memory_order_relaxed); }
        void closed(const reactor::Connection& conn, reactor::CloseReason reason);

      private:
        friend class Stats;
        std::atomic<std::uint64_t> open{0};
        std::atomic<std::uint64_t> accepted{0};
        std::atomic<std::uint64_t> messages{0};
        std::atomic<std::uint64_t> refusals{0};  // at max_connections
        std::atomic<std::uint64_t> bytes_in{0};   // of closed connections
        std::atomic<std::uint64_t> bytes_out{0};  // of closed connections
        mutable std::mutex closed_mutex;
        std::map<std::string, std::uint64_t> closes;  // by reason, guarded by closed_mutex
    };

    // Setup only, before any connection. Adding a name twice returns the same counters.
    Listener& add_listener(const std::string& name);
    bool has_listener(const std::string& name) const { return listeners_.count(name) != 0; }

    // {"connections": N, "messages": N, "rejected_connections": N, "closed": {reason: N},
    //  "listeners": {...}, "loops": [...]}
    std::string to_json(const std::vector<reactor::LoopStats>& loops) const;

  private:
    std::map<std::string, std::unique_ptr<Listener>> listeners_;
};

}  // namespace reactord
