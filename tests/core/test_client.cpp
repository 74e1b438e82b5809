#include "test_client.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace test {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

// Waits for events on fd until the deadline; returns revents, or 0 on timeout.
short wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, remaining_ms(deadline));
        if (rc > 0) return p.revents;
        if (rc == 0) return 0;
        if (errno != EINTR) return POLLERR;
    }
}

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::runtime_error(what + ": " + std::strerror(err));
}

}  // namespace

std::string to_string(ReadEnd end) {
    switch (end) {
        case ReadEnd::complete:
            return "complete";
        case ReadEnd::eof:
            return "eof";
        case ReadEnd::timeout:
            return "timeout";
        case ReadEnd::error:
            return "error";
    }
    return "?";
}

TestClient TestClient::connect(const reactor::Endpoint& endpoint, Millis timeout) {
    sockaddr_storage address{};
    socklen_t length = 0;
    if (endpoint.is_unix()) {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        if (endpoint.unix_path.size() >= sizeof un.sun_path) fail("unix path", ENAMETOOLONG);
        std::memcpy(un.sun_path, endpoint.unix_path.c_str(), endpoint.unix_path.size() + 1);
        std::memcpy(&address, &un, sizeof un);
        length = sizeof un;
    } else {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
        addrinfo* found = nullptr;
        const std::string port = std::to_string(endpoint.port);
        if (::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found) != 0 || !found) {
            throw std::runtime_error("cannot resolve " + endpoint.host);
        }
        std::memcpy(&address, found->ai_addr, found->ai_addrlen);
        length = found->ai_addrlen;
        ::freeaddrinfo(found);
    }
    const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket", errno);
    TestClient client(fd);
    const auto deadline = Clock::now() + timeout;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) fail("connect " + endpoint.to_string(), errno);
        if (wait_for(fd, POLLOUT, deadline) == 0) {
            throw std::runtime_error("connect " + endpoint.to_string() + ": timed out");
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) fail("connect " + endpoint.to_string(), err);
    }
    return client;
}

TestClient::TestClient(int fd) : fd_(fd) {
    const int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

TestClient::TestClient(TestClient&& other) noexcept : fd_(other.fd_) {
    other.fd_ = -1;
}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

TestClient::~TestClient() {
    close();
}

bool TestClient::send_all(std::string_view bytes, Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) return false;
        const short revents = wait_for(fd_, POLLOUT, deadline);
        if (revents == 0 || (revents & (POLLERR | POLLNVAL))) return false;
    }
    return true;
}

ReadResult TestClient::read_exactly(std::size_t n, Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    ReadResult result;
    result.data.resize(n);
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::recv(fd_, result.data.data() + got, n - got, 0);
        if (r > 0) {
            got += static_cast<std::size_t>(r);
            continue;
        }
        if (r == 0) {
            result.end = ReadEnd::eof;
            result.data.resize(got);
            return result;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            result.end = ReadEnd::error;
            result.error = errno;
            result.data.resize(got);
            return result;
        }
        if (wait_for(fd_, POLLIN, deadline) == 0) {
            result.end = ReadEnd::timeout;
            result.data.resize(got);
            return result;
        }
    }
    result.end = ReadEnd::complete;
    return result;
}

ReadResult TestClient::read_until_eof(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    ReadResult result;
    char chunk[65536];
    for (;;) {
        const ssize_t r = ::recv(fd_, chunk, sizeof chunk, 0);
        if (r > 0) {
            result.data.append(chunk, static_cast<std::size_t>(r));
            continue;
        }
        if (r == 0) {
            result.end = ReadEnd::complete;
            return result;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            result.end = ReadEnd::error;
            result.error = errno;
            return result;
        }
        if (wait_for(fd_, POLLIN, deadline) == 0) {
            result.end = ReadEnd::timeout;
            return result;
        }
    }
}

bool TestClient::sees_eof(Millis timeout) {
    const ReadResult r = read_until_eof(timeout);
    return r.ok() && r.data.empty();
}

void TestClient::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

void TestClient::reset() {
    if (fd_ < 0) return;
    const linger hard{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close();
}

void TestClient::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

int count_open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int count = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count - 1;  // the directory's own descriptor
}

}  // namespace test
