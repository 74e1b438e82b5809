// How a connection writes through its transport: replies of one read gathered in the thread's
// OutputStage and sent once, the output buffer for what the kernel does not take, back-pressure and
// the output limit. The rest of TcpConnection is in tcp_connection.cpp.

#include "thread_check.hpp"

#include <algorithm>
#include <cerrno>

#include "buffer_internals.hpp"
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
    sync_budget();
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
        const IoSlice slice{bytes.data(), bytes.size()};
        const IoResult put = transport_write(&slice, 1);
        transport_holds_output_ = put.more;
        if (put.status == IoResult::Status::ok) {
            written = put.bytes;
        } else if (put.status == IoResult::Status::error) {
            err = put.error != 0 ? put.error : EIO;
        } else if (put.status == IoResult::Status::want_read) {
            write_wants_read_ = true;
        }
    }
    left = err == 0 ? bytes.size() - written : 0;
    if (left != 0) {
        output_may_hold_bytes_ = true;
        output_.append(bytes.substr(written));
        sync_budget();
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
    if (budget_ != nullptr) sync_budget();
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
}

void TcpConnection::sync_budget() {
    // The reply path through the output stage does not touch the buffer, so it costs nothing
    // here.
    if (budget_ == nullptr) return;
    const std::size_t now = output_.size();
    if (now > budget_held_) {
        budget_->pending.fetch_add(now - budget_held_, std::memory_order_relaxed);
    } else if (now < budget_held_) {
        budget_->pending.fetch_sub(budget_held_ - now, std::memory_order_relaxed);
    }
    budget_held_ = now;
}

void TcpConnection::leave_budget() {
    const std::size_t buffered = output_.size() + input_.size();
    if (budget_ != nullptr) {
        budget_->pending.fetch_sub(budget_held_, std::memory_order_relaxed);
        budget_->connections.fetch_sub(1, std::memory_order_relaxed);
        budget_held_ = 0;
        budget_ = nullptr;
    }
    // The buffers go with the connection: after a slow-consumer episode, many megabytes at once.
    released_memory(loop_, buffered);
}

void TcpConnection::schedule_flush() {
    if (flush_scheduled_ || write_armed_ || closing_ || phase_ != Phase::open) return;
    flush_scheduled_ = true;
    // Run as an event of this iteration, without asking the kernel: freed with the connection,
    // it can never run after it.
    event_active(write_event(), EV_WRITE, 0);
}

bool TcpConnection::write_output(std::size_t& left) {
    left = output_.size();
    if (left == 0 && !transport_holds_output_) return true;
    constexpr int kMaxSlices = 64;
    evbuffer* out = BufferInternals::storage(output_);
    evbuffer_iovec chunks[kMaxSlices];
    const ev_ssize_t want = static_cast<ev_ssize_t>(std::min(left, kMaxSingleRead));
    const int n = std::min(evbuffer_peek(out, want, nullptr, chunks, kMaxSlices), kMaxSlices);
    IoSlice slices[kMaxSlices];
    std::size_t total = 0;
    int count = 0;
    for (; count < n && total < static_cast<std::size_t>(want); ++count) {
        const std::size_t size = std::min(chunks[count].iov_len, want - total);
        slices[count] = IoSlice{chunks[count].iov_base, size};
        total += size;
    }
    const IoResult put = transport_write(slices, static_cast<std::size_t>(count));
    transport_holds_output_ = put.more;
    switch (put.status) {
        case IoResult::Status::ok:
            evbuffer_drain(out, put.bytes);
            left -= put.bytes;
            sync_budget();
            return true;
        case IoResult::Status::error:
            fail("write", put.error != 0 ? put.error : EIO);
            return false;
        case IoResult::Status::want_read:
            write_wants_read_ = true;
            return true;
        default:
            return true;
    }
}

void TcpConnection::flush() {
    if (phase_ != Phase::open) return;  // output waits for the handshake
    std::size_t left = 0;
    if (staging_) {
        // The output buffer was empty when staging began: what the kernel does not take of the
        // staged bytes is all that is left.
        if (!write_stage(left) || closing_) return;
    } else {
        if (closing_ || write_armed_) return;
        if (!output_may_hold_bytes_ && !transport_holds_output_) return;
        if (!write_output(left)) return;
        output_may_hold_bytes_ = left != 0;
    }
    if ((left != 0 || transport_holds_output_) && !write_wants_read_) arm_write();
    // The kernel took enough: reading resumes below half the high-water mark.
    if (paused_for_output_ && left <= group_->limits.output_high_water / 2) {
        paused_for_output_ = false;
        resume_reading();
    }
}

void TcpConnection::arm_write() {
    if (write_armed_) return;
    write_armed_ = true;
    if (flush_scheduled_) {
        // libevent does not register an event with the kernel while it is active: the deferred
        // flush gives way to the writability it would wait for anyway.
        flush_scheduled_ = false;
        event_del(write_event_.get());
    }
    event_add(write_event(), nullptr);
}

void TcpConnection::disarm_write() {
    if (!write_armed_) return;
    write_armed_ = false;
    event_del(write_event_.get());
}

void TcpConnection::on_writable(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->finished_ || self->lingering_) return;
    if (self->phase_ == Phase::handshaking) {
        self->advance_handshake();
        return;
    }
    if (self->read_wants_write_) {
        // The transport's read waited for this (TLS).
        self->read_wants_write_ = false;
        if (!self->write_armed_ || self->output_.empty()) self->disarm_write();
        self->read_and_process();
        if (self->finished_ || self->lingering_) return;
    }
    if (self->flush_scheduled_ && !self->write_armed_) {
        // A deferred flush (schedule_flush), not the kernel's readiness.
        self->flush_scheduled_ = false;
        self->flush();
        return;
    }
    self->flush_scheduled_ = false;
    std::size_t left = 0;
    if (!self->write_output(left)) return;
    self->output_may_hold_bytes_ = left != 0;
    const bool drained = left == 0 && !self->transport_holds_output_;
    if (self->closing_) {
        if (drained) self->linger();
        return;
    }
    if (drained) self->disarm_write();  // stop watching until a write is partial again
    if (self->paused_for_output_ && left <= self->group_->limits.output_high_water / 2) {
        self->paused_for_output_ = false;
        self->resume_reading();
    }
}

}  // namespace reactor
