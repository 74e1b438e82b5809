#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reactor/reactor.hpp"
#include "test_client.hpp"

using namespace std::chrono_literals;
using test::TestClient;

namespace {

// Free descriptor slots the child's server gets below its lowered limit.
constexpr int kCapacity = 8;

struct ChildReport {
    std::uint16_t port = 0;
    int capacity = 0;  // connections the server can accept before EMFILE
};

// The lowest limit that leaves exactly free_slots unused descriptor numbers below it. Inherited
// descriptors may leave holes, so count the holes rather than the open descriptors.
int limit_leaving(int free_slots) {
    int fd = 0;
    for (int found = 0;; ++fd) {
        if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF && ++found == free_slots) break;
    }
    return fd + 1;
}

// The forked child: an echo server on 127.0.0.1:0 with RLIMIT_NOFILE lowered to leave kCapacity
// free slots. Reports port and capacity on report_fd, runs until SIGTERM. Never returns.
[[noreturn]] void run_child(int report_fd) {
    reactor::set_log_level(reactor::LogLevel::error);
    int status = 0;
    {
        reactor::EventLoop loop;
        reactor::Server server(loop);
        reactor::ListenOptions options;
        options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& msg) {
            conn.send(msg.payload);
        };
        const reactor::Endpoint endpoint = server.listen(std::move(options));
        loop.on_signal(SIGTERM, [&] { loop.stop(); });

        // Move the report pipe above the limit, so closing it frees no slot below.
        const int high_report_fd = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 1000);
        if (high_report_fd < 0) ::_exit(5);
        ::close(report_fd);
        report_fd = high_report_fd;
        const int limit = limit_leaving(kCapacity);
        const rlimit lowered{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
        if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) ::_exit(3);
        ChildReport report{endpoint.port, kCapacity};
        if (::write(report_fd, &report, sizeof report) != sizeof report) ::_exit(4);
        ::close(report_fd);
        loop.run();
    }
    ::_exit(status);
}

// CPU time (user + system) the process has used so far, from /proc/<pid>/stat.
std::chrono::milliseconds cpu_time_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(in, line);
    // Fields after the command name, which is in parentheses and may contain spaces.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::vector<std::string> fields;
    for (std::string f; rest >> f;) fields.push_back(f);
    // state is field 3 of the whole line; utime and stime are 14 and 15.
    const long ticks = std::stol(fields.at(11)) + std::stol(fields.at(12));
    return std::chrono::milliseconds(ticks * 1000 / ::sysconf(_SC_CLK_TCK));
}

// Kills the child if the test ends early, so a failure never leaves a server behind.
class ChildGuard {
  public:
    explicit ChildGuard(pid_t pid) : pid_(pid) {}
    ~ChildGuard() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    // Asks the child to stop and returns its wait status, or -1 if it did not exit in time.
    int terminate(std::chrono::milliseconds deadline) {
        ::kill(pid_, SIGTERM);
        const auto until = std::chrono::steady_clock::now() + deadline;
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > until) return -1;
            std::this_thread::sleep_for(5ms);
        }
        pid_ = -1;
        return status;
    }

  private:
    pid_t pid_;
};

bool echoes(TestClient& client, const std::string& text, std::chrono::milliseconds deadline = 5s) {
    if (!client.send_all(text, deadline)) return false;
    const auto reply = client.read_exactly(text.size(), deadline);
    return reply.ok() && reply.data == text;
}

}  // namespace

TEST_CASE("at the descriptor limit the server keeps serving, does not spin, and recovers") {
    int report_pipe[2];
    REQUIRE(::pipe(report_pipe) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(report_pipe[0]);
        run_child(report_pipe[1]);
    }
    ChildGuard child(pid);
    ::close(report_pipe[1]);
    ChildReport report;
    pollfd p{report_pipe[0], POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    REQUIRE(::read(report_pipe[0], &report, sizeof report) == sizeof report);
    ::close(report_pipe[0]);
    REQUIRE(report.capacity >= 2);
    const auto endpoint = reactor::Endpoint::tcp("127.0.0.1", report.port);

    // Fill every free slot; the first client is the one that must keep being served.
    std::vector<TestClient> admitted;
    for (int i = 0; i < report.capacity; ++i) {
        admitted.push_back(TestClient::connect(endpoint));
        REQUIRE(echoes(admitted.back(), "admitted " + std::to_string(i)));
    }

    // More than the server can take: the kernel completes the handshakes, the server's accept
    // fails with EMFILE.
    constexpr int kExtra = 5;
    REQUIRE(kExtra < report.capacity);
    std::vector<TestClient> waiting;
    for (int i = 0; i < kExtra; ++i) {
        waiting.push_back(TestClient::connect(endpoint));
        REQUIRE(waiting.back().send_all("waiting " + std::to_string(i) + ";"));
    }
    CHECK(waiting.front().read_exactly(1, 300ms).end == test::ReadEnd::timeout);

    // An existing client is still served while the listener is starved.
    CHECK(echoes(admitted.front(), "still served"));

    // Not spinning: the one place a plain wait is right, since it is CPU over time that counts.
    const auto cpu_before = cpu_time_of(pid);
    std::this_thread::sleep_for(1s);
    const auto cpu_used = cpu_time_of(pid) - cpu_before;
    MESSAGE("server CPU over 1 s at the descriptor limit: " << cpu_used.count() << " ms");
    CHECK(cpu_used < 200ms);  // a spinning listener burns most of a core here
    CHECK(echoes(admitted.front(), "still served after a second"));

    // Clients leave: the waiting ones are accepted and answered.
    for (std::size_t i = 1; i < admitted.size(); ++i) admitted[i].close();
    for (int i = 0; i < kExtra; ++i) {
        const std::string expected = "waiting " + std::to_string(i) + ";";
        const auto reply = waiting[i].read_exactly(expected.size(), 5s);
        INFO("waiting client " << i << ": " << test::to_string(reply.end));
        CHECK(reply.ok());
        CHECK(reply.data == expected);
        CHECK(echoes(waiting[i], "then served"));
    }
    CHECK(echoes(admitted.front(), "and the first one too"));

    const int status = child.terminate(10s);
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
