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

// How a listening socket shares its port (TCP only; a Unix socket path is never shared).
enum class PortSharing {
    none,          // a plain socket: the kernel refuses a port that anything else holds
    group_first,   // the first of this process's SO_REUSEPORT sockets: refuses a port that another
                   // process listens on (a lock and a probe, see listener.cpp), then starts the
                   // group
    group_member,  // another loop's socket joining the group that group_first started
    shared,        // SO_REUSEPORT, joining whatever listens there: a hand-over between processes
};

class Listener {
  public:
    // fd is non-blocking and close-on-exec; the callee owns it.
    using AcceptFn = std::function<void(int fd, const sockaddr* peer, socklen_t peer_length)>;

    // Binds and listens; throws std::system_error (EADDRINUSE when the port is taken, also when
    // group_first finds another process listening there).
    Listener(EventLoop& loop, const Endpoint& endpoint, int backlog, std::string name,
             AcceptFn on_accept, PortSharing sharing = PortSharing::none);
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
    int port_lock_ = -1;                  // group_first: held while listening, see listener.cpp
    bool descriptors_exhausted_ = false;  // one log line per EMFILE/ENFILE episode
};

}  // namespace reactor
