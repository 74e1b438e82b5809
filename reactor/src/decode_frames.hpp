#pragma once

// The framing contract's loop for the library's own connections, which count their messages
// themselves: decode_all() without its counting wrapper around the sink.

#include "reactor/protocol.hpp"

namespace reactor {

// As decode_all(), but DecodeOutcome::messages stays 0.
DecodeOutcome decode_frames(Protocol& protocol, Buffer& in, MessageSink& out);

}  // namespace reactor
