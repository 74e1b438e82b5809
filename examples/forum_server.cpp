// The forum server, rebuilt on reactor: every client gets an id (1, 2, 3, ...), every message is
// printed with its sender's id, and an operator sends bytes to a client from stdin:
//
//   ID          sends the bytes 97 95 96 93 91 100 to client ID
//   ID TEXT     sends TEXT (and a newline) to client ID
//
// The stdin thread calls Server::send, which is safe from any thread. End of input stops the
// server.

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "reactor/reactor.hpp"

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
    options.handlers.on_open = [](reactor::Connection& conn) {
        std::printf("client %llu connected from %s\n", static_cast<unsigned long long>(conn.id()),
                    conn.peer().c_str());
        std::fflush(stdout);
    };
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        std::string_view text = message.payload;
        if (!text.empty() && text.back() == '\n') text.remove_suffix(1);  // one line per message
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
        std::string line;
        while (std::getline(std::cin, line)) {
            const auto space = line.find(' ');
            const std::string id_text = line.substr(0, space);
            reactor::ConnectionId id = 0;
            try {
                std::size_t used = 0;
                id = std::stoull(id_text, &used);
                if (used != id_text.size()) throw std::invalid_argument(id_text);
            } catch (const std::exception&) {
                std::printf("error: '%s' is not a client id\n", id_text.c_str());
                std::fflush(stdout);
                continue;
            }
            const std::string bytes =
                space == std::string::npos ? kGreeting : line.substr(space + 1) + "\n";
            if (server.send(id, bytes)) {
                std::printf("sent %zu bytes to %llu\n", bytes.size(),
                            static_cast<unsigned long long>(id));
            } else {
                std::printf("error: no client %llu\n", static_cast<unsigned long long>(id));
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
