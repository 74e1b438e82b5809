#pragma once

// A small blocking socket client for tests: every operation takes a deadline and reports how it
// ended instead of hanging.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/endpoint.hpp"

namespace test {

using Millis = std::chrono::milliseconds;

enum class ReadEnd {
    complete,  // got what was asked for (for read_until_eof: reached EOF)
    eof,       // the peer closed before enough bytes arrived
    timeout,
    error,  // a socket error, e.g. ECONNRESET; see ReadResult::error
};
std::string to_string(ReadEnd end);

struct ReadResult {
    std::string data;
    ReadEnd end = ReadEnd::timeout;
    int error = 0;  // errno when end == error
    bool ok() const { return end == ReadEnd::complete; }
};

class TestClient {
  public:
    // Connects within timeout; throws std::runtime_error on failure.
    static TestClient connect(const reactor::Endpoint& endpoint, Millis timeout = Millis{5000});
    // Wraps a connected socket; the client owns it.
    explicit TestClient(int fd);

    TestClient() = default;
    TestClient(TestClient&& other) noexcept;
    TestClient& operator=(TestClient&& other) noexcept;
    TestClient(const TestClient&) = delete;
    TestClient& operator=(const TestClient&) = delete;
    ~TestClient();

    int fd() const { return fd_; }
    bool is_open() const { return fd_ >= 0; }

    // Writes every byte before the deadline; false on timeout or error.
    bool send_all(std::string_view bytes, Millis timeout = Millis{5000});
    // Reads exactly n bytes.
    ReadResult read_exactly(std::size_t n, Millis timeout = Millis{5000});
    // Reads until the peer closes; complete means EOF was seen.
    ReadResult read_until_eof(Millis timeout = Millis{5000});
    // True when a read before the deadline would return nothing but EOF (no data, no timeout).
    bool sees_eof(Millis timeout = Millis{5000});

    // Sends FIN: the peer reads EOF, this side can still read.
    void shutdown_write();
    // SO_LINGER 0 then close: the peer gets RST instead of FIN.
    void reset();
    void close();

  private:
    int fd_ = -1;
};

// Open descriptors of this process (entries of /proc/self/fd, not counting the one used to list
// them).
int count_open_fds();

}  // namespace test
