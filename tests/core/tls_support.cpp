// The test PKI and the blocking TLS client (see tls_support.hpp).

#include "tls_support.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>

namespace test {

std::string ssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        char line[256];
        ERR_error_string_n(code, line, sizeof line);
        if (!text.empty()) text += "; ";
        text += line;
    }
    return text;
}

namespace {

struct KeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
    void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + ": " + ssl_errors());
}

KeyPtr make_key(KeyType type) {
    KeyPtr key(type == KeyType::ecdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
    check(key != nullptr, "key generation");
    return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    check(extension != nullptr, "extension");
    X509_add_ext(cert, extension, -1);
    X509_EXTENSION_free(extension);
}

// A certificate for key, named common_name; issuer null: self-signed.
CertPtr make_cert(EVP_PKEY* key, const std::string& common_name, X509* issuer, long serial) {
    CertPtr cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("reactor tests"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
    return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
    check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
    FILE* out = std::fopen(path.c_str(), "w");
    if (out == nullptr) throw std::runtime_error("test PKI: cannot write " + path);
    const bool ok = key ? PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1
                        : PEM_write_X509(out, cert) == 1;
    std::fclose(out);
    check(ok, "PEM write");
}

}  // namespace

struct TestPki::Authority {
    KeyPtr key;
    CertPtr cert;
};

TestPki::TestPki() : authority_(std::make_unique<Authority>()) {
    authority_->key = make_key(KeyType::ecdsa);
    authority_->cert = make_cert(authority_->key.get(), "reactor test CA", nullptr, 1);
    X509* ca = authority_->cert.get();
    add_extension(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(ca, ca, NID_subject_key_identifier, "hash");
    sign(ca, authority_->key.get());
    ca_file_ = dir_.file("ca.pem");
    write_pem(ca_file_, ca, nullptr);
}

TestPki::~TestPki() = default;

reactor::TlsCertificate TestPki::issue(const std::string& common_name,
                                       const std::vector<std::string>& dns_names, KeyType type) {
    const int n = ++issued_;
    KeyPtr key = make_key(type);
    X509* ca = authority_->cert.get();
    CertPtr cert = make_cert(key.get(), common_name, ca, 100 + n);
    add_extension(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), ca, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(cert.get(), ca, NID_authority_key_identifier, "keyid");
    if (!dns_names.empty()) {
        std::string names;
        for (const auto& dns : dns_names) names += (names.empty() ? "DNS:" : ",DNS:") + dns;
        add_extension(cert.get(), ca, NID_subject_alt_name, names);
    }
    sign(cert.get(), authority_->key.get());
    reactor::TlsCertificate files{dir_.file("cert" + std::to_string(n) + ".pem"),
                                  dir_.file("key" + std::to_string(n) + ".pem")};
    write_pem(files.cert_file, cert.get(), nullptr);
    write_pem(files.key_file, nullptr, key.get());
    return files;
}

reactor::TlsCertificate TestPki::self_signed(const std::string& common_name) {
    const int n = ++issued_;
    KeyPtr key = make_key(KeyType::ecdsa);
    CertPtr cert = make_cert(key.get(), common_name, nullptr, 100 + n);
    add_extension(cert.get(), cert.get(), NID_subject_alt_name, "DNS:" + common_name);
    sign(cert.get(), key.get());
    reactor::TlsCertificate files{dir_.file("cert" + std::to_string(n) + ".pem"),
                                  dir_.file("key" + std::to_string(n) + ".pem")};
    write_pem(files.cert_file, cert.get(), nullptr);
    write_pem(files.key_file, nullptr, key.get());
    return files;
}

TlsTestClient::TlsTestClient(const reactor::Endpoint& endpoint, const TlsClientSetup& setup,
                             Millis timeout) {
    socket_ = TestClient::connect(endpoint, timeout);
    // Blocking, with deadlines: OpenSSL's blocking calls then wait at most `timeout`.
    ::fcntl(socket_.fd(), F_SETFL, ::fcntl(socket_.fd(), F_GETFL) & ~O_NONBLOCK);
    timeval limit{};
    limit.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    limit.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(socket_.fd(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(socket_.fd(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);

    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) throw std::runtime_error("SSL_CTX_new: " + ssl_errors());
    if (setup.min_version != 0) SSL_CTX_set_min_proto_version(ctx_, setup.min_version);
    if (setup.max_version != 0) SSL_CTX_set_max_proto_version(ctx_, setup.max_version);
    if (!setup.tickets) SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
    if (!setup.sigalgs.empty()) SSL_CTX_set1_sigalgs_list(ctx_, setup.sigalgs.c_str());
    if (!setup.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx_, setup.ca_file.c_str(), nullptr) != 1) {
            throw std::runtime_error("CA: " + ssl_errors());
        }
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!setup.certificate.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx_, setup.certificate.cert_file.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx_, setup.certificate.key_file.c_str(),
                                        SSL_FILETYPE_PEM) != 1) {
            throw std::runtime_error("client certificate: " + ssl_errors());
        }
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, socket_.fd());
    if (!setup.server_name.empty()) {
        SSL_set_tlsext_host_name(ssl_, setup.server_name.c_str());
        if (!setup.ca_file.empty()) SSL_set1_host(ssl_, setup.server_name.c_str());
    }
    if (!setup.alpn.empty()) {
        std::string wire;
        for (const auto& name : setup.alpn) {
            wire += static_cast<char>(name.size());
            wire += name;
        }
        SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
    }
    if (setup.resume != nullptr) SSL_set_session(ssl_, setup.resume);
    ERR_clear_error();
    const int done = SSL_connect(ssl_);
    if (done == 1) {
        established_ = true;
        return;
    }
    const int error = SSL_get_error(ssl_, done);
    error_ = "SSL_connect: error " + std::to_string(error) + " " + ssl_errors();
    if (error == SSL_ERROR_SYSCALL && errno == EAGAIN) error_ += " (timeout)";
}

TlsTestClient::~TlsTestClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

bool TlsTestClient::send_all(const std::string& bytes) {
    if (!established_) return false;
    std::size_t written = 0;
    return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written) == 1 && written == bytes.size();
}

ReadResult TlsTestClient::read_exactly(std::size_t n) {
    ReadResult result;
    while (result.data.size() < n) {
        char chunk[16384];
        std::size_t got = 0;
        const std::size_t want = std::min(sizeof chunk, n - result.data.size());
        if (SSL_read_ex(ssl_, chunk, want, &got) == 1) {
            result.data.append(chunk, got);
            continue;
        }
        const int error = SSL_get_error(ssl_, 0);
        result.end = error == SSL_ERROR_ZERO_RETURN ? ReadEnd::eof
                     : errno == EAGAIN              ? ReadEnd::timeout
                                                    : ReadEnd::error;
        result.error = errno;
        ERR_clear_error();
        return result;
    }
    result.end = ReadEnd::complete;
    return result;
}

ReadResult TlsTestClient::read_until_close() {
    ReadResult result;
    for (;;) {
        char chunk[16384];
        std::size_t got = 0;
        const int done = SSL_read_ex(ssl_, chunk, sizeof chunk, &got);
        if (done == 1) {
            result.data.append(chunk, got);
            continue;
        }
        const int error = SSL_get_error(ssl_, done);
        result.end = error == SSL_ERROR_ZERO_RETURN                  ? ReadEnd::complete
                     : error == SSL_ERROR_SYSCALL && errno == EAGAIN ? ReadEnd::timeout
                     : error == SSL_ERROR_SSL                        ? ReadEnd::eof
                                                                     : ReadEnd::error;
        result.error = errno;
        ERR_clear_error();
        return result;
    }
}

bool TlsTestClient::renegotiate_refused() {
    if (SSL_renegotiate(ssl_) != 1) return false;
    ERR_clear_error();
    const int done = SSL_do_handshake(ssl_);
    if (done == 1) {
        // Sent; the server's answer comes with the next read: an alert, or a new handshake.
        char byte;
        std::size_t got = 0;
        const bool read = SSL_read_ex(ssl_, &byte, 1, &got) == 1;
        const bool renegotiated = SSL_renegotiate_pending(ssl_) == 0 && read;
        ERR_clear_error();
        return !renegotiated;
    }
    ERR_clear_error();
    return true;
}

void TlsTestClient::close_notify() {
    if (established_) SSL_shutdown(ssl_);
}

std::string TlsTestClient::version() const {
    return SSL_get_version(ssl_);
}

std::string TlsTestClient::alpn() const {
    const unsigned char* name = nullptr;
    unsigned size = 0;
    SSL_get0_alpn_selected(ssl_, &name, &size);
    return name ? std::string(reinterpret_cast<const char*>(name), size) : std::string();
}

std::string TlsTestClient::peer_subject() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return {};
    char line[512];
    X509_NAME_oneline(X509_get_subject_name(cert), line, sizeof line);
    return line;
}

std::string TlsTestClient::peer_key_type() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return {};
    const EVP_PKEY* key = X509_get0_pubkey(cert);
    if (key == nullptr) return {};
    if (EVP_PKEY_is_a(key, "EC")) return "EC";
    if (EVP_PKEY_is_a(key, "RSA")) return "RSA";
    return "other";
}

bool TlsTestClient::resumed() const {
    return SSL_session_reused(ssl_) == 1;
}

SSL_SESSION* TlsTestClient::take_session() {
    return SSL_get1_session(ssl_);
}

}  // namespace test
