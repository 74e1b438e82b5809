#pragma once

// Redis RESP2 requests: multibulk arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and
// inline commands ("PING\r\n", split on spaces, with Redis's double and single quotes). An empty
// inline line and a multibulk count of 0 or less are skipped, as Redis does.
//
// A message carries the RespCommand below (message.get<RespCommand>()) with the arguments, and
// Message.payload the whole request as received (for an inline command, the line without its
// ending); both are views valid during the callback only.
//
// Options, with Redis's limits as defaults: "max_bulk" (bytes in one argument, default 512 MiB,
// at most the listener's max_frame), "max_args" (default INT_MAX, as Redis), "max_inline" (bytes
// in an inline line or a count line, default 64 KiB, at most max_frame). Breaking a limit or the
// syntax answers Redis's "-ERR Protocol error: ..." reply (CR and LF in it written as spaces) and
// closes; a declared bulk length over max_bulk fails at once, before the bulk arrives. A multibulk
// request may be max_frame plus max_bulk bytes long as a whole, so that an argument of max_bulk
// (at most max_frame) fits with the name, key and lines around it; a longer one closes without a
// reply, as Redis's query buffer limit does. A connection thus buffers at most about twice
// max_frame.
//
// Like Redis, the two bytes after a bulk are skipped without looking at them; a peer that sends
// more than it declared fails on the next header instead.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reactor/protocol.hpp"
#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

// A command's arguments, the detail of every message of protocol "resp": the name first, never
// empty.
struct RespCommand {
    std::span<const std::string_view> args;
};

struct RespSettings {
    std::size_t max_bulk = 0;
    std::size_t max_args = 0;
    std::size_t max_inline = 0;
    std::size_t max_frame = 0;
};

// Throws ConfigError naming the option.
RespSettings read_resp_settings(const ProtocolConfig& config);

class RespProtocol final : public Protocol {
  public:
    explicit RespProtocol(const RespSettings& settings)
        : settings_(settings), max_request_(settings.max_frame + settings.max_bulk) {}

    Decoded decode(Buffer& in, MessageSink& out) override;
    // Writes the payload as a bulk string.
    void encode(std::string_view payload, FrameOutput& out) override;
    std::string busy_notice() const override;

  private:
    enum class Request { unknown, multibulk, inline_command };
    // Where a "*N" or "$N" line starting at the cursor stands.
    struct CountLine {
        enum class Status { incomplete, too_long, done } status;
        bool valid = false;
        std::int64_t value = 0;
        std::size_t next = 0;  // offset after its "\r\n"
    };

    // The fast path: a well-formed multibulk request lying whole in bytes (the buffer's contiguous
    // front, which holds nearly every request) is parsed in one pass, its arguments left in
    // args_ as views into bytes; returns its size. Anything else, incomplete or wrong, returns 0
    // with nothing changed, for the general parser below, which keeps state across reads and words
    // the errors.
    std::size_t parse_whole_multibulk(std::string_view bytes);
    Decoded decode_multibulk(Buffer& in, MessageSink& out);
    Decoded decode_inline(Buffer& in, MessageSink& out);
    // The byte at offset of in, if there is one.
    bool byte_at(const Buffer& in, std::size_t offset, char& c) const;
    // Position of ending in the line starting at the cursor, or npos.
    std::size_t find_line_end(const Buffer& in, char ending);
    CountLine read_count_line(const Buffer& in);
    // Hands over the arguments in spans_ (offsets into arg_bytes), then drains the request.
    Decoded deliver(Buffer& in, MessageSink& out, std::string_view arg_bytes,
                    std::string_view payload, std::size_t request_size);
    void reset();

    RespSettings settings_;
    std::size_t max_request_;  // bytes of a whole multibulk request: max_frame + max_bulk
    // Parse state kept across reads, so a request arriving in pieces is scanned once.
    Request request_ = Request::unknown;
    std::size_t cursor_ = 0;     // where the next line or bulk starts
    std::size_t scan_from_ = 0;  // the current line holds no ending before this offset
    std::int64_t args_left_ = 0;
    std::int64_t bulk_length_ = -1;
    // in.contiguous_front() as of the current decode call: lines and bytes that lie inside it are
    // read in place, which is nearly always, since a read lands in one chunk.
    std::string_view front_;
    std::size_t available_ = 0;  // in.size() as of the current decode call
    std::vector<std::pair<std::size_t, std::size_t>> spans_;  // offset and size of each argument
    std::vector<std::string_view> args_;
    std::string inline_args_;  // unquoted inline arguments, back to back
};

}  // namespace reactor::protocols
