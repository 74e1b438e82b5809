#include "reactor/endpoint.hpp"

#include <charconv>
#include <stdexcept>

namespace reactor {

Endpoint Endpoint::parse(const std::string& text) {
    if (text.rfind("unix:", 0) == 0) {
        if (text.size() == 5) throw std::invalid_argument("empty unix socket path");
        return unix_socket(text.substr(5));
    }
    std::string host;
    std::string port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            throw std::invalid_argument("expected [ipv6]:port, got '" + text + "'");
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos)
            throw std::invalid_argument("expected host:port, got '" + text + "'");
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (host.empty() || port_text.empty() || ec != std::errc{} || ptr != end || port > 65535) {
        throw std::invalid_argument("expected host:port with a port from 0 to 65535, got '" + text +
                                    "'");
    }
    return tcp(host, static_cast<std::uint16_t>(port));
}

std::string Endpoint::to_string() const {
    if (is_unix()) return "unix:" + unix_path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

}  // namespace reactor
