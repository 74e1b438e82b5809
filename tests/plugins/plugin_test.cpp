#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "builtin.hpp"
#include "plugin_loader.hpp"
#include "reactor/protocol_plugin.h"
#include "reactor/reactor.hpp"

using namespace reactor;
using namespace std::chrono_literals;
using protocols::load_protocol_plugin;

namespace {

class Collect final : public MessageSink {
  public:
    void deliver(Message& message) override { payloads.emplace_back(message.payload); }
    std::vector<std::string> payloads;
};

ProtocolRegistry registry_with_netstrings() {
    ProtocolRegistry registry;
    protocols::register_builtin(registry);
    load_protocol_plugin(NETSTRINGS_PLUGIN, registry);
    return registry;
}

std::shared_ptr<const ProtocolFactory> netstrings(nlohmann::json options = nlohmann::json::object(),
                                                  std::size_t max_frame = 1 << 20) {
    static const ProtocolRegistry registry = registry_with_netstrings();
    ProtocolConfig config;
    config.options = std::move(options);
    config.max_frame = max_frame;
    return registry.build("netstrings", config);
}

// Feeds chunks one after another, decoding after each, as reads from a socket would.
struct Fed {
    std::vector<std::string> payloads;
    DecodeOutcome last;
    std::size_t left = 0;
};
Fed feed(Protocol& protocol, const std::vector<std::string>& chunks) {
    Buffer in;
    Collect sink;
    Fed fed;
    for (const auto& chunk : chunks) {
        in.append(chunk);
        fed.last = decode_all(protocol, in, sink);
        if (fed.last.failed) break;
    }
    fed.payloads = sink.payloads;
    fed.left = in.size();
    return fed;
}

// What the plugin's encoder writes through the loader's adapter, into a Buffer and into a string
// alike.
std::string encode(Protocol& protocol, std::string_view payload) {
    Buffer buffer;
    reactor::FrameOutput into_buffer(buffer);
    protocol.encode(payload, into_buffer);
    std::string direct;
    reactor::FrameOutput into_string(direct);
    protocol.encode(payload, into_string);
    CHECK(direct == buffer.to_string());
    return buffer.to_string();
}

std::string failure(const std::string& input, std::size_t max_length = 100) {
    auto protocol = netstrings({{"max_length", max_length}})->create();
    const Fed fed = feed(*protocol, {input});
    REQUIRE(fed.last.failed);
    return fed.last.error.reason;
}

// Whether the shared object at path is mapped into the process.
bool loaded(const char* path) {
    void* handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    dlclose(handle);
    return true;
}

std::string load_error(const std::string& path, ProtocolRegistry& registry) {
    try {
        load_protocol_plugin(path, registry);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    FAIL("loading " << path << " did not fail");
    return {};
}

}  // namespace

TEST_CASE("the netstrings plugin registers beside the built-in protocols") {
    ProtocolRegistry registry;
    protocols::register_builtin(registry);
    CHECK(load_protocol_plugin(NETSTRINGS_PLUGIN, registry) == "netstrings");
    const auto names = registry.names();
    CHECK(names == std::vector<std::string>{"http", "length", "line", "netstrings", "raw", "resp",
                                            "websocket"});
    CHECK(registry.build("netstrings", {})->name() == "netstrings");
}

TEST_CASE("netstrings decodes pipelined frames in one read") {
    auto protocol = netstrings()->create();
    const Fed fed = feed(*protocol, {"5:hello,3:abc,0:,"});
    CHECK_FALSE(fed.last.failed);
    CHECK(fed.last.messages == 3);
    CHECK(fed.payloads == std::vector<std::string>{"hello", "abc", ""});
    CHECK(fed.left == 0);
}

TEST_CASE("netstrings decodes frames split at every point and byte by byte") {
    const std::string stream = "5:hello,12:with,comma:\n,0:,3:abc,";
    const std::vector<std::string> expected{"hello", "with,comma:\n", "", "abc"};
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        CAPTURE(split);
        auto protocol = netstrings()->create();
        const Fed fed = feed(*protocol, {stream.substr(0, split), stream.substr(split)});
        CHECK_FALSE(fed.last.failed);
        CHECK(fed.payloads == expected);
        CHECK(fed.left == 0);
    }
    std::vector<std::string> bytes;
    for (const char c : stream) bytes.emplace_back(1, c);
    auto protocol = netstrings()->create();
    const Fed fed = feed(*protocol, bytes);
    CHECK(fed.payloads == expected);
    CHECK(fed.left == 0);
}

TEST_CASE("netstrings keeps a partial frame buffered") {
    auto protocol = netstrings()->create();
    const Fed fed = feed(*protocol, {"5:hello,5:wor"});
    CHECK_FALSE(fed.last.failed);
    CHECK(fed.payloads == std::vector<std::string>{"hello"});
    CHECK(fed.left == 5);
}

TEST_CASE("netstrings decodes a large pipelined batch") {
    auto protocol = netstrings()->create();
    std::string batch;
    for (int i = 0; i < 2000; ++i) batch += encode(*protocol, "message " + std::to_string(i));
    const Fed fed = feed(*protocol, {batch});
    REQUIRE(fed.payloads.size() == 2000);
    CHECK(fed.payloads.front() == "message 0");
    CHECK(fed.payloads.back() == "message 1999");
}

TEST_CASE("netstrings fails an oversize declared length before the payload arrives") {
    CHECK(failure("11", 10).find("max_length 10") != std::string::npos);
    CHECK(failure("100000000000000000000000000000", 10).find("max_length") != std::string::npos);

    auto limited = netstrings({{"max_length", 5}})->create();
    const Fed fed = feed(*limited, {"5:hello,", "6:"});
    CHECK(fed.payloads == std::vector<std::string>{"hello"});
    CHECK(fed.last.failed);

    // Without max_length the listener's frame limit applies.
    auto framed = netstrings(nlohmann::json::object(), 16)->create();
    CHECK(feed(*framed, {"16:0123456789abcdef,"}).payloads.size() == 1);
    CHECK(feed(*framed, {"17"}).last.failed);
}

TEST_CASE("netstrings rejects malformed frames") {
    CHECK(failure("x:abc,").find("decimal length") != std::string::npos);
    CHECK(failure(":abc,").find("decimal length") != std::string::npos);
    CHECK(failure("05:hello,").find("leading zero") != std::string::npos);
    CHECK(failure("00:,").find("leading zero") != std::string::npos);
    CHECK(failure("5-hello,").find("':'") != std::string::npos);
    CHECK(failure("5:hello;").find("','") != std::string::npos);
    CHECK(failure("3:abc,2:xyz").find("','") != std::string::npos);
}

TEST_CASE("netstrings fails input that ends inside a frame") {
    auto protocol = netstrings()->create();
    Buffer in;
    Collect sink;
    in.append("3:abc,5:he");
    const DecodeOutcome outcome = decode_eof(*protocol, in, sink);
    CHECK(sink.payloads == std::vector<std::string>{"abc"});
    CHECK(outcome.failed);
    CHECK(outcome.error.reason.find("ends inside") != std::string::npos);

    Buffer empty;
    CHECK_FALSE(decode_eof(*protocol, empty, sink).failed);
}

TEST_CASE("netstrings encodes what it decodes") {
    auto protocol = netstrings()->create();
    CHECK(encode(*protocol, "hello") == "5:hello,");
    CHECK(encode(*protocol, "") == "0:,");
    const std::string binary("a\0,b:\r\n", 7);
    const std::string big(100000, 'z');
    Buffer wire;
    reactor::FrameOutput out(wire);
    for (const auto& payload : {std::string("hello"), binary, big, std::string()}) {
        protocol->encode(payload, out);
    }
    Collect sink;
    const DecodeOutcome outcome = decode_all(*protocol, wire, sink);
    CHECK_FALSE(outcome.failed);
    CHECK(sink.payloads == std::vector<std::string>{"hello", binary, big, ""});
    CHECK(protocol->busy_notice() == "27:ERR max connections reached,");
}

TEST_CASE("netstrings options are validated and errors name the option") {
    const auto problem = [](nlohmann::json options) -> std::string {
        try {
            netstrings(std::move(options), 1000);
        } catch (const ConfigError& e) {
            return e.describe();
        }
        return "accepted";
    };
    CHECK(problem({{"max_length", 0}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_length", 1001}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_length", -1}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_length", 1.5}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_length", "10"}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_length", nullptr}}) == "max_length: expected an integer from 1 to 1000");
    CHECK(problem({{"max_lenght", 10}}) == "max_lenght: unknown option");
    CHECK(problem(nlohmann::json::array()) == "expected an object");
    CHECK(problem({{"max_length", 1000}}) == "accepted");
    CHECK(problem({{"name", "netstrings"}, {"max_length", 7}}) == "accepted");
}

TEST_CASE("an exception from the message handler reaches the caller, not the plugin") {
    class Throwing final : public MessageSink {
      public:
        void deliver(Message&) override { throw std::logic_error("handler failed"); }
    };
    auto protocol = netstrings()->create();
    Buffer in;
    in.append("5:hello,");
    Throwing sink;
    CHECK_THROWS_WITH_AS(decode_all(*protocol, in, sink), "handler failed", std::logic_error);
}

TEST_CASE("a plugin stays loaded while a factory or connection built from it lives") {
    std::shared_ptr<const ProtocolFactory> factory;
    {
        ProtocolRegistry registry;
        load_protocol_plugin(BAD_PLUGIN_NAMED_RAW, registry);
        factory = registry.build("raw", {});
    }
    CHECK(loaded(BAD_PLUGIN_NAMED_RAW));
    auto protocol = factory->create();
    factory.reset();
    CHECK(loaded(BAD_PLUGIN_NAMED_RAW));
    CHECK(encode(*protocol, "ok") == "ok");
    protocol.reset();
    CHECK_FALSE(loaded(BAD_PLUGIN_NAMED_RAW));
}

TEST_CASE("plugins that cannot be used are refused and nothing is registered") {
    ProtocolRegistry registry;
    protocols::register_builtin(registry);
    const auto before = registry.names();

    const std::string missing = "/nonexistent/libnothing.so";
    std::string error = load_error(missing, registry);
    CHECK(error.find(missing) != std::string::npos);
    CHECK(error.find("cannot load") != std::string::npos);

    error = load_error(BAD_PLUGIN_NO_ENTRY, registry);
    CHECK(error.find(BAD_PLUGIN_NO_ENTRY) != std::string::npos);
    CHECK(error.find("'reactor_protocol_plugin' entry point") != std::string::npos);

    error = load_error(BAD_PLUGIN_WRONG_ABI, registry);
    CHECK(error.find(BAD_PLUGIN_WRONG_ABI) != std::string::npos);
    CHECK(error.find("ABI version 2") != std::string::npos);

    error = load_error(BAD_PLUGIN_SHORT, registry);
    CHECK(error.find(BAD_PLUGIN_SHORT) != std::string::npos);
    CHECK(error.find("needs " + std::to_string(sizeof(reactor_protocol_v1))) != std::string::npos);

    error = load_error(BAD_PLUGIN_NAMED_RAW, registry);
    CHECK(error.find(BAD_PLUGIN_NAMED_RAW) != std::string::npos);
    CHECK(error.find("'raw' is already registered") != std::string::npos);

    CHECK(registry.names() == before);
    for (const char* refused :
         {BAD_PLUGIN_NO_ENTRY, BAD_PLUGIN_WRONG_ABI, BAD_PLUGIN_SHORT, BAD_PLUGIN_NAMED_RAW}) {
        CAPTURE(refused);
        CHECK_FALSE(loaded(refused));
    }

    load_protocol_plugin(NETSTRINGS_PLUGIN, registry);
    error = load_error(NETSTRINGS_PLUGIN, registry);
    CHECK(error.find("'netstrings' is already registered") != std::string::npos);
    // The first load is untouched by the refused second one.
    CHECK(feed(*registry.build("netstrings", {})->create(), {"1:x,"}).payloads.size() == 1);
}

TEST_CASE("the host fails a frame that cannot fit the view the plugin is shown") {
    // This plugin answers "need more" to everything, as a plugin with no limit of its own would.
    ProtocolRegistry registry;
    CHECK(load_protocol_plugin(BAD_PLUGIN_NAMED_RAW, registry) == "raw");
    ProtocolConfig config;
    config.max_frame = 16;
    auto protocol = registry.build("raw", config)->create();

    const std::size_t view = 16 + REACTOR_PROTOCOL_VIEW_SLACK;
    const Fed within = feed(*protocol, {std::string(view, 'a')});
    CHECK_FALSE(within.last.failed);
    CHECK(within.left == view);

    const Fed beyond = feed(*protocol, {std::string(view, 'a'), "a"});
    CHECK(beyond.last.failed);
    CHECK(beyond.last.error.reason.find("max_frame") != std::string::npos);
}

namespace {

// An EventLoop on its own thread with one Server, destroyed on that thread.
class ServerThread {
  public:
    ServerThread() : thread_([this] { loop_.run(); }) {}
    ~ServerThread() {
        loop_.post([this] { server_.reset(); });
        loop_.stop();
        thread_.join();
    }

    std::uint16_t listen(ListenOptions options) {
        std::promise<std::uint16_t> port;
        auto bound = port.get_future();
        loop_.post([&] {
            try {
                server_ = std::make_unique<Server>(loop_);
                port.set_value(server_->listen(std::move(options)).port);
            } catch (...) {
                port.set_exception(std::current_exception());
            }
        });
        REQUIRE(bound.wait_for(10s) == std::future_status::ready);
        return bound.get();
    }

  private:
    EventLoop loop_;
    std::unique_ptr<Server> server_;
    std::thread thread_;
};

// A blocking loopback client whose reads give up after a bounded time.
class Client {
  public:
    explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        REQUIRE(fd_ >= 0);
        timeval timeout{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    }
    ~Client() { ::close(fd_); }

    void send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            REQUIRE(n > 0);
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    // Reads until n bytes arrived, the peer closed, or the read timed out.
    std::string receive(std::size_t n) {
        std::string got;
        char chunk[4096];
        while (got.size() < n) {
            const ssize_t r = ::recv(fd_, chunk, std::min(sizeof chunk, n - got.size()), 0);
            if (r <= 0) break;
            got.append(chunk, static_cast<std::size_t>(r));
        }
        return got;
    }
    // True when the peer closed the connection (rather than the read timing out).
    bool closed_by_peer() {
        char byte;
        return ::recv(fd_, &byte, 1, 0) == 0;
    }

  private:
    int fd_;
};

}  // namespace

TEST_CASE("a server echoes netstrings over loopback through the plugin") {
    const auto registry = registry_with_netstrings();
    ServerThread server;
    ListenOptions options;
    options.name = "netstrings";
    options.endpoint = Endpoint::tcp("127.0.0.1", 0);
    options.protocol = registry.build("netstrings", {});
    options.handlers.on_message = [](Connection& conn, Message& msg) { conn.send(msg.payload); };
    const std::uint16_t port = server.listen(std::move(options));

    Client client(port);
    client.send("5:hello,3:abc,");
    CHECK(client.receive(14) == "5:hello,3:abc,");

    client.send("11:split ");
    client.send("frame,");
    CHECK(client.receive(15) == "11:split frame,");

    // A malformed frame is a protocol error: the server closes the connection.
    client.send("x,");
    CHECK(client.closed_by_peer());
}
