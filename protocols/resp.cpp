#include "resp.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "builtin.hpp"
#include "options.hpp"
#include "resp_encode.hpp"

namespace reactor::protocols {

namespace {

class RespFactory final : public ProtocolFactory {
  public:
    explicit RespFactory(const RespSettings& settings) : settings_(settings) {}
    std::string_view name() const override { return "resp"; }
    std::unique_ptr<Protocol> create() const override {
        return std::make_unique<RespProtocol>(settings_);
    }

  private:
    RespSettings settings_;
};

constexpr std::size_t kRedisMaxBulk = std::size_t{512} << 20;
// Redis refuses a multibulk count above INT_MAX; memory is bounded by max_frame, not by the count.
constexpr std::size_t kRedisMaxArgs = static_cast<std::size_t>(std::numeric_limits<int>::max());
constexpr std::size_t kRedisMaxInline = std::size_t{64} << 10;
// Longest text a 64-bit count can have: "-9223372036854775808".
constexpr std::size_t kMaxCountDigits = 20;

// The reply goes through the error builder, which writes CR and LF as spaces, as Redis does: the
// text may quote a byte of the request. The logged reason is the same sanitised text.
Decoded protocol_error(const std::string& what) {
    std::string reply;
    resp::append_error(reply, "ERR Protocol error: " + what);
    std::string reason = reply.substr(5, reply.size() - 7);  // without "-ERR " and "\r\n"
    return Decoded::fail(std::move(reason), std::move(reply));
}

// The blanks skipped between inline arguments (C isspace).
bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The bytes that end an unquoted inline argument; Redis leaves out \v and \f here.
bool ends_argument(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char unescape(char c) {
    switch (c) {
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'b':
            return '\b';
        case 'a':
            return '\a';
        default:
            return c;
    }
}

// Splits an inline command the way redis-cli users expect: blanks separate arguments, "..." takes
// \n \r \t \b \a \xHH and \<char> escapes, '...' takes \' only. A closing quote must be followed
// by a blank or the end of the line. Arguments go to storage, their places to spans. False for
// unbalanced quotes.
bool split_inline(std::string_view line, std::string& storage,
                  std::vector<std::pair<std::size_t, std::size_t>>& spans) {
    storage.clear();
    storage.reserve(line.size());
    std::size_t i = 0;
    const std::size_t n = line.size();
    while (true) {
        while (i < n && is_blank(line[i])) ++i;
        if (i == n) return true;
        const std::size_t start = storage.size();
        char quote = 0;
        bool done = false;
        while (!done) {
            if (quote == 0) {
                if (i == n || ends_argument(line[i])) {
                    done = true;
                } else if (line[i] == '"' || line[i] == '\'') {
                    quote = line[i];
                } else {
                    storage.push_back(line[i]);
                }
            } else {
                if (i == n) return false;
                const char c = line[i];
                const bool has_next = i + 1 < n;
                if (c == quote) {
                    if (has_next && !is_blank(line[i + 1])) return false;
                    done = true;
                } else if (c == '\\' && quote == '"' && i + 3 < n && line[i + 1] == 'x' &&
                           hex_value(line[i + 2]) >= 0 && hex_value(line[i + 3]) >= 0) {
                    storage.push_back(
                        static_cast<char>(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3])));
                    i += 3;
                } else if (c == '\\' && quote == '"' && has_next) {
                    storage.push_back(unescape(line[++i]));
                } else if (c == '\\' && quote == '\'' && has_next && line[i + 1] == '\'') {
                    storage.push_back('\'');
                    ++i;
                } else {
                    storage.push_back(c);
                }
            }
            if (i < n) ++i;
        }
        spans.emplace_back(start, storage.size() - start);
    }
}

// A "*N" or "$N" line of the given type at pos, for the fast path: its value, and pos moved past
// it. Only what the general parser accepts, and not all of it: "0", or up to 18 digits without a
// leading zero (so no overflow), then "\r" and one more byte, the line no longer than max_inline.
// Negative counts and everything else go the general way.
bool read_long_count(std::string_view bytes, char type, std::size_t& pos, std::int64_t& value,
                     std::size_t max_inline) {
    constexpr std::size_t kMaxDigits = 18;
    const std::size_t size = bytes.size();
    std::size_t at = pos + 1;
    if (at >= size || bytes[pos] != type) return false;
    std::int64_t n = bytes[at] - '0';
    if (n < 0 || n > 9) return false;
    ++at;
    if (n != 0) {
        const std::size_t end = std::min(size, pos + 1 + kMaxDigits);
        while (at < end && bytes[at] >= '0' && bytes[at] <= '9') n = n * 10 + (bytes[at++] - '0');
    }
    if (at + 1 >= size || bytes[at] != '\r' || at - pos > max_inline) return false;
    value = n;
    pos = at + 2;
    return true;
}

// As read_long_count, with the case of nearly every count in a request, one digit ("*3\r\n",
// "$5\r\n"), handled in line.
inline bool read_count(std::string_view bytes, char type, std::size_t& pos, std::int64_t& value,
                       std::size_t max_inline) {
    if (pos + 3 < bytes.size() && bytes[pos] == type && bytes[pos + 2] == '\r' && max_inline >= 2) {
        const int digit = bytes[pos + 1] - '0';
        if (digit < 0 || digit > 9) return false;
        value = digit;
        pos += 4;
        return true;
    }
    return read_long_count(bytes, type, pos, value, max_inline);
}

}  // namespace

RespSettings read_resp_settings(const ProtocolConfig& config) {
    Options options(config.options);
    RespSettings s;
    s.max_frame = config.max_frame;
    s.max_bulk =
        options.integer("max_bulk", std::min(kRedisMaxBulk, config.max_frame), 1, config.max_frame);
    s.max_args = options.integer("max_args", kRedisMaxArgs, 1,
                                 static_cast<std::uint64_t>(std::numeric_limits<int>::max()));
    s.max_inline = options.integer("max_inline", std::min(kRedisMaxInline, config.max_frame), 1,
                                   config.max_frame);
    options.finish();
    return s;
}

std::shared_ptr<const ProtocolFactory> make_resp(const ProtocolConfig& config) {
    return std::make_shared<RespFactory>(read_resp_settings(config));
}

Decoded RespProtocol::decode(Buffer& in, MessageSink& out) {
    front_ = in.contiguous_front();
    if (request_ == Request::unknown) {
        if (const std::size_t size = parse_whole_multibulk(front_); size != 0) {
            const RespCommand command{args_};
            Message message;
            message.payload = front_.substr(0, size);
            message.set(&command);
            out.deliver(message);
            in.drain(size);
            args_.clear();
            if (args_.capacity() > 4096) args_.shrink_to_fit();  // as reset() does
            return Decoded::frame();
        }
    }
    available_ = in.size();
    if (request_ == Request::unknown) {
        char first = 0;
        if (!byte_at(in, 0, first)) return Decoded::need_more();
        request_ = first == '*' ? Request::multibulk : Request::inline_command;
    }
    return request_ == Request::multibulk ? decode_multibulk(in, out) : decode_inline(in, out);
}

std::size_t RespProtocol::parse_whole_multibulk(std::string_view bytes) {
    args_.clear();  // the general parser leaves its last request's
    std::size_t pos = 0;
    std::int64_t count = 0;
    if (!read_count(bytes, '*', pos, count, settings_.max_inline) || count == 0 ||
        static_cast<std::uint64_t>(count) > settings_.max_args) {
        return 0;
    }
    for (std::int64_t i = 0; i < count; ++i) {
        std::int64_t length = 0;
        if (!read_count(bytes, '$', pos, length, settings_.max_inline) ||
            static_cast<std::uint64_t>(length) > settings_.max_bulk ||
            pos + static_cast<std::size_t>(length) + 2 > max_request_ ||
            bytes.size() - pos < static_cast<std::size_t>(length) + 2) {
            args_.clear();
            return 0;
        }
        args_.push_back(bytes.substr(pos, static_cast<std::size_t>(length)));
        pos += static_cast<std::size_t>(length) + 2;
    }
    return pos;
}

bool RespProtocol::byte_at(const Buffer& in, std::size_t offset, char& c) const {
    if (offset < front_.size()) {
        c = front_[offset];
        return true;
    }
    return in.copy_out(offset, &c, 1) == 1;
}

std::size_t RespProtocol::find_line_end(const Buffer& in, char ending) {
    // Only a line no longer than max_inline can be legal, so the search stops there; bytes
    // searched on an earlier read are not searched again.
    const std::size_t from = std::max(scan_from_, cursor_);
    const std::size_t limit = std::min(cursor_ + settings_.max_inline + 1, available_);
    std::size_t at = Buffer::npos;
    if (limit <= front_.size()) {
        const void* hit =
            from < limit ? std::memchr(front_.data() + from, ending, limit - from) : nullptr;
        if (hit != nullptr)
            at = static_cast<std::size_t>(static_cast<const char*>(hit) - front_.data());
    } else {
        at = in.find(std::string_view(&ending, 1), from, limit);
    }
    scan_from_ = at == Buffer::npos ? limit : at;
    return at;
}

RespProtocol::CountLine RespProtocol::read_count_line(const Buffer& in) {
    CountLine line{CountLine::Status::incomplete};
    const std::size_t cr = find_line_end(in, '\r');
    if (cr == Buffer::npos) {
        if (available_ - cursor_ > settings_.max_inline) line.status = CountLine::Status::too_long;
        return line;
    }
    // Redis wants one more byte, the "\n", without checking it.
    if (cr + 1 >= available_) return line;
    line.status = CountLine::Status::done;
    line.next = cr + 2;
    const std::size_t digits = cr - cursor_ - 1;  // after the type byte
    if (digits > kMaxCountDigits) return line;
    std::array<char, kMaxCountDigits> copy;
    std::string_view text;
    if (cr <= front_.size()) {
        text = front_.substr(cursor_ + 1, digits);
    } else {
        in.copy_out(cursor_ + 1, copy.data(), digits);
        text = std::string_view(copy.data(), digits);
    }
    line.valid = resp::parse_integer(text, line.value);
    return line;
}

Decoded RespProtocol::decode_multibulk(Buffer& in, MessageSink& out) {
    if (args_left_ == 0) {
        const CountLine count = read_count_line(in);
        if (count.status == CountLine::Status::too_long) {
            return protocol_error("too big mbulk count string");
        }
        if (count.status == CountLine::Status::incomplete) return Decoded::need_more();
        if (!count.valid || count.value > static_cast<std::int64_t>(settings_.max_args)) {
            return protocol_error("invalid multibulk length");
        }
        if (count.value <= 0) {
            in.drain(count.next);
            reset();
            return Decoded::frame();
        }
        cursor_ = count.next;
        args_left_ = count.value;
        spans_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(count.value, 1024)));
    }

    while (args_left_ > 0) {
        if (bulk_length_ < 0) {
            char type = 0;
            if (!byte_at(in, cursor_, type)) return Decoded::need_more();
            // Checked before the line ends, so garbage fails at its first byte.
            if (type != '$') return protocol_error(std::string("expected '$', got '") + type + "'");
            const CountLine length = read_count_line(in);
            if (length.status == CountLine::Status::too_long) {
                return protocol_error("too big bulk count string");
            }
            if (length.status == CountLine::Status::incomplete) return Decoded::need_more();
            if (!length.valid || length.value < 0 ||
                static_cast<std::uint64_t>(length.value) > settings_.max_bulk) {
                return protocol_error("invalid bulk length");
            }
            cursor_ = length.next;
            bulk_length_ = length.value;
            if (cursor_ + static_cast<std::size_t>(bulk_length_) + 2 > max_request_) {
                return Decoded::fail("request longer than max_frame plus max_bulk, " +
                                     std::to_string(max_request_) + " bytes");
            }
        }
        const auto bulk = static_cast<std::size_t>(bulk_length_);
        if (available_ < cursor_ + bulk + 2) return Decoded::need_more();
        spans_.emplace_back(cursor_, bulk);
        cursor_ += bulk + 2;
        bulk_length_ = -1;
        --args_left_;
    }

    const std::size_t size = cursor_;
    const std::string_view request = in.peek(size);
    return deliver(in, out, request, request, size);
}

Decoded RespProtocol::decode_inline(Buffer& in, MessageSink& out) {
    const std::size_t lf = find_line_end(in, '\n');
    if (lf == Buffer::npos) {
        if (available_ > settings_.max_inline) return protocol_error("too big inline request");
        return Decoded::need_more();
    }
    std::string_view line = in.peek(lf + 1).substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!split_inline(line, inline_args_, spans_)) {
        return protocol_error("unbalanced quotes in request");
    }
    if (spans_.empty()) {
        in.drain(lf + 1);
        reset();
        return Decoded::frame();
    }
    return deliver(in, out, inline_args_, line, lf + 1);
}

Decoded RespProtocol::deliver(Buffer& in, MessageSink& out, std::string_view arg_bytes,
                              std::string_view payload, std::size_t request_size) {
    args_.clear();
    for (const auto& [offset, size] : spans_) args_.push_back(arg_bytes.substr(offset, size));
    const RespCommand command{args_};
    Message message;
    message.payload = payload;
    message.set(&command);
    out.deliver(message);
    in.drain(request_size);
    reset();
    return Decoded::frame();
}

void RespProtocol::reset() {
    request_ = Request::unknown;
    cursor_ = 0;
    scan_from_ = 0;
    args_left_ = 0;
    bulk_length_ = -1;
    spans_.clear();
    // Keep the capacity of spans_ and args_ for the next request, but not a huge one.
    if (spans_.capacity() > 4096) {
        spans_.shrink_to_fit();
        args_.clear();
        args_.shrink_to_fit();
    }
}

void RespProtocol::encode(std::string_view payload, FrameOutput& out) {
    resp::append_bulk(out, payload);
}

std::string RespProtocol::busy_notice() const {
    return "-ERR max number of clients reached\r\n";
}

}  // namespace reactor::protocols
