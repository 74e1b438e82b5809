// The smallest useful reactor program: an echo server. This is the README's embedding example.
#include <cstdio>

#include "reactor/reactor.hpp"

int main() {
    reactor::EventLoop loop;
    reactor::Server server(loop);

    reactor::ListenOptions options;
    options.endpoint = reactor::Endpoint::tcp("127.0.0.1", 7002);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        conn.send(message.payload);  // raw framing: the bytes go back as they came
    };
    options.handlers.on_close = [](reactor::Connection& conn, reactor::CloseReason reason) {
        std::printf("%llu closed: %s\n", static_cast<unsigned long long>(conn.id()),
                    std::string(reactor::to_string(reason)).c_str());
    };
    const reactor::Endpoint bound = server.listen(options);
    std::printf("echo on %s\n", bound.to_string().c_str());
    loop.run();  // until loop.stop() from any thread
}
