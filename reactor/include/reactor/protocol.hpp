#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/buffer.hpp"
#include "reactor/frame_output.hpp"
#include "reactor/message.hpp"

namespace reactor {

// Why a protocol gave up on a connection, and optionally the last reply to write, in the protocol's
// own form (RESP "-ERR Protocol error: ...", an HTTP 400), before the connection closes with reason
// "protocol error".
struct ProtocolError {
    std::string reason;
    std::string last_reply;
};

// Result of one Protocol::decode call. need_more(), frame() and last_frame(), the results of
// nearly every call, carry no error and cost no allocation.
class Decoded {
  public:
    enum class Status { need_more, frame, last_frame, error };

    static Decoded need_more() { return Decoded(Status::need_more); }
    static Decoded frame() { return Decoded(Status::frame); }
    // The frame just delivered ends the conversation (an HTTP request that does not keep the
    // connection alive, a WebSocket close): nothing more is decoded, and the connection closes,
    // flushing the replies written during the delivery, with reason "closed by protocol". Not an
    // error.
    static Decoded last_frame() { return Decoded(Status::last_frame); }
    static Decoded fail(std::string reason, std::string last_reply = {}) {
        Decoded result(Status::error);
        result.error_ = std::make_unique<ProtocolError>(
            ProtocolError{std::move(reason), std::move(last_reply)});
        return result;
    }

    Status status() const { return status_; }
    // Empty unless status() is error.
    const ProtocolError& error() const { return error_ ? *error_ : no_error(); }

  private:
    explicit Decoded(Status s) : status_(s) {}
    static const ProtocolError& no_error();
    Status status_;
    std::unique_ptr<ProtocolError> error_;
};

class Protocol;

// Where a protocol hands its decoded messages.
class MessageSink {
  public:
    virtual ~MessageSink() = default;
    virtual void deliver(Message& message) = 0;
    // False once the receiver stops taking messages (its connection is closing): decoding stops.
    virtual bool accepting() const { return true; }
    // Bytes the protocol itself must send before the current frame is complete, such as HTTP's
    // "100 Continue". Ignored by sinks without a connection (codec tests record it).
    virtual void write_interim(std::string_view bytes) { (void)bytes; }
    // Hands the connection to another protocol after the frame being decoded, as
    // Connection::switch_protocol does: the protocol calling it decodes nothing more (decode() is
    // not called on it again, and it is destroyed once this decode() returns). Sinks without a
    // connection cannot switch: std::logic_error.
    virtual void switch_protocol(std::unique_ptr<Protocol> next);
};

// A framing protocol: one instance per connection, so it may keep per-connection decode state.
//
// The framing contract:
//  - decode() looks at the front of `in`. With a whole frame there, it builds the Message, calls
//    out.deliver() once, then drains exactly that frame's bytes and returns frame(). Views in the
//    Message may point into `in` (use Buffer::peek to pull up only the frame), which is why the
//    bytes are drained only after deliver() returns.
//  - With only part of a frame, it consumes nothing and returns need_more(); the bytes stay
//    buffered. A protocol may also consume bytes without delivering (a skipped keep-alive, a
//    discarded prefix) and return frame().
//  - The framework calls decode() again while it returns frame() and bytes remain, so every
//    pipelined frame of one read is handled in that read. frame() with nothing consumed is a bug
//    in the protocol (asserted in debug builds, and the connection is closed).
//  - Max frame length is enforced fail-fast: as soon as a frame's declared or buffered length
//    passes the limit, decode() returns fail() without waiting for the rest of the frame.
//  - fail() closes the connection with reason "protocol error" after writing the optional last
//    reply.
//  - Orderly close: returning last_frame() in place of frame() ends the conversation without an
//    error. The frame is delivered as any other and its bytes drained; decode() is not called
//    again, whatever follows in the input; once the delivery's replies have been written (with
//    the read's other replies, in its one write), the connection closes as close(flush) does,
//    with CloseReason::protocol_done, and nothing is logged as a protocol error. Replies the
//    application sends later (from another thread, a timer) are dropped: a protocol uses it for
//    frames that are answered during their delivery. decode_eof() may return it too.
//  - decode_eof() runs once when the peer closes its write side, with whatever bytes are left.
//  - A protocol's own detail of a frame (HTTP's request, RESP's arguments) is its own type,
//    declared in its header and attached with Message::set(); it must outlive the delivery.
//  - Outbound, encode() is the one encoder (Connection::send). Replies with a shape are the
//    protocol's typed sends, free functions in its header that write through
//    Connection::send_frame() into the same output (HTTP's send_response()).
//  - Switching: the application's on_message (Connection::switch_protocol) or the protocol itself
//    (MessageSink::switch_protocol), during a delivery, makes that frame the protocol's last. The
//    bytes after it go to the next protocol in the same read pass, and this one is destroyed after
//    its decode() returns, so it may still drain its frame. A switch outweighs last_frame(): the
//    frame was this protocol's last, and the connection goes on with the next one (HTTP ends a
//    connection after an Upgrade request unless the application switched).
class Protocol {
  public:
    virtual ~Protocol() = default;

    virtual Decoded decode(Buffer& in, MessageSink& out) = 0;
    virtual Decoded decode_eof(Buffer& in, MessageSink& out) {
        (void)in;
        (void)out;
        return Decoded::need_more();
    }

    // Frames one outbound payload onto out (Connection::send). A connection passes the output
    // stage that gathers the replies of one read into one write, or its output buffer when the
    // stage has no room; the encoder cannot tell and need not care. A payload longer than
    // max_payload() throws std::length_error before anything is written.
    virtual void encode(std::string_view payload, FrameOutput& out) = 0;

    // The longest payload encode() can frame (a length field's range); SIZE_MAX when unbounded.
    // An application relaying one peer's bytes to others checks this once, before the fan-out.
    virtual std::size_t max_payload() const { return static_cast<std::size_t>(-1); }

    // Bytes sent to a connection refused because the server is full (RESP "-ERR max number of
    // clients reached", HTTP 503); empty where the protocol has no such notice.
    virtual std::string busy_notice() const { return {}; }
};

// Builds the protocol instance of each connection; made once from configuration, shared by every
// connection of a listener. create() is safe from any thread.
class ProtocolFactory {
  public:
    virtual ~ProtocolFactory() = default;
    virtual std::string_view name() const = 0;
    virtual std::unique_ptr<Protocol> create() const = 0;
};

// The identity framing: every chunk read is one message, and payloads are sent as they are.
std::shared_ptr<const ProtocolFactory> raw_protocol();

// Runs the framing contract's loop over `in`: decodes until need_more, a last frame, an error or an
// empty buffer. Returns the number of messages delivered, whether the protocol ended the
// conversation (last_frame) and the error, if any. Used by codec tests that have no socket.
struct DecodeOutcome {
    std::size_t messages = 0;
    bool last_frame = false;  // decode() or decode_eof() returned last_frame()
    bool failed = false;
    ProtocolError error;
};
DecodeOutcome decode_all(Protocol& protocol, Buffer& in, MessageSink& out);
DecodeOutcome decode_eof(Protocol& protocol, Buffer& in, MessageSink& out);

}  // namespace reactor
