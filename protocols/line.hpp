#pragma once

// Line framing: each message is the bytes up to a delimiter.
//
// Options: "delimiter" (string, default "\n"; with the default, a "\r\n" ending is accepted too),
// "max_line" (bytes before the delimiter, default and at most the listener's max_frame),
// "strip_delimiter" (bool, default true: the payload excludes the ending).
//
// The limit holds before the delimiter arrives: once more than max_line bytes are buffered and no
// ending can start within them, the connection fails ("line longer than N bytes"), so a peer that
// never sends a delimiter cannot make the buffer grow. A last line without its delimiter at end of
// stream is dropped, as Netty's LineBasedFrameDecoder does.
//
// "too_long" (default "close") chooses what a line over the limit does: "close" fails the
// connection; "report" keeps it: the decoder delivers, as soon as the limit is passed, one
// message whose `error` names the limit (and whose payload is empty), then discards the line's
// bytes as they arrive, up to and including its delimiter, buffering none of them.

#include <cstddef>
#include <string>

#include "reactor/protocol.hpp"
#include "reactor/protocol_registry.hpp"

namespace reactor::protocols {

struct LineSettings {
    std::string delimiter = "\n";
    // True with the default delimiter: "\r\n" also ends a line and the "\r" is part of the ending.
    bool accept_crlf = true;
    std::size_t max_line = 0;
    bool strip_delimiter = true;
    bool report_too_long = false;  // "too_long": "report"
};

// Throws ConfigError naming the option.
LineSettings read_line_settings(const ProtocolConfig& config);

class LineProtocol final : public Protocol {
  public:
    explicit LineProtocol(const LineSettings& settings) : settings_(settings) {}

    Decoded decode(Buffer& in, MessageSink& out) override;
    void encode(std::string_view payload, FrameOutput& out) override;
    // "ERR max connections reached" and the delimiter.
    std::string busy_notice() const override;

  private:
    // Without a whole ending in the buffer: whether one could still start at or before max_line.
    bool ending_may_follow(const Buffer& in) const;
    // The line over the limit: fails, or reports it and starts discarding.
    Decoded too_long(Buffer& in, MessageSink& out, std::size_t frame_end);
    // Discard state: drops bytes up to and including the next delimiter.
    Decoded discard(Buffer& in);

    LineSettings settings_;
    bool discarding_ = false;  // inside a line over the limit, which survives across reads
};

}  // namespace reactor::protocols
