#pragma once

// Incremental UTF-8 validation (RFC 3629) for WebSocket text messages and close reasons: bytes
// are fed as they arrive, in any pieces, and the first byte that can never be part of a valid
// sequence is reported at once (overlong forms, surrogates, code points above U+10FFFF, stray
// continuation bytes), so a text message fails fast mid-frame, as Autobahn 6.4.x asks.

#include <cstdint>
#include <string_view>

namespace reactor::protocols {

class Utf8Validator {
  public:
    // False as soon as bytes cannot continue valid UTF-8; the validator then stays failed.
    bool feed(std::string_view bytes);
    // True when what was fed is valid and does not end inside a sequence.
    bool complete() const { return !failed_ && needed_ == 0; }
    bool failed() const { return failed_; }
    void reset() { *this = Utf8Validator(); }

  private:
    std::uint8_t needed_ = 0;  // continuation bytes still expected
    std::uint8_t low_ = 0x80;  // range of the next continuation byte
    std::uint8_t high_ = 0xBF;
    bool failed_ = false;
};

// The whole of bytes is valid UTF-8.
bool valid_utf8(std::string_view bytes);

}  // namespace reactor::protocols
