#include "connector.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <system_error>

#include "loop_internals.hpp"
#include "socket_address.hpp"

namespace reactor {

namespace {

// A non-blocking connect in flight: its socket, and one event for writability with the deadline
// as its timeout.
struct PendingConnect {
    EventLoop* loop;
    int fd = -1;
    EventPtr event;
    std::string peer;
    ConnectDone done;
    std::chrono::steady_clock::time_point deadline;
    bool grace_given = false;

    ~PendingConnect() {
        event.reset();
        if (fd >= 0) ::close(fd);
    }
};

// The error the connect ended with (0: connected), once the socket is writable.
int connect_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

// True when the connect has completed: the socket is writable with no error pending.
bool connected_now(int fd) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) return false;
    return connect_error(fd) == 0;
}

void finish(PendingConnect* pending, const std::string& error) {
    std::unique_ptr<PendingConnect> owned(pending);
    if (!error.empty()) {
        // The event is freed after this callback returns, never inside it.
        owned->loop->defer([doomed = owned.release()] { delete doomed; });
        pending->done(-1, pending->peer, error);
        return;
    }
    owned->event.reset();
    const int fd = owned->fd;
    owned->fd = -1;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                 sizeof one);  // fails harmlessly on Unix sockets
    // The event is gone already: nothing of it is left to free later.
    owned->done(fd, owned->peer, {});
}

void rearm(PendingConnect* pending, std::chrono::steady_clock::duration after) {
    const timeval tv = to_timeval(std::chrono::ceil<std::chrono::milliseconds>(after));
    event_add(pending->event.get(), &tv);
}

void on_event(evutil_socket_t, short what, void* arg) {
    auto* pending = static_cast<PendingConnect*>(arg);
    if (what & EV_WRITE) {
        const int err = connect_error(pending->fd);
        if (err == 0) {
            finish(pending, {});
        } else {
            finish(pending, "connect to " + pending->peer +
                                " failed: " + std::system_category().message(err));
        }
        return;
    }
    // The deadline. libevent's timeouts run on its cached clock and may fire a little early: wait
    // out the rest.
    const auto left = pending->deadline - std::chrono::steady_clock::now();
    if (left > std::chrono::steady_clock::duration::zero()) {
        rearm(pending, left);
        return;
    }
    // After a stall of the whole process (SIGSTOP, a paused container) the timeout runs before
    // the write event that reports a connect completed meanwhile: let that event come first.
    if (!pending->grace_given && connected_now(pending->fd)) {
        pending->grace_given = true;
        rearm(pending, std::chrono::milliseconds(100));
        return;
    }
    finish(pending, "connect to " + pending->peer + " timed out");
}

}  // namespace

void connect_stream(EventLoop& loop, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                    ConnectDone done) {
    auto pending = std::make_unique<PendingConnect>();
    pending->loop = &loop;
    pending->peer = endpoint.to_string();
    pending->done = std::move(done);
    std::string error;
    try {
        const SocketAddress address = resolve(endpoint);
        pending->fd =
            ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (pending->fd < 0) throw std::system_error(errno, std::system_category(), "socket");
        pending->event.reset(
            event_new(event_base_of(loop), pending->fd, EV_WRITE, &on_event, pending.get()));
        if (!pending->event) throw std::bad_alloc();
        if (::connect(pending->fd, address.get(), address.length) != 0 && errno != EINPROGRESS) {
            error =
                "connect to " + pending->peer + " failed: " + std::system_category().message(errno);
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    auto* raw = pending.release();
    if (!error.empty()) {
        // Report from the loop, never from inside the caller.
        loop.defer([raw, error] { finish(raw, error); });
        return;
    }
    raw->deadline = std::chrono::steady_clock::now() + timeout;
    rearm(raw, timeout);
}

}  // namespace reactor
