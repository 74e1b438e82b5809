#pragma once

#include <cstddef>
#include <cstring>
#include <initializer_list>
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
    // Appends the pieces in order. Into a Buffer, pieces of at most kGatherBytes in all are
    // gathered first and added in one go: each append there costs an evbuffer_add.
    void append_pieces(std::initializer_list<std::string_view> pieces) {
        if (string_ != nullptr) {
            for (const std::string_view piece : pieces) string_->append(piece);
            return;
        }
        std::size_t total = 0;
        for (const std::string_view piece : pieces) total += piece.size();
        if (total > kGatherBytes) {
            for (const std::string_view piece : pieces) buffer_->append(piece);
            return;
        }
        char gathered[kGatherBytes];
        std::size_t at = 0;
        for (const std::string_view piece : pieces) {
            if (piece.empty()) continue;
            std::memcpy(gathered + at, piece.data(), piece.size());
            at += piece.size();
        }
        buffer_->append(gathered, at);
    }

    static constexpr std::size_t kGatherBytes = 4096;

  private:
    std::string* string_ = nullptr;
    Buffer* buffer_ = nullptr;
};

}  // namespace reactor
