#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/frame_output.hpp"
#include "reactor/function_ref.hpp"
#include "reactor/message.hpp"
#include "reactor/transport.hpp"

namespace reactor {

class EventLoop;
class Protocol;

// Why a connection closed; reaches the application's on_close.
enum class CloseReason {
    peer_closed,       // the peer closed its side
    error,             // reset or socket error
    timeout,           // idle timeout
    protocol_error,    // the protocol rejected the input
    output_overflow,   // the peer would not read its replies
    app_closed,        // the application closed it (Connection::close: a QUIT)
    kicked,            // closed through Server::close(id): an operator, another connection
    shutdown,          // the server is stopping
    rejected,          // an accept filter rejected it (or it broke a filter's byte budget)
    handshake_failed,  // its transport's handshake failed (TLS: no shared cipher, a bad
                       // certificate)
    protocol_done,     // the protocol ended it after a last reply (HTTP "Connection: close")
};
std::string_view to_string(CloseReason reason);

enum class CloseMode {
    flush,  // stop reading, write what is pending, then close
    now,    // close at once, dropping pending output
};

struct ConnectionStats {
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t messages_in = 0;
    std::uint64_t messages_out = 0;
    std::chrono::steady_clock::time_point opened;
};

// One TCP or Unix stream connection, living on one loop for its whole life.
//
// Threading: every method belongs to the owning loop's thread (send, send_raw, send_frame, close,
// pause_reading, resume_reading and output_pending abort in debug builds when called from another
// thread while that loop runs). From any other thread, use Server::send / Server::close with the
// connection's id. The object is destroyed by its loop after
// on_close, never inside one of its own callbacks; keep the id, not the reference.
class Connection {
  public:
    virtual ~Connection() = default;

    virtual ConnectionId id() const = 0;
    // "127.0.0.1:50312", "[::1]:50312" or "unix:/path": the socket's peer, or the address an accept
    // filter set (a PROXY header's client).
    virtual const std::string& peer() const = 0;
    // The address the connection arrived at, in the same form: the socket's, or what an accept
    // filter set.
    virtual const std::string& local() const = 0;
    // Name of the listener that accepted it, or of the outbound connection.
    virtual const std::string& listener() const = 0;
    virtual const ConnectionStats& stats() const = 0;
    virtual EventLoop& loop() const = 0;
    virtual Protocol& protocol() = 0;
    // What TLS negotiated (version, ALPN, SNI name, the client certificate's subject); null on a
    // connection without TLS.
    virtual const TlsInfo* tls() const = 0;

    // Frames payload with the connection's protocol and queues it. Ignored once closing.
    virtual void send(std::string_view payload) = 0;
    // Queues bytes as they are (already framed, e.g. a RESP reply built with the encoder helpers).
    virtual void send_raw(std::string_view bytes) = 0;
    // Queues one frame that write() appends to out, where send() would put an encoded payload:
    // the output stage that gathers the replies of one read into one write, when it has room for
    // about size_hint bytes, else the output buffer. For a protocol's typed sends (an HTTP
    // response); write() runs before this returns. An exception from it closes the connection
    // at once (CloseReason::error), as one from an encoder does. Ignored once closing.
    virtual void send_frame(std::size_t size_hint, FunctionRef<void(FrameOutput&)> write) = 0;
    virtual std::size_t output_pending() const = 0;

    // Stops reading the peer's bytes until the matching resume_reading(). Pauses nest, with the
    // library's own (output back-pressure): reading resumes when the last one ends. Frames already
    // buffered when it is called may still be delivered. resume_reading() decodes what arrived and
    // so must not be called from this connection's own on_message (use a timer or a posted task).
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;

    virtual void close(CloseMode mode = CloseMode::flush,
                       CloseReason reason = CloseReason::app_closed) = 0;
    virtual bool closing() const = 0;

    // Replaces the connection's protocol (an HTTP Upgrade answered 101, a STARTTLS-like switch).
    // send() frames with the new protocol from this call on. Called while a frame is delivered
    // (from on_message, or by a protocol itself), the frame being delivered is the old protocol's
    // last: the bytes after it, already read or still to come, are decoded by the new protocol in
    // the same read pass, and the old one is destroyed once its decode() has returned (Netty hands
    // a removed decoder's leftover bytes on the same way). Called at another time, the bytes
    // buffered are decoded by the new protocol at once. Switching again before the old protocol's
    // decode() returned replaces the new one.
    virtual void switch_protocol(std::unique_ptr<Protocol> next) = 0;

    // Application state attached to the connection.
    std::any context;
};

}  // namespace reactor
