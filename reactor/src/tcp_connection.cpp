#include "tcp_connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <new>

#include "io_scratch.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"

namespace reactor {

namespace {
// The connection reads its socket itself rather than through the bufferevent: libevent 2.1's
// evbuffer_read asks ioctl(FIONREAD) before every read and takes at most 4 KiB per call
// (EVBUFFER_MAX_READ), whatever bufferevent_set_max_single_read says. One readable event reads up
// to kMaxSingleRead, so one busy peer cannot hold the loop.
constexpr std::size_t kMaxSingleRead = 256 * 1024;
// Reads go to the thread's ReadArea while the ReadSizer offers at most this much.
constexpr std::size_t kAreaReadsUpTo = 16 * 1024;

}  // namespace

void ReadSizer::record(std::size_t got, std::size_t offered) {
    if (got >= offered) {
        // Filled: next time, offer room for all of it at once.
        std::size_t size = chunk_;
        while (size < kMaxChunk && size - kChunkOverhead < got) size *= 2;
        chunk_ = size;
        small_reads_ = 0;
    } else if (chunk_ > kMinChunk && got <= chunk_ / 2 - kChunkOverhead) {
        // Shrink only after a run of reads that would have fit in half: one small read among
        // large ones (the tail of a message) changes nothing.
        if (++small_reads_ >= kShrinkAfter) {
            chunk_ /= 2;
            small_reads_ = 0;
        }
    } else {
        small_reads_ = 0;
    }
}

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
    }
    return "unknown";
}

TcpConnection::TcpConnection(EventLoop& loop, LoopCounters& counters, ConnectionId id,
                             BufferEventPtr bev, std::string peer,
                             std::shared_ptr<ConnectionGroup> group, EndedFn on_ended)
    : loop_(loop),
      counters_(counters),
      id_(id),
      group_(std::move(group)),
      bev_(std::move(bev)),
      protocol_(group_->protocol->create()),
      input_(Buffer::borrow(bufferevent_get_input(bev_.get()))),
      output_(Buffer::borrow(bufferevent_get_output(bev_.get()))),
      fd_(static_cast<int>(bufferevent_getfd(bev_.get()))),
      peer_(std::move(peer)),
      on_ended_(std::move(on_ended)) {
    stats_.opened = std::chrono::steady_clock::now();
    last_message_ = stats_.opened;
    // libevent writes at most 16 KiB per call by default: let one writev take what is pending.
    bufferevent_set_max_single_write(bev_.get(), kMaxSingleRead);
    bufferevent_setcb(bev_.get(), nullptr, &on_write, &on_event, this);
    // A socket bufferevent freezes the end of its input so that only its own read callback
    // appends; reading is never enabled on it here, so the connection's reads lift that for good.
    evbuffer_unfreeze(bufferevent_get_input(bev_.get()), 0);
    read_event_.reset(event_new(static_cast<event_base*>(loop_.native_handle()), fd_,
                                EV_READ | EV_PERSIST, &on_readable, this));
    if (!read_event_) throw std::bad_alloc();
    const auto& limits = group_->limits;
    // The write callback fires when pending output falls to this mark: where paused reading
    // resumes.
    bufferevent_setwatermark(bev_.get(), EV_WRITE, limits.output_high_water / 2, 0);
    ++group_->open;
    ++counters_.connections;
}

TcpConnection::~TcpConnection() {
    drop_stage();
    keep_input();
}

OutputStage& TcpConnection::output_stage() {
    if (stage_ == nullptr) stage_ = &OutputStage::of_this_thread();
    return *stage_;
}

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
    spill_stage();  // the encoder writes to the output buffer, after what is staged
    const std::size_t before = output_.size();
    output_may_hold_bytes_ = true;
    guarded("encode", [&] { protocol_->encode(payload, output_); });
    if (closing_) return;
    ++stats_.messages_out;
    const std::size_t pending = output_.size();
    after_output_grew(pending - before, pending);
}

void TcpConnection::send_raw(std::string_view bytes) {
    if (closing_) return;
    if (staging_) {
        OutputStage& stage = output_stage();
        if (stage.append(bytes)) {
            ++stats_.messages_out;
            after_output_grew(bytes.size(), stage.bytes().size());
            return;
        }
        spill_stage();
    }
    const std::size_t before = output_.size();
    output_may_hold_bytes_ = true;
    output_.append(bytes);
    ++stats_.messages_out;
    after_output_grew(bytes.size(), before + bytes.size());
}

std::size_t TcpConnection::output_pending() const {
    return output_.size() + (staging_ ? stage_->bytes().size() : 0);
}

void TcpConnection::begin_stage() {
    // Staged bytes must not overtake pending ones.
    if (write_armed_) return;
    if (output_may_hold_bytes_) {
        if (!output_.empty()) return;
        output_may_hold_bytes_ = false;
    }
    staging_ = output_stage().claim(this);
}

void TcpConnection::spill_stage() {
    if (!staging_) return;
    OutputStage& stage = output_stage();
    output_may_hold_bytes_ = true;
    output_.append(stage.bytes());
    stage.release();
    staging_ = false;
}

void TcpConnection::drop_stage() {
    if (!staging_) return;
    stage_->release();
    staging_ = false;
}

bool TcpConnection::write_stage(std::size_t& left) {
    OutputStage& stage = output_stage();
    const std::string_view bytes = stage.bytes();
    std::size_t written = 0;
    int err = 0;
    if (!bytes.empty()) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n >= 0) {
            written = static_cast<std::size_t>(n);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            err = errno;
        }
    }
    left = err == 0 ? bytes.size() - written : 0;
    if (left != 0) {
        output_may_hold_bytes_ = true;
        output_.append(bytes.substr(written));
    }
    stage.release();
    staging_ = false;
    if (err != 0) {
        fail("write", err);
        return false;
    }
    return true;
}

void TcpConnection::after_output_grew(std::size_t added, std::size_t pending) {
    stats_.bytes_out += added;
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
    std::size_t left = 0;
    if (staging_) {
        // The output buffer was empty when staging began: what the kernel does not take of the
        // staged bytes is all that is left.
        if (!write_stage(left) || closing_) return;
    } else {
        if (closing_ || write_armed_) return;
        evbuffer* out = static_cast<evbuffer*>(output_.native_handle());
        const std::size_t pending = evbuffer_get_length(out);
        if (pending == 0) return;
        // The bufferevent freezes the front of its output so only it drains it; lift that while
        // writing.
        evbuffer_unfreeze(out, 1);
        const int written =
            evbuffer_write_atmost(out, fd_, static_cast<ev_ssize_t>(kMaxSingleRead));
        const int err = errno;
        evbuffer_freeze(out, 1);
        if (written < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
            fail("write", err);
            return;
        }
        left = written > 0 ? pending - static_cast<std::size_t>(written) : pending;
        output_may_hold_bytes_ = left != 0;
    }
    if (left != 0) arm_write();
    // The kernel took enough: reading resumes below half the high-water mark, as in on_write.
    if (paused_for_output_ && left <= group_->limits.output_high_water / 2) {
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
    // Only this loop's thread writes the counter: a plain increment, no locked instruction.
    counters_.messages.store(counters_.messages.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
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
    self->keep_input();
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
    begin_stage();
    in_read_ = true;
    const DecodeOutcome outcome = decode_all(*protocol_, input_, *this);
    in_read_ = false;
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
    const DecodeOutcome outcome = decode_eof(*protocol_, input_, *this);
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

void TcpConnection::keep_input() {
    if (!holding_area_) return;
    if (input_.keep_front() != 0) input_may_hold_bytes_ = true;
    area_->release();
    holding_area_ = false;
}

bool TcpConnection::read_into_area(SocketRead& result) {
    // Only for a connection whose reads have been small, with nothing buffered: a partial frame
    // left in the area is copied out after decoding, which for large frames would be a copy per
    // read.
    if (read_sizer_.reservation() > kAreaReadsUpTo) return false;
    if (input_may_hold_bytes_) {
        if (!input_.empty()) return false;
        input_may_hold_bytes_ = false;
    }
    if (area_ == nullptr) area_ = &ReadArea::of_this_thread();
    char* bytes = area_->claim(this);
    if (bytes == nullptr) return false;
    holding_area_ = true;
    const ssize_t got = ::read(fd_, bytes, ReadArea::kBytes);
    if (got <= 0) {
        const int err = errno;
        keep_input();
        if (got == 0) {
            result.end_of_stream = true;
        } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
            result.error = err;
        }
        return true;
    }
    const auto n = static_cast<std::size_t>(got);
    input_.borrow_front({bytes, n});
    read_sizer_.record(n, read_sizer_.reservation());
    result.bytes = n;
    stats_.bytes_in += n;
    if (n < ReadArea::kBytes) return true;  // the socket is drained
    keep_input();  // more is pending: read on into the buffer's own storage
    return false;
}

TcpConnection::SocketRead TcpConnection::read_socket(std::size_t limit) {
    // Each read offers the space the ReadSizer learnt from recent reads, so a small request costs
    // a small chunk; a read that fills it is followed by a larger one at once.
    SocketRead result;
    if (read_into_area(result)) return result;
    evbuffer* in = static_cast<evbuffer*>(input_.native_handle());
    input_may_hold_bytes_ = true;
    while (result.bytes < limit) {
        const std::size_t room = limit - result.bytes;
        const std::size_t want = std::min(read_sizer_.reservation(), room);
        // One vector: libevent then extends the last chunk or adds one, without setting up a
        // vector per chunk.
        evbuffer_iovec space;
        if (evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), &space, 1) != 1) break;
        // The chunk may have more space than asked for.
        const std::size_t offered = std::min(space.iov_len, room);
        const ssize_t got = ::read(fd_, space.iov_base, offered);
        if (got <= 0) {
            const int err = errno;
            evbuffer_commit_space(in, &space, 0);
            if (got == 0) {
                result.end_of_stream = true;
            } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                result.error = err;
            }
            break;
        }
        const auto bytes = static_cast<std::size_t>(got);
        space.iov_len = bytes;
        evbuffer_commit_space(in, &space, 1);
        read_sizer_.record(bytes, offered);
        result.bytes += bytes;
        stats_.bytes_in += bytes;
        if (bytes < offered) break;  // the socket is drained
    }
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
    keep_input();
}

}  // namespace reactor
