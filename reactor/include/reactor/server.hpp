#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/connection.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/message.hpp"
#include "reactor/protocol.hpp"

namespace reactor {

class EventLoop;

// What the application does with a listener's (or an outbound connection's) traffic. Each callback
// runs on the connection's loop thread; any may be empty.
struct Handlers {
    std::function<void(Connection&)> on_open;
    std::function<void(Connection&, Message&)> on_message;
    std::function<void(Connection&, CloseReason)> on_close;
};

// Per-connection limits. Zero disables a limit.
struct ConnectionLimits {
    std::size_t max_connections = 0;       // per listener; extra connections get busy_notice()
    std::chrono::milliseconds idle_timeout{0};  // no complete message for this long: close
    std::size_t output_high_water = 4 << 20;    // pending output above this: stop reading
    std::size_t output_limit = 64 << 20;        // pending output above this: close (output overflow)
};

struct ListenOptions {
    std::string name = "default";
    Endpoint endpoint;
    int backlog = 1024;
    std::shared_ptr<const ProtocolFactory> protocol;  // null: raw
    Handlers handlers;
    ConnectionLimits limits;
};

struct ConnectOptions {
    std::string name = "outbound";
    Endpoint endpoint;
    std::chrono::milliseconds timeout{5000};
    std::shared_ptr<const ProtocolFactory> protocol;  // null: raw
    Handlers handlers;
    ConnectionLimits limits;
};

// Owns listeners and connections on one loop, and routes sends by connection id.
//
// Threading: send(), send_raw(), close(), broadcast() and connection_count() are safe from any
// thread; from a foreign thread they post to the owning loop. Everything else belongs to the loop
// thread. Destroy the server on the loop thread or after the loop stopped.
class Server {
public:
    explicit Server(EventLoop& loop);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and starts accepting; returns the bound endpoint (the real port when port was 0).
    // Throws std::system_error when the address cannot be bound.
    Endpoint listen(ListenOptions options);

    // Opens an outbound connection; done(id, "") once connected (after on_open), or done(0, error)
    // on failure or timeout.
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

    // The live connection with this id on this loop, or null. Loop thread.
    Connection* find(ConnectionId id);
    // Calls fn for each open connection. Loop thread.
    void for_each(const std::function<void(Connection&)>& fn);

    // Stops accepting, closes every connection with reason "shutdown" (flushing output), and calls
    // done once the last one is gone. Loop thread.
    void shutdown(std::function<void()> done = {});

    EventLoop& loop() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace reactor
