#include "http_response.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "http_date.hpp"

namespace reactor::protocols {

namespace {

// RFC 9110 token characters.
bool is_token_char(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// find_first_of("\r\n") would call memchr once per character.
bool has_line_break(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return c == '\r' || c == '\n'; });
}

void append_number(std::string& out, std::size_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out.append(digits, static_cast<std::size_t>(end - digits));
}

}  // namespace

std::string_view http_reason_phrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

void write_http_response(FrameOutput& out, int status, std::string_view reason,
                         std::string_view header_lines, std::string_view connection_line,
                         std::string_view body, bool omit_body) {
    static constexpr std::size_t kCopyBodyBelow = 4096;
    thread_local std::string head;
    head.clear();
    head.append("HTTP/1.1 ");
    append_number(head, static_cast<std::size_t>(status));
    head.push_back(' ');
    head.append(reason);
    head.append("\r\nDate: ");
    head.append(http_date_now());
    head.append("\r\n");
    head.append(header_lines);
    head.append(connection_line);
    // RFC 9110 §8.6: no Content-Length in a 1xx or 204 response, which has no content.
    const bool no_content = status < 200 || status == 204;
    if (!no_content) {
        head.append("Content-Length: ");
        append_number(head, body.size());
        head.append("\r\n");
    }
    head.append("\r\n");
    if (omit_body || no_content) {
        out.append(head);
    } else if (body.size() < kCopyBodyBelow) {
        head.append(body);
        out.append(head);
    } else {
        out.append(head);
        out.append(body);
    }
    // A large body must not pin its memory in every thread that wrote one.
    if (head.capacity() > 2 * kCopyBodyBelow) std::string().swap(head);
}

HttpResponse::HttpResponse(int status, std::string_view reason)
    : status_(status), reason_(reason.empty() ? http_reason_phrase(status) : reason) {
    if (status < 100 || status > 999) throw std::invalid_argument("HTTP status out of range");
    if (has_line_break(reason_)) {
        throw std::invalid_argument("HTTP reason phrase with CR or LF");
    }
}

HttpResponse& HttpResponse::header(std::string_view name, std::string_view value) {
    if (name.empty()) throw std::invalid_argument("empty HTTP header name");
    for (const char c : name) {
        if (!is_token_char(c)) throw std::invalid_argument("malformed HTTP header name");
    }
    if (has_line_break(value)) {
        throw std::invalid_argument("HTTP header value with CR or LF");
    }
    if (ascii_iequals(name, "Date") || ascii_iequals(name, "Content-Length")) {
        throw std::invalid_argument("the response builder writes Date and Content-Length itself");
    }
    headers_.append(name);
    headers_.append(": ");
    headers_.append(value);
    headers_.append("\r\n");
    return *this;
}

HttpResponse& HttpResponse::close_connection() {
    persistence_ = Persistence::close;
    return *this;
}

HttpResponse& HttpResponse::connection_for(const HttpRequest& request) {
    persistence_ = persistence_for(request);
    return *this;
}

HttpResponse& HttpResponse::body(std::string_view body) {
    body_.assign(body);
    return *this;
}

HttpResponse& HttpResponse::omit_body(bool omit) {
    omit_body_ = omit;
    return *this;
}

HttpResponse::Persistence HttpResponse::persistence_for(const HttpRequest& request) const {
    if (persistence_ == Persistence::close) return Persistence::close;
    // An answer that hands the connection to the next protocol says nothing of closing it.
    const bool hands_on = status_ == 101 || (status_ / 100 == 2 && request.method == "CONNECT");
    if (request.upgrade && hands_on) return persistence_;
    if (!request.keep_alive) return Persistence::close;
    if (request.version_major == 1 && request.version_minor == 0) return Persistence::keep_alive;
    return persistence_;
}

void HttpResponse::write(FrameOutput& out, Persistence persistence, bool omit_body) const {
    const std::string_view connection_line = persistence == Persistence::close ? kConnectionClose
                                             : persistence == Persistence::keep_alive
                                                 ? kConnectionKeepAlive
                                                 : std::string_view();
    write_http_response(out, status_, reason_, headers_, connection_line, body_, omit_body);
}

void HttpResponse::write_to(FrameOutput& out) const {
    write(out, persistence_, omit_body_);
}

void HttpResponse::write_to(FrameOutput& out, const HttpRequest& request) const {
    write(out, persistence_for(request), omit_body_ || request.method == "HEAD");
}

std::string HttpResponse::to_string() const {
    std::string bytes;
    FrameOutput out(bytes);
    write_to(out);
    return bytes;
}

std::size_t HttpResponse::size_hint() const {
    // Status line, Date, Connection and Content-Length lines: at most about 128 bytes.
    return 128 + reason_.size() + headers_.size() + body_.size();
}

void send_response(Connection& conn, const HttpRequest& request, const HttpResponse& response) {
    conn.send_frame(response.size_hint(),
                    [&](FrameOutput& out) { response.write_to(out, request); });
    if (response.closes_connection()) conn.close();
}

}  // namespace reactor::protocols
