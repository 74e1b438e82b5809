#include "connector.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <system_error>

#include "socket_address.hpp"

namespace reactor {

namespace {

struct PendingConnect {
    EventLoop* loop;
    BufferEventPtr bev;
    std::string peer;
    ConnectDone done;
    std::chrono::steady_clock::time_point deadline;
    bool grace_given = false;
};

// True when the connect has completed: the socket is writable with no error pending.
bool connected_now(int fd) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) return false;
    int err = 0;
    socklen_t len = sizeof err;
    return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

void finish(PendingConnect* pending, const std::string& error) {
    std::unique_ptr<PendingConnect> owned(pending);
    bufferevent_setcb(owned->bev.get(), nullptr, nullptr, nullptr, nullptr);
    if (!error.empty()) {
        // Freed after this callback returns, never inside it.
        auto* bev = owned->bev.release();
        owned->loop->defer([bev] { bufferevent_free(bev); });
        owned->done(nullptr, owned->peer, error);
        return;
    }
    bufferevent_set_timeouts(owned->bev.get(), nullptr, nullptr);
    owned->done(std::move(owned->bev), owned->peer, {});
}

void on_event(bufferevent* bev, short what, void* arg) {
    auto* pending = static_cast<PendingConnect*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
        const int fd = bufferevent_getfd(bev);
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                     sizeof one);  // fails harmlessly on Unix sockets
        finish(pending, {});
    } else if (what & BEV_EVENT_TIMEOUT) {
        // libevent's timeouts run on its cached clock and may fire a little early: wait out the
        // rest (the timeout disabled the write event, which is how the connect completes).
        const auto left = pending->deadline - std::chrono::steady_clock::now();
        if (left > std::chrono::steady_clock::duration::zero()) {
            const timeval tv = to_timeval(std::chrono::ceil<std::chrono::milliseconds>(left));
            bufferevent_set_timeouts(bev, nullptr, &tv);
            bufferevent_enable(bev, EV_WRITE);
            return;
        }
        // After a stall of the whole process (SIGSTOP, a paused container) the timeout runs before
        // the write event that reports a connect completed meanwhile: let that event come first.
        if (!pending->grace_given && connected_now(bufferevent_getfd(bev))) {
            pending->grace_given = true;
            const timeval tv = to_timeval(std::chrono::milliseconds(100));
            bufferevent_set_timeouts(bev, nullptr, &tv);
            bufferevent_enable(bev, EV_WRITE);
            return;
        }
        finish(pending, "connect to " + pending->peer + " timed out");
    } else {
        const int err = EVUTIL_SOCKET_ERROR();
        finish(pending, "connect to " + pending->peer + " failed: " +
                            std::system_category().message(err != 0 ? err : ECONNREFUSED));
    }
}

}  // namespace

void connect_stream(EventLoop& loop, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                    ConnectDone done) {
    auto pending = std::make_unique<PendingConnect>();
    pending->loop = &loop;
    pending->peer = endpoint.to_string();
    pending->done = std::move(done);
    SocketAddress address;
    try {
        address = resolve(endpoint);
    } catch (const std::system_error& e) {
        auto* raw = pending.release();
        loop.defer([raw, what = std::string(e.what())] {
            std::unique_ptr<PendingConnect> owned(raw);
            owned->done(nullptr, owned->peer, what);
        });
        return;
    }
    pending->bev.reset(bufferevent_socket_new(static_cast<event_base*>(loop.native_handle()), -1,
                                              BEV_OPT_CLOSE_ON_FREE));
    auto* raw = pending.release();
    bufferevent_setcb(raw->bev.get(), nullptr, nullptr, &on_event, raw);
    const timeval tv = to_timeval(timeout);
    raw->deadline = std::chrono::steady_clock::now() + timeout;
    bufferevent_set_timeouts(raw->bev.get(), nullptr, &tv);
    if (bufferevent_socket_connect(raw->bev.get(), address.get(),
                                   static_cast<int>(address.length)) != 0) {
        const int err = errno;
        // Report from the loop, never from inside the caller.
        loop.defer([raw, err] {
            finish(raw,
                   "connect to " + raw->peer + " failed: " + std::system_category().message(err));
        });
    }
}

}  // namespace reactor
