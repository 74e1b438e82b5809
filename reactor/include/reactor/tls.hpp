#pragma once

// TLS 1.2 and 1.3 as a transport (OpenSSL 3): give a listener's ListenOptions::transport a
// TlsServer's factory(), or an outbound ConnectOptions::transport tls_client(), and every protocol
// runs over TLS unchanged.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reactor/transport.hpp"

namespace reactor {

// A certificate chain (PEM, leaf first) and its private key (PEM). RSA and ECDSA pairs may be
// given together: the client's offer picks one.
struct TlsCertificate {
    std::string cert_file;
    std::string key_file;
};

struct TlsServerOptions {
    std::vector<TlsCertificate> certificates;  // at least one
    // Client certificates: verified against ca_file (PEM bundle) and required when verify_client.
    std::string ca_file;
    bool verify_client = false;
    std::string min_version = "1.2";  // "1.2" or "1.3"
    // OpenSSL cipher strings; empty: forward-secret AEAD suites only (no RC4, 3DES, CBC, export or
    // NULL ciphers), the server's preference first.
    std::string ciphers;       // TLS 1.2
    std::string ciphersuites;  // TLS 1.3
    // ALPN protocols in the server's order of preference; empty: no ALPN. A client that offers
    // only others is refused (RFC 7301's no_application_protocol).
    std::vector<std::string> alpn;
    // Certificates chosen by the name the client asks for (SNI): exact names, or "*.example.org"
    // for one label under it. A name that matches none gets `certificates`.
    struct NamedCertificates {
        std::vector<std::string> names;
        std::vector<TlsCertificate> certificates;
    };
    std::vector<NamedCertificates> sni;
    bool session_tickets = true;        // stateless resumption; keys rotate (ticket_key_lifetime)
    std::size_t session_cache = 20480;  // server-side sessions kept; 0: none
    std::chrono::seconds ticket_key_lifetime{12 * 3600};
    std::chrono::milliseconds handshake_timeout{10000};
    // A plain HTTP request sent to this port is answered "400 Bad Request" (as nginx does) before
    // the close; otherwise it is only closed.
    bool answer_plain_http = false;
};

struct TlsClientOptions {
    // The server's certificate is verified against ca_file (PEM bundle; empty: the system's
    // store) and server_name, which is also sent as SNI. verify = false skips both checks.
    std::string ca_file;
    std::string server_name;
    bool verify = true;
    TlsCertificate certificate;  // a client certificate, when the server asks for one
    std::string min_version = "1.2";
    std::vector<std::string> alpn;
    std::chrono::milliseconds handshake_timeout{10000};
};

// Handshake counters of a TlsServer, over all its connections and reloads.
struct TlsCounters {
    std::uint64_t full = 0;
    std::uint64_t resumed = 0;
    std::uint64_t failed = 0;
};

// One listener's TLS: its certificates, session cache and ticket keys. Thread-safe.
class TlsServer {
  public:
    // Loads and checks every file: throws ConfigError naming the option ("certificates[0].key",
    // "sni[1].certificates[0].cert", "ca", "ciphers", ...) and OpenSSL's reason for a file that
    // cannot be read or parsed, a key that does not match its certificate, a bad cipher string.
    explicit TlsServer(const TlsServerOptions& options);
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

    // The listener's transport factory; it shares this object.
    std::shared_ptr<const TransportFactory> factory() const;

    // Loads new options (certificates, ciphers, ...) for the handshakes that follow; connections
    // already open keep theirs, as do sessions and ticket keys. Throws ConfigError as the
    // constructor does, and then nothing changed.
    void reload(const TlsServerOptions& options);

    TlsCounters counters() const;

    struct State;

  private:
    std::shared_ptr<State> state_;
};

// An outbound connection's TLS. Throws ConfigError as TlsServer does.
std::shared_ptr<const TransportFactory> tls_client(const TlsClientOptions& options);

}  // namespace reactor
