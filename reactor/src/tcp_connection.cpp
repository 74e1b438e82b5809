#include "tcp_connection.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <new>

#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"

namespace reactor {

namespace {
// The connection reads its socket itself rather than through the bufferevent: libevent 2.1's
// evbuffer_read asks ioctl(FIONREAD) before every read and takes at most 4 KiB per call
// (EVBUFFER_MAX_READ), whatever bufferevent_set_max_single_read says. One readable event reads up
// to kMaxSingleRead, so one busy peer cannot hold the loop.
constexpr std::size_t kMaxSingleRead = 256 * 1024;
constexpr std::size_t kReadChunk = 64 * 1024;

}  // namespace

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
        case CloseReason::kicked:
            return "kicked";
        case CloseReason::shutdown:
            return "server shutdown";
    }
    return "unknown";
}

TcpConnection::TcpConnection(EventLoop& loop, LoopCounters& counters, ConnectionId id,
                             BufferEventPtr bev, std::string peer,
                             std::shared_ptr<ConnectionGroup> group, EndedFn on_ended)
    : loop_(loop),
      counters_(counters),
      id_(id),
      bev_(std::move(bev)),
      peer_(std::move(peer)),
      group_(std::move(group)),
      on_ended_(std::move(on_ended)),
      protocol_(group_->protocol->create()),
      input_(Buffer::borrow(bufferevent_get_input(bev_.get()))),
      output_(Buffer::borrow(bufferevent_get_output(bev_.get()))) {
    stats_.opened = std::chrono::steady_clock::now();
    last_message_ = stats_.opened;
    // libevent writes at most 16 KiB per call by default: let one writev take what is pending.
    bufferevent_set_max_single_write(bev_.get(), kMaxSingleRead);
    bufferevent_setcb(bev_.get(), nullptr, &on_write, &on_event, this);
    read_event_.reset(event_new(static_cast<event_base*>(loop_.native_handle()),
                                bufferevent_getfd(bev_.get()), EV_READ | EV_PERSIST, &on_readable,
                                this));
    if (!read_event_) throw std::bad_alloc();
    const auto& limits = group_->limits;
    // The write callback fires when pending output falls to this mark: where paused reading
    // resumes.
    bufferevent_setwatermark(bev_.get(), EV_WRITE, limits.output_high_water / 2, 0);
    ++group_->open;
    ++counters_.connections;
}

TcpConnection::~TcpConnection() = default;

void TcpConnection::start() {
    if (group_->handlers.on_open) guarded("on_open", [&] { group_->handlers.on_open(*this); });
    if (closing_) return;
    if (read_pauses_ == 0) event_add(read_event_.get(), nullptr);
    if (group_->limits.idle_timeout.count() > 0) {
        idle_timer_.reset(
            event_new(static_cast<event_base*>(loop_.native_handle()), -1, 0, &on_idle, this));
        arm_idle_timer(group_->limits.idle_timeout);
    }
}

void TcpConnection::send(std::string_view payload) {
    if (closing_) return;
    const std::size_t before = output_.size();
    guarded("encode", [&] { protocol_->encode(payload, output_); });
    if (closing_) return;
    ++stats_.messages_out;
    after_output_grew(before);
}

void TcpConnection::send_raw(std::string_view bytes) {
    if (closing_) return;
    const std::size_t before = output_.size();
    output_.append(bytes);
    ++stats_.messages_out;
    after_output_grew(before);
}

std::size_t TcpConnection::output_pending() const {
    return output_.size();
}

void TcpConnection::after_output_grew(std::size_t before) {
    const std::size_t pending = output_.size();
    stats_.bytes_out += pending - before;
    const auto& limits = group_->limits;
    if (limits.output_limit != 0 && pending > limits.output_limit) {
        log(LogLevel::info, "listener=", group_->name, " conn=", id_, " output overflow: ", pending,
            " bytes pending");
        close(CloseMode::now, CloseReason::output_overflow);
        return;
    }
    if (limits.output_high_water != 0 && pending > limits.output_high_water &&
        !paused_for_output_) {
        // The peer is not reading its replies: stop reading its requests until it catches up.
        paused_for_output_ = true;
        pause_reading();
    }
    if (!in_read_) schedule_flush();
}

void TcpConnection::schedule_flush() {
    if (flush_scheduled_ || write_armed_ || closing_) return;
    flush_scheduled_ = true;
    loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired()) return;
        flush_scheduled_ = false;
        flush();
    });
}

void TcpConnection::flush() {
    if (closing_ || write_armed_ || output_.empty()) return;
    evbuffer* out = bufferevent_get_output(bev_.get());
    const int fd = static_cast<int>(bufferevent_getfd(bev_.get()));
    // The bufferevent freezes the front of its output so only it drains it; lift that while
    // writing.
    evbuffer_unfreeze(out, 1);
    const int written = evbuffer_write_atmost(out, fd, static_cast<ev_ssize_t>(kMaxSingleRead));
    const int err = errno;
    evbuffer_freeze(out, 1);
    if (written < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        fail("write", err);
        return;
    }
    if (!output_.empty()) arm_write();
    // The kernel took enough: reading resumes below half the high-water mark, as in on_write.
    if (paused_for_output_ && output_.size() <= group_->limits.output_high_water / 2) {
        paused_for_output_ = false;
        resume_reading();
    }
}

void TcpConnection::arm_write() {
    write_armed_ = true;
    bufferevent_enable(bev_.get(), EV_WRITE);
}

void TcpConnection::pause_reading() {
    if (read_pauses_++ == 0) event_del(read_event_.get());
}

void TcpConnection::resume_reading() {
    assert(read_pauses_ > 0);
    if (--read_pauses_ == 0 && !closing_ && !peer_ended_) {
        event_add(read_event_.get(), nullptr);
        // Bytes may have arrived while paused and already sit in the input buffer.
        if (!input_.empty()) process_input();
    }
}

void TcpConnection::deliver(Message& message) {
    message.conn = id_;
    ++stats_.messages_in;
    counters_.messages.fetch_add(1, std::memory_order_relaxed);
    if (idle_timer_)
        last_message_ = std::chrono::steady_clock::now();  // only the idle timer reads it
    if (group_->handlers.on_message) {
        guarded("on_message", [&] { group_->handlers.on_message(*this, message); });
    }
}

void TcpConnection::on_readable(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->lingering_) {
        self->discard_while_lingering(what);
        return;
    }
    if (self->closing_ || self->read_pauses_ > 0 || self->peer_ended_) return;
    const SocketRead got = self->read_socket(kMaxSingleRead);
    if (got.bytes > 0) self->process_input();
    // Once the input closed the connection (a protocol error, QUIT), its pending output still
    // goes out; the end of the peer's stream changes nothing then.
    if (self->closing_) return;
    if (got.error != 0) {
        self->fail("read", got.error);
    } else if (got.end_of_stream) {
        self->on_end_of_stream();
    }
}

void TcpConnection::process_input() {
    if (closing_ || read_pauses_ > 0) return;
    stats_.bytes_in += input_.size() - input_seen_;
    in_read_ = true;
    const DecodeOutcome outcome = decode_all(*protocol_, input_, *this);
    in_read_ = false;
    input_seen_ = input_.size();
    flush();
    if (outcome.failed && !closing_) {
        log(LogLevel::info, "listener=", group_->name, " conn=", id_,
            " protocol error: ", outcome.error.reason);
        if (!outcome.error.last_reply.empty()) send_raw(outcome.error.last_reply);
        close(CloseMode::flush, CloseReason::protocol_error);
    }
}

void TcpConnection::on_end_of_stream() {
    // Half-close: the peer may still read. Decode what is left, answer it, then close.
    peer_ended_ = true;
    stats_.bytes_in += input_.size() - input_seen_;
    const DecodeOutcome outcome = decode_eof(*protocol_, input_, *this);
    input_seen_ = input_.size();
    if (outcome.failed) {
        log(LogLevel::info, "listener=", group_->name, " conn=", id_,
            " protocol error at end of input: ", outcome.error.reason);
        if (!outcome.error.last_reply.empty()) send_raw(outcome.error.last_reply);
        close(CloseMode::flush, CloseReason::protocol_error);
        return;
    }
    if (closing_) return;
    if (!group_->handlers.on_peer_closed) {
        close(CloseMode::flush, CloseReason::peer_closed);
        return;
    }
    // The application closes when it has answered; the end of stream stays readable, so reading
    // stops for good.
    event_del(read_event_.get());
    guarded("on_peer_closed", [&] { group_->handlers.on_peer_closed(*this); });
}

void TcpConnection::on_write(bufferevent*, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->closing_) {
        if (self->output_.empty()) self->linger();
        return;
    }
    if (self->output_.empty()) {
        // Drained: stop watching for writability until a write is partial again.
        self->write_armed_ = false;
        bufferevent_disable(self->bev_.get(), EV_WRITE);
    }
    if (self->paused_for_output_) {
        self->paused_for_output_ = false;
        self->resume_reading();
    }
}

void TcpConnection::on_event(bufferevent*, short what, void* arg) {
    // Only writes go through the bufferevent, so it reports write errors and the flush deadline.
    auto* self = static_cast<TcpConnection*>(arg);
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        if (!self->closing_) self->reason_ = CloseReason::error;
        self->closing_ = true;
        self->finish();
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        // Only the flush deadline of a closing connection sets a bufferevent timeout.
        self->finish();
    }
}

void TcpConnection::arm_idle_timer(std::chrono::milliseconds after) {
    const timeval tv = to_timeval(after);
    event_add(idle_timer_.get(), &tv);
}

void TcpConnection::on_idle(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->closing_) return;
    const auto idle = self->group_->limits.idle_timeout;
    const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - self->last_message_);
    if (since >= idle) {
        log(LogLevel::debug, "listener=", self->group_->name, " conn=", self->id_, " idle for ",
            since.count(), " ms");
        self->close(CloseMode::flush, CloseReason::timeout);
    } else {
        self->arm_idle_timer(idle - since);
    }
}

TcpConnection::SocketRead TcpConnection::read_socket(std::size_t limit) {
    evbuffer* in = bufferevent_get_input(bev_.get());
    const int fd = static_cast<int>(bufferevent_getfd(bev_.get()));
    // A socket bufferevent freezes the end of its input buffer so that only its own read callback
    // appends; lift that while reading, as the bufferevent itself does.
    evbuffer_unfreeze(in, 0);
    SocketRead result;
    while (result.bytes < limit) {
        const std::size_t want = std::min(kReadChunk, limit - result.bytes);
        evbuffer_iovec space[2];
        const int reserved = evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), space, 2);
        if (reserved <= 0) break;
        iovec iov[2];
        std::size_t offered = 0;
        for (int i = 0; i < reserved; ++i) {
            iov[i] = {space[i].iov_base, space[i].iov_len};
            offered += space[i].iov_len;
        }
        const ssize_t got = ::readv(fd, iov, reserved);
        if (got <= 0) {
            const int err = errno;
            evbuffer_commit_space(in, space, 0);
            if (got == 0) {
                result.end_of_stream = true;
            } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                result.error = err;
            }
            break;
        }
        std::size_t left = static_cast<std::size_t>(got);
        int used = 0;
        for (; used < reserved && left > 0; ++used) {
            space[used].iov_len = std::min(space[used].iov_len, left);
            left -= space[used].iov_len;
        }
        evbuffer_commit_space(in, space, used);
        result.bytes += static_cast<std::size_t>(got);
        if (static_cast<std::size_t>(got) < offered) break;  // the socket is drained
    }
    evbuffer_freeze(in, 0);
    return result;
}

void TcpConnection::fail(const char* operation, int error) {
    log(LogLevel::debug, "listener=", group_->name, " conn=", id_, " ", operation,
        " failed: ", std::strerror(error));
    reason_ = CloseReason::error;
    closing_ = true;
    finish();
}

void TcpConnection::read_remaining_input() {
    // A request the peer finished sending before shutdown began may still sit in the kernel's
    // receive buffer; it is owed a reply like any other.
    if (read_pauses_ > 0) return;
    read_socket(kMaxSingleRead * 64);
    process_input();
}

}  // namespace reactor
