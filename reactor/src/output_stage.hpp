#pragma once

// Internal header.

#include <cstddef>
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
        owner_ = owner;
        return true;
    }
    // False, with nothing appended, when the bytes would pass kMaxBytes.
    bool append(std::string_view bytes) {
        if (bytes_.size() + bytes.size() > kMaxBytes) return false;
        bytes_.append(bytes);
        return true;
    }
    std::string_view bytes() const { return bytes_; }
    void release() {
        owner_ = nullptr;
        bytes_.clear();
        if (bytes_.capacity() > kMaxBytes) std::string().swap(bytes_);
    }

    static constexpr std::size_t kMaxBytes = 64 * 1024;

  private:
    const void* owner_ = nullptr;
    std::string bytes_;
};

}  // namespace reactor
