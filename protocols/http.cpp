#include "http.hpp"

#include <llhttp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
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

enum class Failure {
    none,
    headers_too_large,
    body_too_large,
    bad_request,
    not_implemented,        // a transfer coding other than chunked
    version_not_supported,  // HTTP/2 and later in HTTP/1 syntax, or HTTP/0.9
};

// Where the codec's own chunked decoder is within a chunked body.
enum class ChunkState { size_line, data, data_crlf, trailers };

// A chunk-size line, extensions included, is at most this long (RFC 9112 §7.1.1 sets no limit;
// nothing legitimate comes near it).
constexpr std::size_t kMaxChunkLine = 4096;

// tchar of RFC 9110 §5.6.2: the characters of a field name, a method, a chunk extension name.
constexpr bool is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

constexpr bool is_ws(char c) {
    return c == ' ' || c == '\t';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// uri-host [ ":" port ] (RFC 9110 §7.2): reg-name, IPv4 or IP-literal characters. Not empty: an
// "http" URI has a host (RFC 9110 §4.2.1), and this server is reached through one.
bool valid_host(std::string_view host) {
    // One table lookup per byte: this runs on every request.
    static constexpr auto kAllowed = [] {
        std::array<bool, 256> allowed{};
        for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
        for (int c = 'a'; c <= 'z'; ++c) allowed[c] = allowed[c - 'a' + 'A'] = true;
        for (const char c : std::string_view("-._~%!$&'()*+,;=:[]")) {
            allowed[static_cast<unsigned char>(c)] = true;
        }
        return allowed;
    }();
    if (host.empty()) return false;
    for (const char c : host) {
        if (!kAllowed[static_cast<unsigned char>(c)]) return false;
    }
    return true;
}

// "Host" in any letter case, without a call: every request has one.
bool is_host_name(std::string_view name) {
    return name.size() == 4 && (name[0] | 0x20) == 'h' && (name[1] | 0x20) == 'o' &&
           (name[2] | 0x20) == 's' && (name[3] | 0x20) == 't';
}

// absolute-form (RFC 9112 §3.2.2) as llhttp lets it through: scheme "://" and the rest.
bool absolute_form(std::string_view target) {
    const auto colon = target.find("://");
    if (colon == 0 || colon == std::string_view::npos) return false;
    const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!alpha(target[0])) return false;
    for (const char c : target.substr(0, colon)) {
        if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return false;
    }
    return true;
}

std::string_view trim_trailing_whitespace(std::string_view value) {
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return value;
}

// The header line of encode()'s replies, before their Connection line.
constexpr std::string_view kReplyHeaders = "Content-Type: text/plain\r\n";

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
    void encode(std::string_view payload, FrameOutput& out) override;
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
    static int on_body(llhttp_t* parser, const char* at, std::size_t n);
    static int on_message_complete(llhttp_t* parser);

    std::size_t offset_of(const char* at) const { return static_cast<std::size_t>(at - base_); }
    std::string_view view(Span span) const { return {base_ + span.begin, span.size()}; }
    // Records a header-phase fragment; false (and a failure) when it ends past the header limit.
    bool within_header_limit(const char* at, std::size_t n);
    int fail_in_callback(Failure failure, int code, const char* detail = nullptr) {
        failure_ = failure;
        failure_detail_ = detail;
        return code;
    }
    // Checks the request line and headers as a whole, once they have all arrived.
    int check_headers();
    int check_version();
    bool transfer_coding_is_chunked() const;
    void add_body(std::size_t offset, std::size_t n);
    llhttp_errno_t retry_as_http11(std::size_t available);

    // The codec's own chunked decoder (llhttp 8.1 does not check the CRLF after chunk data and
    // refuses valid chunk extensions), from chunk_pos_ on.
    Decoded decode_chunked(Buffer& in, MessageSink& out, std::size_t available);
    enum class Step { done, need_more, failed };
    Step chunk_size_line(std::size_t available);
    Step trailer_line(std::size_t available);
    Decoded complete_request(Buffer& in, MessageSink& out, std::size_t end);
    Decoded need_more(MessageSink& out);

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
    std::size_t host_count_ = 0;
    std::size_t host_index_ = 0;  // of the Host header in headers_, when host_count_ == 1
    bool chunked_ = false;        // the body is chunked: decode_chunked() reads it, not llhttp
    ChunkState chunk_state_ = ChunkState::size_line;
    std::size_t chunk_pos_ = 0;    // next byte for decode_chunked()
    std::size_t chunk_left_ = 0;   // data bytes of the current chunk not yet read
    std::size_t chunk_total_ = 0;  // sum of the declared chunk sizes so far
    std::size_t trailers_begin_ = 0;
    std::size_t line_scan_ = 0;  // how far the current trailer line has been checked
    bool line_colon_ = false;    // the current trailer line's colon has been seen
    // "Expect: 100-continue": the client waits for a go-ahead before sending its body.
    bool continue_wanted_ = false;
    bool continue_sent_ = false;
    Failure failure_ = Failure::none;
    const char* failure_detail_ = nullptr;

    // After a request that ends the connection, the rest of the input is discarded, should
    // decode() be called again (a connection does not call it after last_frame()).
    bool discarding_ = false;
    bool failed_ = false;
    ProtocolError error_;
    HttpRequest request_;

    // What the next encode() must say, from the last delivered request; HTTP/1.0 clients need
    // keep-alive spelled out.
    bool reply_to_head_ = false;
    std::string_view reply_connection_line_;
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

int HttpProtocol::check_version() {
    if (parser_.http_major == 1) return HPE_OK;
    // llhttp takes HTTP/0.9 and "HTTP/2.0" too; neither is HTTP/1 (RFC 9112 §2.3). A line end
    // right after the target makes an HTTP/0.9 request line ("GET /"), with no version at all.
    const char after_target = base_[target_.end];
    if (after_target == '\r' || after_target == '\n') {
        return fail_in_callback(Failure::version_not_supported, HPE_USER, "HTTP/0.9 request line");
    }
    if (parser_.http_major == 0) {
        return fail_in_callback(Failure::bad_request, HPE_USER, "invalid HTTP version");
    }
    return fail_in_callback(Failure::version_not_supported, HPE_USER);
}

int HttpProtocol::on_header_field(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    if (!self.within_header_limit(at, n)) return HPE_USER;
    // llhttp accepts "Name :"; RFC 9112 requires rejecting it, as proxies disagree on its meaning.
    // Its field-name table lets SP through (HTAB it refuses); memchr is the cheap search.
    if (n > 0 && std::memchr(at, ' ', n) != nullptr) {
        return self.fail_in_callback(Failure::bad_request, HPE_USER,
                                     "whitespace between header field name and colon");
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
    // llhttp lets ": value" through, with no name at all.
    if (self.headers_.empty() || self.headers_.back().name_complete ||
        self.headers_.back().name.size() == 0) {
        return self.fail_in_callback(Failure::bad_request, HPE_USER, "empty header field name");
    }
    HeaderSpans& header = self.headers_.back();
    header.name_complete = true;
    if (is_host_name(self.view(header.name))) {
        ++self.host_count_;
        self.host_index_ = self.headers_.size() - 1;
    }
    return HPE_OK;
}

int HttpProtocol::on_header_value(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    if (n == 0 || self.headers_.empty()) return HPE_OK;
    if (!self.within_header_limit(at, n)) return HPE_USER;
    const std::size_t offset = self.offset_of(at);
    Span& value = self.headers_.back().value;
    if (value.size() == 0) {
        value = {offset, offset + n};
    } else if (offset == value.end) {
        value.end = offset + n;
    } else {
        // A value continued on the next line (obs-fold): RFC 9112 lets a server reject it.
        return self.fail_in_callback(Failure::bad_request, HPE_USER,
                                     "header value folded over lines");
    }
    return HPE_OK;
}

bool HttpProtocol::transfer_coding_is_chunked() const {
    // All Transfer-Encoding lines form one list (RFC 9110 §5.3); empty elements do not count.
    std::size_t codings = 0;
    bool chunked = false;
    for (const HeaderSpans& h : headers_) {
        if (!ascii_iequals(view(h.name), "Transfer-Encoding")) continue;
        std::string_view list = view(h.value);
        while (!list.empty()) {
            const auto comma = list.find(',');
            std::string_view element = list.substr(0, comma);
            list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            while (!element.empty() && is_ws(element.front())) element.remove_prefix(1);
            while (!element.empty() && is_ws(element.back())) element.remove_suffix(1);
            if (element.empty()) continue;
            ++codings;
            chunked = ascii_iequals(element, "chunked");
        }
    }
    return codings == 1 && chunked;
}

int HttpProtocol::check_headers() {
    if (const int status = check_version(); status != HPE_OK) return status;
    const bool http11 = parser_.http_minor >= 1;
    // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1, at most one in HTTP/1.0.
    if (host_count_ > 1) {
        return fail_in_callback(Failure::bad_request, HPE_USER, "more than one Host header");
    }
    if (host_count_ == 0 && http11) {
        return fail_in_callback(Failure::bad_request, HPE_USER, "no Host header");
    }
    if (host_count_ == 1 &&
        !valid_host(trim_trailing_whitespace(view(headers_[host_index_].value)))) {
        return fail_in_callback(Failure::bad_request, HPE_USER, "invalid Host header");
    }
    // origin-form is the rule; asterisk-form only for OPTIONS, authority-form only for CONNECT.
    const std::string_view target = view(target_);
    if (target.empty() || target.front() != '/') {
        if (target == "*") {
            if (parser_.method != HTTP_OPTIONS) {
                return fail_in_callback(Failure::bad_request, HPE_USER, "* target without OPTIONS");
            }
        } else if (parser_.method != HTTP_CONNECT && !absolute_form(target)) {
            return fail_in_callback(Failure::bad_request, HPE_USER, "invalid request target");
        }
    }
    // llhttp flags no Transfer-Encoding whose value is empty: HTTP/1.0 looks at the names too.
    const bool transfer_encoding =
        (parser_.flags & F_TRANSFER_ENCODING) != 0 ||
        (!http11 && std::any_of(headers_.begin(), headers_.end(), [this](const HeaderSpans& h) {
            return ascii_iequals(view(h.name), "Transfer-Encoding");
        }));
    if (transfer_encoding) {
        // RFC 9112 §6.1: HTTP/1.0 has no chunked framing; the framing is faulty.
        if (!http11) {
            return fail_in_callback(Failure::bad_request, HPE_USER,
                                    "Transfer-Encoding in an HTTP/1.0 request");
        }
        // Only chunked is implemented: anything else would reach the app still encoded.
        if (!transfer_coding_is_chunked()) {
            return fail_in_callback(Failure::not_implemented, HPE_USER, "transfer coding");
        }
    }
    return HPE_OK;
}

int HttpProtocol::on_headers_complete(llhttp_t* parser) {
    HttpProtocol& self = of(parser);
    self.headers_complete_ = true;
    if (const int status = self.check_headers(); status != HPE_OK) return status;
    if ((parser->flags & F_CONTENT_LENGTH) != 0 && parser->content_length > self.limits_.max_body) {
        return self.fail_in_callback(Failure::body_too_large, -1);
    }
    self.chunked_ = (parser->flags & F_CHUNKED) != 0;
    const bool has_body =
        self.chunked_ || ((parser->flags & F_CONTENT_LENGTH) != 0 && parser->content_length > 0);
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

void HttpProtocol::add_body(std::size_t offset, std::size_t n) {
    if (!body_in_arena_) {
        if (body_.size() == 0) {
            body_ = {offset, offset + n};
            return;
        }
        if (offset == body_.end) {
            body_.end = offset + n;
            return;
        }
        // A second chunk: the body is no longer contiguous in the input.
        body_arena_.assign(view(body_));
        body_in_arena_ = true;
    }
    body_arena_.append(base_ + offset, n);
}

int HttpProtocol::on_body(llhttp_t* parser, const char* at, std::size_t n) {
    HttpProtocol& self = of(parser);
    self.add_body(self.offset_of(at), n);
    return HPE_OK;
}

int HttpProtocol::on_message_complete(llhttp_t*) {
    // Stop right after this request, so one decode() call consumes exactly one request.
    return HPE_PAUSED;
}

llhttp_errno_t HttpProtocol::retry_as_http11(std::size_t available) {
    // llhttp knows versions 0.9, 1.0, 1.1 and 2.0 only and stops right after the minor digit.
    const std::size_t at = offset_of(llhttp_get_error_pos(&parser_));
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (at < 4 || at > available || base_[at - 4] != '/' || !digit(base_[at - 3]) ||
        base_[at - 2] != '.' || !digit(base_[at - 1])) {
        return HPE_INVALID_VERSION;
    }
    if (base_[at - 3] >= '2') {
        failure_ = Failure::version_not_supported;
        return HPE_USER;
    }
    if (base_[at - 3] != '1') return HPE_INVALID_VERSION;
    // HTTP/1.2 to 1.9 are served as 1.1 (RFC 9110 §2.5): the request line is parsed again with
    // "1" fed in place of its minor digit. No callback keeps a pointer into that one byte.
    static constexpr char kOne = '1';
    llhttp_reset(&parser_);
    target_ = {};
    llhttp_errno_t status = llhttp_execute(&parser_, base_, at - 1);
    if (status == HPE_OK) status = llhttp_execute(&parser_, &kOne, 1);
    if (status == HPE_OK) status = llhttp_execute(&parser_, base_ + at, available - at);
    return status;
}

Decoded HttpProtocol::need_more(MessageSink& out) {
    if (continue_wanted_ && !continue_sent_) {
        continue_sent_ = true;
        out.write_interim("HTTP/1.1 100 Continue\r\n\r\n");
    }
    return Decoded::need_more();
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
    if (chunked_) return decode_chunked(in, out, available);
    // The limits hold however the request was split into reads: the header section (through its
    // blank line) is at most max_header_bytes, checked where it ends or as soon as that many bytes
    // are buffered without its end; the same for the whole request and max_request.
    const std::size_t max_request = 2 * (limits_.max_header_bytes + limits_.max_body);
    llhttp_errno_t status = llhttp_execute(&parser_, base_ + fed_, available - fed_);
    if (status == HPE_INVALID_VERSION) status = retry_as_http11(available);
    if (status == HPE_PAUSED && paused_at_headers_end_) {
        paused_at_headers_end_ = false;
        const char* body = llhttp_get_error_pos(&parser_);
        if (offset_of(body) > limits_.max_header_bytes) return fail(Failure::headers_too_large);
        if (chunked_) {
            chunk_pos_ = offset_of(body);
            fed_ = chunk_pos_;
            return decode_chunked(in, out, available);
        }
        llhttp_resume(&parser_);
        status = llhttp_execute(&parser_, body, available - offset_of(body));
    }
    // An HTTP/0.9 request line has ended: llhttp would read what follows as header lines and wait
    // for a blank line (for ever, without an idle timeout). Refused now, whatever follows it.
    if (status != HPE_PAUSED && !headers_complete_ && parser_.http_major == 0 &&
        parser_.http_minor == 9 && target_.size() > 0 && check_version() != HPE_OK) {
        return fail(failure_, failure_detail_);
    }
    if (status == HPE_OK) {
        fed_ = available;
        if (!headers_complete_ && fed_ >= limits_.max_header_bytes) {
            return fail(Failure::headers_too_large);
        }
        if (fed_ >= max_request) return fail(Failure::body_too_large);
        return need_more(out);
    }
    if (status == HPE_PAUSED) {
        const std::size_t end = offset_of(llhttp_get_error_pos(&parser_));
        if (end > max_request) return fail(Failure::body_too_large);
        return complete_request(in, out, end);
    }
    if (failure_ != Failure::none) return fail(failure_, failure_detail_ ? failure_detail_ : "");
    // llhttp refuses a Transfer-Encoding that does not end in chunked, or has one after it.
    if (status == HPE_INVALID_TRANSFER_ENCODING) {
        return fail(Failure::not_implemented, llhttp_get_error_reason(&parser_));
    }
    return fail(Failure::bad_request, llhttp_get_error_reason(&parser_));
}

Decoded HttpProtocol::complete_request(Buffer& in, MessageSink& out, std::size_t end) {
    deliver_request(out);
    in.drain(end);
    const bool own_framing = chunked_;
    reset_request();
    if (discarding_) {
        // The request ends the connection once its reply is out: nothing after it is decoded. The
        // bytes after an upgrade stay for the protocol the application may have switched to while
        // the request was delivered, which outweighs the end.
        return Decoded::last_frame();
    }
    if (own_framing) {
        llhttp_reset(&parser_);  // still paused where the headers ended
    } else {
        llhttp_resume(&parser_);
    }
    return Decoded::frame();
}

// chunk-size [ chunk-ext ] CRLF, where chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
// and value = token / quoted-string (RFC 9112 §7.1.1); whitespace before the CRLF is let through.
HttpProtocol::Step HttpProtocol::chunk_size_line(std::size_t available) {
    const char* p = base_ + chunk_pos_;
    const char* const end = base_ + std::min(available, chunk_pos_ + kMaxChunkLine);
    const bool capped = end != base_ + available;
    const auto bad = [this](const char* detail) {
        failure_ = Failure::bad_request;
        failure_detail_ = detail;
        return Step::failed;
    };
    const auto more = [&] { return capped ? bad("chunk line too long") : Step::need_more; };
    const std::size_t room = limits_.max_body - chunk_total_;
    std::uint64_t size = 0;
    const char* digits = p;
    for (int v; p != end && (v = hex_value(*p)) >= 0; ++p) {
        size = size * 16 + static_cast<unsigned>(v);
        // Fails as soon as the size passes what is left, so the value cannot overflow.
        if (size > room) {
            failure_ = Failure::body_too_large;
            return Step::failed;
        }
    }
    if (p == end) return more();
    if (p == digits) return bad("invalid chunk size");
    const auto skip_ws = [&] {
        while (p != end && is_ws(*p)) ++p;
    };
    const auto token = [&] {
        const char* start = p;
        while (p != end && is_tchar(static_cast<unsigned char>(*p))) ++p;
        return p != start;
    };
    while (true) {
        skip_ws();
        if (p == end) return more();
        if (*p == '\r') {
            if (p + 1 == end) return more();
            if (p[1] != '\n') return bad("expected LF after chunk size");
            p += 2;
            break;
        }
        if (*p != ';') return bad("invalid character in chunk size");
        ++p;
        skip_ws();
        if (!token()) return p == end ? more() : bad("invalid chunk extension name");
        skip_ws();
        if (p == end) return more();
        if (*p != '=') continue;
        ++p;
        skip_ws();
        if (p == end) return more();
        if (*p == '"') {
            for (++p;; ++p) {
                if (p == end) return more();
                const auto c = static_cast<unsigned char>(*p);
                if (c == '"') break;
                if (c == '\\') {
                    if (++p == end) return more();
                    const auto q = static_cast<unsigned char>(*p);
                    if (q != '\t' && (q < 0x20 || q == 0x7f)) return bad("invalid quoted-pair");
                } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
                    return bad("invalid character in chunk extension value");
                }
            }
            ++p;
        } else if (!token()) {
            return p == end ? more() : bad("invalid chunk extension value");
        }
    }
    chunk_total_ += static_cast<std::size_t>(size);
    chunk_pos_ = static_cast<std::size_t>(p - base_);
    chunk_left_ = static_cast<std::size_t>(size);
    chunk_state_ = size == 0 ? ChunkState::trailers : ChunkState::data;
    trailers_begin_ = chunk_pos_;
    line_scan_ = chunk_pos_;
    line_colon_ = false;
    return Step::done;
}

// One trailer field line, or the blank line that ends the trailers, checked as header lines are
// (RFC 9112 §5): a token name, the colon right after it, then visible characters, SP and HTAB.
// Checked bytes are not looked at again when the line arrives in pieces.
HttpProtocol::Step HttpProtocol::trailer_line(std::size_t available) {
    const auto bad = [this](const char* detail) {
        failure_ = Failure::bad_request;
        failure_detail_ = detail;
        return Step::failed;
    };
    std::size_t i = std::max(line_scan_, chunk_pos_);
    for (; i < available; ++i) {
        const auto c = static_cast<unsigned char>(base_[i]);
        if (c == '\r') {
            if (i + 1 == available) break;
            if (base_[i + 1] != '\n') return bad("expected LF in trailer section");
            if (i != chunk_pos_ && !line_colon_) return bad("trailer field without a colon");
            if (i + 2 - trailers_begin_ > limits_.max_header_bytes) {
                failure_ = Failure::headers_too_large;
                return Step::failed;
            }
            chunk_pos_ = i + 2;
            line_scan_ = chunk_pos_;
            const bool blank = !line_colon_;
            line_colon_ = false;
            if (blank) chunk_state_ = ChunkState::size_line;  // the request is complete
            return Step::done;
        }
        if (!line_colon_) {
            if (c == ':') {
                if (i == chunk_pos_) return bad("empty trailer field name");
                line_colon_ = true;
            } else if (is_ws(static_cast<char>(c))) {
                return bad(i == chunk_pos_ ? "trailer folded over lines"
                                           : "whitespace between trailer field name and colon");
            } else if (!is_tchar(c)) {
                return bad("invalid character in trailer field name");
            }
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return bad("invalid character in trailer field value");
        }
    }
    line_scan_ = i;
    if (available - trailers_begin_ > limits_.max_header_bytes) {
        failure_ = Failure::headers_too_large;
        return Step::failed;
    }
    return Step::need_more;
}

Decoded HttpProtocol::decode_chunked(Buffer& in, MessageSink& out, std::size_t available) {
    const std::size_t max_request = 2 * (limits_.max_header_bytes + limits_.max_body);
    while (true) {
        Step step = Step::done;
        switch (chunk_state_) {
            case ChunkState::size_line:
                step = chunk_size_line(available);
                break;
            case ChunkState::data: {
                const std::size_t n = std::min(chunk_left_, available - chunk_pos_);
                if (n > 0) add_body(chunk_pos_, n);
                chunk_pos_ += n;
                chunk_left_ -= n;
                if (chunk_left_ > 0) {
                    step = Step::need_more;
                } else {
                    chunk_state_ = ChunkState::data_crlf;
                }
                break;
            }
            case ChunkState::data_crlf:
                // llhttp 8.1 skips these two bytes unchecked: "3\r\nabcXX" would end the chunk.
                if (chunk_pos_ < available && base_[chunk_pos_] != '\r') {
                    step = Step::failed;
                } else if (available - chunk_pos_ < 2) {
                    step = Step::need_more;
                } else if (base_[chunk_pos_ + 1] != '\n') {
                    step = Step::failed;
                } else {
                    chunk_pos_ += 2;
                    chunk_state_ = ChunkState::size_line;
                }
                if (step == Step::failed) {
                    failure_ = Failure::bad_request;
                    failure_detail_ = "expected CRLF after chunk data";
                }
                break;
            case ChunkState::trailers: {
                step = trailer_line(available);
                if (step == Step::done && chunk_state_ == ChunkState::size_line) {
                    if (chunk_pos_ > max_request) return fail(Failure::body_too_large);
                    return complete_request(in, out, chunk_pos_);
                }
                break;
            }
        }
        if (step == Step::failed) return fail(failure_, failure_detail_ ? failure_detail_ : "");
        if (chunk_pos_ > max_request) return fail(Failure::body_too_large);
        if (step == Step::need_more) {
            fed_ = available;
            if (available >= max_request) return fail(Failure::body_too_large);
            return need_more(out);
        }
    }
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
    // After an upgrade this codec reads nothing more: the application switches protocols, or the
    // connection ends after its reply.
    request_.upgrade = parser_.upgrade != 0;
    request_.keep_alive = llhttp_should_keep_alive(&parser_) != 0 && !request_.upgrade;
    discarding_ = !request_.keep_alive;

    reply_to_head_ = parser_.method == HTTP_HEAD;
    if (!request_.keep_alive) {
        reply_connection_line_ = kConnectionClose;
    } else if (request_.version_major == 1 && request_.version_minor == 0) {
        reply_connection_line_ = kConnectionKeepAlive;
    } else {
        reply_connection_line_ = {};
    }

    Message message;
    message.payload = request_.body;
    message.set(&request_);
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
    host_count_ = 0;
    chunked_ = false;
    chunk_state_ = ChunkState::size_line;
    chunk_pos_ = 0;
    chunk_left_ = 0;
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
        case Failure::not_implemented:
            error_ = {"not implemented: " + std::string(detail), error_reply(501)};
            break;
        case Failure::version_not_supported:
            error_ = {"HTTP version not supported", error_reply(505)};
            break;
        case Failure::bad_request:
        case Failure::none:
            error_ = {"bad request: " + std::string(detail), error_reply(400)};
            break;
    }
    return Decoded::fail(error_.reason, error_.last_reply);
}

void HttpProtocol::encode(std::string_view payload, FrameOutput& out) {
    write_http_response(out, 200, "OK", kReplyHeaders, reply_connection_line_, payload,
                        reply_to_head_);
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
