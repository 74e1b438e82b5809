// Measures reactor::Server::send(id, ...) called from threads other than the loop's: producer
// threads send fixed-size payloads to one connection whose peer (a plain blocking socket) counts
// the bytes. Reports sends per second, loop wake-ups per send (how well posts are batched) and the
// process CPU time per send; then the same number of sends made on the loop thread, for comparison.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "reactor/event_loop.hpp"
#include "reactor/server.hpp"

namespace {

struct Args {
    std::size_t producers = 2;
    std::size_t count = 200000;  // per producer
    std::size_t size = 64;
    bool json = false;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto next = [&]() -> std::size_t {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "cross_thread_send: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            const long long v = std::atoll(argv[++i]);
            if (v <= 0) {
                std::fprintf(stderr, "cross_thread_send: %s must be positive\n", arg.c_str());
                std::exit(2);
            }
            return static_cast<std::size_t>(v);
        };
        if (arg == "--producers") {
            a.producers = next();
        } else if (arg == "--count") {
            a.count = next();
        } else if (arg == "--size") {
            a.size = next();
        } else if (arg == "--json") {
            a.json = true;
        } else {
            std::fprintf(stderr,
                         "usage: cross_thread_send [--producers N] [--count N per producer] "
                         "[--size BYTES] [--json]\n");
            std::exit(2);
        }
    }
    return a;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto s = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
    };
    return s(usage.ru_utime) + s(usage.ru_stime);
}

// Reads until `expected` bytes arrived; false on a timeout or a closed connection.
bool receive_all(int fd, std::size_t expected) {
    std::vector<char> buffer(256 * 1024);
    std::size_t got = 0;
    while (got < expected) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) return false;
        got += static_cast<std::size_t>(n);
    }
    return true;
}

struct Phase {
    double elapsed_s = 0;
    double posting_s = 0;
    std::uint64_t wakeups = 0;
    double cpu_s = 0;
    bool ok = false;
};

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    const std::size_t total = args.producers * args.count;
    const std::string payload(args.size, 'x');

    reactor::EventLoop loop;
    reactor::Server server(loop);
    std::promise<reactor::ConnectionId> accepted;
    reactor::ListenOptions options;
    options.name = "sink";
    options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 0);
    // Everything is queued before the peer catches up; no output limit may close it meanwhile.
    options.limits.output_high_water = 0;
    options.limits.output_limit = 0;
    options.handlers.on_open = [&accepted](reactor::Connection& conn) {
        accepted.set_value(conn.id());
    };
    const reactor::Endpoint bound = server.listen(options);
    std::thread loop_thread([&loop] { loop.run(); });

    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(bound.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval timeout{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::perror("cross_thread_send: connect");
        return 1;
    }
    auto id_future = accepted.get_future();
    if (id_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        std::fprintf(stderr, "cross_thread_send: the connection was not accepted\n");
        return 1;
    }
    const reactor::ConnectionId id = id_future.get();

    // Cross-thread: producers call send() concurrently.
    Phase cross;
    {
        const auto wakeups_before = loop.wakeups();
        const double cpu_before = process_cpu_seconds();
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> producers;
        for (std::size_t p = 0; p < args.producers; ++p) {
            producers.emplace_back([&] {
                for (std::size_t i = 0; i < args.count; ++i) server.send(id, payload);
            });
        }
        for (auto& t : producers) t.join();
        cross.posting_s = seconds_since(start);
        cross.ok = receive_all(fd, total * args.size);
        cross.elapsed_s = seconds_since(start);
        cross.cpu_s = process_cpu_seconds() - cpu_before;
        cross.wakeups = loop.wakeups() - wakeups_before;
    }

    // The same sends made on the loop thread, in one posted task.
    Phase local;
    {
        const auto wakeups_before = loop.wakeups();
        const double cpu_before = process_cpu_seconds();
        const auto start = std::chrono::steady_clock::now();
        loop.post([&] {
            for (std::size_t i = 0; i < total; ++i) server.send(id, payload);
        });
        local.ok = receive_all(fd, total * args.size);
        local.elapsed_s = seconds_since(start);
        local.cpu_s = process_cpu_seconds() - cpu_before;
        local.wakeups = loop.wakeups() - wakeups_before;
    }

    ::close(fd);
    loop.stop();
    loop_thread.join();

    const double n = static_cast<double>(total);
    const auto rate = [n](const Phase& p) { return p.elapsed_s > 0 ? n / p.elapsed_s : 0.0; };
    if (args.json) {
        std::printf(
            "{\"producers\": %zu, \"sends\": %zu, \"size\": %zu, \"ok\": %s, "
            "\"elapsed_s\": %.6f, \"posting_s\": %.6f, \"sends_per_s\": %.0f, "
            "\"wakeups\": %llu, \"sends_per_wakeup\": %.1f, \"cpu_ns_per_send\": %.1f, "
            "\"in_loop_ok\": %s, \"in_loop_sends_per_s\": %.0f, \"in_loop_cpu_ns_per_send\": "
            "%.1f}\n",
            args.producers, total, args.size, cross.ok ? "true" : "false", cross.elapsed_s,
            cross.posting_s, rate(cross), static_cast<unsigned long long>(cross.wakeups),
            cross.wakeups ? n / static_cast<double>(cross.wakeups) : 0.0, cross.cpu_s * 1e9 / n,
            local.ok ? "true" : "false", rate(local), local.cpu_s * 1e9 / n);
    } else {
        std::printf("cross-thread send: %zu producers x %zu sends of %zu B\n", args.producers,
                    args.count, args.size);
        std::printf("  %.0f sends/s (posting done in %.3f s, all received in %.3f s)%s\n",
                    rate(cross), cross.posting_s, cross.elapsed_s, cross.ok ? "" : "  INCOMPLETE");
        std::printf("  %llu loop wake-ups: %.1f sends per wake-up; %.0f ns CPU per send\n",
                    static_cast<unsigned long long>(cross.wakeups),
                    cross.wakeups ? n / static_cast<double>(cross.wakeups) : 0.0,
                    cross.cpu_s * 1e9 / n);
        std::printf("in-loop send: %.0f sends/s, %.0f ns CPU per send%s\n", rate(local),
                    local.cpu_s * 1e9 / n, local.ok ? "" : "  INCOMPLETE");
    }
    return cross.ok && local.ok ? 0 : 1;
}
