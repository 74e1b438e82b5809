#pragma once

// One step of a graceful close's linger, shared by connections and refused sockets. Internal
// header.
//
// Closing a socket whose input holds unread bytes makes the kernel reset the connection and throw
// away what it has not sent yet. So a closing socket has ended its own stream, and on each
// readable event (or poll) reads and drops the peer's late bytes until its output is delivered.

#include <event2/event.h>

#include <chrono>

#include "reactor/transport.hpp"

namespace reactor {

// True when lingering is over: the peer ended its stream or reset it, the transport holds
// nothing unsent (with no unread input just now), or `limit` has passed since `started`.
inline bool linger_done(Transport& transport, short what,
                        std::chrono::steady_clock::time_point started,
                        std::chrono::steady_clock::duration limit) {
    if (what & EV_READ) {
        char sink[16 * 1024];
        for (int reads = 0; reads < 16; ++reads) {
            const IoResult got = transport.read(sink, sizeof sink);
            if (got.status == IoResult::Status::ok && got.bytes > 0) continue;
            if (got.status == IoResult::Status::would_block ||
                got.status == IoResult::Status::want_write) {
                break;
            }
            return true;  // the peer's end of stream, or a reset
        }
    }
    // What the transport still holds of its own (a TLS close_notify) goes out first.
    const IoResult put = transport.write(nullptr, 0);
    if (put.status == IoResult::Status::error) return true;
    return transport.unsent() == 0 || std::chrono::steady_clock::now() - started >= limit;
}

}  // namespace reactor
