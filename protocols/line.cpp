#include "line.hpp"

#include <algorithm>
#include <vector>

#include "builtin.hpp"
#include "options.hpp"

namespace reactor::protocols {

namespace {

class LineFactory final : public ProtocolFactory {
  public:
    explicit LineFactory(LineSettings settings) : settings_(std::move(settings)) {}
    std::string_view name() const override { return "line"; }
    std::unique_ptr<Protocol> create() const override {
        return std::make_unique<LineProtocol>(settings_);
    }

  private:
    LineSettings settings_;
};

bool is_proper_prefix_of(std::string_view bytes, std::string_view ending) {
    return bytes.size() < ending.size() && ending.substr(0, bytes.size()) == bytes;
}

}  // namespace

LineSettings read_line_settings(const ProtocolConfig& config) {
    Options options(config.options);
    LineSettings settings;
    settings.delimiter = options.string("delimiter", "\n");
    if (settings.delimiter.empty()) throw ConfigError("delimiter", "expected a non-empty string");
    if (settings.delimiter.size() > 64) {
        throw ConfigError("delimiter", "expected at most 64 bytes");
    }
    settings.accept_crlf = settings.delimiter == "\n";
    settings.max_line = options.integer("max_line", config.max_frame, 1, config.max_frame);
    settings.strip_delimiter = options.boolean("strip_delimiter", true);
    settings.report_too_long = options.choice("too_long", "close", {"close", "report"}) == "report";
    options.finish();
    return settings;
}

std::shared_ptr<const ProtocolFactory> make_line(const ProtocolConfig& config) {
    return std::make_shared<LineFactory>(read_line_settings(config));
}

Decoded LineProtocol::decode(Buffer& in, MessageSink& out) {
    if (discarding_) return discard(in);
    const std::string_view delimiter = settings_.delimiter;
    const std::size_t max_line = settings_.max_line;
    // The longest legal frame: max_line bytes of content, then the longest ending.
    const std::size_t longest = max_line + (settings_.accept_crlf ? 2 : delimiter.size());
    const std::size_t at = in.find(delimiter, 0, longest);
    if (at == Buffer::npos) {
        if (in.size() > max_line && !ending_may_follow(in)) return too_long(in, out, Buffer::npos);
        return Decoded::need_more();
    }

    std::size_t content = at;
    if (settings_.accept_crlf && at > 0) {
        char before = 0;
        in.copy_out(at - 1, &before, 1);
        if (before == '\r') --content;
    }
    const std::size_t frame = at + delimiter.size();
    if (content > max_line) return too_long(in, out, frame);
    const std::string_view bytes = in.peek(frame);
    Message message;
    message.payload = settings_.strip_delimiter ? bytes.substr(0, content) : bytes;
    out.deliver(message);
    in.drain(frame);
    return Decoded::frame();
}

Decoded LineProtocol::too_long(Buffer& in, MessageSink& out, std::size_t frame_end) {
    std::string reason = "line longer than " + std::to_string(settings_.max_line) + " bytes";
    if (!settings_.report_too_long) return Decoded::fail(std::move(reason));
    Message message;
    message.error = reason;
    out.deliver(message);
    if (frame_end != Buffer::npos) {
        in.drain(frame_end);  // the whole line is here: skip it
        return Decoded::frame();
    }
    discarding_ = true;
    return discard(in);
}

Decoded LineProtocol::discard(Buffer& in) {
    const std::string_view delimiter = settings_.delimiter;
    const std::size_t at = in.find(delimiter, 0, in.size());
    if (at != Buffer::npos) {
        discarding_ = false;
        in.drain(at + delimiter.size());
        return Decoded::frame();
    }
    // Keep only what may be the start of a delimiter split across reads.
    const std::size_t keep = std::min(in.size(), delimiter.size() - 1);
    const std::size_t drop = in.size() - keep;
    if (drop == 0) return Decoded::need_more();
    in.drain(drop);
    return Decoded::frame();
}

bool LineProtocol::ending_may_follow(const Buffer& in) const {
    // A legal line's ending starts at some p <= max_line; with no whole ending buffered, the bytes
    // from p to the end must be a proper prefix of an ending. Only the last few bytes matter.
    const std::string_view delimiter = settings_.delimiter;
    const std::size_t longest_ending = settings_.accept_crlf ? 2 : delimiter.size();
    const std::size_t size = in.size();
    if (size - settings_.max_line >= longest_ending) return false;
    const std::size_t from = size - std::min(size, longest_ending - 1);
    std::vector<char> tail(size - from);
    in.copy_out(from, tail.data(), tail.size());
    const std::string_view tail_view(tail.data(), tail.size());
    for (std::size_t p = from; p <= settings_.max_line; ++p) {
        const std::string_view rest = tail_view.substr(p - from);
        if (is_proper_prefix_of(rest, delimiter)) return true;
        if (settings_.accept_crlf && is_proper_prefix_of(rest, "\r\n")) return true;
    }
    return false;
}

void LineProtocol::encode(std::string_view payload, FrameOutput& out) {
    out.append_pieces({payload, settings_.delimiter});
}

std::string LineProtocol::busy_notice() const {
    return "ERR max connections reached" + settings_.delimiter;
}

}  // namespace reactor::protocols
