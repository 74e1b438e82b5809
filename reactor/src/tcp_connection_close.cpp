// How a connection ends: close(), the flush, lingering, and the two steps of its end (conclude()
// for the application, finish() for the socket). The rest of TcpConnection is in
// tcp_connection.cpp.

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "thread_check.hpp"

#include <cerrno>

#include "reactor/log.hpp"
#include "tcp_connection.hpp"

namespace reactor {

namespace {
// A closing connection whose peer does not read its last bytes is dropped after this long.
constexpr std::chrono::seconds kFlushTimeout{10};
// After its last byte went to the kernel, a closing connection lingers (see linger()) for at most
// kLingerTimeout, looking again at least every kLingerPoll.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr std::chrono::milliseconds kLingerPoll{20};
}  // namespace

void TcpConnection::close(CloseMode mode, CloseReason reason) {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::close");
    if (closing_) return;
    if (reason == CloseReason::shutdown && mode == CloseMode::flush) {
        read_remaining_input();
        if (closing_) return;
    }
    if (mode == CloseMode::now) {
        drop_stage();
    } else {
        spill_stage();
    }
    closing_ = true;
    reason_ = reason;
    event_del(read_event_.get());
    if (mode == CloseMode::now) {
        finish();
        return;
    }
    if (output_.empty()) {
        linger();
        return;
    }
    // Flush: the write callback finishes once the output is empty.
    bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
    const timeval deadline = to_timeval(kFlushTimeout);
    bufferevent_set_timeouts(bev_.get(), nullptr, &deadline);
    write_armed_ = true;
    bufferevent_enable(bev_.get(), EV_WRITE);
}

bool TcpConnection::flush_at_deadline() {
    if (finished_ || lingering_) return false;
    evbuffer* out = static_cast<evbuffer*>(output_.native_handle());
    const std::size_t pending = evbuffer_get_length(out);
    if (pending != 0) {
        evbuffer_unfreeze(out, 1);
        const int written =
            evbuffer_write_atmost(out, fd_, static_cast<ev_ssize_t>(kMaxSingleRead));
        evbuffer_freeze(out, 1);
        if (written <= 0) return false;
    }
    if (output_.empty()) {
        linger();
    } else {
        bufferevent_enable(bev_.get(), EV_WRITE);  // the timeout disabled it; enabling restarts it
    }
    return true;
}

void TcpConnection::linger() {
    // Closing a socket whose input holds unread bytes makes the kernel reset the connection and
    // throw away what it has not sent yet: the tail of the reply just written. So the connection
    // ends its own stream first, then reads and drops the peer's late bytes until the kernel has
    // delivered all its output (or the peer ends its stream too), for at most kLingerTimeout.
    if (lingering_ || finished_) return;
    if (peer_ended_) {
        finish();
        return;
    }
    // For the application and the server the connection is closed now; only the socket lingers.
    conclude();
    lingering_ = true;
    linger_started_ = std::chrono::steady_clock::now();
    bufferevent_disable(bev_.get(), EV_WRITE);
    bufferevent_set_timeouts(bev_.get(), nullptr, nullptr);
    if (::shutdown(fd_, SHUT_WR) != 0) {
        finish();
        return;
    }
    // A persistent event's timeout restarts with each activation: it is the polling interval.
    const timeval poll = to_timeval(kLingerPoll);
    event_add(read_event_.get(), &poll);
    discard_while_lingering(EV_READ);
}

void TcpConnection::discard_while_lingering(short what) {
    if (what & EV_READ) {
        char sink[16 * 1024];
        for (int reads = 0; reads < 16; ++reads) {
            const ssize_t got = ::recv(fd_, sink, sizeof sink, 0);
            if (got > 0) continue;
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
            finish();  // the peer's end of stream, or a reset
            return;
        }
    }
    // Done once the kernel holds none of the output (sent and acknowledged), with no unread input
    // just now; or at the deadline.
    int unsent = 0;
    if (::ioctl(fd_, SIOCOUTQ, &unsent) != 0) unsent = 0;
    if (unsent == 0 || std::chrono::steady_clock::now() - linger_started_ >= kLingerTimeout) {
        finish();
    }
}

void TcpConnection::conclude() {
    if (concluded_) return;
    concluded_ = true;
    closing_ = true;
    if (idle_timer_) event_del(idle_timer_.get());
    --group_->open;
    --counters_.connections;
    log_limited(log_rates::connection_closed(), "listener=", group_->name, " conn=", id_,
                " closed: ", to_string(reason_));
    if (group_->handlers.on_close) {
        guarded("on_close", [&] { group_->handlers.on_close(*this, reason_); });
    }
    on_ended_(*this, Ending::closed);
}

void TcpConnection::finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    drop_stage();
    event_del(read_event_.get());
    bufferevent_disable(bev_.get(), EV_WRITE);
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    conclude();
    on_ended_(*this, Ending::released);
}

}  // namespace reactor
