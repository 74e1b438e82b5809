#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "settings.hpp"

namespace loadgen {

namespace {

void usage(std::FILE* to) {
    std::fprintf(
        to,
        "usage: loadgen --port PORT [options]\n"
        "\n"
        "  --workload NAME     echo-raw, echo-line, echo-length, resp-ping, resp-set, resp-get,\n"
        "                      http-get (default echo-raw)\n"
        "  --host ADDR         loopback address of the server (default 127.0.0.1)\n"
        "  --port PORT         server port (required)\n"
        "  --connections N     connections (default 50)\n"
        "  --threads N         client threads, one event loop each (default 1)\n"
        "  --pipeline N        requests in flight per connection (default 1)\n"
        "  --size BYTES        echo payload / SET value size (default 64)\n"
        "  --requests N        stop after N replies (the duration still bounds the run)\n"
        "  --duration SECONDS  run time, or the time bound with --requests (default 10, or 120\n"
        "                      with --requests)\n"
        "  --rate R            open loop: R requests/s in total, latency counted from the\n"
        "                      intended send time; --pipeline caps requests in flight\n"
        "  --churn N           close each connection after N replies and open a new one\n"
        "  --idle              open the connections, send nothing, hold for the duration\n"
        "  --connect-concurrency N  connects in progress at once per thread (default 256)\n"
        "  --key KEY           key for resp-set/resp-get (default loadgen:key)\n"
        "  --path PATH         target for http-get (default /)\n"
        "  --tls               speak TLS (1.2 or 1.3; each connect is a full handshake)\n"
        "  --tls-ca FILE       with --tls: verify the server against this CA and the host address\n"
        "  --json              print the result as JSON\n"
        "  --quiet             no progress lines on stderr\n");
}

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "loadgen: %s\n", why.c_str());
    usage(stderr);
    std::exit(2);
}

std::uint64_t to_count(std::string_view name, const std::string& text, std::uint64_t min) {
    try {
        std::size_t used = 0;
        const unsigned long long v = std::stoull(text, &used);
        if (used != text.size() || v < min || text.front() == '-') throw std::invalid_argument("");
        return v;
    } catch (const std::exception&) {
        fail(std::string(name) + ": expected an integer >= " + std::to_string(min) + ", got '" +
             text + "'");
    }
}

double to_number(std::string_view name, const std::string& text) {
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size() || !(v > 0)) throw std::invalid_argument("");
        return v;
    } catch (const std::exception&) {
        fail(std::string(name) + ": expected a positive number, got '" + text + "'");
    }
}

bool is_loopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

Settings parse_settings(int argc, char** argv) {
    Settings s;
    bool duration_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) fail(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            std::exit(0);
        } else if (arg == "--workload") {
            s.workload = value();
        } else if (arg == "--host") {
            s.host = value();
        } else if (arg == "--port") {
            s.port = static_cast<std::uint16_t>(to_count(arg, value(), 1));
        } else if (arg == "--connections" || arg == "-c") {
            s.connections = to_count(arg, value(), 1);
        } else if (arg == "--threads" || arg == "-t") {
            s.threads = to_count(arg, value(), 1);
        } else if (arg == "--pipeline" || arg == "-P") {
            s.pipeline = to_count(arg, value(), 1);
        } else if (arg == "--size") {
            s.size = to_count(arg, value(), 1);
        } else if (arg == "--requests" || arg == "-n") {
            s.requests = to_count(arg, value(), 1);
        } else if (arg == "--duration" || arg == "-d") {
            s.duration = std::chrono::milliseconds(
                static_cast<std::int64_t>(to_number(arg, value()) * 1000));
            duration_given = true;
        } else if (arg == "--rate") {
            s.rate = to_number(arg, value());
        } else if (arg == "--churn") {
            s.churn = to_count(arg, value(), 1);
        } else if (arg == "--idle") {
            s.idle = true;
        } else if (arg == "--connect-concurrency") {
            s.connect_concurrency = to_count(arg, value(), 1);
        } else if (arg == "--key") {
            s.key = value();
        } else if (arg == "--path") {
            s.path = value();
        } else if (arg == "--tls") {
            s.tls = true;
        } else if (arg == "--tls-ca") {
            s.tls_ca = value();
        } else if (arg == "--json") {
            s.json = true;
        } else if (arg == "--quiet" || arg == "-q") {
            s.progress = false;
        } else {
            fail("unknown argument '" + arg + "'");
        }
    }
    if (s.port == 0) fail("--port is required");
    if (!s.tls_ca.empty() && !s.tls) fail("--tls-ca needs --tls");
    if (!is_loopback(s.host)) fail("--host must be a loopback address");
    if (s.threads > s.connections) s.threads = s.connections;
    if (s.requests != 0 && !duration_given) s.duration = std::chrono::seconds(120);
    return s;
}

}  // namespace loadgen
