// TlsServer (reactor/tls.hpp): one listener's current TLS setup, swapped by reload(), its
// counters and ticket keys; and the transport factories of listeners and outbound connections.

#include <memory>
#include <mutex>

#include "reactor/tls.hpp"
#include "tls_setup.hpp"
#include "tls_transport.hpp"

namespace reactor {

struct TlsServer::State {
    mutable std::mutex mutex;
    std::shared_ptr<const TlsSetup> setup;  // replaced by reload()
    std::shared_ptr<TlsCounterCells> counters = std::make_shared<TlsCounterCells>();
    std::shared_ptr<TicketKeys> tickets;

    std::shared_ptr<const TlsSetup> current() const {
        std::lock_guard lock(mutex);
        return setup;
    }
};

namespace {

class TlsServerFactory final : public TransportFactory {
  public:
    explicit TlsServerFactory(std::shared_ptr<TlsServer::State> state) : state_(std::move(state)) {}
    std::string_view name() const override { return "tls"; }
    std::unique_ptr<Transport> create() const override {
        return std::make_unique<TlsTransport>(state_->current());
    }
    std::chrono::milliseconds handshake_timeout() const override {
        return state_->current()->handshake_timeout;
    }

  private:
    std::shared_ptr<TlsServer::State> state_;
};

class TlsClientFactory final : public TransportFactory {
  public:
    explicit TlsClientFactory(std::shared_ptr<const TlsSetup> setup) : setup_(std::move(setup)) {}
    std::string_view name() const override { return "tls"; }
    std::unique_ptr<Transport> create() const override {
        return std::make_unique<TlsTransport>(setup_);
    }
    std::chrono::milliseconds handshake_timeout() const override {
        return setup_->handshake_timeout;
    }

  private:
    std::shared_ptr<const TlsSetup> setup_;
};

}  // namespace

TlsServer::TlsServer(const TlsServerOptions& options) : state_(std::make_shared<State>()) {
    state_->tickets = std::make_shared<TicketKeys>(options.ticket_key_lifetime);
    state_->setup = build_server_setup(options, state_->counters, state_->tickets);
}

TlsServer::~TlsServer() = default;

std::shared_ptr<const TransportFactory> TlsServer::factory() const {
    return std::make_shared<TlsServerFactory>(state_);
}

void TlsServer::reload(const TlsServerOptions& options) {
    auto next = build_server_setup(options, state_->counters, state_->tickets);
    std::lock_guard lock(state_->mutex);
    state_->setup = std::move(next);
}

TlsCounters TlsServer::counters() const {
    const TlsCounterCells& cells = *state_->counters;
    return {cells.full.load(std::memory_order_relaxed),
            cells.resumed.load(std::memory_order_relaxed),
            cells.failed.load(std::memory_order_relaxed)};
}

std::shared_ptr<const TransportFactory> tls_client(const TlsClientOptions& options) {
    return std::make_shared<TlsClientFactory>(build_client_setup(options));
}

}  // namespace reactor
