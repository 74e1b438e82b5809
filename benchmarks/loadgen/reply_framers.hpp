#pragma once

// Framing of the replies loadgen reads back. Each is a reactor::Protocol used on the client side
// of a connection; decode() delivers one Message per reply whose payload is a short summary the
// workload checks (see each factory), so large replies are never copied or pulled up.

#include <cstddef>
#include <memory>

#include "reactor/protocol.hpp"

namespace loadgen {

// Every reply is exactly `size` bytes (raw echo: the stream has no framing of its own). The
// payload is empty.
std::shared_ptr<const reactor::ProtocolFactory> fixed_size_replies(std::size_t size);

// RESP2 replies: "+OK", "-ERR ...", ":1", "$N" bulk (or "$-1"), "*N" arrays of replies. The
// payload is the reply's first line without "\r\n", so a leading '-' marks an error reply.
std::shared_ptr<const reactor::ProtocolFactory> resp_replies();

// HTTP/1.x responses framed by Content-Length (204 and 304 have no body); chunked responses fail.
// The payload is the status line without "\r\n".
std::shared_ptr<const reactor::ProtocolFactory> http_responses();

}  // namespace loadgen
