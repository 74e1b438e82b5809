#pragma once

// Conversions between Endpoint and the kernel's socket addresses. Internal header.

#include <sys/socket.h>

#include <string>

#include "reactor/endpoint.hpp"

namespace reactor {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

// Resolves a numeric or named host (first result) or a Unix path. Throws std::system_error.
SocketAddress resolve(const Endpoint& endpoint);
// "127.0.0.1:5000", "[::1]:5000", "unix:/path" (or "unix:" for an unnamed client socket).
std::string describe(const sockaddr* address, socklen_t length);
// The address a socket is bound to, as describe() writes it; empty if the kernel will not say.
std::string local_address(int fd);
// The endpoint a socket is bound to.
Endpoint local_endpoint(int fd);

}  // namespace reactor
