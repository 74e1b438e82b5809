// How a connection writes: replies of one read gathered in the thread's OutputStage and sent once,
// the bufferevent's output for what the kernel does not take, back-pressure and the output limit.
// The rest of TcpConnection is in tcp_connection.cpp.

#include <sys/socket.h>
#include "thread_check.hpp"

#include <cerrno>

#include "io_scratch.hpp"
#include "log_rates.hpp"
#include "output_budget.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"
#include "tcp_connection.hpp"

namespace reactor {

template <typename Write>
void TcpConnection::write_frame(std::size_t size_hint, Write&& write) {
    if (closing_) return;
    if (staging_) {
        OutputStage& stage = output_stage();
        if (stage.has_room_to_encode(size_hint)) {
            std::string& target = stage.encoder_target();
            const std::size_t before = target.size();
            guarded("encode", [&] {
                FrameOutput out(target);
                write(out);
            });
            if (closing_) return;  // the encoder threw: the connection closed and dropped the stage
            ++stats_.messages_out;
            after_output_grew(target.size() - before, target.size());
            return;
        }
        spill_stage();  // the encoder writes to the output buffer, after what is staged
    }
    const std::size_t before = output_.size();
    output_may_hold_bytes_ = true;
    guarded("encode", [&] {
        FrameOutput out(output_);
        write(out);
    });
    if (closing_) return;
    ++stats_.messages_out;
    const std::size_t pending = output_.size();
    after_output_grew(pending - before, pending);
}

void TcpConnection::send(std::string_view payload) {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::send");
    write_frame(payload.size(), [&](FrameOutput& out) { protocol_->encode(payload, out); });
}

void TcpConnection::send_frame(std::size_t size_hint, FunctionRef<void(FrameOutput&)> write) {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::send_frame");
    write_frame(size_hint, write);
}

void TcpConnection::send_raw(std::string_view bytes) {
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::send_raw");
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
    REACTOR_LOOP_THREAD_ONLY(loop_, "Connection::output_pending");
    return output_.size() + (staging_ ? stage_->bytes().size() : 0);
}

OutputStage& TcpConnection::output_stage() {
    if (stage_ == nullptr) stage_ = &OutputStage::of_this_thread();
    return *stage_;
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

bool TcpConnection::add_queued(std::size_t bytes) {
    const std::size_t limit = group_->limits.output_limit;
    const std::size_t before = queued_.fetch_add(bytes, std::memory_order_relaxed);
    // One send larger than the limit is judged once applied, as a send on the loop thread is.
    if (limit == 0 || before == 0 || before + bytes <= limit) return true;
    queued_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
}

void TcpConnection::overflow_queued() {
    if (closing_) return;
    log_limited(log_rates::output_overflow(), "listener=", group_->name, " conn=", id_,
                " peer=", peer_, " output overflow: ", output_pending(), " bytes pending and ",
                queued_.load(std::memory_order_relaxed), " queued by other threads");
    close(CloseMode::now, CloseReason::output_overflow);
}

void TcpConnection::after_output_grew(std::size_t added, std::size_t pending) {
    stats_.bytes_out += added;
    const auto& limits = group_->limits;
    pending += queued_.load(std::memory_order_relaxed);
    if (limits.output_limit != 0 && pending > limits.output_limit) {
        log_limited(log_rates::output_overflow(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " output overflow: ", pending, " bytes pending");
        close(CloseMode::now, CloseReason::output_overflow);
        return;
    }
    if (budget_ != nullptr && budget_->exceeded_by(budget_held_)) {
        budget_->closed.fetch_add(1, std::memory_order_relaxed);
        log_limited(log_rates::output_overflow(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " output budget exceeded: ", budget_held_,
                    " bytes pending here, ", budget_->pending.load(std::memory_order_relaxed),
                    " in all (budget ", budget_->limit, ")");
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

void TcpConnection::join_budget() {
    if (!group_->budget) return;
    budget_ = group_->budget.get();
    budget_->connections.fetch_add(1, std::memory_order_relaxed);
    // Every change of the output buffer, ours and libevent's writes alike, reports its size. The
    // reply path through the output stage does not touch the buffer, so it costs nothing there.
    evbuffer_add_cb(static_cast<evbuffer*>(output_.native_handle()), &on_output_changed, this);
}

void TcpConnection::leave_budget() {
    const std::size_t buffered = output_.size() + input_.size();
    if (budget_ != nullptr) {
        evbuffer_remove_cb(static_cast<evbuffer*>(output_.native_handle()), &on_output_changed,
                           this);
        budget_->pending.fetch_sub(budget_held_, std::memory_order_relaxed);
        budget_->connections.fetch_sub(1, std::memory_order_relaxed);
        budget_held_ = 0;
        budget_ = nullptr;
    }
    // The buffers go with the connection: after a slow-consumer episode, many megabytes at once.
    released_memory(loop_, buffered);
}

void TcpConnection::on_output_changed(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    const std::size_t now = info->orig_size + info->n_added - info->n_deleted;
    if (now > self->budget_held_) {
        self->budget_->pending.fetch_add(now - self->budget_held_, std::memory_order_relaxed);
    } else {
        self->budget_->pending.fetch_sub(self->budget_held_ - now, std::memory_order_relaxed);
    }
    self->budget_held_ = now;
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

}  // namespace reactor
