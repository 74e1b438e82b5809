#include "http_response.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
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

// RFC 9110 §8.6: a 1xx or 204 response has no content, and no Content-Length.
bool has_content(int status) {
    return status >= 200 && status != 204;
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
    char status_digits[24];
    const std::string_view status_text(
        status_digits,
        static_cast<std::size_t>(std::to_chars(status_digits, status_digits + 24, status).ptr -
                                 status_digits));
    char length_digits[24];
    std::string_view length_text;
    const bool content = has_content(status);
    if (content) {
        length_text = {
            length_digits,
            static_cast<std::size_t>(
                std::to_chars(length_digits, length_digits + 24, body.size()).ptr - length_digits)};
    }
    out.append_pieces({"HTTP/1.1 ", status_text, " ", reason, "\r\nDate: ", http_date_now(), "\r\n",
                       header_lines, connection_line, content ? "Content-Length: " : "",
                       length_text, content ? "\r\n\r\n" : "\r\n",
                       content && !omit_body ? body : std::string_view()});
}

HttpResponse::HttpResponse(int status, std::string_view reason) : status_(status) {
    if (status < 100 || status > 999) throw std::invalid_argument("HTTP status out of range");
    if (reason.empty()) reason = http_reason_phrase(status);
    if (has_line_break(reason)) throw std::invalid_argument("HTTP reason phrase with CR or LF");
    head_.reserve(21 + reason.size());
    head_.append("HTTP/1.1 ");
    append_number(head_, static_cast<std::size_t>(status));
    head_.push_back(' ');
    head_.append(reason);
    head_.append("\r\nDate: ");
    set_length_line();
}

std::string_view HttpResponse::reason() const {
    // Between "HTTP/1.1 NNN " and "\r\nDate: ".
    return std::string_view(head_).substr(13, head_.size() - 13 - 8);
}

void HttpResponse::set_length_line() {
    char* p = length_line_;
    if (has_content(status_)) {
        static constexpr std::string_view kName = "Content-Length: ";
        std::memcpy(p, kName.data(), kName.size());
        p = std::to_chars(p + kName.size(), length_line_ + sizeof length_line_ - 4, body_.size())
                .ptr;
        std::memcpy(p, "\r\n", 2);
        p += 2;
    }
    std::memcpy(p, "\r\n", 2);
    length_line_size_ = static_cast<unsigned char>(p + 2 - length_line_);
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
    set_length_line();
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
    const bool with_body = !omit_body && has_content(status_);
    out.append_pieces({head_, http_date_now(), headers_, connection_line,
                       std::string_view(length_line_, length_line_size_),
                       with_body ? std::string_view(body_) : std::string_view()});
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
    // The Date line and a Connection line: at most about 64 bytes.
    return 64 + head_.size() + headers_.size() + length_line_size_ + body_.size();
}

void send_response(Connection& conn, const HttpRequest& request, const HttpResponse& response) {
    conn.send_frame(response.size_hint(),
                    [&](FrameOutput& out) { response.write_to(out, request); });
    if (response.closes_connection()) conn.close();
}

}  // namespace reactor::protocols
