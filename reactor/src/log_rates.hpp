#pragma once

// The LogRate of each kind of line a remote peer can trigger once per event. Internal header.
// Each is created on first use and never destroyed, so a loop thread still running at exit may
// use it.

#include "reactor/log.hpp"

namespace reactor::log_rates {

#define REACTOR_LOG_RATE(fn, ...)                              \
    inline LogRate& fn() {                                     \
        static LogRate* const rate = new LogRate(__VA_ARGS__); \
        return *rate;                                          \
    }

// Bad input: protocol errors, at end of input too.
REACTOR_LOG_RATE(protocol_error, "protocol error", LogLevel::info)
// A client that does not read its replies, closed at output_limit or by the output budget.
REACTOR_LOG_RATE(output_overflow, "output overflow", LogLevel::info)
// An application handler threw (input can make it throw).
REACTOR_LOG_RATE(handler_threw, "handler exception", LogLevel::error)
// Resets and other socket errors.
REACTOR_LOG_RATE(socket_error, "socket error", LogLevel::debug)
REACTOR_LOG_RATE(idle_timeout, "idle timeout", LogLevel::debug)
// Per-connection tracing: generous, but bounded when clients churn by the thousand.
REACTOR_LOG_RATE(connection_opened, "connection opened", LogLevel::debug, 200, 100)
REACTOR_LOG_RATE(connection_closed, "connection closed", LogLevel::debug, 200, 100)
REACTOR_LOG_RATE(accept_failed, "accept failed", LogLevel::warn)

#undef REACTOR_LOG_RATE

}  // namespace reactor::log_rates
