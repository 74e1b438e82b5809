// The threading rules are checked in debug builds: a loop-thread method called from another
// thread while the loop runs aborts, with a line that names the method. Each case runs in a child
// process (a death test), forked before it starts any thread of its own.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "server_harness.hpp"

using namespace std::chrono_literals;

namespace {

struct Death {
    bool aborted = false;
    int exit_code = -1;  // when the child exited
    std::string output;  // what the child wrote to stderr
};

// Runs fn in a child whose stderr goes to a pipe; the child exits 0 if fn returns, 4 if it throws
// (a failed REQUIRE in the child must not go on to run the other cases there).
Death run_in_child(const std::function<void()>& fn) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out[1], STDERR_FILENO);
        ::close(out[0]);
        ::alarm(20);  // bounded: a child that hangs dies of SIGALRM, not SIGABRT
        try {
            fn();
        } catch (...) {
            std::_Exit(4);
        }
        std::_Exit(0);
    }
    ::close(out[1]);
    Death death;
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(out[0], chunk, sizeof chunk)) > 0) death.output.append(chunk, n);
    ::close(out[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    death.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (WIFEXITED(status)) death.exit_code = WEXITSTATUS(status);
    return death;
}

// A running server with one open connection; calls misuse(conn) on this (the test's) thread.
void misuse_open_connection(const std::function<void(reactor::Connection&)>& misuse) {
    test::ServerHarness h;
    auto opened = h.connect_and_wait_open();         // the client stays open while misuse runs
    const reactor::ConnectionId id = opened.second;  // a name clang 14 lets lambdas capture
    reactor::Connection* conn = h.on_loop([&] { return h.server.find(id); });
    REQUIRE(conn != nullptr);
    misuse(*conn);
}

}  // namespace

#ifdef NDEBUG
TEST_CASE("release builds do not check threads" * doctest::skip()) {}
#else
TEST_CASE("Connection::send from a thread other than its loop's aborts, naming the method") {
    const Death death = run_in_child([] {
        misuse_open_connection(
            [](reactor::Connection& conn) { conn.send("from the wrong thread"); });
    });
    CHECK(death.aborted);
    CHECK(
        death.output.find("reactor: Connection::send called from a thread other than its loop's") !=
        std::string::npos);
}

TEST_CASE("Connection::close and pause_reading from another thread abort too") {
    for (const char* method : {"Connection::close", "Connection::pause_reading"}) {
        CAPTURE(method);
        const Death death = run_in_child([method] {
            misuse_open_connection([method](reactor::Connection& conn) {
                if (std::string(method) == "Connection::close") {
                    conn.close();
                } else {
                    conn.pause_reading();
                }
            });
        });
        CHECK(death.aborted);
        CHECK(death.output.find(std::string("reactor: ") + method + " called") !=
              std::string::npos);
    }
}

TEST_CASE("EventLoop::defer from another thread aborts while the loop runs") {
    const Death death = run_in_child([] {
        test::ServerHarness h;
        h.loop.defer([] {});
    });
    CHECK(death.aborted);
    CHECK(death.output.find("EventLoop::defer called") != std::string::npos);
}

TEST_CASE("before its loop runs, one thread may set a server up: no check fires") {
    const Death death = run_in_child([] {
        reactor::EventLoop loop;
        reactor::Server server(loop);
        reactor::ListenOptions options;
        options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 0);
        server.listen(std::move(options));
        loop.defer([] {});
    });
    CHECK(death.exit_code == 0);
    CHECK(death.output.find("called from a thread") == std::string::npos);
}

TEST_CASE("the same calls on the loop's own thread pass") {
    const Death death = run_in_child([] {
        test::ServerHarness h;
        auto opened = h.connect_and_wait_open();
        auto& client = opened.first;
        const reactor::ConnectionId id = opened.second;  // a binding clang 14 lets lambdas capture
        h.on_loop([&] {
            reactor::Connection* conn = h.server.find(id);
            conn->send("fine");
            conn->pause_reading();
            conn->resume_reading();
            h.loop.defer([] {});
        });
        if (client.read_exactly(4, 5s).data != "fine") std::_Exit(3);
    });
    CHECK(death.exit_code == 0);
    CHECK(death.output.find("called from a thread") == std::string::npos);
}
#endif
