// The forum server, rebuilt on reactor: every client gets an id (1, 2, 3, ...), every line a client
// sends is printed with its sender's id, and an operator sends bytes to a client from stdin:
//
//   ID          sends the bytes 97 95 96 93 91 100 to client ID
//   ID TEXT     sends TEXT (and a newline) to client ID
//
// Clients speak the line protocol: "first\nsecond\n" in one write is two messages, "par" then
// "tial\n" is one. Spaces and tabs around the id and at the end of an operator's line do not
// count. The stdin thread calls Server::send, which is safe from any thread. End of input stops
// the server.

#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "builtin.hpp"
#include "reactor/reactor.hpp"

namespace {

constexpr std::string_view kBlank = " \t\r";

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(kBlank);
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(kBlank) - first + 1);
}

// Decimal digits only: no sign, no blanks, no overflow.
std::optional<reactor::ConnectionId> parse_id(std::string_view text) {
    reactor::ConnectionId id = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) return {};
    return id;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string where = argc > 1 ? argv[1] : "127.0.0.1:7001";
    reactor::EventLoop loop;
    reactor::Server server(loop);

    reactor::ListenOptions options;
    options.name = "forum";
    try {
        options.endpoint = reactor::Endpoint::parse(where);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "forum_server: %s\n", e.what());
        return 2;
    }
    options.protocol = reactor::protocols::make_line({});  // lines of at most 1 MiB
    options.handlers.on_open = [](reactor::Connection& conn) {
        std::printf("client %llu connected from %s\n", static_cast<unsigned long long>(conn.id()),
                    conn.peer().c_str());
        std::fflush(stdout);
    };
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        const std::string_view text = message.payload;  // without its line ending
        std::printf("message from %llu: %.*s\n", static_cast<unsigned long long>(conn.id()),
                    static_cast<int>(text.size()), text.data());
        std::fflush(stdout);
    };
    options.handlers.on_close = [](reactor::Connection& conn, reactor::CloseReason reason) {
        std::printf("client %llu left (%s)\n", static_cast<unsigned long long>(conn.id()),
                    std::string(reactor::to_string(reason)).c_str());
        std::fflush(stdout);
    };
    const reactor::Endpoint bound = server.listen(options);
    std::printf("forum: listening on %s\n", bound.to_string().c_str());
    std::fflush(stdout);

    loop.on_signal(SIGINT, [&] { loop.stop(); });
    loop.on_signal(SIGTERM, [&] { loop.stop(); });
    std::signal(SIGPIPE, SIG_IGN);

    std::thread console([&] {
        static const std::string kGreeting{97, 95, 96, 93, 91, 100};
        std::string input;
        while (std::getline(std::cin, input)) {
            const std::string_view line = trim(input);
            if (line.empty()) continue;
            const auto blank = line.find_first_of(kBlank);
            const std::string_view id_text = line.substr(0, blank);
            const auto id = parse_id(id_text);
            if (!id) {
                std::printf("error: '%.*s' is not a client id\n", static_cast<int>(id_text.size()),
                            id_text.data());
                std::fflush(stdout);
                continue;
            }
            // The text starts after the blanks that follow the id; the line ends trimmed.
            const std::string_view text =
                blank == std::string_view::npos ? std::string_view{} : trim(line.substr(blank));
            const bool sent = text.empty() ? server.send_raw(*id, kGreeting)  // exact bytes
                                           : server.send(*id, text);  // the line protocol adds \n
            if (sent) {
                std::printf("sent %zu bytes to %llu\n",
                            text.empty() ? kGreeting.size() : text.size() + 1,
                            static_cast<unsigned long long>(*id));
            } else {
                std::printf("error: no client %llu\n", static_cast<unsigned long long>(*id));
            }
            std::fflush(stdout);
        }
        loop.stop();
    });

    loop.run();
    server.shutdown();
    // std::getline cannot be interrupted portably; a signal-stopped server leaves the console
    // thread blocked on stdin, which the process exit ends.
    console.detach();
    return 0;
}
