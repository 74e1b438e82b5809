#pragma once

// The Connection implementation over one socket, through a Transport. Internal header.

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "libevent_handles.hpp"
#include "log_rates.hpp"
#include "plain_transport.hpp"
#include "reactor/accept_filter.hpp"
#include "reactor/buffer.hpp"
#include "reactor/connection.hpp"
#include "reactor/log.hpp"
#include "reactor/protocol.hpp"
#include "reactor/server.hpp"
#include "reactor/transport.hpp"

namespace reactor {

class OutputStage;
struct OutputBudget;
class ReadArea;

// One readable event reads up to kMaxSingleRead, so one busy peer cannot hold the loop; one write
// takes at most as much. (libevent 2.1's own evbuffer_read, not used, asks ioctl(FIONREAD) before
// every read and takes at most 4 KiB per call.)
inline constexpr std::size_t kMaxSingleRead = 256 * 1024;

// What a connection shares with the others of its listener (or outbound spec).
struct ConnectionGroup {
    std::string name;
    std::shared_ptr<const ProtocolFactory> protocol;
    std::shared_ptr<const TransportFactory> transport;  // null: plain TCP
    std::vector<std::shared_ptr<const AcceptFilterFactory>> filters;
    Handlers handlers;
    ConnectionLimits limits;
    std::shared_ptr<OutputBudget> budget;  // the server's, when it has one
    std::atomic<std::size_t> open{0};      // over all loops
    // Refusals at max_connections: counted, and logged at most once a second with how many there
    // were since the last line; a timer writes the line that ends a burst (Server::Impl::
    // log_refusal). The rest is guarded by refusal_mutex: refusals come from every loop.
    std::atomic<std::uint64_t> refused{0};
    std::mutex refusal_mutex;
    std::uint64_t refused_unlogged = 0;
    std::string last_refused_peer;
    std::int64_t refusal_logged_ms = -1000000;
    bool refusal_report_armed = false;
};

// Counters of the loop a connection lives on, read from any thread; messages is written by the
// loop's own thread only.
struct LoopCounters {
    std::size_t loop_index = 0;  // set once, before any connection
    std::atomic<std::size_t> connections{0};
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::int64_t> lag_us{0};
};

// How much input buffer a connection offers each read, learnt from its recent reads in the manner
// of Netty's adaptive receive allocator: grown at once when a read fills it, shrunk after a run of
// reads that would have fit in half. Sizes are evbuffer chain sizes, so a request of a few bytes
// costs a small allocation, not a 64 KiB one.
class ReadSizer {
  public:
    // Bytes to reserve: the chain size less libevent's chain header, so the chain is not rounded
    // up to the next power of two.
    std::size_t reservation() const { return chunk_ - kChunkOverhead; }
    void record(std::size_t got, std::size_t offered);

    static constexpr std::size_t kMinChunk = 1024;  // libevent's smallest chain
    static constexpr std::size_t kMaxChunk = 128 * 1024;
    static constexpr std::size_t kChunkOverhead = 64;  // at least sizeof(evbuffer_chain)
    static constexpr int kShrinkAfter = 8;

  private:
    std::size_t chunk_ = kMinChunk;
    int small_reads_ = 0;
};

class FilterStage;

class TcpConnection final : public Connection, private MessageSink {
  public:
    // How a connection ends, in this order, each reported once to its owner: `closed` after the
    // application's on_close (the id is dead: no more sends, not listed), `released` when the
    // socket is done with (lingering, if any, is over) and the object may be destroyed. A
    // connection closed at once reports both in one go.
    enum class Ending { closed, released };
    using EndedFn = void (*)(void* owner, TcpConnection& connection, Ending how);

    // Takes the socket (closed with the connection). The group's accept filters (accepted
    // connections only) and its transport run from start().
    TcpConnection(EventLoop& loop, LoopCounters& counters, ConnectionId id, int fd,
                  std::string peer, std::shared_ptr<ConnectionGroup> group, EndedFn on_ended,
                  void* owner, bool accepted);
    ~TcpConnection() override;

    // Runs the accept filters, then the transport's handshake, then on_open, and starts reading.
    void start();

    // Told once how the opening ended: after on_open with an empty reason, or with why the
    // connection ended before it (a failed or timed-out handshake). Set before start(); for
    // outbound connections whose transport has a handshake.
    using OpenedFn = std::function<void(ConnectionId id, const std::string& failure)>;
    void on_opened(OpenedFn fn) { opened_ = std::make_unique<OpenedFn>(std::move(fn)); }

    ConnectionId id() const override { return id_; }
    const std::string& peer() const override { return peer_; }
    const std::string& local() const override;
    const std::string& listener() const override { return group_->name; }
    const ConnectionStats& stats() const override { return stats_; }
    EventLoop& loop() const override { return loop_; }
    Protocol& protocol() override { return *protocol_; }
    const TlsInfo* tls() const override { return transport_ ? transport_->tls() : nullptr; }

    void send(std::string_view payload) override;
    void send_raw(std::string_view bytes) override;
    void send_frame(std::size_t size_hint, FunctionRef<void(FrameOutput&)> write) override;
    std::size_t output_pending() const override;
    void pause_reading() override;
    void resume_reading() override;
    void close(CloseMode mode, CloseReason reason) override;
    bool closing() const override { return closing_; }
    void switch_protocol(std::unique_ptr<Protocol> next) override;

    ConnectionGroup& group() { return *group_; }

    // Sends handed to this connection's loop by other threads (Server::send) hold copies that are
    // not in its output yet; they count against output_limit as if they were, so a connection's
    // memory stays near output_limit however far its loop is behind. add_queued(): any thread,
    // while the connection is in the server's id table (under its lock, so the object is alive);
    // false, with nothing counted, when bytes queued alone would pass output_limit, and
    // then the caller posts overflow_queued() instead of the copy (the first such caller only:
    // take_overflow()). take_queued() and overflow_queued(): loop thread, as the posted send or
    // close runs.
    bool add_queued(std::size_t bytes);
    bool take_overflow() { return !overflow_posted_.exchange(true, std::memory_order_relaxed); }
    void take_queued(std::size_t bytes) { queued_.fetch_sub(bytes, std::memory_order_relaxed); }
    void overflow_queued();

    // For the accept filters (tcp_connection_open.cpp).
    void set_peer(std::string address) { peer_ = std::move(address); }
    void set_local(std::string address);

  private:
    friend class FilterStage;

    // Where a connection is in its opening: its accept filters, its transport's handshake, then
    // open (on_open has run). Only open connections decode input and write output.
    enum class Phase : std::uint8_t { filtering, handshaking, open };

    // MessageSink
    void deliver(Message& message) override;
    // Decoding stops once the connection closes, and while its output is above the high-water
    // mark: frames already buffered wait, as the unread ones wait in the kernel, so a client
    // pipelining faster than it reads its replies is slowed down, never closed for overflow.
    // A protocol switch inside a frame's delivery also stops it: what follows is the next one's.
    bool accepting() const override { return !(closing_ | paused_for_output_ | switching_); }
    void write_interim(std::string_view bytes) override { send_raw(bytes); }
    // MessageSink's and Connection's switch_protocol are the same.

    static void on_readable(evutil_socket_t, short, void* arg);
    static void on_writable(evutil_socket_t, short, void* arg);
    static void on_timer(evutil_socket_t, short, void* arg);

    // The transport's calls: direct ones to the embedded plain transport unless the listener
    // gave a factory.
    IoResult transport_read(char* into, std::size_t room) {
        return transport_ ? transport_->read(into, room) : plain_.read(into, room);
    }
    IoResult transport_write(const IoSlice* slices, std::size_t count) {
        return transport_ ? transport_->write(slices, count) : plain_.write(slices, count);
    }
    Transport& transport() { return transport_ ? *transport_ : plain_; }

    // Opening (tcp_connection_open.cpp): the filters' reads, then the transport, the handshake's
    // steps, and on_open.
    void filter_input();  // reads, then run_filters()
    void run_filters();
    void filters_done(std::string_view received);
    void advance_handshake();
    void open();
    void reject(const std::string& why);

    // Output grew by `added` bytes to `pending`: limits, back-pressure, and a flush.
    void after_output_grew(std::size_t added, std::size_t pending);
    // The output budget's accounting: from construction to destruction, kept by sync_budget()
    // after every change of the output buffer (the stage's bytes do not count).
    void join_budget();
    void leave_budget();
    void sync_budget();
    // Replies are written by the connection itself, once per loop iteration: at the end of the read
    // callback, or deferred (the write event activated by hand) when output grows elsewhere. Only
    // a partial write arms the write event with the kernel, so a request/reply costs no epoll_ctl.
    void schedule_flush();
    void flush();
    // Writes what the output buffer holds, up to kMaxSingleRead, through the transport; `left` is
    // what it still holds. False when the connection failed.
    bool write_output(std::size_t& left);
    // The OutputStage, held while process_input() runs (see io_scratch.hpp): begin_stage() takes
    // it if nothing is pending before it; spill_stage() moves what it holds to the output buffer
    // and lets it go (when bytes are about to be written there, or on a graceful close);
    // drop_stage() lets it go with its bytes (close at once); write_stage() writes it, keeps what
    // the kernel did not take (left), lets it go, and is false if the connection failed.
    void begin_stage();
    void spill_stage();
    void drop_stage();
    bool write_stage(std::size_t& left);
    // Frames one reply with write(FrameOutput&): into the stage while staging, if it has room for
    // size_hint bytes and a framing's own, else into the output buffer, after what the stage held.
    // A write that throws closes the connection ("reset/error").
    template <typename Write>
    void write_frame(std::size_t size_hint, Write&& write);
    // This thread's OutputStage, looked up once.
    OutputStage& output_stage();
    event* write_event();
    void arm_write();
    void disarm_write();
    // The connection's one timer: the accept filter's deadline, the handshake's, the idle
    // timeout, or the flush deadline of a closing connection, by phase and state.
    void arm_timer(std::chrono::milliseconds after);
    void stop_timer();
    void on_idle();
    template <typename Fn>
    void guarded(const char* what, Fn&& fn);
    // Decodes and dispatches what the input holds, then flushes the replies.
    void process_input();
    // Runs pass (decode_frames or decode_eof) with the protocol, then again with each protocol a
    // switch inside it put in place, until no switch is left (or, with stop_when_empty, no input).
    using DecodePass = DecodeOutcome (*)(Protocol&, Buffer&, MessageSink&);
    DecodeOutcome decode_switching(DecodePass pass, bool stop_when_empty);
    // The peer closed its write side: what is left is decoded, answered, and the connection closed.
    // With the output above its high-water mark, the rest waits for resume_reading().
    void on_end_of_stream();
    // Reads and decodes what the socket holds now, if reading is on: for the idle timer, which
    // may run before a read that is due. False when reading is off.
    bool read_pending_input();
    struct SocketRead {
        std::size_t bytes = 0;
        bool end_of_stream = false;
        bool wants_write = false;  // the transport must write before it reads on
        int error = 0;             // errno of a failed read
    };
    // The readable event of an open connection: reads, decodes, answers.
    void read_and_process();
    // Reads up to limit bytes through the transport into the input buffer, until it would block.
    SocketRead read_socket(std::size_t limit);
    // The first read of read_socket(), into the thread's ReadArea when the input buffer is empty:
    // true when that read is all there is to do.
    bool read_into_area(SocketRead& result);
    // Copies what is left of input read into the ReadArea into the input buffer, and lets the
    // area go. After every read, once decoding is done.
    void keep_input();
    void read_remaining_input();
    // A read or write on the socket failed with errno `error`: closes at once, "reset/error".
    void fail(const char* operation, int error);
    // Closes at once with `reason`, as close(now) does, from inside the connection's own paths.
    void end_now(CloseReason reason) {
        reason_ = reason;
        finish();
    }
    // Before on_open: tells on_opened's callback why the connection will not open.
    void report_not_opened(const std::string& why);
    // Ends a gracefully closing connection once its output is out (see the definition).
    void linger();
    // The flush deadline passed: writes what the kernel takes now. True when that made progress
    // (the deadline starts again, or the output is out and the connection lingers).
    bool flush_at_deadline();
    void discard_while_lingering(short what);
    // The application-visible end: on_close (when on_open ran), counters, Ending::closed. Runs
    // once.
    void conclude();
    // Releases the socket (after conclude()): Ending::released.
    void finish();

    // What every read and reply touches comes first, so a request touches few cache lines.
    EventLoop& loop_;
    LoopCounters& counters_;
    const ConnectionId id_;
    std::shared_ptr<ConnectionGroup> group_;
    std::unique_ptr<Protocol> protocol_;
    // The protocol switched away from inside its own decode(): destroyed once that returned.
    std::unique_ptr<Protocol> retired_protocol_;
    Buffer input_;
    Buffer output_;
    std::unique_ptr<OpenedFn> opened_;  // see on_opened(); rare, so kept out of line
    // The listener's transport, when it names one; null: plain_.
    std::unique_ptr<Transport> transport_;
    PlainTransport plain_;
    const int fd_;
    int read_pauses_ = 0;  // reasons to keep reading disabled; reading resumes at zero
    Phase phase_ = Phase::filtering;
    bool closing_ = false;
    bool paused_for_output_ = false;  // above output_high_water: neither reading nor decoding
    bool peer_ended_ = false;         // the peer's end of stream was read
    bool lingering_ = false;          // output done, our stream ended, waiting for the peer's end
    bool in_read_ = false;            // inside on_read: it flushes when done
    bool decoding_ = false;           // inside the protocol's decode() or decode_eof()
    bool switching_ = false;          // switch_protocol() ran inside decoding: stop, then go on
    bool flush_scheduled_ = false;    // a deferred flush is queued
    bool write_armed_ = false;        // the write event is on (a partial write is pending)
    bool staging_ = false;            // holds the OutputStage; the output buffer is empty meanwhile
    bool holding_area_ = false;       // the input borrows bytes from the ReadArea
    // A large read into the ReadArea left part of a frame, which was copied out: large reads go to
    // the input buffer until reads and frames line up again (see keep_input()).
    bool large_reads_split_frames_ = false;
    // False only when the buffer is known to be empty, which spares asking libevent (and a cache
    // miss on the evbuffer) for every request.
    bool input_may_hold_bytes_ = false;
    bool output_may_hold_bytes_ = false;
    bool eof_pending_ = false;  // the peer's end of stream waits for frames held back by output
    bool read_wants_write_ = false;  // the transport's read waits for the socket to be writable
    bool write_wants_read_ = false;  // the transport's write waits for the socket to be readable
    bool transport_holds_output_ = false;  // the transport's last write left output of its own
    bool concluded_ = false;
    bool finished_ = false;
    const bool accepted_;  // accepted by a listener (its filters run), not connected out
    CloseReason reason_ = CloseReason::app_closed;
    OutputStage* stage_ = nullptr;  // see output_stage()
    ReadArea* area_ = nullptr;      // this thread's, looked up once
    ReadSizer read_sizer_;
    // Under the server's output budget: what this connection's output buffer holds (see
    // sync_budget()).
    OutputBudget* budget_ = nullptr;
    std::size_t budget_held_ = 0;
    ConnectionStats stats_;
    // Freed before the socket is closed (see the destructor). The write event and the timer are
    // made when first needed: an idle connection has only its read event.
    EventPtr read_event_;
    EventPtr write_event_;
    EventPtr timer_;
    // The idle timeout's reference; the start of lingering once closing.
    std::chrono::steady_clock::time_point last_message_;

    std::string peer_;
    mutable std::unique_ptr<std::string> local_;  // made by the first local()
    std::unique_ptr<FilterStage> filters_;        // while accept filters run
    EndedFn on_ended_;
    void* owner_;

    // Written by other threads; last, away from what every read and reply touches (a cache line
    // of its own measured no faster and cost idle connections memory).
    std::atomic<std::size_t> queued_{0};  // bytes of other threads' sends not applied
    std::atomic<bool> overflow_posted_{false};
};

// An exception from application code must not unwind through libevent's C frames: it is logged and
// the connection that caused it is closed, as with any other error on that connection. Every line
// above debug that names a connection names its peer too, so that it can be traced without the
// debug-level open line.
template <typename Fn>
void TcpConnection::guarded(const char* what, Fn&& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        log_limited(log_rates::handler_threw(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " ", what, " threw: ", e.what());
        close(CloseMode::now, CloseReason::error);
    } catch (...) {
        log_limited(log_rates::handler_threw(), "listener=", group_->name, " conn=", id_,
                    " peer=", peer_, " ", what, " threw");
        close(CloseMode::now, CloseReason::error);
    }
}

}  // namespace reactor
