#pragma once

// What TLS transports are made from: OpenSSL contexts built from TlsServerOptions or
// TlsClientOptions (tls_setup.cpp), fixed once built and shared by the connections made from them.
// Internal header.

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reactor/tls.hpp"

namespace reactor {

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// Session ticket keys: the current one seals new tickets, the one before still opens tickets it
// sealed (which are then renewed). Rotated when the current one is older than its lifetime, as
// tickets are sealed; shared by a TlsServer's contexts across reloads. Any thread.
class TicketKeys {
  public:
    explicit TicketKeys(std::chrono::seconds lifetime) : lifetime_(lifetime) {}

    struct Key {
        std::array<unsigned char, 16> name{};
        std::array<unsigned char, 32> cipher_key{};
        std::array<unsigned char, 32> mac_key{};
        std::chrono::steady_clock::time_point made;
    };
    // The key to seal a ticket with (rotating first when it is due). False: no random bytes.
    bool sealing(Key& out);
    // The key named `name`; renew: the ticket should be replaced by one under the current key.
    bool opening(const unsigned char* name, Key& out, bool& renew);

  private:
    bool fresh(Key& key);

    std::mutex mutex_;
    std::chrono::seconds lifetime_;
    bool have_current_ = false;
    bool have_previous_ = false;
    Key current_;
    Key previous_;
};

// What every connection of a TlsServer counts.
struct TlsCounterCells {
    std::atomic<std::uint64_t> full{0};
    std::atomic<std::uint64_t> resumed{0};
    std::atomic<std::uint64_t> failed{0};
};

struct TlsSetup {
    bool server = true;
    SslCtxPtr ctx;
    // Server: the contexts SNI picks from, with the names each answers to.
    struct Named {
        std::vector<std::string> names;
        SslCtxPtr ctx;
    };
    std::vector<Named> sni;
    // ALPN, in wire form (length-prefixed names), in order of preference.
    std::string alpn;
    bool answer_plain_http = false;
    std::chrono::milliseconds handshake_timeout{10000};
    // Client: the name sent as SNI and verified (when verify), or the address verified.
    std::string server_name;
    bool verify = true;
    std::shared_ptr<TlsCounterCells> counters;  // server only
    std::shared_ptr<TicketKeys> tickets;        // server with session tickets only

    // The context whose names include `name`; null: none matches.
    SSL_CTX* context_for(std::string_view name) const;
};

// Throw ConfigError with the option's path and OpenSSL's reason.
std::shared_ptr<const TlsSetup> build_server_setup(const TlsServerOptions& options,
                                                   std::shared_ptr<TlsCounterCells> counters,
                                                   std::shared_ptr<TicketKeys> tickets);
std::shared_ptr<const TlsSetup> build_client_setup(const TlsClientOptions& options);

// OpenSSL's reasons for the last failure on this thread, "; "-separated, and the queue cleared.
std::string openssl_errors();

}  // namespace reactor
