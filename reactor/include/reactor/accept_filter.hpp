#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace reactor {

// What an accept filter may see and change of the connection it runs on.
class AcceptContext {
  public:
    virtual ~AcceptContext() = default;
    // As Connection::peer() and local() report them: the socket's, or what a filter set before.
    virtual const std::string& peer() const = 0;
    virtual const std::string& local() const = 0;
    // Replaces the addresses the connection reports from now on (a PROXY header's client and
    // server addresses): in logs, listings and to the application.
    virtual void set_peer(std::string address) = 0;
    virtual void set_local(std::string address) = 0;
};

// A filter's answer about the bytes it has seen.
class FilterVerdict {
  public:
    enum class Status { need_more, accept, reject };

    // Not enough bytes to decide: called again once more have arrived.
    static FilterVerdict need_more() { return FilterVerdict(Status::need_more, 0, {}); }
    // Done: the first `consumed` bytes were the filter's own (a header), and are dropped; the rest
    // go on to the next filter, then the transport.
    static FilterVerdict accept(std::size_t consumed = 0) {
        return FilterVerdict(Status::accept, consumed, {});
    }
    // The connection is closed at once, with reason "rejected"; `reason` goes to the log.
    static FilterVerdict reject(std::string reason) {
        return FilterVerdict(Status::reject, 0, std::move(reason));
    }

    Status status() const { return status_; }
    std::size_t consumed() const { return consumed_; }
    const std::string& reason() const { return reason_; }

  private:
    FilterVerdict(Status status, std::size_t consumed, std::string reason)
        : status_(status), consumed_(consumed), reason_(std::move(reason)) {}
    Status status_;
    std::size_t consumed_;
    std::string reason_;
};

// A stage that runs on an accepted connection's first bytes, below its transport and before
// on_open: it may consume a prefix (a PROXY protocol header), set the peer and local addresses, or
// reject the connection. Filters run in the listener's order, each on what the previous ones left.
//
// One instance per connection, on its loop thread. inspect() is called first at once, with no
// bytes (a filter that judges by address alone decides there), then each time bytes arrive, with
// every byte received since the previous filters finished, until it accepts or rejects. A filter
// that still needs more after byte_budget() bytes, or after deadline() since it began, fails the
// connection: "rejected" for the budget, "timeout" for the deadline. The connection's end of
// stream before a verdict closes it as "peer closed".
class AcceptFilter {
  public:
    virtual ~AcceptFilter() = default;
    virtual FilterVerdict inspect(std::string_view bytes, AcceptContext& connection) = 0;
};

// Makes the filter of each connection of a listener; create() is safe from any thread.
class AcceptFilterFactory {
  public:
    virtual ~AcceptFilterFactory() = default;
    virtual std::string_view name() const = 0;
    virtual std::unique_ptr<AcceptFilter> create() const = 0;
    // The most bytes the filter may look at before it decides.
    virtual std::size_t byte_budget() const = 0;
    // How long the filter may wait for them.
    virtual std::chrono::milliseconds deadline() const = 0;
};

}  // namespace reactor
