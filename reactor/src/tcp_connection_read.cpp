// How a connection reads its socket through its transport: its own read event, reads sized by the
// ReadSizer, small ones into the thread's ReadArea. The rest of TcpConnection is in
// tcp_connection.cpp.

#include <algorithm>
#include <cerrno>

#include "buffer_internals.hpp"
#include "io_scratch.hpp"
#include "tcp_connection.hpp"

namespace reactor {

namespace {
// Reads the ReadSizer offers more than this much for are large: they go to the thread's ReadArea
// only while they have been ending on frame boundaries.
constexpr std::size_t kLargeRead = 16 * 1024;
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

void TcpConnection::on_readable(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<TcpConnection*>(arg);
    if (self->lingering_) {
        self->discard_while_lingering(what);
        return;
    }
    switch (self->phase_) {
        case Phase::filtering:
            self->filter_input();
            return;
        case Phase::handshaking:
            self->advance_handshake();
            return;
        case Phase::open:
            break;
    }
    if (self->write_wants_read_) {
        // The transport's write waited for this (TLS): it goes on first.
        self->write_wants_read_ = false;
        self->flush();
    }
    self->read_and_process();
}

void TcpConnection::read_and_process() {
    if (closing_ || read_pauses_ > 0 || peer_ended_) return;
    const SocketRead got = read_socket(kMaxSingleRead);
    if (got.bytes > 0) process_input();
    keep_input();
    // Once the input closed the connection (a protocol error, QUIT), its pending output still
    // goes out; the end of the peer's stream changes nothing then.
    if (closing_) return;
    if (got.error != 0) {
        fail("read", got.error);
    } else if (got.end_of_stream) {
        on_end_of_stream();
    } else if (got.wants_write) {
        read_wants_write_ = true;
        arm_write();
    }
}

namespace {
// Notes in `result` why a read that moved no bytes stopped.
template <typename Result>
void note_stop(const IoResult& read, Result& result) {
    switch (read.status) {
        case IoResult::Status::end_of_stream:
            result.end_of_stream = true;
            break;
        case IoResult::Status::error:
            result.error = read.error != 0 ? read.error : EIO;
            break;
        case IoResult::Status::want_write:
            result.wants_write = true;
            break;
        default:
            break;
    }
}
}  // namespace

void TcpConnection::keep_input() {
    if (!holding_area_) {
        // A large read into the input buffer left nothing undecoded: frames end where reads do
        // again, so large reads may use the area.
        if (large_reads_split_frames_ && input_.empty()) large_reads_split_frames_ = false;
        return;
    }
    if (BufferInternals::keep_lent(input_) != 0) {
        input_may_hold_bytes_ = true;
        // Copying the first part of every large frame out of the area would cost more than reading
        // it into the buffer.
        if (read_sizer_.reservation() > kLargeRead) large_reads_split_frames_ = true;
    }
    area_->release();
    holding_area_ = false;
}

bool TcpConnection::read_into_area(SocketRead& result) {
    // Only with nothing buffered: a partial frame left in the area is copied out after decoding.
    if (large_reads_split_frames_ && read_sizer_.reservation() > kLargeRead) return false;
    if (input_may_hold_bytes_) {
        if (!input_.empty()) return false;
        input_may_hold_bytes_ = false;
    }
    if (area_ == nullptr) area_ = &ReadArea::of_this_thread();
    char* bytes = area_->claim(this);
    if (bytes == nullptr) return false;
    holding_area_ = true;
    const IoResult got = transport_read(bytes, ReadArea::kBytes);
    if (got.status != IoResult::Status::ok || got.bytes == 0) {
        keep_input();
        note_stop(got, result);
        return true;
    }
    const std::size_t n = got.bytes;
    BufferInternals::lend(input_, {bytes, n});
    read_sizer_.record(n, read_sizer_.reservation());
    result.bytes = n;
    stats_.bytes_in += n;
    if (n < ReadArea::kBytes && !got.more) return true;  // the socket is drained
    keep_input();  // more is pending: read on into the buffer's own storage
    return false;
}

TcpConnection::SocketRead TcpConnection::read_socket(std::size_t limit) {
    // Each read offers the space the ReadSizer learnt from recent reads, so a small request costs
    // a small chunk; a read that fills it is followed by a larger one at once.
    SocketRead result;
    if (read_into_area(result)) return result;
    evbuffer* in = BufferInternals::storage(input_);
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
        const IoResult got = transport_read(static_cast<char*>(space.iov_base), offered);
        if (got.status != IoResult::Status::ok || got.bytes == 0) {
            evbuffer_commit_space(in, &space, 0);
            note_stop(got, result);
            break;
        }
        const std::size_t bytes = got.bytes;
        space.iov_len = bytes;
        evbuffer_commit_space(in, &space, 1);
        read_sizer_.record(bytes, offered);
        result.bytes += bytes;
        stats_.bytes_in += bytes;
        if (bytes < offered && !got.more) break;  // the socket is drained
    }
    return result;
}

void TcpConnection::read_remaining_input() {
    // A request the peer finished sending before shutdown began may still sit in the kernel's
    // receive buffer; it is owed a reply like any other. Not when this connection's own handler
    // began the shutdown: it is inside its decoding then, whose frame is not drained yet, and
    // decoding again would deliver that frame a second time. Nor after the peer's end of stream,
    // when everything has been read, nor before the connection opened.
    if (phase_ != Phase::open || read_pauses_ > 0 || in_read_ || peer_ended_) return;
    read_socket(kMaxSingleRead * 64);
    process_input();
    keep_input();
}

}  // namespace reactor
