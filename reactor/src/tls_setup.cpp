// Builds the OpenSSL contexts of TLS listeners and outbound connections from their options, with
// the callbacks that choose a certificate (SNI), a protocol (ALPN) and a ticket key.

#include "tls_setup.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "reactor/config_error.hpp"

namespace reactor {

namespace {

// Forward-secret AEAD suites only, the strongest first (the server's order decides).
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

const TlsSetup& setup_of(SSL_CTX* ctx) {
    return *static_cast<const TlsSetup*>(SSL_CTX_get_app_data(ctx));
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw ConfigError(path, problem);
}

// The file must be readable: OpenSSL's own message for a missing file says less.
void check_readable(const std::string& path, const std::string& file) {
    if (file.empty()) fail(path, "missing file name");
    std::FILE* f = std::fopen(file.c_str(), "rb");
    if (f == nullptr) fail(path, "cannot read " + file + ": " + std::strerror(errno));
    std::fclose(f);
}

int version_of(const std::string& path, const std::string& version) {
    if (version == "1.2") return TLS1_2_VERSION;
    if (version == "1.3") return TLS1_3_VERSION;
    fail(path, "\"" + version + "\" is not a TLS version reactor offers (\"1.2\" or \"1.3\")");
}

std::string alpn_wire(const std::string& path, const std::vector<std::string>& names) {
    std::string wire;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        if (name.empty() || name.size() > 255) {
            fail(path + "[" + std::to_string(i) + "]", "an ALPN name has 1 to 255 bytes");
        }
        wire.push_back(static_cast<char>(name.size()));
        wire += name;
    }
    return wire;
}

// The leaf certificate of a PEM chain file, and a PEM private key, each read by itself: so a key
// is checked against its own certificate, not against whichever pair of the context has its type.
struct Leaf {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
    ~Leaf() {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
};

void read_pair(const std::string& at, const TlsCertificate& pair, Leaf& out) {
    ERR_clear_error();
    if (BIO* in = BIO_new_file(pair.cert_file.c_str(), "r")) {
        out.cert = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
        BIO_free(in);
    }
    if (out.cert == nullptr) {
        fail(at + ".cert", "cannot load certificate " + pair.cert_file + ": " + openssl_errors());
    }
    if (BIO* in = BIO_new_file(pair.key_file.c_str(), "r")) {
        out.key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
        BIO_free(in);
    }
    if (out.key == nullptr) {
        fail(at + ".key", "cannot load key " + pair.key_file + ": " + openssl_errors());
    }
    if (X509_check_private_key(out.cert, out.key) != 1) {
        ERR_clear_error();
        fail(at + ".key", "key " + pair.key_file + " does not match certificate " + pair.cert_file);
    }
}

void load_certificates(SSL_CTX* ctx, const std::string& path,
                       const std::vector<TlsCertificate>& certificates) {
    if (certificates.empty()) fail(path, "at least one certificate and key are needed");
    std::vector<int> key_types;
    for (std::size_t i = 0; i < certificates.size(); ++i) {
        const std::string at = path + "[" + std::to_string(i) + "]";
        const TlsCertificate& pair = certificates[i];
        check_readable(at + ".cert", pair.cert_file);
        check_readable(at + ".key", pair.key_file);
        Leaf leaf;
        read_pair(at, pair, leaf);
        // A context holds one pair per key type: a second of the same type would replace the first.
        const int type = EVP_PKEY_get_base_id(leaf.key);
        if (std::find(key_types.begin(), key_types.end(), type) != key_types.end()) {
            fail(at, "a second " + std::string(OBJ_nid2sn(type)) +
                         " certificate: each key type (ECDSA, RSA) can be given once");
        }
        key_types.push_back(type);
        ERR_clear_error();
        if (SSL_CTX_use_certificate_chain_file(ctx, pair.cert_file.c_str()) != 1) {
            fail(at + ".cert",
                 "cannot load certificate " + pair.cert_file + ": " + openssl_errors());
        }
        if (SSL_CTX_use_PrivateKey(ctx, leaf.key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            fail(at + ".key", "key " + pair.key_file + " does not match certificate " +
                                  pair.cert_file + ": " + openssl_errors());
        }
    }
}

int choose_protocol(SSL* ssl, const unsigned char** out, unsigned char* out_size,
                    const unsigned char* offered, unsigned int offered_size, void*) {
    const TlsSetup& setup = setup_of(SSL_get_SSL_CTX(ssl));
    unsigned char* chosen = nullptr;
    const auto* ours = reinterpret_cast<const unsigned char*>(setup.alpn.data());
    // The server's order of preference: SSL_select_next_proto walks its first list.
    if (SSL_select_next_proto(&chosen, out_size, ours, static_cast<unsigned>(setup.alpn.size()),
                              offered, offered_size) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301: no_application_protocol
    }
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

int choose_certificate(SSL* ssl, int*, void*) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == nullptr) return SSL_TLSEXT_ERR_OK;
    const TlsSetup& setup = setup_of(SSL_get_SSL_CTX(ssl));
    if (SSL_CTX* ctx = setup.context_for(name)) SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

int ticket_key(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
               EVP_MAC_CTX* mac, int sealing) {
    const TlsSetup& setup = setup_of(SSL_get_SSL_CTX(ssl));
    TicketKeys::Key key;
    bool renew = false;
    if (sealing) {
        if (!setup.tickets->sealing(key) || RAND_bytes(iv, 16) != 1) return -1;
        std::memcpy(name, key.name.data(), key.name.size());
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.cipher_key.data(), iv) !=
            1) {
            return -1;
        }
    } else {
        if (!setup.tickets->opening(name, key, renew)) return 0;  // unknown key: full handshake
        if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.cipher_key.data(), iv) !=
            1) {
            return -1;
        }
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.mac_key.data(),
                                          key.mac_key.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    return renew ? 2 : 1;
}

// What every server context shares: versions, ciphers, sessions, client verification, ALPN.
void configure_server(SSL_CTX* ctx, TlsSetup& setup, const TlsServerOptions& options) {
    SSL_CTX_set_app_data(ctx, &setup);
    if (SSL_CTX_set_min_proto_version(ctx, version_of("min_version", options.min_version)) != 1) {
        fail("min_version", openssl_errors());
    }
    SSL_CTX_set_options(
        ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // Idle connections give their record buffers back.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // One read takes as much of the peer's records as the buffer holds.
    SSL_CTX_set_read_ahead(ctx, 1);
    const std::string ciphers = options.ciphers.empty() ? kDefaultCiphers : options.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
        fail("ciphers", "no usable cipher in \"" + ciphers + "\": " + openssl_errors());
    }
    if (!options.ciphersuites.empty() &&
        SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1) {
        fail("ciphersuites",
             "no usable suite in \"" + options.ciphersuites + "\": " + openssl_errors());
    }
    static const unsigned char kSessionContext[] = "reactor";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    if (options.session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(options.session_cache));
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (options.session_tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (options.verify_client || !options.ca_file.empty()) {
        if (options.ca_file.empty()) fail("ca", "verify_client needs a CA bundle");
        check_readable("ca", options.ca_file);
        ERR_clear_error();
        if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
            fail("ca", "cannot load CA bundle " + options.ca_file + ": " + openssl_errors());
        }
        // The CA names go to the client in the certificate request.
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str())) {
            SSL_CTX_set_client_CA_list(ctx, names);
        }
        SSL_CTX_set_verify(ctx,
                           options.verify_client ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                 : SSL_VERIFY_PEER,
                           nullptr);
    }
    if (!setup.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, choose_protocol, nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx, choose_certificate);
}

SslCtxPtr new_context(const SSL_METHOD* method) {
    SslCtxPtr ctx(SSL_CTX_new(method));
    if (!ctx) throw ConfigError("", "cannot make a TLS context: " + openssl_errors());
    return ctx;
}

bool name_matches(const std::string& pattern, std::string_view name) {
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
        // One label under the suffix: "*.b.example" matches "a.b.example", not "b.example" nor
        // "x.a.b.example".
        const std::string_view suffix = std::string_view(pattern).substr(1);
        if (name.size() <= suffix.size()) return false;
        const std::string_view head = name.substr(0, name.size() - suffix.size());
        const std::string_view tail = name.substr(name.size() - suffix.size());
        if (head.find('.') != std::string_view::npos) return false;
        return strncasecmp(tail.data(), suffix.data(), suffix.size()) == 0;
    }
    return pattern.size() == name.size() &&
           strncasecmp(pattern.data(), name.data(), name.size()) == 0;
}

}  // namespace

std::string openssl_errors() {
    std::string out;
    int count = 0;
    while (const unsigned long code = ERR_get_error()) {
        if (++count > 4) continue;  // the first few say enough
        const char* reason = ERR_reason_error_string(code);
        if (!out.empty()) out += "; ";
        out += reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(code));
    }
    return out.empty() ? "unknown reason" : out;
}

bool TicketKeys::fresh(Key& key) {
    key.made = std::chrono::steady_clock::now();
    return RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) == 1 &&
           RAND_bytes(key.cipher_key.data(), static_cast<int>(key.cipher_key.size())) == 1 &&
           RAND_bytes(key.mac_key.data(), static_cast<int>(key.mac_key.size())) == 1;
}

bool TicketKeys::sealing(Key& out) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (!have_current_ || now - current_.made >= lifetime_) {
        Key next;
        if (!fresh(next)) return false;
        if (have_current_) {
            previous_ = current_;
            have_previous_ = true;
        }
        current_ = next;
        have_current_ = true;
    }
    out = current_;
    return true;
}

bool TicketKeys::opening(const unsigned char* name, Key& out, bool& renew) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (have_current_ && std::memcmp(name, current_.name.data(), current_.name.size()) == 0 &&
        now - current_.made < 2 * lifetime_) {
        out = current_;
        renew = now - current_.made >= lifetime_;
        return true;
    }
    // The previous key opens tickets for one more lifetime after it stopped sealing.
    if (have_previous_ && std::memcmp(name, previous_.name.data(), previous_.name.size()) == 0 &&
        now - previous_.made < 2 * lifetime_) {
        out = previous_;
        renew = true;
        return true;
    }
    return false;
}

SSL_CTX* TlsSetup::context_for(std::string_view name) const {
    for (const Named& entry : sni) {
        for (const std::string& pattern : entry.names) {
            if (name_matches(pattern, name)) return entry.ctx.get();
        }
    }
    return nullptr;
}

std::shared_ptr<const TlsSetup> build_server_setup(const TlsServerOptions& options,
                                                   std::shared_ptr<TlsCounterCells> counters,
                                                   std::shared_ptr<TicketKeys> tickets) {
    auto setup = std::make_shared<TlsSetup>();
    setup->server = true;
    setup->counters = std::move(counters);
    setup->tickets = std::move(tickets);
    setup->answer_plain_http = options.answer_plain_http;
    setup->handshake_timeout = options.handshake_timeout;
    if (options.handshake_timeout.count() <= 0) fail("handshake_timeout_ms", "must be positive");
    setup->alpn = alpn_wire("alpn", options.alpn);
    setup->ctx = new_context(TLS_server_method());
    configure_server(setup->ctx.get(), *setup, options);
    load_certificates(setup->ctx.get(), "certificates", options.certificates);
    for (std::size_t i = 0; i < options.sni.size(); ++i) {
        const std::string at = "sni[" + std::to_string(i) + "]";
        const auto& entry = options.sni[i];
        if (entry.names.empty()) fail(at + ".names", "at least one name is needed");
        TlsSetup::Named named;
        named.names = entry.names;
        named.ctx = new_context(TLS_server_method());
        try {
            configure_server(named.ctx.get(), *setup, options);
            load_certificates(named.ctx.get(), "certificates", entry.certificates);
        } catch (const ConfigError& e) {
            throw e.prefixed(at);
        }
        setup->sni.push_back(std::move(named));
    }
    return setup;
}

std::shared_ptr<const TlsSetup> build_client_setup(const TlsClientOptions& options) {
    auto setup = std::make_shared<TlsSetup>();
    setup->server = false;
    setup->server_name = options.server_name;
    setup->verify = options.verify;
    setup->handshake_timeout = options.handshake_timeout;
    if (options.handshake_timeout.count() <= 0) fail("handshake_timeout_ms", "must be positive");
    setup->alpn = alpn_wire("alpn", options.alpn);
    setup->ctx = new_context(TLS_client_method());
    SSL_CTX* ctx = setup->ctx.get();
    SSL_CTX_set_app_data(ctx, setup.get());
    if (SSL_CTX_set_min_proto_version(ctx, version_of("min_version", options.min_version)) != 1) {
        fail("min_version", openssl_errors());
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, kDefaultCiphers) != 1) fail("ciphers", openssl_errors());
    if (options.verify) {
        if (options.server_name.empty()) {
            fail("server_name", "verifying the server needs its name (or verify = false)");
        }
        ERR_clear_error();
        if (options.ca_file.empty()) {
            if (SSL_CTX_set_default_verify_paths(ctx) != 1) fail("ca", openssl_errors());
        } else {
            check_readable("ca", options.ca_file);
            if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
                fail("ca", "cannot load CA bundle " + options.ca_file + ": " + openssl_errors());
            }
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }
    if (!options.certificate.cert_file.empty() || !options.certificate.key_file.empty()) {
        load_certificates(ctx, "certificates", {options.certificate});
    }
    return setup;
}

}  // namespace reactor
