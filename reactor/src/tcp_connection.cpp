// A connection's life, decoding and dispatch. How it reads its socket is in
// tcp_connection_read.cpp, how it writes in tcp_connection_write.cpp, how it closes in
// tcp_connection_close.cpp.

#include "tcp_connection.hpp"
#include "thread_check.hpp"

#include <unistd.h>

#include <cassert>
#include <cstring>
#include <new>
#include <stdexcept>

#include "decode_frames.hpp"
#include "filter_stage.hpp"
#include "log_rates.hpp"
#include "loop_internals.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"

namespace reactor {

std::string_view to_string(CloseReason reason) {
    switch (reason) {
        case CloseReason::peer_closed:
            return "peer closed";
        case CloseReason::error:
            return "reset/error";
        case CloseReason::timeout:
            return "timeout";
        case CloseReason::protocol_error:
            return "protocol error";
        case CloseReason::output_overflow:
            return "output overflow";
        case CloseReason::app_closed:
            return "closed by app";
        case CloseReason::kicked:
            return "kicked";
        case CloseReason::shutdown:
            return "server shutdown";
        case CloseReason::rejected:
            return "rejected";
        case CloseReason::handshake_failed:
            return "handshake failed";
        case CloseReason::protocol_done:
            return "closed by protocol";
    }
    return "unknown";
}

TcpConnection::TcpConnection(EventLoop& loop, LoopCounters& counters, ConnectionId id, int fd,
                             std::string peer, std::shared_ptr<ConnectionGroup> group,
                             EndedFn on_ended, void* owner, bool accepted)
    : loop_(loop),
      counters_(counters),
      id_(id),
      group_(std::move(group)),
      protocol_(group_->protocol->create()),
      fd_(fd),
      accepted_(accepted),
      peer_(std::move(peer)),
      on_ended_(on_ended),
      owner_(owner) {
    stats_.opened = std::chrono::steady_clock::now();
    last_message_ = stats_.opened;
    read_event_.reset(
        event_new(event_base_of(loop_), fd_, EV_READ | EV_PERSIST, &on_readable, this));
    if (!read_event_) {
        ::close(fd_);
        throw std::bad_alloc();
    }
    if (group_->transport) transport_ = group_->transport->create();
    join_budget();
    ++group_->open;
    ++counters_.connections;
}

TcpConnection::~TcpConnection() {
    drop_stage();
    keep_input();
    leave_budget();
    // The events go before the socket they watch.
    read_event_.reset();
    write_event_.reset();
    timer_.reset();
    if (phase_ == Phase::filtering) {
        ::close(fd_);
    } else {
        transport().close();
    }
}

void TcpConnection::pause_reading() {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::pause_reading");
    if (read_pauses_++ == 0) event_del(read_event_.get());
}

void TcpConnection::resume_reading() {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::resume_reading");
    assert(read_pauses_ > 0);
    if (--read_pauses_ != 0 || closing_) return;
    if (peer_ended_) {
        // The end of stream was read while frames before it waited for the output to drain.
        if (eof_pending_) on_end_of_stream();
        return;
    }
    event_add(read_event_.get(), nullptr);
    // Frames may already sit in the input buffer, decoded no further while the output was above
    // its high-water mark. Inside process_input() (its flush resumed reading), it decodes them
    // itself.
    if (!in_read_ && !input_.empty()) process_input();
}

void TcpConnection::deliver(Message& message) {
    message.conn = id_;
    ++stats_.messages_in;
    // Only this loop's thread writes the counter: a plain increment, no locked instruction.
    counters_.messages.store(counters_.messages.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
    if (group_->limits.idle_timeout.count() > 0)
        last_message_ = std::chrono::steady_clock::now();  // only the idle timer reads it
    if (group_->handlers.on_message) {
        guarded("on_message", [&] { group_->handlers.on_message(*this, message); });
    }
}

void TcpConnection::switch_protocol(std::unique_ptr<Protocol> next) {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::switch_protocol");
    if (next == nullptr) throw std::invalid_argument("switch_protocol: no protocol");
    if (decoding_) {
        // The protocol being switched away from is inside its decode(): it lives until that
        // returns. A second switch meanwhile replaces the first one's protocol, never used.
        if (!switching_) retired_protocol_ = std::move(protocol_);
        protocol_ = std::move(next);
        switching_ = true;
        return;
    }
    protocol_ = std::move(next);
    if (!in_read_ && !input_.empty()) process_input();
}

DecodeOutcome TcpConnection::decode_switching(DecodePass pass, bool stop_when_empty) {
    DecodeOutcome outcome;
    do {
        // A switch stopped the previous protocol after its frame: destroyed now that its decode()
        // returned, it leaves what follows to the new one, in this same pass (a failure is
        // reported by whichever protocol failed).
        retired_protocol_.reset();
        switching_ = false;
        decoding_ = true;
        outcome = pass(*protocol_, input_, *this);
        decoding_ = false;
        // A switch outweighs a last frame: the next protocol goes on.
        if (switching_) outcome.last_frame = false;
    } while (switching_ && !outcome.failed && !closing_ && !paused_for_output_ &&
             !(stop_when_empty && input_.empty()));
    retired_protocol_.reset();
    switching_ = false;
    return outcome;
}

void TcpConnection::process_input() {
    if (closing_ || read_pauses_ > 0) return;
    for (;;) {
        begin_stage();
        in_read_ = true;
        const DecodeOutcome outcome = decode_switching(decode_frames, true);
        // Decoding stops while the output is above its high-water mark (see accepting()).
        const bool throttled = paused_for_output_;
        flush();
        in_read_ = false;
        if (outcome.failed && !closing_) {
            log_limited(log_rates::protocol_error(), "listener=", group_->name, " conn=", id_,
                        " peer=", peer_, " protocol error: ", outcome.error.reason);
            if (!outcome.error.last_reply.empty()) send_raw(outcome.error.last_reply);
            close(CloseMode::flush, CloseReason::protocol_error);
            return;
        }
        if (outcome.last_frame) {
            // The protocol ended the conversation; its last replies went out with the flush.
            close(CloseMode::flush, CloseReason::protocol_done);
            return;
        }
        // The flush took the output back under the low mark: the frames still buffered are next.
        if (!throttled || closing_ || read_pauses_ > 0 || input_.empty()) return;
    }
}

void TcpConnection::on_end_of_stream() {
    // Half-close: the peer may still read. Decode what is left, answer it, then close.
    peer_ended_ = true;
    eof_pending_ = false;
    const DecodeOutcome outcome = decode_switching(decode_eof, false);
    if (outcome.failed) {
        log_limited(log_rates::protocol_error(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " protocol error at end of input: ", outcome.error.reason);
        if (!outcome.error.last_reply.empty()) send_raw(outcome.error.last_reply);
        close(CloseMode::flush, CloseReason::protocol_error);
        return;
    }
    if (closing_) return;
    if (outcome.last_frame) {
        close(CloseMode::flush, CloseReason::protocol_done);
        return;
    }
    if (paused_for_output_) {
        // Decoding stopped above the output high-water mark with frames left: resume_reading()
        // comes back here once the peer has read enough of its replies.
        eof_pending_ = true;
        return;
    }
    if (!group_->handlers.on_peer_closed) {
        close(CloseMode::flush, CloseReason::peer_closed);
        return;
    }
    // The application closes when it has answered; the end of stream stays readable, so reading
    // stops for good.
    event_del(read_event_.get());
    guarded("on_peer_closed", [&] { group_->handlers.on_peer_closed(*this); });
}

event* TcpConnection::write_event() {
    if (!write_event_) {
        write_event_.reset(
            event_new(event_base_of(loop_), fd_, EV_WRITE | EV_PERSIST, &on_writable, this));
        if (!write_event_) throw std::bad_alloc();
    }
    return write_event_.get();
}

void TcpConnection::arm_timer(std::chrono::milliseconds after) {
    if (!timer_) {
        timer_.reset(event_new(event_base_of(loop_), -1, 0, &on_timer, this));
        if (!timer_) throw std::bad_alloc();
    }
    const timeval tv = to_timeval(after);
    event_add(timer_.get(), &tv);
}

void TcpConnection::stop_timer() {
    if (timer_) event_del(timer_.get());
}

void TcpConnection::on_timer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->finished_ || self->lingering_) return;
    if (self->closing_) {
        // Only the flush deadline of a closing connection is left. After a stall of the process
        // it may run before the write that is due: write first.
        if (!self->flush_at_deadline()) self->finish();
        return;
    }
    if (self->phase_ == Phase::open) {
        self->on_idle();
        return;
    }
    // The accept filter's deadline, or the handshake's.
    log_limited(log_rates::idle_timeout(), "listener=", self->group_->name, " conn=", self->id_,
                " peer=", self->peer_, " ",
                self->phase_ == Phase::filtering ? "accept filter" : "transport handshake",
                " timed out");
    self->report_not_opened(self->phase_ == Phase::filtering ? "accept filter timed out"
                                                             : "transport handshake timed out");
    self->end_now(CloseReason::timeout);
}

void TcpConnection::on_idle() {
    const auto idle = group_->limits.idle_timeout;
    auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - last_message_);
    if (since >= idle && read_pending_input()) {
        // Input arrived that was not read yet: after a stall of the whole process (SIGSTOP, a
        // paused container, a loop blocked too long) timers run before the reads that are due.
        // What it completes counts before idleness is judged.
        since = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - last_message_);
        if (closing_) return;
    }
    if (since >= idle) {
        log_limited(log_rates::idle_timeout(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " idle for ", since.count(), " ms");
        close(CloseMode::flush, CloseReason::timeout);
    } else {
        arm_timer(idle - since);
    }
}

bool TcpConnection::read_pending_input() {
    if (closing_ || read_pauses_ > 0 || peer_ended_) return false;
    read_and_process();
    return true;
}

void TcpConnection::fail(const char* operation, int error) {
    log_limited(log_rates::socket_error(), "listener=", group_->name, " conn=", id_, " ", operation,
                " failed: ", std::strerror(error));
    end_now(CloseReason::error);
}

}  // namespace reactor
