#pragma once

// What the library's own code (and its tests) reach inside a Buffer. Internal header.

#include <event2/buffer.h>

#include <cstddef>
#include <string_view>

#include "reactor/buffer.hpp"

namespace reactor {

struct BufferInternals {
    // For a connection's input: while the buffer is empty, bytes read elsewhere (the thread's
    // ReadArea) become its content in place, without a copy; keep_lent() copies what is left of
    // them into the buffer's own storage, before the memory they live in is reused, and returns
    // how many bytes it copied. Every member of Buffer sees one sequence of bytes either way;
    // appending keeps the lent bytes first.
    static void lend(Buffer& buffer, std::string_view bytes) { buffer.borrow_front(bytes); }
    static std::size_t keep_lent(Buffer& buffer) { return buffer.keep_front(); }
    // The evbuffer (made now if there is none yet), without lent bytes: keep_lent() first.
    static evbuffer* storage(Buffer& buffer) { return static_cast<evbuffer*>(buffer.storage()); }
};

}  // namespace reactor
