#include "listener.hpp"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>

#include "log_rates.hpp"
#include "loop_internals.hpp"
#include "reactor/log.hpp"
#include "socket_address.hpp"

namespace reactor {

namespace {
constexpr std::chrono::milliseconds kAcceptRetry{100};

void remove_stale_unix_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

[[noreturn]] void throw_in_use(const Endpoint& endpoint) {
    throw std::system_error(EADDRINUSE, std::generic_category(),
                            "cannot listen on " + endpoint.to_string());
}

// Linux lets a socket join a SO_REUSEPORT group of the same user silently, so a second process
// started with the same configuration would take half of the clients. Before a process starts its
// own group on a port, two checks refuse a port that another process listens on:
// - a lock: an abstract Unix socket named after the address, bound for as long as the group
//   listens. Binding it is atomic and the kernel releases it when the process dies (no stale
//   file), and the abstract namespace belongs to the network namespace, like the port itself. It
//   makes two of our processes starting at the same moment exclusive.
// - a probe: a plain socket (SO_REUSEADDR, no SO_REUSEPORT) bound to the address and closed. It
//   fails with EADDRINUSE when anything listens there (or on an overlapping wildcard address),
//   whatever the program. Between the probe and the group's bind, another program could still
//   join with SO_REUSEPORT: that window, microseconds long, is the one left open.
int lock_port(const SocketAddress& address, const Endpoint& endpoint) {
    sockaddr_un name{};
    name.sun_family = AF_UNIX;
    const std::string text =
        "reactor-port " +
        describe(reinterpret_cast<const sockaddr*>(&address.storage), address.length);
    const std::size_t size = std::min(text.size(), sizeof name.sun_path - 1);
    std::memcpy(name.sun_path + 1, text.data(), size);  // sun_path[0] == 0: the abstract namespace
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;  // no lock, the probe still runs
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + size);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&name), length) != 0) {
        const int err = errno;
        ::close(fd);
        if (err == EADDRINUSE) throw_in_use(endpoint);
        return -1;
    }
    return fd;
}

void probe_port(const SocketAddress& address, const Endpoint& endpoint) {
    const auto* sa = reinterpret_cast<const sockaddr*>(&address.storage);
    const int fd = ::socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;  // the real bind reports what is wrong
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool in_use = ::bind(fd, sa, address.length) != 0 && errno == EADDRINUSE;
    ::close(fd);
    if (in_use) throw_in_use(endpoint);
}
}  // namespace

Listener::Listener(EventLoop& loop, const Endpoint& endpoint, int backlog, std::string name,
                   AcceptFn on_accept, PortSharing sharing)
    : loop_(loop), name_(std::move(name)), on_accept_(std::move(on_accept)) {
    const SocketAddress address = resolve(endpoint);
    if (endpoint.is_unix()) remove_stale_unix_socket(endpoint.unix_path);
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    if (!endpoint.is_unix()) {
        flags |= LEV_OPT_REUSEABLE;
        if (sharing != PortSharing::none) flags |= LEV_OPT_REUSEABLE_PORT;
        // Port 0: the kernel never picks a port that a SO_REUSEPORT group holds.
        if (sharing == PortSharing::group_first && endpoint.port != 0) {
            port_lock_ = lock_port(address, endpoint);
            try {
                probe_port(address, endpoint);
            } catch (...) {
                if (port_lock_ >= 0) ::close(port_lock_);
                throw;
            }
        }
    }
    listener_.reset(evconnlistener_new_bind(event_base_of(loop), &Listener::on_accept_cb, this,
                                            flags, backlog, address.get(),
                                            static_cast<int>(address.length)));
    if (!listener_) {
        const int err = errno;
        if (port_lock_ >= 0) ::close(port_lock_);
        throw std::system_error(err, std::generic_category(),
                                "cannot listen on " + endpoint.to_string());
    }
    evconnlistener_set_error_cb(listener_.get(), &Listener::on_error_cb);
    local_ = endpoint.is_unix() ? endpoint : local_endpoint(evconnlistener_get_fd(listener_.get()));
}

Listener::~Listener() {
    close();
}

void Listener::close() {
    retry_.cancel();
    if (!listener_) return;
    listener_.reset();
    if (port_lock_ >= 0) ::close(port_lock_);
    port_lock_ = -1;
    if (local_.is_unix()) ::unlink(local_.unix_path.c_str());
}

void Listener::on_accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int len,
                            void* arg) {
    auto* self = static_cast<Listener*>(arg);
    if (self->descriptors_exhausted_) {
        self->descriptors_exhausted_ = false;
        log(LogLevel::warn, "listener=", self->name_, " accepting again");
    }
    self->on_accept_(fd, peer, static_cast<socklen_t>(len));
}

void Listener::on_error_cb(evconnlistener* lev, void* arg) {
    auto* self = static_cast<Listener*>(arg);
    const int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The pending connection stays in the backlog and the socket stays readable: accepting
        // again now would spin. Pause and retry on a timer until descriptors free up.
        if (!self->descriptors_exhausted_) {
            self->descriptors_exhausted_ = true;
            log(LogLevel::warn, "listener=", self->name_,
                " accept paused: ", std::system_category().message(err), "; retrying every ",
                kAcceptRetry.count(), " ms");
        }
        evconnlistener_disable(lev);
        self->retry_ = self->loop_.run_after(kAcceptRetry, [self] {
            if (self->listener_) evconnlistener_enable(self->listener_.get());
        });
        return;
    }
    log_limited(log_rates::accept_failed(), "listener=", self->name_,
                " accept failed: ", std::system_category().message(err));
}

}  // namespace reactor
