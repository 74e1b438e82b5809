#include "websocket_handshake.hpp"

#include <openssl/evp.h>

#include <array>

namespace reactor::protocols {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Calls fn(token) for each element of the comma-separated lists in every header called name.
template <class Fn>
bool any_token(const HttpRequest& request, std::string_view name, Fn fn) {
    for (const HttpHeader& header : request.headers) {
        if (!ascii_iequals(header.name, name)) continue;
        std::string_view list = header.value;
        while (true) {
            const auto comma = list.find(',');
            const std::string_view token = trim(list.substr(0, comma));
            if (!token.empty() && fn(token)) return true;
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return false;
}

bool has_token(const HttpRequest& request, std::string_view name, std::string_view token) {
    return any_token(request, name, [&](std::string_view t) { return ascii_iequals(t, token); });
}

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// The base64 form of 16 bytes: 22 characters and "==".
bool is_16_byte_key(std::string_view key) {
    if (key.size() != 24 || key.substr(22) != "==") return false;
    for (std::size_t i = 0; i < 22; ++i) {
        if (!is_base64_char(key[i])) return false;
    }
    return true;
}

WebSocketHandshake refuse(std::string error) {
    WebSocketHandshake result;
    result.response = HttpResponse(400);
    result.response.header("Content-Type", "text/plain")
        .close_connection()
        .body("bad websocket handshake: " + error + "\n");
    result.error = std::move(error);
    return result;
}

}  // namespace

std::string websocket_accept_key(std::string_view key) {
    std::string input(key);
    input.append(kGuid);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_size = 0;
    if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_size, EVP_sha1(), nullptr) !=
        1) {
        throw std::runtime_error("SHA-1 unavailable");
    }
    std::array<unsigned char, 64> encoded{};
    const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest_size));
    return std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
}

WebSocketHandshake check_websocket_handshake(const HttpRequest& request,
                                             const std::vector<std::string>& subprotocols) {
    if (request.method != "GET") return refuse("method is not GET");
    if (request.version_major != 1 || request.version_minor < 1) {
        return refuse("HTTP/1.1 required");
    }
    if (!has_token(request, "Upgrade", "websocket")) return refuse("no \"Upgrade: websocket\"");
    if (!has_token(request, "Connection", "upgrade")) return refuse("no \"Connection: upgrade\"");
    const std::string_view key = trim(request.header("Sec-WebSocket-Key"));
    if (!is_16_byte_key(key)) return refuse("Sec-WebSocket-Key is not 16 bytes in base64");
    if (trim(request.header("Sec-WebSocket-Version")) != "13") {
        WebSocketHandshake result;
        result.response = HttpResponse(426, "Upgrade Required");
        result.response.header("Sec-WebSocket-Version", "13").close_connection();
        result.error = "Sec-WebSocket-Version is not 13";
        return result;
    }

    WebSocketHandshake result;
    result.accepted = true;
    any_token(request, "Sec-WebSocket-Protocol", [&](std::string_view offered) {
        for (const std::string& name : subprotocols) {
            if (name == offered) {
                result.subprotocol = name;
                return true;
            }
        }
        return false;
    });
    result.response = HttpResponse(101);
    result.response.header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", websocket_accept_key(key));
    if (!result.subprotocol.empty()) {
        result.response.header("Sec-WebSocket-Protocol", result.subprotocol);
    }
    return result;
}

bool accept_websocket(Connection& conn, const HttpRequest& request,
                      const WebSocketSettings& settings) {
    const WebSocketHandshake handshake = check_websocket_handshake(request, settings.subprotocols);
    send_response(conn, request, handshake.response);
    if (!handshake.accepted) return false;
    conn.switch_protocol(make_websocket_protocol(settings, false));
    return true;
}

}  // namespace reactor::protocols
