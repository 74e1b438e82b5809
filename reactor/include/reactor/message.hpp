#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace reactor {

// Process-unique connection id: starts at 1, never reused.
using ConnectionId = std::uint64_t;

namespace message_detail {
// One object per type: its address tells the types apart without RTTI. Inline, so that every
// translation unit and shared object of a program sees the same one (default visibility).
template <class T>
inline constexpr char type_tag = 0;
}  // namespace message_detail

// One decoded frame handed to the application. Views are valid only during the callback that
// receives the message; copy what must outlive it.
//
// What a protocol knows beyond the payload (an HTTP request, RESP arguments) is its own type,
// declared in its own header and reached through get<T>(): a pointer and a type tag, so it costs
// no allocation and the core knows no protocol.
//
//     if (const auto* request = message.get<reactor::protocols::HttpRequest>()) ...
class Message {
  public:
    ConnectionId conn = 0;
    // The frame's payload: the bytes for raw, line and length framing; the body for HTTP; the
    // whole request for RESP.
    std::string_view payload;
    // A recoverable framing error: the protocol skipped a frame that broke its limit and the
    // connection goes on (only where the listener asks for it, e.g. line's "too_long": "report").
    // The reason, such as "line longer than 4096 bytes"; payload is then empty. Empty otherwise.
    std::string_view error;

    // The protocol's detail of type T, or null when the message carries none or another type's.
    // Valid as long as the message's views.
    template <class T>
    const T* get() const {
        return tag_ == &message_detail::type_tag<std::remove_cv_t<T>>
                   ? static_cast<const T*>(detail_)
                   : nullptr;
    }
    // For protocols: attaches the detail, which must outlive the delivery.
    template <class T>
    void set(const T* detail) {
        detail_ = detail;
        tag_ = &message_detail::type_tag<std::remove_cv_t<T>>;
    }

  private:
    const void* detail_ = nullptr;
    const char* tag_ = nullptr;
};

}  // namespace reactor
