#pragma once

#include <cstdint>
#include <string>

namespace reactor {

// Where to listen or connect: TCP host:port (IPv4 or IPv6 literal) or a Unix domain socket path.
struct Endpoint {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::string unix_path;  // non-empty: a Unix domain socket, host and port unused

    static Endpoint tcp(std::string host, std::uint16_t port) {
        return {std::move(host), port, {}};
    }
    static Endpoint unix_socket(std::string path) { return {{}, 0, std::move(path)}; }
    // Parses "127.0.0.1:7000", "[::1]:0", "localhost:80" or "unix:/path". Throws
    // std::invalid_argument.
    static Endpoint parse(const std::string& text);

    bool is_unix() const { return !unix_path.empty(); }
    std::string to_string() const;
};

}  // namespace reactor
