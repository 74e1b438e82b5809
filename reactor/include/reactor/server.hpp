#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/accept_filter.hpp"
#include "reactor/connection.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/message.hpp"
#include "reactor/protocol.hpp"
#include "reactor/transport.hpp"

namespace reactor {

class EventLoop;

// What the application does with a listener's (or an outbound connection's) traffic. Each callback
// runs on the connection's loop thread; any may be empty.
struct Handlers {
    // After the accept filters and the transport's handshake. A connection that ends before (a
    // filter rejected it, its handshake failed or timed out) reaches neither on_open nor on_close.
    std::function<void(Connection&)> on_open;
    std::function<void(Connection&, Message&)> on_message;
    std::function<void(Connection&, CloseReason)> on_close;
    // The peer ended its stream (a half-close) and every frame it completed has been delivered;
    // reading has stopped. Unset, the connection then closes, flushing its replies. Set, it stays
    // open for writing until the application closes it: for replies that come later (from another
    // thread or loop), which a close now would drop.
    std::function<void(Connection&)> on_peer_closed;
    // A client was refused at max_connections (it got the protocol's busy notice); peer is its
    // address. For counting: no Connection exists.
    std::function<void(const std::string& peer)> on_refused;
};

// Per-connection limits. Zero disables a limit.
struct ConnectionLimits {
    std::size_t max_connections = 0;            // per listener; extra connections get busy_notice()
    std::chrono::milliseconds idle_timeout{0};  // no complete message for this long: close
    std::size_t output_high_water = 4 << 20;    // pending output above this: stop reading
    std::size_t output_limit = 64 << 20;  // pending output above this: close (output overflow)
};

// How a listener spreads connections over the server's loops (no difference with one loop).
enum class AcceptMode {
    reuse_port,   // one listening socket per loop (SO_REUSEPORT); the kernel spreads connections
    round_robin,  // one listening socket on the first loop, which hands connections out in turn
};

struct ListenOptions {
    std::string name = "default";
    Endpoint endpoint;
    int backlog = 1024;
    AcceptMode accept = AcceptMode::reuse_port;  // Unix sockets always use round_robin
    // false: listen() fails (EADDRINUSE) when another process listens on the TCP port, even one
    // that would let this one join it with SO_REUSEPORT. true: bind with SO_REUSEPORT (with any
    // number of loops) and join such a process, to hand a port over from one process to the next.
    bool share_port = false;
    std::shared_ptr<const ProtocolFactory> protocol;    // null: raw
    std::shared_ptr<const TransportFactory> transport;  // null: plain TCP (or Unix stream)
    // Run in this order on each accepted connection's first bytes, before its transport and
    // on_open (see accept_filter.hpp).
    std::vector<std::shared_ptr<const AcceptFilterFactory>> accept_filters;
    Handlers handlers;
    ConnectionLimits limits;
};

struct ConnectOptions {
    std::string name = "outbound";
    Endpoint endpoint;
    std::chrono::milliseconds timeout{5000};
    std::shared_ptr<const ProtocolFactory> protocol;    // null: raw
    std::shared_ptr<const TransportFactory> transport;  // null: plain TCP (or Unix stream)
    Handlers handlers;
    ConnectionLimits limits;
};

// A snapshot of one connection, for listings.
struct ConnectionInfo {
    ConnectionId id = 0;
    std::string listener;
    std::string peer;
    std::size_t loop = 0;
    ConnectionStats stats;
};

// Counters of one loop.
struct LoopStats {
    std::size_t connections = 0;
    std::uint64_t messages = 0;
    std::chrono::microseconds lag{0};  // how late the loop ran its last 100 ms probe timer
};

// Owns listeners and connections on one or more loops, and routes sends by connection id. Loop 0 is
// the loop given to the constructor; with threads > 1 the server starts threads - 1 more loops,
// each on its own thread. A connection stays on the loop that accepted it for its whole life, and
// its handlers run on that loop's thread: with several loops, handlers run concurrently.
//
// Threading: send(), send_raw(), close(), broadcast(), connection_count(), listener_of(),
// collect_connections() and loop_stats() are safe from any thread; they post to the owning loop
// when called elsewhere.
// listen(), connect() and shutdown() belong to loop 0's thread (or any thread before loop 0 runs;
// debug builds abort on listen() and shutdown() from another thread while loop 0 runs).
// find() and for_each() see the calling loop's own connections. Destroy the server on loop 0's
// thread or after loop 0 stopped.
class Server {
  public:
    explicit Server(EventLoop& loop, unsigned threads = 1);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and starts accepting; returns the bound endpoint (the real port when port was 0).
    // Throws std::system_error when the address cannot be bound.
    Endpoint listen(ListenOptions options);

    // Opens an outbound connection; done(id, "") once connected and after on_open (with a
    // transport that has a handshake, after it), or done(0, error) on failure or timeout (the
    // connect's, or the handshake's: then error says why, e.g. the server's certificate).
    void connect(ConnectOptions options,
                 std::function<void(ConnectionId, const std::string& error)> done);

    // Frames payload with the connection's protocol and queues it. False when the id is unknown or
    // already closed. Any thread.
    bool send(ConnectionId id, std::string_view payload);
    // Queues bytes unframed. Any thread.
    bool send_raw(ConnectionId id, std::string_view bytes);
    // Closes a connection with reason "kicked" unless another is given. Any thread.
    bool close(ConnectionId id, CloseMode mode = CloseMode::flush,
               CloseReason reason = CloseReason::kicked);
    // Sends payload to every open connection (of one listener when listener is not empty). Returns
    // how many connections it was queued for. Any thread.
    std::size_t broadcast(std::string_view payload, std::string_view listener = {});
    // Open connections. Any thread.
    std::size_t connection_count() const;
    // The name of the listener of an open connection; empty when the id is unknown. Any thread.
    std::string listener_of(ConnectionId id) const;

    // The live connection with this id on the calling loop, or null. Loop thread.
    Connection* find(ConnectionId id);
    // Calls fn for each open connection of the calling loop. Loop thread.
    void for_each(const std::function<void(Connection&)>& fn);
    // Gathers a snapshot of every open connection on every loop and calls done with it, on the
    // thread of the loop that answered last. Any thread; never blocks.
    void collect_connections(std::function<void(std::vector<ConnectionInfo>)> done);
    // Per-loop counters, index = loop number. Any thread.
    std::vector<LoopStats> loop_stats() const;
    std::size_t loop_count() const;

    // A budget for the bytes pending in the output buffers of all connections together (zero, the
    // default: none). Above it, a connection whose output grows while it holds at least its fair
    // share (budget / open connections) is closed with reason output_overflow, so the clients that
    // hold the most and keep growing go first. Applies to listeners and connections made after the
    // call. Loop 0's thread, before listen().
    void set_output_budget(std::size_t bytes);
    // Bytes pending under the budget now, and connections it has closed. Any thread.
    std::size_t output_budget_pending() const;
    std::uint64_t output_budget_closed() const;

    // Stops accepting, closes every connection with reason "shutdown" (flushing output), and calls
    // done on loop 0 once the last one is gone on every loop. Loop 0's thread.
    void shutdown(std::function<void()> done = {});

    EventLoop& loop() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace reactor
