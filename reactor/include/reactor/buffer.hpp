#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace reactor {

// A byte queue: a connection's input or output, or a free-standing buffer (codec tests, encoders).
// Backed by a libevent evbuffer, so appending, moving between buffers and searching do not copy the
// whole content; the evbuffer is made by the first write, so an empty buffer (an idle
// connection's) costs no allocation. Not thread-safe: a connection's buffers belong to its loop
// thread.
class Buffer {
  public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    Buffer();
    ~Buffer();
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    std::size_t size() const;
    bool empty() const { return size() == 0; }

    void append(std::string_view bytes);
    void append(const void* data, std::size_t n);
    // Moves every byte of other to the end of this buffer, without copying the data.
    void append(Buffer& other);

    // A contiguous view of the first n bytes (n is clamped to size()). Only those bytes are made
    // contiguous. The view is valid until the buffer is next modified.
    std::string_view peek(std::size_t n);
    // The bytes at the front that already lie contiguous in memory (possibly fewer than size()),
    // without pulling anything up: decoders scan these in place and fall back to find/copy_out for
    // what lies beyond. Valid until the buffer is next modified.
    std::string_view contiguous_front() const;
    // Copies up to n bytes starting at offset into out, returns how many were copied. No pull-up.
    std::size_t copy_out(std::size_t offset, void* out, std::size_t n) const;
    // Position of needle in [start, end) (end clamped to size()), or npos. No pull-up.
    std::size_t find(std::string_view needle, std::size_t start = 0, std::size_t end = npos) const;

    void drain(std::size_t n);
    void clear() { drain(size()); }
    std::string take(std::size_t n);
    std::string to_string() const;

    Buffer(Buffer&& other) noexcept;

  private:
    friend struct BufferInternals;  // the library's own access (reactor/src/buffer_internals.hpp)
    void borrow_front(std::string_view bytes);
    std::size_t keep_front();
    void* storage();  // the evbuffer, made at first use
    void* handle_ = nullptr;
    std::string_view front_;  // borrowed bytes, what is left of them
    bool lent_ = false;       // front_ is the whole content: the evbuffer is empty
};

}  // namespace reactor
