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

void append_http_head(std::string& out, int status, std::string_view reason,
                      std::string_view header_lines, std::size_t content_length) {
    out.append("HTTP/1.1 ");
    append_number(out, static_cast<std::size_t>(status));
    out.push_back(' ');
    out.append(reason);
    out.append("\r\nDate: ");
    out.append(http_date_now());
    out.append("\r\n");
    out.append(header_lines);
    out.append("Content-Length: ");
    append_number(out, content_length);
    out.append("\r\n\r\n");
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
    return header("Connection", "close");
}

HttpResponse& HttpResponse::connection_for(const HttpRequest& request) {
    if (!request.keep_alive) return close_connection();
    if (request.version_major == 1 && request.version_minor == 0) {
        return header("Connection", "keep-alive");
    }
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

void HttpResponse::write_head(std::string& out) const {
    append_http_head(out, status_, reason_, headers_, body_.size());
}

void HttpResponse::write_to(std::string& out) const {
    write_head(out);
    if (!omit_body_) out.append(body_);
}

void HttpResponse::write_to(Buffer& out) const {
    std::string head;
    head.reserve(128 + headers_.size());
    write_head(head);
    out.append(head);
    if (!omit_body_) out.append(body_);
}

std::string HttpResponse::to_string() const {
    std::string out;
    write_to(out);
    return out;
}

}  // namespace reactor::protocols
