#include "http.hpp"

#include <llhttp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "http_response.hpp"
#include "options.hpp"

namespace reactor::protocols {

namespace {

// Bytes [begin, end) of the input buffer, counted from its front.
struct Span {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t size() const { return end - begin; }
};

struct HeaderSpans {
    Span name;
    Span value;
    bool name_complete = false;
};

enum class Failure { none, headers_too_large, body_too_large, bad_request };

std::string_view trim_trailing_whitespace(std::string_view value) {
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return value;
}

// Header lines of encode()'s replies; HTTP/1.0 clients need keep-alive spelled out.
constexpr std::string_view kReplyHeaders = "Content-Type: text/plain\r\n";
constexpr std::string_view kReplyHeadersClose = "Content-Type: text/plain\r\nConnection: close\r\n";
constexpr std::string_view kReplyHeadersKeepAlive =
    "Content-Type: text/plain\r\nConnection: keep-alive\r\n";

std::string error_reply(int status) {
    return HttpResponse(status).close_connection().to_string();
}

// Parsing state and the input buffer: a request's bytes stay in the input buffer until the whole
// request has been parsed, and llhttp is fed only the bytes it has not seen yet (fed_ counts the
// ones it has). Headers, target and a contiguous body are then views into the buffer (no copy);
// only a body split by chunk framing is copied, into body_arena_. The parser's callbacks record
// offsets rather than pointers because the buffer's memory may move between decode() calls.
class HttpProtocol final : public Protocol {
  public:
    explicit HttpProtocol(const HttpLimits& limits) : limits_(limits) {
        llhttp_init(&parser_, HTTP_REQUEST, &settings());
        parser_.data = this;
    }
    HttpProtocol(const HttpProtocol&) = delete;
    HttpProtocol& operator=(const HttpProtocol&) = delete;

    Decoded decode(Buffer& in, MessageSink& out) override;
    void encode(std::string_view payload, Buffer& out) override;
    bool encode_to(std::string_view payload, std::string& out) override;
    std::string busy_notice() const override {
        return HttpResponse(503)
            .header("Content-Type", "text/plain")
            .close_connection()
            .body("server busy\n")
            .to_string();
    }

  private:
    static const llhttp_settings_t& settings();
    static HttpProtocol& of(llhttp_t* parser) { return *static_cast<HttpProtocol*>(parser->data); }

    static int on_url(llhttp_t* parser, const char* at, std::size_t n);
    static int on_header_field(llhttp_t* parser, const char* at, std::size_t n);
    static int on_header_field_complete(llhttp_t* parser);
    static int on_header_value(llhttp_t* parser, const char* at, std::size_t n);
    static int on_headers_complete(llhttp_t* parser);
    static int on_chunk_header(llhttp_t* parser);
    static int on_body(llhttp_t* parser, const char* at, std::size_t n);
    static int on_message_complete(llhttp_t* parser);

    std::size_t offset_of(const char* at) const { return static_cast<std::size_t>(at - base_); }
    std::string_view view(Span span) const { return {base_ + span.begin, span.size()}; }
    // Records a header-phase fragment; false (and a failure) when it ends past the header limit.
    bool within_header_limit(const char* at, std::size_t n);
    int fail_in_callback(Failure failure, int code) {
        failure_ = failure;
        return code;
    }

    void deliver_request(MessageSink& out);
    void reset_request();
    Decoded fail(Failure failure, std::string_view detail = {});

    HttpLimits limits_;
    llhttp_t parser_{};
    const char* base_ = nullptr;  // front of the input buffer during llhttp_execute
    std::size_t fed_ = 0;

    Span target_;
    std::vector<HeaderSpans> headers_;
    bool headers_complete_ = false;
    // on_headers_complete paused the parser, so decode() can check where the headers ended.
    bool paused_at_headers_end_ = false;
    Span body_;
    bool body_in_arena_ = false;
    std::string body_arena_;
    std::size_t chunk_total_ = 0;  // sum of the declared chunk sizes so far
    // "Expect: 100-continue": the client waits for a go-ahead before sending its body.
    bool continue_wanted_ = false;
    bool continue_sent_ = false;
    Failure failure_ = Failure::none;
    const char* failure_detail_ = nullptr;

    // After a request that ends the connection, the rest of the input is discarded.
    bool discarding_ = false;
    bool failed_ = false;
    ProtocolError error_;
    HttpRequest request_;

    // What the next encode() must say, from the last delivered request.
    bool reply_to_head_ = false;
    std::string_view reply_header_lines_ = kReplyHeaders;
};

const llhttp_settings_t& HttpProtocol::settings() {
    static const llhttp_settings_t instance = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_url = &on_url;
        s.on_header_field = &on_header_field;
        s.on_header_field_complete = &on_header_field_complete;
        s.on_header_value = &on_header_value;
        s.on_headers_complete = &on_headers_complete;
        s.on_chunk_header = &on_chunk_header;
        s.on_body = &on_body;
        s.on_message_complete = &on_message_complete;
        return s;
    }();
    return instance;
}

bool HttpProtocol::within_header_limit(const char* at, std::size_t n) {
    if (offset_of(at) + n <= limits_.max_header_bytes) return true;
    failure_ = Failure::headers_too_large;
    return false;
}

int HttpProtocol::on_url(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    if (!self.within_header_limit(at, n)) return HPE_USER;
    const std::size_t offset = self.offset_of(at);
    if (self.target_.size() == 0) self.target_.begin = offset;
    self.target_.end = offset + n;
    return HPE_OK;
}

int HttpProtocol::on_header_field(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    if (self.headers_complete_) return HPE_OK;  // a trailer field
    if (!self.within_header_limit(at, n)) return HPE_USER;
    // llhttp accepts "Name :"; RFC 9112 requires rejecting it, as proxies disagree on its meaning.
    if (std::any_of(at, at + n, [](char c) { return c == ' ' || c == '\t'; })) {
        self.failure_detail_ = "whitespace between header field name and colon";
        return self.fail_in_callback(Failure::bad_request, HPE_USER);
    }
    const std::size_t offset = self.offset_of(at);
    if (self.headers_.empty() || self.headers_.back().name_complete) {
        self.headers_.push_back({{offset, offset + n}, {}, false});
    } else {
        self.headers_.back().name.end = offset + n;
    }
    return HPE_OK;
}

int HttpProtocol::on_header_field_complete(llhttp_t* parser) {
    HttpProtocol& self = of(parser);
    if (!self.headers_complete_ && !self.headers_.empty())
        self.headers_.back().name_complete = true;
    return HPE_OK;
}

int HttpProtocol::on_header_value(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    if (self.headers_complete_ || n == 0 || self.headers_.empty()) return HPE_OK;
    if (!self.within_header_limit(at, n)) return HPE_USER;
    const std::size_t offset = self.offset_of(at);
    Span& value = self.headers_.back().value;
    if (value.size() == 0) {
        value = {offset, offset + n};
    } else if (offset == value.end) {
        value.end = offset + n;
    } else {
        // A value continued on the next line (obs-fold): RFC 9112 lets a server reject it.
        self.failure_detail_ = "header value folded over lines";
        return self.fail_in_callback(Failure::bad_request, HPE_USER);
    }
    return HPE_OK;
}

int HttpProtocol::on_headers_complete(llhttp_t* parser) {
    HttpProtocol& self = of(parser);
    self.headers_complete_ = true;
    if ((parser->flags & F_CONTENT_LENGTH) != 0 && parser->content_length > self.limits_.max_body) {
        return self.fail_in_callback(Failure::body_too_large, -1);
    }
    const bool has_body = (parser->flags & F_CHUNKED) != 0 ||
                          ((parser->flags & F_CONTENT_LENGTH) != 0 && parser->content_length > 0);
    if (has_body && parser->http_major == 1 && parser->http_minor >= 1) {
        for (const HeaderSpans& h : self.headers_) {
            if (ascii_iequals(self.view(h.name), "Expect") &&
                ascii_iequals(trim_trailing_whitespace(self.view(h.value)), "100-continue")) {
                self.continue_wanted_ = true;
            }
        }
    }
    self.paused_at_headers_end_ = true;
    return HPE_PAUSED;
}

int HttpProtocol::on_chunk_header(llhttp_t* parser) {
    HttpProtocol& self = of(parser);
    const std::uint64_t size = parser->content_length;
    if (size > self.limits_.max_body - self.chunk_total_) {
        return self.fail_in_callback(Failure::body_too_large, -1);
    }
    self.chunk_total_ += static_cast<std::size_t>(size);
    return 0;
}

int HttpProtocol::on_body(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    const std::size_t offset = self.offset_of(at);
    if (!self.body_in_arena_) {
        if (self.body_.size() == 0) {
            self.body_ = {offset, offset + n};
            return HPE_OK;
        }
        if (offset == self.body_.end) {
            self.body_.end = offset + n;
            return HPE_OK;
        }
        // A second chunk: the body is no longer contiguous in the input.
        self.body_arena_.assign(self.view(self.body_));
        self.body_in_arena_ = true;
    }
    self.body_arena_.append(at, n);
    return HPE_OK;
}

int HttpProtocol::on_message_complete(llhttp_t*) {
    // Stop right after this request, so one decode() call consumes exactly one request.
    return HPE_PAUSED;
}

Decoded HttpProtocol::decode(Buffer& in, MessageSink& out) {
    if (failed_) return Decoded::fail(error_.reason, error_.last_reply);
    const std::size_t available = in.size();
    if (discarding_) {
        in.drain(available);
        return available > 0 ? Decoded::frame() : Decoded::need_more();
    }
    if (available <= fed_) return Decoded::need_more();

    base_ = in.peek(available).data();
    // The limits hold however the request was split into reads: the header section (through its
    // blank line) is at most max_header_bytes, checked where it ends or as soon as that many bytes
    // are buffered without its end; the same for the whole request and max_request.
    const std::size_t max_request = 2 * (limits_.max_header_bytes + limits_.max_body);
    llhttp_errno_t status = llhttp_execute(&parser_, base_ + fed_, available - fed_);
    if (status == HPE_PAUSED && paused_at_headers_end_) {
        paused_at_headers_end_ = false;
        const char* body = llhttp_get_error_pos(&parser_);
        if (offset_of(body) > limits_.max_header_bytes) return fail(Failure::headers_too_large);
        llhttp_resume(&parser_);
        status = llhttp_execute(&parser_, body, available - offset_of(body));
    }
    if (status == HPE_OK) {
        fed_ = available;
        if (!headers_complete_ && fed_ >= limits_.max_header_bytes) {
            return fail(Failure::headers_too_large);
        }
        if (fed_ >= max_request) return fail(Failure::body_too_large);
        if (continue_wanted_ && !continue_sent_) {
            continue_sent_ = true;
            out.write_interim("HTTP/1.1 100 Continue\r\n\r\n");
        }
        return Decoded::need_more();
    }
    if (status == HPE_PAUSED) {
        const std::size_t end = offset_of(llhttp_get_error_pos(&parser_));
        if (end > max_request) return fail(Failure::body_too_large);
        deliver_request(out);
        in.drain(end);
        reset_request();
        if (discarding_) {
            in.drain(in.size());
        } else {
            llhttp_resume(&parser_);
        }
        return Decoded::frame();
    }
    if (failure_ != Failure::none) return fail(failure_, failure_detail_ ? failure_detail_ : "");
    return fail(Failure::bad_request, llhttp_get_error_reason(&parser_));
}

void HttpProtocol::deliver_request(MessageSink& out) {
    request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    request_.target = view(target_);
    request_.version_major = parser_.http_major;
    request_.version_minor = parser_.http_minor;
    request_.headers.clear();
    for (const HeaderSpans& h : headers_) {
        request_.headers.push_back({view(h.name), trim_trailing_whitespace(view(h.value))});
    }
    request_.body = body_in_arena_ ? std::string_view(body_arena_) : view(body_);
    // An upgrade would switch the connection to a protocol this codec does not speak.
    request_.keep_alive = llhttp_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0;
    discarding_ = !request_.keep_alive;

    reply_to_head_ = parser_.method == HTTP_HEAD;
    if (!request_.keep_alive) {
        reply_header_lines_ = kReplyHeadersClose;
    } else if (request_.version_major == 1 && request_.version_minor == 0) {
        reply_header_lines_ = kReplyHeadersKeepAlive;
    } else {
        reply_header_lines_ = kReplyHeaders;
    }

    Message message;
    message.payload = request_.body;
    message.http = &request_;
    out.deliver(message);
}

void HttpProtocol::reset_request() {
    fed_ = 0;
    target_ = {};
    headers_.clear();
    headers_complete_ = false;
    paused_at_headers_end_ = false;
    body_ = {};
    body_in_arena_ = false;
    // A large chunked body should not pin its memory for the connection's whole life.
    if (body_arena_.capacity() > 64 * 1024) {
        std::string().swap(body_arena_);
    } else {
        body_arena_.clear();
    }
    chunk_total_ = 0;
    continue_wanted_ = false;
    continue_sent_ = false;
}

Decoded HttpProtocol::fail(Failure failure, std::string_view detail) {
    failed_ = true;
    switch (failure) {
        case Failure::headers_too_large:
            error_ = {"request header fields too large", error_reply(431)};
            break;
        case Failure::body_too_large:
            error_ = {"payload too large", error_reply(413)};
            break;
        case Failure::bad_request:
        case Failure::none:
            error_ = {"bad request: " + std::string(detail), error_reply(400)};
            break;
    }
    return Decoded::fail(error_.reason, error_.last_reply);
}

void HttpProtocol::encode(std::string_view payload, Buffer& out) {
    static constexpr std::size_t kCopyBodyBelow = 4096;
    thread_local std::string head;
    head.clear();
    append_http_head(head, 200, "OK", reply_header_lines_, payload.size());
    if (reply_to_head_) {
        out.append(head);
    } else if (payload.size() < kCopyBodyBelow) {
        // One append for the whole response: cheaper than two for a small body.
        head.append(payload);
        out.append(head);
    } else {
        out.append(head);
        out.append(payload);
    }
}

bool HttpProtocol::encode_to(std::string_view payload, std::string& out) {
    append_http_head(out, 200, "OK", reply_header_lines_, payload.size());
    if (!reply_to_head_) out.append(payload);
    return true;
}

}  // namespace

std::unique_ptr<Protocol> make_http_protocol(const HttpLimits& limits) {
    return std::make_unique<HttpProtocol>(limits);
}

std::shared_ptr<const ProtocolFactory> make_http(const ProtocolConfig& config) {
    class Factory final : public ProtocolFactory {
      public:
        explicit Factory(const HttpLimits& limits) : limits_(limits) {}
        std::string_view name() const override { return "http"; }
        std::unique_ptr<Protocol> create() const override { return make_http_protocol(limits_); }

      private:
        HttpLimits limits_;
    };

    Options options(config.options);
    HttpLimits limits;
    limits.max_header_bytes =
        options.integer("max_header_bytes", limits.max_header_bytes, 256, 1024 * 1024);
    limits.max_body = options.integer("max_body", std::min(limits.max_body, config.max_frame), 0,
                                      config.max_frame);
    options.finish();
    return std::make_shared<Factory>(limits);
}

}  // namespace reactor::protocols
