#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace reactor {

// One piece of gathered output, laid out as the kernel's struct iovec.
struct IoSlice {
    const void* data;
    std::size_t size;
};

// What one Transport::read or write did.
struct IoResult {
    enum class Status {
        ok,             // bytes moved (read: bytes > 0)
        would_block,    // nothing now: wait until the socket is readable (read) or writable (write)
        want_read,      // write: the transport must read before it can write on (TLS)
        want_write,     // read: the transport must write before it can read on (TLS)
        end_of_stream,  // read: the peer ended its stream
        error,          // the connection failed; error is the errno, when there is one
    };
    std::size_t bytes = 0;
    Status status = Status::ok;
    int error = 0;
    // read: more bytes can be read now without waiting for the socket (a transport that holds
    // decrypted bytes). A read that filled its room is followed by another either way.
    // write: the transport holds output of its own that the socket did not take (sealed TLS
    // records): the connection waits until the socket is writable and calls write() again, with
    // no slices if it has nothing new, until a write returns more == false.
    bool more = false;
};

// What a TLS transport negotiated, once its handshake is done. The views stay valid while the
// connection lives.
struct TlsInfo {
    std::string_view version;      // "TLSv1.3"
    std::string_view cipher;       // "TLS_AES_128_GCM_SHA256"
    std::string_view alpn;         // the protocol ALPN chose; empty: none
    std::string_view server_name;  // the name the client asked for (SNI); empty: none
    // The peer's certificate subject (RFC 2253), when it sent one that verified; empty otherwise.
    std::string peer_subject;
    bool resumed = false;  // the handshake resumed an earlier session
};

// The layer between a connection's socket and its protocol: the connection reads its input and
// writes its output through it. The plain TCP transport is the default; TLS is another.
//
// One instance per connection, used only on that connection's loop thread. The connection owns
// the readiness events: a transport never registers events of its own, it says what it waits for
// in its results (would_block, want_read, want_write), and the connection calls it again when the
// socket is ready.
//
// A connection's life through its transport:
//  1. attach(): the socket is the transport's from now on, and so is closing it.
//  2. handshake(): called while it returns want_read / want_write, each time the socket is ready,
//     until done or failed. on_open runs only after done; the factory's handshake_timeout()
//     bounds the whole handshake (the connection closes with reason "timeout").
//  3. read() and write(), as the socket is ready and output is pending.
//  4. shutdown_write() once the last output is written (a graceful close), then write() with no
//     slices and unsent() until it is zero (or a deadline), while read() drains and drops the
//     peer's late bytes.
//  5. close(), exactly once, before the transport is destroyed.
class Transport {
  public:
    virtual ~Transport() = default;

    // Takes the connected socket. `received`: bytes already read from it (by the accept filters,
    // past what they consumed), the first bytes of this transport's stream: read() returns them
    // before any from the socket.
    virtual void attach(int fd, std::string_view received) = 0;

    struct Handshake {
        enum class Status { done, want_read, want_write, failed };
        Status status = Status::done;
        std::string_view reason;  // failed: why, for the log (valid until the next call)
    };
    // Advances the handshake. A transport without one returns done at once.
    virtual Handshake handshake() { return {}; }

    // Reads up to room bytes into `into`.
    virtual IoResult read(char* into, std::size_t room) = 0;
    // Writes the slices in order, as much as it can now; bytes counts what it took (a transport
    // that frames output, such as TLS, takes whole slices' bytes once they are sealed).
    virtual IoResult write(const IoSlice* slices, std::size_t count) = 0;
    // Ends this side's stream after the last write (TLS: close_notify first; what the socket does
    // not take yet goes out through later writes). False when that failed: the connection then
    // closes without lingering.
    virtual bool shutdown_write() = 0;
    // Bytes written that the peer has not received yet (for TCP, the kernel's send queue): a
    // gracefully closing connection lingers until this is zero, so that closing the socket cannot
    // reset the connection under the tail of its output.
    virtual std::size_t unsent() const = 0;
    // Closes the socket.
    virtual void close() = 0;

    // "tcp", "tls", ...: for logs and listings.
    virtual std::string_view name() const = 0;
    // What TLS negotiated; null for a transport without TLS, or before its handshake is done.
    virtual const TlsInfo* tls() const { return nullptr; }
};

// Makes the transport of each connection of a listener or of an outbound connection; shared by
// all of them. create() is safe from any thread.
class TransportFactory {
  public:
    virtual ~TransportFactory() = default;
    virtual std::string_view name() const = 0;
    virtual std::unique_ptr<Transport> create() const = 0;
    // The longest a handshake may take; zero: the transport has none, and a client refused at
    // max_connections gets the protocol's busy notice through it (with one, it gets nothing).
    virtual std::chrono::milliseconds handshake_timeout() const { return {}; }
};

}  // namespace reactor
