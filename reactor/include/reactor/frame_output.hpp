#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "reactor/buffer.hpp"

namespace reactor {

// Where an encoder writes one outbound frame: the end of a string or of a Buffer. A connection
// hands its encoders the string of its per-thread output stage, which gathers the replies of one
// read into one write, and its output Buffer when the stage has no room; codec tests and tools
// hand either. Appends only, and only during the call that receives it.
class FrameOutput {
  public:
    explicit FrameOutput(std::string& out) noexcept : string_(&out) {}
    explicit FrameOutput(Buffer& out) noexcept : buffer_(&out) {}
    FrameOutput(const FrameOutput&) = delete;
    FrameOutput& operator=(const FrameOutput&) = delete;

    void append(std::string_view bytes) {
        if (string_ != nullptr) {
            string_->append(bytes);
        } else {
            buffer_->append(bytes);
        }
    }
    void append(const void* data, std::size_t n) {
        append(std::string_view(static_cast<const char*>(data), n));
    }

  private:
    std::string* string_ = nullptr;
    Buffer* buffer_ = nullptr;
};

}  // namespace reactor
