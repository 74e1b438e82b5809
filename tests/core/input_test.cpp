// A connection reads into a per-thread area while its input buffer is empty and copies into the
// buffer only what a read leaves of a frame; once a large read splits a frame, large reads go to
// the buffer until reads and frames line up again. These tests hold every mix of frame sizes and
// read boundaries to byte-exact delivery, in order.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "server_harness.hpp"

using test::ServerHarness;

namespace {

// Newline-terminated frames; replies are framed the same way.
class Lines final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        const std::size_t end = in.find("\n", scanned_);
        if (end == reactor::Buffer::npos) {
            scanned_ = in.size();
            return reactor::Decoded::need_more();
        }
        scanned_ = 0;
        reactor::Message message;
        message.payload = in.peek(end);
        out.deliver(message);
        in.drain(end + 1);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
        out.append("\n");
    }

  private:
    std::size_t scanned_ = 0;  // no newline before this offset
};

class LinesFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "test-lines"; }
    std::unique_ptr<reactor::Protocol> create() const override { return std::make_unique<Lines>(); }
};

// A frame of `size` bytes (newline included) whose content names its index and offset.
std::string frame(std::size_t index, std::size_t size) {
    std::string s(size, '\n');
    for (std::size_t i = 0; i + 1 < size; ++i) s[i] = static_cast<char>('a' + (index * 7 + i) % 26);
    return s;
}

// A listener of newline frames that sends each one back through the protocol's encoder.
void listen_echoing_lines(ServerHarness& h) {
    reactor::ListenOptions options;
    options.protocol = std::make_shared<LinesFactory>();
    options.handlers = test::echo_handlers(h.events);
    options.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        conn.send(message.payload);
    };
    h.listen_primary(std::move(options));
}

}  // namespace

TEST_CASE("frames of every size, cut anywhere, are echoed whole and in order") {
    ServerHarness h{test::NoListener{}};
    listen_echoing_lines(h);
    auto [client, id] = h.connect_and_wait_open();

    // Sizes around the area (256 KiB), the large-read mark (16 KiB) and a single byte.
    const std::vector<std::size_t> sizes = {
        10,        100 * 1024, 3, 300 * 1024, 20 * 1024,      1,  600 * 1024, 5,
        70 * 1024, 64 * 1024,  2, 256 * 1024, 256 * 1024 + 1, 40, 17 * 1024};
    std::string stream;
    std::vector<std::size_t> ends;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        stream += frame(i, sizes[i]);
        ends.push_back(stream.size());
    }
    // Each round sends whole frames and the head of the next, then reads the echoes of the whole
    // ones: the server has read that far, so its next read starts inside a frame.
    std::size_t sent = 0;
    std::size_t echoed = 0;
    for (std::size_t i = 0; i < ends.size(); ++i) {
        const std::size_t next_end = i + 1 < ends.size() ? ends[i + 1] : ends[i];
        const std::size_t cut = ends[i] + (next_end - ends[i]) / 3;
        CAPTURE(i);
        REQUIRE(client.send_all(std::string_view(stream).substr(sent, cut - sent)));
        sent = cut;
        const auto got = client.read_exactly(ends[i] - echoed);
        REQUIRE(got.ok());
        REQUIRE(got.data == stream.substr(echoed, ends[i] - echoed));
        echoed = ends[i];
    }
    CHECK(echoed == stream.size());
}

TEST_CASE("a large frame split across reads, then small requests, then large replies again") {
    // After a large read splits a frame, reads go to the buffer; request/reply traffic that lines
    // up with reads must keep working the same either way.
    ServerHarness h{test::NoListener{}};
    listen_echoing_lines(h);
    auto [client, id] = h.connect_and_wait_open();
    const std::string big = frame(1, 200 * 1024);
    REQUIRE(client.send_all(std::string_view(big).substr(0, 50 * 1024)));
    REQUIRE(client.send_all(std::string_view(big).substr(50 * 1024)));
    auto got = client.read_exactly(big.size());
    REQUIRE(got.ok());
    CHECK(got.data == big);
    for (std::size_t i = 0; i < 50; ++i) {
        CAPTURE(i);
        const std::string request = frame(i, i % 2 == 0 ? 12 : 80 * 1024);
        REQUIRE(client.send_all(request));
        got = client.read_exactly(request.size());
        REQUIRE(got.ok());
        REQUIRE(got.data == request);
    }
}
