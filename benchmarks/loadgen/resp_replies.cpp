#include <charconv>
#include <string>

#include "reply_framers.hpp"

namespace loadgen {

namespace {

// Longest reply line accepted (a status, an error text, a length header).
constexpr std::size_t kMaxLine = 64 * 1024;
// Arrays nested deeper than this are rejected rather than scanned recursively.
constexpr int kMaxDepth = 8;

struct Scan {
    enum class Status { incomplete, done, bad } status = Status::incomplete;
    std::size_t end = 0;  // offset just past the reply, when done
    std::string why;      // when bad
};

Scan bad(std::string why) {
    return {Scan::Status::bad, 0, std::move(why)};
}

bool parse_count(const reactor::Buffer& in, std::size_t from, std::size_t to, long long& value) {
    char digits[32];
    const std::size_t n = to - from;
    if (n == 0 || n > sizeof digits) return false;
    in.copy_out(from, digits, n);
    const auto [ptr, ec] = std::from_chars(digits, digits + n, value);
    return ec == std::errc{} && ptr == digits + n;
}

// Finds where the reply starting at `at` ends, without copying it.
Scan scan(const reactor::Buffer& in, std::size_t at, int depth) {
    if (in.size() <= at) return {};
    const std::size_t eol = in.find("\r\n", at, at + kMaxLine);
    if (eol == reactor::Buffer::npos) {
        if (in.size() - at > kMaxLine) return bad("reply line longer than 64 KiB");
        return {};
    }
    char type = 0;
    in.copy_out(at, &type, 1);
    switch (type) {
        case '+':
        case '-':
        case ':':
            return {Scan::Status::done, eol + 2, {}};
        case '$':
        case '*':
            break;
        default:
            return bad(std::string("unexpected reply type byte '") + type + "'");
    }
    long long count = 0;
    if (!parse_count(in, at + 1, eol, count) || count < -1)
        return bad("bad length in reply header");
    if (count == -1) return {Scan::Status::done, eol + 2, {}};
    if (type == '$') {
        const std::size_t end = eol + 2 + static_cast<std::size_t>(count) + 2;
        if (in.size() < end) return {};
        return {Scan::Status::done, end, {}};
    }
    if (depth >= kMaxDepth) return bad("reply arrays nested too deep");
    std::size_t next = eol + 2;
    for (long long i = 0; i < count; ++i) {
        Scan element = scan(in, next, depth + 1);
        if (element.status != Scan::Status::done) return element;
        next = element.end;
    }
    return {Scan::Status::done, next, {}};
}

class RespReplies final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        const Scan reply = scan(in, 0, 0);
        if (reply.status == Scan::Status::incomplete) return reactor::Decoded::need_more();
        if (reply.status == Scan::Status::bad) return reactor::Decoded::fail(reply.why);
        const std::size_t first_line = in.find("\r\n", 0, kMaxLine);
        reactor::Message message;
        message.payload = in.peek(first_line);
        out.deliver(message);
        in.drain(reply.end);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
    }
};

class RespRepliesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "resp-replies"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<RespReplies>();
    }
};

}  // namespace

std::shared_ptr<const reactor::ProtocolFactory> resp_replies() {
    static const auto factory = std::make_shared<RespRepliesFactory>();
    return factory;
}

}  // namespace loadgen
