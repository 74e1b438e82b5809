#pragma once

// The TLS transport: OpenSSL driven over the connection's socket through a BIO of our own.
// Internal header.
//
// Why a BIO of our own rather than OpenSSL's socket BIO or libevent's bufferevent_openssl: reads
// start with the bytes the accept filters already took off the socket (a PROXY header's
// leftovers are the ClientHello's start); a write never blocks inside OpenSSL, so a sealed record
// the socket does not take is held here, not re-offered to SSL_write (whose retry rules would leak
// into the connection's output buffer); the first byte of a handshake is seen, to answer a plain
// HTTP request; and the read path can be fuzzed over a socketpair.

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "reactor/transport.hpp"
#include "tls_setup.hpp"

namespace reactor {

class TlsTransport final : public Transport {
  public:
    explicit TlsTransport(std::shared_ptr<const TlsSetup> setup);
    ~TlsTransport() override;
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    void attach(int fd, std::string_view received) override;
    Handshake handshake() override;
    IoResult read(char* into, std::size_t room) override;
    IoResult write(const IoSlice* slices, std::size_t count) override;
    bool shutdown_write() override;
    std::size_t unsent() const override;
    void close() override;
    std::string_view name() const override { return "tls"; }
    const TlsInfo* tls() const override { return established_ ? &info_ : nullptr; }

    // The BIO's side (tls_transport.cpp).
    int socket_read(char* into, int room, bool& retry);
    void socket_write(const char* bytes, std::size_t size);

  private:
    // Sends what is held; false when the socket failed.
    bool send_held();
    // Seals plaintext into records, which go to the socket (or are held).
    bool seal(const char* bytes, std::size_t size);
    IoResult read_stopped(int ssl_error);
    Handshake handshake_failed(int ssl_error);
    void note_established();
    void answer_plain_http();

    std::shared_ptr<const TlsSetup> setup_;
    SSL* ssl_ = nullptr;
    int fd_ = -1;
    int socket_error_ = 0;  // errno of a failed read or send; the connection is lost
    bool established_ = false;
    bool shut_down_ = false;  // close_notify queued: the TCP write side closes once it is out
    bool saw_bytes_ = false;  // the peer sent something
    char first_byte_ = 0;
    std::string held_;                       // sealed records the socket did not take yet
    std::unique_ptr<std::string> received_;  // the accept filters' leftovers, read first
    std::string error_;                      // the last failure's reasons
    TlsInfo info_;
};

}  // namespace reactor
