#include "server_harness.hpp"

#include <stdexcept>

namespace test {

namespace {
class BusyNoticeProtocol final : public reactor::Protocol {
  public:
    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        const std::size_t n = in.size();
        reactor::Message message;
        message.payload = in.peek(n);
        out.deliver(message);
        in.drain(n);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
    }
    std::string busy_notice() const override { return "BUSY\n"; }
};

class BusyNoticeFactory final : public reactor::ProtocolFactory {
  public:
    std::string_view name() const override { return "raw-with-notice"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<BusyNoticeProtocol>();
    }
};
}  // namespace

std::shared_ptr<const reactor::ProtocolFactory> busy_notice_protocol() {
    return std::make_shared<BusyNoticeFactory>();
}

namespace {
// Connection logs at info level drown the test output; warnings still show.
[[maybe_unused]] const bool quiet_logs = [] {
    reactor::set_log_level(reactor::LogLevel::warn);
    return true;
}();
}  // namespace

using reactor::CloseReason;
using reactor::ConnectionId;

void ConnectionEvents::opened(ConnectionId id) {
    std::lock_guard lock(mutex_);
    opened_.push_back(id);
    changed_.notify_all();
}

void ConnectionEvents::closed(ConnectionId id, CloseReason reason) {
    std::lock_guard lock(mutex_);
    closed_[id].push_back(reason);
    ++close_calls_;
    changed_.notify_all();
}

std::vector<ConnectionId> ConnectionEvents::open_order() const {
    std::lock_guard lock(mutex_);
    return opened_;
}

std::size_t ConnectionEvents::open_count() const {
    std::lock_guard lock(mutex_);
    return opened_.size();
}

std::size_t ConnectionEvents::close_count() const {
    std::lock_guard lock(mutex_);
    return close_calls_;
}

std::vector<CloseReason> ConnectionEvents::closes_of(ConnectionId id) const {
    std::lock_guard lock(mutex_);
    const auto it = closed_.find(id);
    return it == closed_.end() ? std::vector<CloseReason>{} : it->second;
}

std::vector<ConnectionId> ConnectionEvents::unbalanced() const {
    std::lock_guard lock(mutex_);
    std::map<ConnectionId, int> opens;
    for (const ConnectionId id : opened_) ++opens[id];
    std::vector<ConnectionId> bad;
    for (const auto& [id, count] : opens) {
        const auto it = closed_.find(id);
        if (count != 1 || it == closed_.end() || it->second.size() != 1) bad.push_back(id);
    }
    for (const auto& [id, reasons] : closed_) {
        if (opens.count(id) == 0) bad.push_back(id);
    }
    return bad;
}

bool ConnectionEvents::wait_opened(std::size_t n, Millis deadline) const {
    return wait([&] { return opened_.size() >= n; }, deadline);
}

bool ConnectionEvents::wait_closed(std::size_t n, Millis deadline) const {
    return wait([&] { return close_calls_ >= n; }, deadline);
}

std::optional<CloseReason> ConnectionEvents::wait_close_of(ConnectionId id, Millis deadline) const {
    std::unique_lock lock(mutex_);
    const bool closed = changed_.wait_for(lock, deadline, [&] { return closed_.count(id) != 0; });
    if (!closed) return std::nullopt;
    return closed_.at(id).front();
}

ConnectionId ConnectionEvents::wait_nth_open(std::size_t n, Millis deadline) const {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, deadline, [&] { return opened_.size() > n; })) {
        throw std::runtime_error("connection was not opened before the deadline");
    }
    return opened_[n];
}

reactor::Handlers echo_handlers(ConnectionEvents& events) {
    reactor::Handlers handlers;
    handlers.on_open = [&events](reactor::Connection& conn) { events.opened(conn.id()); };
    handlers.on_message = [](reactor::Connection& conn, reactor::Message& msg) {
        conn.send(msg.payload);
    };
    handlers.on_close = [&events](reactor::Connection& conn, CloseReason reason) {
        events.closed(conn.id(), reason);
    };
    return handlers;
}

ServerHarness::ServerHarness(reactor::ListenOptions options) : fds_before(count_open_fds()) {
    if (!options.handlers.on_open && !options.handlers.on_message && !options.handlers.on_close) {
        options.handlers = echo_handlers(events);
    }
    endpoint = server.listen(std::move(options));
    fds_listening = count_open_fds();
    thread = std::make_unique<LoopThread>(loop);
}

ServerHarness::ServerHarness(NoListener) : fds_before(count_open_fds()), fds_listening(-1) {
    thread = std::make_unique<LoopThread>(loop);
}

void ServerHarness::listen_primary(reactor::ListenOptions options) {
    endpoint = listen(std::move(options));
    fds_listening = count_open_fds();
}

ServerHarness::~ServerHarness() {
    thread.reset();
}

reactor::Endpoint ServerHarness::listen(reactor::ListenOptions options) {
    if (!options.handlers.on_open && !options.handlers.on_message && !options.handlers.on_close) {
        options.handlers = echo_handlers(events);
    }
    return on_loop([this, options = std::move(options)]() mutable {
        return server.listen(std::move(options));
    });
}

std::pair<TestClient, ConnectionId> ServerHarness::connect_and_wait_open() {
    const std::size_t before = events.open_count();
    TestClient client = connect();
    const ConnectionId id = events.wait_nth_open(before);
    return {std::move(client), id};
}

}  // namespace test
