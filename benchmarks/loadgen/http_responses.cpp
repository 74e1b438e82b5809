#include <charconv>

#include "reply_framers.hpp"

namespace loadgen {

namespace {

// Status line and headers larger than this are rejected.
constexpr std::size_t kMaxHead = 64 * 1024;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
        };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

class HttpResponses final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        if (total_ == 0) {
            // The head is parsed once; a body arriving in pieces only waits for its length.
            const std::size_t head_end = in.find("\r\n\r\n", 0, kMaxHead);
            if (head_end == reactor::Buffer::npos) {
                if (in.size() > kMaxHead)
                    return reactor::Decoded::fail("response head over 64 KiB");
                return reactor::Decoded::need_more();
            }
            const std::string_view head = in.peek(head_end + 4);
            std::size_t body = 0;
            if (const std::string why = parse_head(head.substr(0, head_end), body); !why.empty()) {
                return reactor::Decoded::fail(why);
            }
            status_line_size_ = head.find("\r\n");
            total_ = head_end + 4 + body;
        }
        if (in.size() < total_) return reactor::Decoded::need_more();
        reactor::Message message;
        message.payload = in.peek(status_line_size_);
        out.deliver(message);
        in.drain(total_);
        total_ = 0;
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
    }

  private:
    // Checks the status line and finds the body length; returns why the head is unusable, or "".
    static std::string parse_head(std::string_view head, std::size_t& body) {
        std::size_t eol = head.find("\r\n");
        const std::string_view status_line = head.substr(0, eol);
        if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1.") {
            return "bad status line";
        }
        int status = 0;
        std::from_chars(status_line.data() + 9, status_line.data() + 12, status);
        bool has_length = false;
        while (eol != std::string_view::npos) {
            const std::size_t start = eol + 2;
            eol = head.find("\r\n", start);
            const std::string_view line =
                head.substr(start, eol == std::string_view::npos ? head.npos : eol - start);
            const std::size_t colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            const std::string_view name = line.substr(0, colon);
            const std::string_view value = trim(line.substr(colon + 1));
            if (iequals(name, "content-length")) {
                const auto [ptr, ec] =
                    std::from_chars(value.data(), value.data() + value.size(), body);
                if (ec != std::errc{} || ptr != value.data() + value.size())
                    return "bad Content-Length";
                has_length = true;
            } else if (iequals(name, "transfer-encoding") && !iequals(value, "identity")) {
                return "chunked responses are not supported";
            }
        }
        if (!has_length) {
            if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
                body = 0;
            } else {
                return "response without Content-Length";
            }
        }
        return {};
    }

    std::size_t total_ = 0;  // size of the response being received, once its head is parsed
    std::size_t status_line_size_ = 0;
};

class HttpResponsesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "http-responses"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<HttpResponses>();
    }
};

}  // namespace

std::shared_ptr<const reactor::ProtocolFactory> http_responses() {
    static const auto factory = std::make_shared<HttpResponsesFactory>();
    return factory;
}

}  // namespace loadgen
