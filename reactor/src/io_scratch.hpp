#pragma once

// Per-thread memory a loop's connections use in turn for their I/O. Internal header.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace reactor {

// The replies a connection produces while it decodes one read are gathered here and written with
// one write() when the read is done; the bufferevent's output takes only what the kernel does not
// take at once. A reply then costs a copy into this buffer, where the bufferevent's output costs a
// chain allocation, two rounds of its callbacks and a drain.
//
// One per thread (a loop thread), held by one connection at a time, for the span of one
// process_input().
class OutputStage {
  public:
    static OutputStage& of_this_thread() {
        thread_local OutputStage stage;
        return stage;
    }

    // False if another connection holds it.
    bool claim(const void* owner) {
        if (owner_ != nullptr) return false;
        // Written through once, at first use, so that all of it is resident from then on: the
        // process's memory does not creep up as larger replies reach further into it.
        if (bytes_.capacity() < kMaxBytes) {
            bytes_.resize(kMaxBytes);
            bytes_.clear();
        }
        owner_ = owner;
        return true;
    }
    // False, with nothing appended, when the bytes would pass kMaxBytes.
    bool append(std::string_view bytes) {
        if (bytes_.size() + bytes.size() > kMaxBytes) return false;
        bytes_.append(bytes);
        return true;
    }
    // Whether an encoder may append the framing of a payload this long: a framing's own bytes are
    // allowed for, so that the stage stays within kMaxBytes.
    bool has_room_to_encode(std::size_t payload_size) const {
        return bytes_.size() + payload_size + kFramingAllowance <= kMaxBytes;
    }
    // Where encoders append (through a FrameOutput), after has_room_to_encode().
    std::string& encoder_target() { return bytes_; }
    std::string_view bytes() const { return bytes_; }
    void release() {
        owner_ = nullptr;
        bytes_.clear();
        if (bytes_.capacity() > kMaxBytes) std::string().swap(bytes_);
    }

    // As much as one write takes (kMaxSingleRead), so that a large reply is copied once, here,
    // rather than into a chunk allocated and freed for it.
    static constexpr std::size_t kMaxBytes = 256 * 1024;
    static constexpr std::size_t kFramingAllowance = 1024;

  private:
    const void* owner_ = nullptr;
    std::string bytes_;
};

// Where a connection reads its socket while its input buffer is empty: the bytes become the input
// buffer's content in place (BufferInternals::lend), are decoded there, and only a partial frame
// left at the end is copied into the input buffer. Spares the buffer a chunk allocation and the
// reserve/commit/drain round for every request, and a large message the allocation and release of
// a large chunk.
//
// One per thread (a loop thread), held by one connection at a time, from its read until it has
// kept what it did not decode.
class ReadArea {
  public:
    static ReadArea& of_this_thread() {
        thread_local ReadArea area;
        return area;
    }

    // Null if another connection holds it.
    char* claim(const void* owner) {
        if (owner_ != nullptr) return nullptr;
        // Zeroed at first use, so that all of it is resident from then on: the process's memory
        // does not creep up as larger reads reach further into it.
        if (!bytes_) bytes_ = std::make_unique<char[]>(kBytes);
        owner_ = owner;
        return bytes_.get();
    }
    void release() { owner_ = nullptr; }

    static constexpr std::size_t kBytes = 256 * 1024;

  private:
    const void* owner_ = nullptr;
    std::unique_ptr<char[]> bytes_;
};

}  // namespace reactor
