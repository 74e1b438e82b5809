#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace loadgen {

// What one loadgen run does, from the command line.
struct Settings {
    std::string workload = "echo-raw";
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::size_t connections = 50;
    std::size_t threads = 1;
    std::size_t pipeline = 1;  // requests in flight per connection (closed loop) or at most (open)
    std::size_t size = 64;     // payload bytes: echo message, SET value
    std::uint64_t requests = 0;  // total requests to complete; 0: until the duration ends
    std::chrono::milliseconds duration{10000};  // always a bound, also with requests
    double rate = 0;        // requests per second over all connections; 0: closed loop
    std::size_t churn = 0;  // >0: close each connection after this many replies, reconnect
    bool idle = false;      // connect, send nothing, hold until the duration ends
    std::size_t connect_concurrency = 256;  // connects in progress at once, per thread
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds grace{5000};  // after the deadline, wait this long for replies
    std::string key = "loadgen:key";
    std::string path = "/";
    bool tls = false;    // connect through TLS (reactor's tls_client)
    std::string tls_ca;  // verify the server's certificate against this CA for the host
                         // address; empty: no verification
    bool json = false;
    bool progress = true;
};

// Parses argv; prints usage and exits on --help or an error.
Settings parse_settings(int argc, char** argv);

}  // namespace loadgen
