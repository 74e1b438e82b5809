#pragma once

// Opens one outbound stream connection with a deadline. Internal; Server::connect is the public
// face. Loop thread only.

#include <chrono>
#include <functional>
#include <string>

#include "libevent_handles.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/event_loop.hpp"

namespace reactor {

// Called exactly once: with the connected bufferevent and the peer's description, or with a null
// bufferevent and the error.
using ConnectDone =
    std::function<void(BufferEventPtr bev, const std::string& peer, const std::string& error)>;

void connect_stream(EventLoop& loop, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                    ConnectDone done);

}  // namespace reactor
