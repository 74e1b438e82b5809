// Fuzz target for the server side of the TLS transport: what a client sends before and during the
// handshake, over a socketpair, through the transport's own BIO. OpenSSL parses the records; what
// is fuzzed here is ours around it: the accept filters' leftovers read first, the plaintext check
// and nginx's 400 answer, the SNI callback choosing among names and wildcards, ALPN selection,
// holding what the socket does not take, failure reasons, reads and the shutdown after a
// handshake that completes (a resumed one can, with a seed's ticket, when keys match: rarely).
//
// Input: [0] options: bit 0 answer_plain_http, bit 1 TLS 1.3 only, bit 2 ALPN configured,
//        bits 3-4 how many leading bytes arrive as accept-filter leftovers (0, 1, 5, 64);
//        [1] the socket's receive chunk: writes of 1 + [1] % 64 * 256 bytes at a time;
//        the rest is the client's byte stream. Seeds: tests/fuzz/corpus/tls (ClientHellos with SNI
//        and ALPN, as OpenSSL's s_client sends them).
//
// Checks: the handshake ends (done or failed with a reason) within a bounded number of steps
// once the client's stream has ended; reads never report more than asked; nothing leaks.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_input.hpp"
#include "reactor/tls.hpp"
#include "tls_support.hpp"

namespace {

struct Servers {
    Servers() {
        reactor::TlsServerOptions options;
        options.certificates = {pki.issue("localhost", {"localhost"})};
        options.sni = {{{"a.example"}, {pki.issue("a", {"a.example"})}},
                       {{"*.w.example"}, {pki.issue("w", {"*.w.example"})}}};
        for (int variant = 0; variant < 8; ++variant) {
            options.answer_plain_http = (variant & 1) != 0;
            options.min_version = (variant & 2) != 0 ? "1.3" : "1.2";
            options.alpn = (variant & 4) != 0 ? std::vector<std::string>{"h2", "http/1.1"}
                                              : std::vector<std::string>{};
            servers[variant] = std::make_unique<reactor::TlsServer>(options);
        }
    }
    test::TestPki pki;
    std::unique_ptr<reactor::TlsServer> servers[8];
};

// Sends what is left of the client's stream, as much as the socket takes; drains what the
// server sent, so that it never stalls on a full socket.
void pump(int client, std::string_view& stream, std::size_t chunk, bool& client_done) {
    while (!stream.empty()) {
        const std::size_t n = std::min(chunk, stream.size());
        const ssize_t put = ::send(client, stream.data(), n, MSG_NOSIGNAL);
        if (put <= 0) break;
        stream.remove_prefix(static_cast<std::size_t>(put));
    }
    if (stream.empty() && !client_done) {
        ::shutdown(client, SHUT_WR);
        client_done = true;
    }
    char sink[16384];
    while (::recv(client, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Servers* const setup = new Servers();  // one CA and its certificates for the run
    if (size < 2) return 0;
    const std::uint8_t options = data[0];
    const std::size_t chunk = 1 + data[1] % 64 * 256;
    std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
    static constexpr std::size_t kLeftovers[] = {0, 1, 5, 64};
    const std::size_t leftover = std::min(kLeftovers[(options >> 3) & 3], stream.size());

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0) return 0;
    const int server_fd = pair[0];
    const int client = pair[1];
    auto transport = setup->servers[options & 7]->factory()->create();
    transport->attach(server_fd, stream.substr(0, leftover));  // owns server_fd from here
    stream.remove_prefix(leftover);

    bool client_done = false;
    using Status = reactor::Transport::Handshake::Status;
    Status status = Status::want_read;
    // Each step either consumes client bytes or, once they have all been sent, must end.
    for (int step = 0; step < 4096 && (status == Status::want_read || status == Status::want_write);
         ++step) {
        pump(client, stream, chunk, client_done);
        const auto result = transport->handshake();
        status = result.status;
        if (status == Status::failed) FUZZ_CHECK(!result.reason.empty(), "a failure says why");
    }
    FUZZ_CHECK(status == Status::done || status == Status::failed, "the handshake ends");
    if (status == Status::done) {
        char into[512];
        for (int step = 0; step < 4096; ++step) {
            pump(client, stream, chunk, client_done);
            const auto got = transport->read(into, sizeof into);
            FUZZ_CHECK(got.bytes <= sizeof into, "read %zu > %zu", got.bytes, sizeof into);
            if (got.status == reactor::IoResult::Status::end_of_stream ||
                got.status == reactor::IoResult::Status::error) {
                break;
            }
        }
        const reactor::IoSlice reply{"bye", 3};
        transport->write(&reply, 1);
        transport->shutdown_write();
    }
    transport->close();
    ::close(client);
    return 0;
}
