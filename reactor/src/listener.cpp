#include "listener.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "reactor/log.hpp"
#include "socket_address.hpp"

namespace reactor {

namespace {
constexpr std::chrono::milliseconds kAcceptRetry{100};

void remove_stale_unix_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}
}  // namespace

Listener::Listener(EventLoop& loop, const Endpoint& endpoint, int backlog, std::string name,
                   AcceptFn on_accept, bool reuse_port)
    : loop_(loop), name_(std::move(name)), on_accept_(std::move(on_accept)) {
    const SocketAddress address = resolve(endpoint);
    if (endpoint.is_unix()) remove_stale_unix_socket(endpoint.unix_path);
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    if (!endpoint.is_unix()) flags |= LEV_OPT_REUSEABLE;
    if (reuse_port && !endpoint.is_unix()) flags |= LEV_OPT_REUSEABLE_PORT;
    listener_.reset(evconnlistener_new_bind(static_cast<event_base*>(loop.native_handle()),
                                            &Listener::on_accept_cb, this, flags, backlog,
                                            address.get(), static_cast<int>(address.length)));
    if (!listener_) {
        throw std::system_error(errno, std::generic_category(),
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
    log(LogLevel::warn, "listener=", self->name_,
        " accept failed: ", std::system_category().message(err));
}

}  // namespace reactor
