// How a connection ends: close(), the flush, lingering, and the two steps of its end (conclude()
// for the application, finish() for the socket). The rest of TcpConnection is in
// tcp_connection.cpp.

#include "thread_check.hpp"

#include <cerrno>

#include "linger.hpp"
#include "loop_internals.hpp"
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
    if (mode == CloseMode::now || phase_ != Phase::open) {
        // Before on_open (filters, handshake) there is nothing of the application's to flush.
        finish();
        return;
    }
    if (output_.empty() && !transport_holds_output_) {
        linger();
        return;
    }
    // Flush: the write callback lingers once the output is empty; the timer bounds the wait.
    arm_timer(kFlushTimeout);
    arm_write();
}

bool TcpConnection::flush_at_deadline() {
    if (finished_ || lingering_) return false;
    const std::size_t pending = output_.size();
    if (pending != 0 || transport_holds_output_) {
        std::size_t left = 0;
        const bool held = transport_holds_output_;
        if (!write_output(left)) return true;  // failed: finished already
        const bool progressed = left < pending || (held && !transport_holds_output_);
        if (!progressed) return false;
    }
    if (output_.empty() && !transport_holds_output_) {
        linger();
    } else {
        arm_timer(kFlushTimeout);
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
    last_message_ = std::chrono::steady_clock::now();  // when lingering began
    disarm_write();
    stop_timer();
    if (!transport().shutdown_write()) {
        finish();
        return;
    }
    // A persistent event's timeout restarts with each activation: it is the polling interval.
    const timeval poll = to_timeval(kLingerPoll);
    event_add(read_event_.get(), &poll);
    discard_while_lingering(EV_READ);
}

void TcpConnection::discard_while_lingering(short what) {
    if (linger_done(transport(), what, last_message_, kLingerTimeout)) finish();
}

void TcpConnection::conclude() {
    if (concluded_) return;
    concluded_ = true;
    closing_ = true;
    stop_timer();
    --group_->open;
    --counters_.connections;
    log_limited(log_rates::connection_closed(), "listener=", group_->name, " conn=", id_,
                " closed: ", to_string(reason_));
    // The application hears of the close of the connections it saw open only.
    if (phase_ == Phase::open && group_->handlers.on_close) {
        guarded("on_close", [&] { group_->handlers.on_close(*this, reason_); });
    }
    on_ended_(owner_, *this, Ending::closed);
}

void TcpConnection::finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    drop_stage();
    event_del(read_event_.get());
    disarm_write();
    if (write_event_) event_del(write_event_.get());  // a deferred flush, if one is queued
    stop_timer();
    report_not_opened("closed before it opened: " + std::string(to_string(reason_)));
    conclude();
    on_ended_(owner_, *this, Ending::released);
}

}  // namespace reactor
