#pragma once

// How a codec fuzz target reads its input, and how it reports a broken invariant.
//
// Input layout (every codec target): kControlSize control bytes, then the byte stream sent to the
// decoder. A control byte past the end of a short input reads as 0, so a seed that is only a
// stream of traffic needs kControlSize zero bytes in front (tests/fuzz/grow_corpus.py writes them):
//   [0..1]  limit selector, little endian; 0 means the protocol's defaults and a 1 MiB max_frame
//   [2..7]  the target's own option bytes (see each target)
//   [8]     split control: bits 0-1 the number of extra cut points (0 to 3), bit 2 appends each
//           chunk as its own buffer segment (as a read does not), bit 3 feeds a stream of at most
//           kBytewiseLimit bytes one byte at a time instead
//   [9..14] three cut points, little endian 16-bit, each taken modulo (stream size + 1)
//   [15]    reserved
// The same cut points also cut the stream into payloads for the encode -> decode round trips.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

// Reports a broken invariant to libFuzzer: print what broke, then trap so the input is saved.
#define FUZZ_CHECK(condition, ...)                                                      \
    do {                                                                                \
        if (!(condition)) {                                                             \
            std::fprintf(stderr, "invariant broken at %s:%d: %s\n", __FILE__, __LINE__, \
                         #condition);                                                   \
            std::fprintf(stderr, "  " __VA_ARGS__);                                     \
            std::fprintf(stderr, "\n");                                                 \
            __builtin_trap();                                                           \
        }                                                                               \
    } while (false)

namespace fuzz {

inline constexpr std::size_t kControlSize = 16;
inline constexpr std::size_t kBytewiseLimit = 1024;

class FuzzInput {
  public:
    FuzzInput(const std::uint8_t* data, std::size_t size) {
        const std::size_t control = std::min(size, kControlSize);
        std::copy(data, data + control, control_.begin());
        stream_ = std::string_view(reinterpret_cast<const char*>(data) + control, size - control);
    }

    std::uint8_t byte(std::size_t i) const { return control_[i]; }
    std::uint16_t word(std::size_t i) const {
        return static_cast<std::uint16_t>(control_[i] | (control_[i + 1] << 8));
    }
    // The limit selector: 0 for defaults.
    std::uint16_t limit_selector() const { return word(0); }
    // A max_frame for the codec under test: 1 MiB for selector 0, else 1 to `largest` bytes.
    std::size_t max_frame(std::size_t largest) const {
        return limit_selector() == 0 ? std::size_t{1} << 20 : 1 + limit_selector() % largest;
    }
    bool separate_segments() const { return (control_[8] & 4) != 0; }

    std::string_view stream() const { return stream_; }

    // The sorted cut points inside the stream, duplicates included (an empty chunk is a read of
    // nothing, which decoders must tolerate too).
    std::vector<std::size_t> cuts() const {
        std::vector<std::size_t> out;
        const std::size_t n = control_[8] & 3;
        for (std::size_t i = 0; i < n; ++i) out.push_back(word(9 + 2 * i) % (stream_.size() + 1));
        std::sort(out.begin(), out.end());
        return out;
    }

    // How the stream is fed: one byte at a time when the control says so, otherwise pieces().
    std::vector<std::string_view> chunks() const {
        if ((control_[8] & 8) == 0 || stream_.size() > kBytewiseLimit) return pieces();
        std::vector<std::string_view> out;
        for (std::size_t i = 0; i < stream_.size(); ++i) out.push_back(stream_.substr(i, 1));
        if (out.empty()) out.push_back(stream_);
        return out;
    }

    // The stream cut at cuts(): at least one piece, more when there are cut points. Also the
    // payloads of the round trips.
    std::vector<std::string_view> pieces() const {
        std::vector<std::string_view> out;
        std::size_t from = 0;
        for (const std::size_t at : cuts()) {
            out.push_back(stream_.substr(from, at - from));
            from = at;
        }
        out.push_back(stream_.substr(from));
        return out;
    }

  private:
    std::array<std::uint8_t, kControlSize> control_{};
    std::string_view stream_;
};

// Text for a message: printable bytes as they are, the rest escaped, cut at 200 bytes.
inline std::string printable(std::string_view bytes) {
    std::string out;
    for (const char c : bytes.substr(0, 200)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\\') {
            out.push_back(c);
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        }
    }
    if (bytes.size() > 200) out += "...";
    return out;
}

}  // namespace fuzz
