#pragma once

// TLS for tests: a throwaway certificate authority that issues server and client certificates
// into a temporary directory, and a blocking TLS client (OpenSSL over a TestClient's socket) whose
// every operation has a deadline.

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "reactor/tls.hpp"
#include "temp_dir.hpp"
#include "test_client.hpp"

namespace test {

enum class KeyType { ecdsa, rsa };

// A CA (ECDSA P-256) and what it issued, as PEM files in its own temporary directory.
class TestPki {
  public:
    TestPki();
    ~TestPki();
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    const std::string& ca_file() const { return ca_file_; }
    // A certificate for CN=common_name with these DNS names (subjectAltName), signed by the CA.
    reactor::TlsCertificate issue(const std::string& common_name,
                                  const std::vector<std::string>& dns_names,
                                  KeyType type = KeyType::ecdsa);
    // The same, signed by itself instead: no CA vouches for it.
    reactor::TlsCertificate self_signed(const std::string& common_name);
    std::string file(const std::string& name) const { return dir_.file(name); }

  private:
    TempDir dir_;
    std::string ca_file_;
    struct Authority;
    std::unique_ptr<Authority> authority_;
    int issued_ = 0;
};

struct TlsClientSetup {
    std::string ca_file;      // verify the server against it; empty: no verification
    std::string server_name;  // SNI (and the verified name, when ca_file is set)
    std::vector<std::string> alpn;
    reactor::TlsCertificate certificate;  // a client certificate, when set
    int max_version = 0;                  // TLS1_2_VERSION, ...; 0: the highest
    int min_version = 0;
    std::string sigalgs;            // e.g. "RSA-PSS+SHA256": to pick the RSA certificate
    SSL_SESSION* resume = nullptr;  // a session of an earlier connection to resume
    bool tickets = true;            // false: the client refuses session tickets
};

// A TLS client over a blocking socket with deadlines (SO_RCVTIMEO / SO_SNDTIMEO).
class TlsTestClient {
  public:
    // Connects and shakes hands; handshake_ok() says whether that worked, error() why not.
    TlsTestClient(const reactor::Endpoint& endpoint, const TlsClientSetup& setup,
                  Millis timeout = Millis{5000});
    ~TlsTestClient();
    TlsTestClient(const TlsTestClient&) = delete;
    TlsTestClient& operator=(const TlsTestClient&) = delete;

    bool handshake_ok() const { return established_; }
    const std::string& error() const { return error_; }

    bool send_all(const std::string& bytes);
    // Reads exactly n bytes of plaintext.
    ReadResult read_exactly(std::size_t n);
    // Reads until the server ends the TLS stream: complete when it sent close_notify.
    ReadResult read_until_close();
    // TLS 1.2: asks for a renegotiation and reads; true when the server refused it (a
    // no_renegotiation alert, or the connection ended) rather than renegotiating.
    bool renegotiate_refused();
    // Sends close_notify (the server reads the end of the stream).
    void close_notify();

    std::string version() const;
    std::string alpn() const;
    std::string peer_subject() const;   // the server certificate's subject, one line
    std::string peer_key_type() const;  // "EC" or "RSA"
    bool resumed() const;
    // The session, for a later connection's TlsClientSetup::resume (the caller frees it). TLS
    // 1.3 sends its tickets after the handshake: read something first.
    SSL_SESSION* take_session();

    TestClient& socket() { return socket_; }

  private:
    TestClient socket_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    bool established_ = false;
    std::string error_;
};

// OpenSSL's queued errors on this thread, as text, and the queue cleared.
std::string ssl_errors();

}  // namespace test
