#include "websocket_utf8.hpp"

#include <cstring>

namespace reactor::protocols {

bool Utf8Validator::feed(std::string_view bytes) {
    if (failed_) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const unsigned char* const end = p + bytes.size();
    while (p != end) {
        if (needed_ == 0) {
            // ASCII runs eight bytes at a time.
            while (end - p >= 8) {
                std::uint64_t word;
                std::memcpy(&word, p, 8);
                if ((word & 0x8080808080808080ULL) != 0) break;
                p += 8;
            }
            if (p == end) break;
            const unsigned char c = *p++;
            if (c < 0x80) continue;
            low_ = 0x80;
            high_ = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                needed_ = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                needed_ = 2;
                if (c == 0xE0) low_ = 0xA0;   // overlong below U+0800
                if (c == 0xED) high_ = 0x9F;  // U+D800..U+DFFF, surrogates
            } else if (c >= 0xF0 && c <= 0xF4) {
                needed_ = 3;
                if (c == 0xF0) low_ = 0x90;   // overlong below U+10000
                if (c == 0xF4) high_ = 0x8F;  // above U+10FFFF
            } else {
                failed_ = true;  // a continuation byte, C0/C1 (overlong) or F5..FF
                return false;
            }
            continue;
        }
        const unsigned char c = *p++;
        if (c < low_ || c > high_) {
            failed_ = true;
            return false;
        }
        low_ = 0x80;
        high_ = 0xBF;
        --needed_;
    }
    return true;
}

bool valid_utf8(std::string_view bytes) {
    Utf8Validator validator;
    return validator.feed(bytes) && validator.complete();
}

}  // namespace reactor::protocols
