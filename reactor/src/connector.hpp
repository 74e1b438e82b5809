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

// Called exactly once, on the loop: with the connected socket (the callee's to close) and the
// peer's description, or with -1 and the error.
using ConnectDone = std::function<void(int fd, const std::string& peer, const std::string& error)>;

void connect_stream(EventLoop& loop, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                    ConnectDone done);

}  // namespace reactor
