#pragma once

// Accepts stream connections on one endpoint. Internal to the library; Server::listen is the
// public face. Loop thread only.

#include <sys/socket.h>

#include <functional>
#include <string>

#include "libevent_handles.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/event_loop.hpp"

namespace reactor {

class Listener {
  public:
    // fd is non-blocking and close-on-exec; the callee owns it.
    using AcceptFn = std::function<void(int fd, const sockaddr* peer, socklen_t peer_length)>;

    // Binds and listens; throws std::system_error.
    // reuse_port: bind with SO_REUSEPORT, so that each loop can own a socket on the same port.
    Listener(EventLoop& loop, const Endpoint& endpoint, int backlog, std::string name,
             AcceptFn on_accept, bool reuse_port = false);
    ~Listener();

    const Endpoint& local() const { return local_; }
    void close();

  private:
    static void on_accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int len,
                             void* arg);
    static void on_error_cb(evconnlistener*, void* arg);

    EventLoop& loop_;
    std::string name_;
    Endpoint local_;
    AcceptFn on_accept_;
    ListenerPtr listener_;
    TimerHandle retry_;
    bool descriptors_exhausted_ = false;  // one log line per EMFILE/ENFILE episode
};

}  // namespace reactor
