#pragma once

// A connection's accept filters while they run. Internal header.

#include <memory>
#include <string>

#include "reactor/accept_filter.hpp"
#include "tcp_connection.hpp"

namespace reactor {

// The accept filters' state, from accept until the last one accepted: which filter runs, and the
// bytes received that no filter consumed yet. Also what a filter sees of the connection.
class FilterStage final : public AcceptContext {
  public:
    explicit FilterStage(TcpConnection& connection) : connection_(connection) {}

    const std::string& peer() const override { return connection_.peer(); }
    const std::string& local() const override { return connection_.local(); }
    void set_peer(std::string address) override { connection_.set_peer(std::move(address)); }
    void set_local(std::string address) override { connection_.set_local(std::move(address)); }

    const AcceptFilterFactory& factory() const { return *connection_.group().filters[index]; }
    bool last() const { return index + 1 == connection_.group().filters.size(); }

    std::size_t index = 0;
    std::unique_ptr<AcceptFilter> filter;
    std::string bytes;

  private:
    TcpConnection& connection_;
};

}  // namespace reactor
