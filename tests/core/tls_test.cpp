// The TLS transport over real loopback sockets, against OpenSSL as the client: echo through TLS
// 1.3 and 1.2, a large burst both ways, on_open after the handshake with what it negotiated, SNI,
// ALPN, client certificates, resumption by ticket and by the session cache, reload, plaintext sent
// to the port, the handshake's deadline, orderly and abrupt ends, option errors, and outbound
// connections through tls_client().

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reactor/config_error.hpp"
#include "reactor/tls.hpp"
#include "server_harness.hpp"
#include "tls_support.hpp"

using namespace std::chrono_literals;
using reactor::TlsServer;
using reactor::TlsServerOptions;
using test::TlsClientSetup;
using test::TlsTestClient;

namespace {

// What on_open saw of each connection's TLS.
struct Negotiated {
    std::string version, cipher, alpn, server_name, peer_subject;
    bool resumed = false;
    bool had_tls = false;
};

class Seen {
  public:
    void record(const reactor::Connection& conn) {
        Negotiated n;
        if (const reactor::TlsInfo* tls = conn.tls()) {
            n = {std::string(tls->version),
                 std::string(tls->cipher),
                 std::string(tls->alpn),
                 std::string(tls->server_name),
                 tls->peer_subject,
                 tls->resumed,
                 true};
        }
        std::lock_guard lock(mutex_);
        opened_.push_back(n);
    }
    Negotiated at(std::size_t i) {
        std::lock_guard lock(mutex_);
        return i < opened_.size() ? opened_[i] : Negotiated{};
    }

  private:
    std::mutex mutex_;
    std::vector<Negotiated> opened_;
};

// A TLS echo server: raw framing, every message sent back, on_open recording what TLS
// negotiated.
struct TlsEcho {
    explicit TlsEcho(TlsServerOptions options) : tls(std::make_shared<TlsServer>(options)) {
        reactor::ListenOptions listen;
        listen.endpoint = reactor::Endpoint::parse("127.0.0.1:0");
        listen.transport = tls->factory();
        listen.handlers = test::echo_handlers(harness.events);
        auto open = listen.handlers.on_open;
        listen.handlers.on_open = [this, open](reactor::Connection& conn) {
            seen.record(conn);
            open(conn);
        };
        harness.listen_primary(std::move(listen));
    }
    // Connects, shakes hands, and checks one round trip.
    std::unique_ptr<TlsTestClient> client(TlsClientSetup setup) {
        auto c = std::make_unique<TlsTestClient>(harness.endpoint, setup);
        return c;
    }

    std::shared_ptr<TlsServer> tls;
    Seen seen;
    test::ServerHarness harness{test::NoListener{}};
};

TlsServerOptions server_options(test::TestPki& pki) {
    TlsServerOptions options;
    options.certificates = {pki.issue("localhost", {"localhost"})};
    return options;
}

TlsClientSetup verified(test::TestPki& pki, std::string name = "localhost") {
    TlsClientSetup setup;
    setup.ca_file = pki.ca_file();
    setup.server_name = std::move(name);
    return setup;
}

bool round_trip(TlsTestClient& client, const std::string& text) {
    if (!client.send_all(text)) return false;
    const auto echoed = client.read_exactly(text.size());
    return echoed.ok() && echoed.data == text;
}

}  // namespace

TEST_CASE("echo over TLS 1.3; on_open runs after the handshake and sees what it negotiated") {
    test::TestPki pki;
    TlsEcho server(server_options(pki));
    auto client = server.client(verified(pki));
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    CHECK(client->version() == "TLSv1.3");
    REQUIRE(server.harness.events.wait_opened(1));
    CHECK(round_trip(*client, "hello over tls\n"));
    const Negotiated n = server.seen.at(0);
    CHECK(n.had_tls);
    CHECK(n.version == "TLSv1.3");
    CHECK(n.cipher.rfind("TLS_", 0) == 0);
    CHECK(n.server_name == "localhost");
    CHECK(n.peer_subject.empty());
    CHECK_FALSE(n.resumed);
    CHECK(server.tls->counters().full == 1);
}

TEST_CASE("no on_open before the handshake; a client that never starts one times out") {
    test::TestPki pki;
    TlsServerOptions options = server_options(pki);
    options.handshake_timeout = 300ms;
    TlsEcho server(options);
    auto silent = server.harness.connect();
    // The server closes the silent connection at its deadline, without opening it.
    CHECK(silent.sees_eof(5000ms));
    CHECK(server.harness.events.open_count() == 0);
    // Another client is served meanwhile and afterwards.
    auto client = server.client(verified(pki));
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    CHECK(round_trip(*client, "still here"));
    CHECK(server.harness.events.open_count() == 1);
}

TEST_CASE("TLS 1.2 when the client offers no more, with a forward-secret AEAD cipher") {
    test::TestPki pki;
    TlsEcho server(server_options(pki));
    TlsClientSetup setup = verified(pki);
    setup.max_version = TLS1_2_VERSION;
    auto client = server.client(setup);
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    CHECK(client->version() == "TLSv1.2");
    CHECK(round_trip(*client, "twelve"));
    REQUIRE(server.harness.events.wait_opened(1));
    const Negotiated n = server.seen.at(0);
    CHECK(n.version == "TLSv1.2");
    CHECK(n.cipher.rfind("ECDHE-", 0) == 0);
    CHECK(n.cipher.find("GCM") + n.cipher.find("CHACHA20") != 2 * std::string::npos);
}

TEST_CASE("TLS 1.1 and 1.0 are refused, as are 1.2 clients when the minimum is 1.3") {
    test::TestPki pki;
    {
        TlsEcho server(server_options(pki));
        TlsClientSetup setup = verified(pki);
        setup.min_version = TLS1_VERSION;
        setup.max_version = TLS1_1_VERSION;
        auto client = server.client(setup);
        CHECK_FALSE(client->handshake_ok());
    }
    TlsServerOptions options = server_options(pki);
    options.min_version = "1.3";
    TlsEcho server(options);
    TlsClientSetup setup = verified(pki);
    setup.max_version = TLS1_2_VERSION;
    auto client = server.client(setup);
    CHECK_FALSE(client->handshake_ok());
    CHECK(server.harness.events.open_count() == 0);
    // The failure is counted and the listener keeps serving.
    auto good = server.client(verified(pki));
    REQUIRE_MESSAGE(good->handshake_ok(), good->error());
    CHECK(round_trip(*good, "1.3 only"));
    CHECK(server.tls->counters().failed >= 1);
}

TEST_CASE("a megabyte each way in one burst: records gathered, nothing lost or reordered") {
    test::TestPki pki;
    TlsEcho server(server_options(pki));
    auto client = server.client(verified(pki));
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    std::string payload(1 << 20, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 % 251);
    // Written from another thread: the echo comes back while the burst is still going out.
    auto writer = std::async(std::launch::async, [&] { return client->send_all(payload); });
    const auto echoed = client->read_exactly(payload.size());
    CHECK(writer.get());
    REQUIRE(echoed.ok());
    CHECK(echoed.data == payload);
}

TEST_CASE("SNI picks the certificate by name, exact or one label under a wildcard") {
    test::TestPki pki;
    TlsServerOptions options = server_options(pki);
    options.sni = {{{"a.example"}, {pki.issue("a.example", {"a.example"})}},
                   {{"*.w.example"}, {pki.issue("wildcard", {"*.w.example"})}}};
    TlsEcho server(options);
    struct Case {
        std::string name, common_name;
    };
    for (const Case& c : {Case{"a.example", "a.example"}, Case{"x.w.example", "wildcard"},
                          Case{"y.x.w.example", "localhost"}, Case{"other.example", "localhost"}}) {
        CAPTURE(c.name);
        TlsClientSetup setup;  // not verified: the default certificate does not name these
        setup.server_name = c.name;
        auto client = server.client(setup);
        REQUIRE_MESSAGE(client->handshake_ok(), client->error());
        CHECK(client->peer_subject().find("CN=" + c.common_name) != std::string::npos);
        CHECK(round_trip(*client, c.name));
    }
    // And verified against the CA with the name it asked for.
    auto client = server.client(verified(pki, "a.example"));
    CHECK_MESSAGE(client->handshake_ok(), client->error());
}

TEST_CASE("ECDSA and RSA certificates together: the client's signature algorithms pick one") {
    test::TestPki pki;
    TlsServerOptions options;
    options.certificates = {pki.issue("localhost", {"localhost"}, test::KeyType::ecdsa),
                            pki.issue("localhost", {"localhost"}, test::KeyType::rsa)};
    TlsEcho server(options);
    auto ecdsa = server.client(verified(pki));
    REQUIRE_MESSAGE(ecdsa->handshake_ok(), ecdsa->error());
    CHECK(ecdsa->peer_key_type() == "EC");
    TlsClientSetup rsa_only = verified(pki);
    rsa_only.sigalgs = "RSA-PSS+SHA256:RSA+SHA256";
    auto rsa = server.client(rsa_only);
    REQUIRE_MESSAGE(rsa->handshake_ok(), rsa->error());
    CHECK(rsa->peer_key_type() == "RSA");
    CHECK(round_trip(*rsa, "rsa"));
}

TEST_CASE("ALPN: the server's preference among the client's offers, visible to the app") {
    test::TestPki pki;
    TlsServerOptions options = server_options(pki);
    options.alpn = {"h2", "http/1.1"};
    TlsEcho server(options);
    TlsClientSetup setup = verified(pki);
    setup.alpn = {"http/1.1", "h2"};
    auto client = server.client(setup);
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    CHECK(client->alpn() == "h2");
    REQUIRE(server.harness.events.wait_opened(1));
    CHECK(server.seen.at(0).alpn == "h2");

    setup.alpn = {"http/1.1"};
    auto second = server.client(setup);
    REQUIRE_MESSAGE(second->handshake_ok(), second->error());
    CHECK(second->alpn() == "http/1.1");

    // No overlap: refused with no_application_protocol, never opened.
    setup.alpn = {"imap"};
    auto refused = server.client(setup);
    CHECK_FALSE(refused->handshake_ok());
    CHECK(refused->error().find("no application protocol") != std::string::npos);
    // A client that offers no ALPN at all is served.
    auto plain = server.client(verified(pki));
    REQUIRE_MESSAGE(plain->handshake_ok(), plain->error());
    CHECK(plain->alpn().empty());
    CHECK(round_trip(*plain, "no alpn"));
    CHECK(server.harness.events.open_count() == 3);
}

TEST_CASE("client certificates: required and verified, the subject visible to the app") {
    test::TestPki pki;
    test::TestPki stranger;  // another CA's client
    TlsServerOptions options = server_options(pki);
    options.ca_file = pki.ca_file();
    options.verify_client = true;
    TlsEcho server(options);

    TlsClientSetup with_cert = verified(pki);
    with_cert.certificate = pki.issue("client one", {});
    auto client = server.client(with_cert);
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    CHECK(round_trip(*client, "mutual"));
    REQUIRE(server.harness.events.wait_opened(1));
    CHECK(server.seen.at(0).peer_subject == "CN=client one,O=reactor tests");

    // Without a certificate, or with one from another CA: refused. In TLS 1.3 the client learns
    // of it at its first read.
    for (bool has_cert : {false, true}) {
        CAPTURE(has_cert);
        TlsClientSetup setup = verified(pki);
        if (has_cert) setup.certificate = stranger.issue("intruder", {});
        auto refused = server.client(setup);
        if (refused->handshake_ok()) {
            refused->send_all("let me in");
            CHECK_FALSE(refused->read_exactly(9).ok());
        }
    }
    CHECK(server.harness.events.open_count() == 1);
    CHECK(server.tls->counters().failed == 2);
}

TEST_CASE("resumption by ticket and by the server's session cache, counted as resumed") {
    test::TestPki pki;
    for (bool tickets : {true, false}) {
        CAPTURE(tickets);
        TlsServerOptions options = server_options(pki);
        options.session_tickets = tickets;
        TlsEcho server(options);
        for (int max_version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
            CAPTURE(max_version);
            TlsClientSetup setup = verified(pki);
            setup.max_version = max_version;
            setup.tickets = tickets;
            auto first = server.client(setup);
            REQUIRE_MESSAGE(first->handshake_ok(), first->error());
            REQUIRE(round_trip(*first, "first"));  // TLS 1.3's tickets come after the handshake
            SSL_SESSION* session = first->take_session();
            REQUIRE(session != nullptr);
            setup.resume = session;
            auto second = server.client(setup);
            SSL_SESSION_free(session);
            REQUIRE_MESSAGE(second->handshake_ok(), second->error());
            CHECK(second->resumed());
            CHECK(round_trip(*second, "resumed"));
        }
        REQUIRE(server.harness.events.wait_opened(4));
        CHECK(server.seen.at(1).resumed);
        CHECK(server.seen.at(3).resumed);
        CHECK_FALSE(server.seen.at(0).resumed);
        const auto counts = server.tls->counters();
        CHECK(counts.full == 2);
        CHECK(counts.resumed == 2);
    }
}

TEST_CASE("reload: new handshakes get the new certificate, open connections keep going") {
    test::TestPki pki;
    TlsServerOptions options;
    options.certificates = {pki.issue("old", {"localhost"})};
    TlsEcho server(options);
    auto before = server.client(verified(pki));
    REQUIRE_MESSAGE(before->handshake_ok(), before->error());
    CHECK(before->peer_subject().find("CN=old") != std::string::npos);

    options.certificates = {pki.issue("new", {"localhost"})};
    server.tls->reload(options);
    auto after = server.client(verified(pki));
    REQUIRE_MESSAGE(after->handshake_ok(), after->error());
    CHECK(after->peer_subject().find("CN=new") != std::string::npos);
    CHECK(round_trip(*before, "old connection"));

    // A reload that fails changes nothing.
    options.certificates = {{pki.file("missing.pem"), pki.file("missing.key")}};
    CHECK_THROWS_AS(server.tls->reload(options), reactor::ConfigError);
    auto still = server.client(verified(pki));
    REQUIRE_MESSAGE(still->handshake_ok(), still->error());
    CHECK(still->peer_subject().find("CN=new") != std::string::npos);
}

TEST_CASE("plaintext to a TLS port: closed, with nginx's 400 for an HTTP request when asked") {
    test::TestPki pki;
    for (bool answer : {false, true}) {
        CAPTURE(answer);
        TlsServerOptions options = server_options(pki);
        options.answer_plain_http = answer;
        TlsEcho server(options);
        auto client = server.harness.connect();
        REQUIRE(client.send_all("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        const auto reply = client.read_until_eof();
        CHECK(reply.end == test::ReadEnd::complete);
        if (answer) {
            CHECK(reply.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
        } else {
            CHECK(reply.data.find("HTTP/1.1") == std::string::npos);
        }
        CHECK(server.harness.events.open_count() == 0);
    }
}

TEST_CASE("the server's orderly close sends close_notify after the last reply") {
    test::TestPki pki;
    TlsServerOptions options = server_options(pki);
    auto tls = std::make_shared<TlsServer>(options);
    test::ServerHarness harness{test::NoListener{}};
    reactor::ListenOptions listen;
    listen.endpoint = reactor::Endpoint::parse("127.0.0.1:0");
    listen.transport = tls->factory();
    listen.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        conn.send(std::string(message.payload) + " and goodbye");
        conn.close(reactor::CloseMode::flush, reactor::CloseReason::app_closed);
    };
    harness.listen_primary(std::move(listen));
    TlsTestClient client(harness.endpoint, verified(pki));
    REQUIRE_MESSAGE(client.handshake_ok(), client.error());
    REQUIRE(client.send_all("hello"));
    const auto reply = client.read_until_close();
    CHECK(reply.end == test::ReadEnd::complete);  // close_notify, not a bare FIN
    CHECK(reply.data == "hello and goodbye");
}

TEST_CASE("the client's close_notify and an abrupt FIN both end the stream after its bytes") {
    test::TestPki pki;
    TlsEcho server(server_options(pki));
    for (bool orderly : {true, false}) {
        CAPTURE(orderly);
        auto client = server.client(verified(pki));
        REQUIRE_MESSAGE(client->handshake_ok(), client->error());
        REQUIRE(round_trip(*client, "bye"));
        const auto id = server.harness.events.wait_nth_open(orderly ? 0 : 1);
        if (orderly) {
            client->close_notify();
        } else {
            client->socket().shutdown_write();
        }
        const auto reason = server.harness.events.wait_close_of(id);
        REQUIRE(reason.has_value());
        CHECK(*reason == reactor::CloseReason::peer_closed);
    }
}

TEST_CASE("options that cannot work are errors naming the option and OpenSSL's reason") {
    test::TestPki pki;
    const reactor::TlsCertificate good = pki.issue("localhost", {"localhost"});
    const reactor::TlsCertificate other = pki.issue("other", {"other"});
    const reactor::TlsCertificate rsa = pki.issue("rsa", {"rsa"}, test::KeyType::rsa);
    struct Case {
        std::string path;
        std::function<void(TlsServerOptions&)> change;
    };
    const std::vector<Case> cases = {
        {"certificates", [](TlsServerOptions& o) { o.certificates.clear(); }},
        {"certificates[0].cert",
         [&](TlsServerOptions& o) {
             o.certificates = {{pki.file("none.pem"), good.key_file}};
         }},
        {"certificates[0].key",
         [&](TlsServerOptions& o) {
             o.certificates = {{good.cert_file, other.key_file}};
         }},
        {"certificates[0].cert",
         [&](TlsServerOptions& o) {
             o.certificates = {{good.key_file, good.key_file}};
         }},
        {"certificates[1].key",
         [&](TlsServerOptions& o) {
             o.certificates = {good, {rsa.cert_file, good.key_file}};
         }},
        {"certificates[1]",
         [&](TlsServerOptions& o) {
             o.certificates = {good, other};
         }},
        {"min_version", [](TlsServerOptions& o) { o.min_version = "1.1"; }},
        {"ciphers", [](TlsServerOptions& o) { o.ciphers = "RC4-MD5"; }},
        {"ciphersuites", [](TlsServerOptions& o) { o.ciphersuites = "TLS_NOPE"; }},
        {"ca", [](TlsServerOptions& o) { o.verify_client = true; }},
        {"ca", [&](TlsServerOptions& o) { o.ca_file = pki.file("nothing.pem"); }},
        {"alpn[0]", [](TlsServerOptions& o) { o.alpn = {""}; }},
        {"sni[0].names",
         [&](TlsServerOptions& o) {
             o.sni = {{{}, {good}}};
         }},
        {"sni[0].certificates[0].key",
         [&](TlsServerOptions& o) {
             o.sni = {{{"a"}, {{good.cert_file, other.key_file}}}};
         }},
    };
    for (const Case& c : cases) {
        TlsServerOptions options;
        options.certificates = {good};
        c.change(options);
        try {
            TlsServer server(options);
            FAIL("accepted options that should fail at ", c.path);
        } catch (const reactor::ConfigError& e) {
            CAPTURE(e.describe());
            CHECK(e.path() == c.path);
            CHECK_FALSE(e.problem().empty());
        }
    }
}

TEST_CASE("outbound: tls_client verifies the server by CA and name, and speaks through TLS") {
    test::TestPki pki;
    TlsServerOptions server_side = server_options(pki);
    server_side.alpn = {"echo/1"};
    TlsEcho server(server_side);

    struct Outcome {
        reactor::ConnectionId id = 0;
        std::string error;
        std::string alpn;
    };
    auto connect = [&](reactor::TlsClientOptions options, std::promise<std::string>* reply) {
        std::promise<Outcome> done;
        auto outcome = done.get_future();
        server.harness.on_loop([&] {
            reactor::ConnectOptions connect;
            connect.endpoint = server.harness.endpoint;
            connect.transport = reactor::tls_client(options);
            connect.handlers.on_open = [](reactor::Connection& conn) { conn.send("ping"); };
            connect.handlers.on_message = [reply](reactor::Connection& conn,
                                                  reactor::Message& message) {
                if (reply) reply->set_value(std::string(message.payload));
                conn.close(reactor::CloseMode::flush, reactor::CloseReason::app_closed);
            };
            server.harness.server.connect(
                std::move(connect),
                [&done, &server](reactor::ConnectionId id, const std::string& error) {
                    Outcome o{id, error, {}};
                    if (id != 0) {
                        // done runs on the connection's loop, where find() sees it.
                        reactor::Connection* conn = server.harness.server.find(id);
                        if (conn && conn->tls()) o.alpn = std::string(conn->tls()->alpn);
                    }
                    done.set_value(o);
                });
        });
        REQUIRE(outcome.wait_for(5s) == std::future_status::ready);
        return outcome.get();
    };

    reactor::TlsClientOptions options;
    options.ca_file = pki.ca_file();
    options.server_name = "localhost";
    options.alpn = {"echo/1"};
    std::promise<std::string> reply;
    auto echoed = reply.get_future();
    const Outcome ok = connect(options, &reply);
    CHECK(ok.error.empty());
    CHECK(ok.id != 0);
    CHECK(ok.alpn == "echo/1");
    REQUIRE(echoed.wait_for(5s) == std::future_status::ready);
    CHECK(echoed.get() == "ping");

    // The wrong name, or an unknown CA: done says why, and nothing opened.
    options.server_name = "elsewhere.example";
    Outcome wrong = connect(options, nullptr);
    CHECK(wrong.id == 0);
    CHECK(wrong.error.find("certificate verify failed") != std::string::npos);
    test::TestPki stranger;
    options.server_name = "localhost";
    options.ca_file = stranger.ca_file();
    wrong = connect(options, nullptr);
    CHECK(wrong.id == 0);
    CHECK(wrong.error.find("certificate verify failed") != std::string::npos);
    // Errors in the options are ConfigErrors, as for the server.
    options.ca_file = pki.file("absent.pem");
    CHECK_THROWS_AS(reactor::tls_client(options), reactor::ConfigError);
}

TEST_CASE("output limits see what TLS has not sent: a client that never reads is closed") {
    test::TestPki pki;
    auto tls = std::make_shared<TlsServer>(server_options(pki));
    test::ServerHarness harness{test::NoListener{}};
    reactor::ListenOptions listen;
    listen.endpoint = reactor::Endpoint::parse("127.0.0.1:0");
    listen.transport = tls->factory();
    listen.limits.output_limit = 2 << 20;
    listen.limits.output_high_water = 64 << 20;  // never reached: the limit acts first
    listen.handlers = test::echo_handlers(harness.events);
    // Every byte received is answered with 64 KiB (raw framing may join requests), which the
    // client never reads.
    listen.handlers.on_message = [](reactor::Connection& conn, reactor::Message& message) {
        for (std::size_t i = 0; i < message.payload.size(); ++i) {
            conn.send(std::string(64 * 1024, 'x'));
        }
    };
    harness.listen_primary(std::move(listen));
    TlsTestClient client(harness.endpoint, verified(pki));
    REQUIRE_MESSAGE(client.handshake_ok(), client.error());
    const auto id = harness.events.wait_nth_open(0);
    // Requests as one burst: the server answers until its pending output passes the limit (the
    // transport holds at most a record or two of it; the rest waits in the connection's output).
    for (int i = 0; i < 64 && client.send_all("more"); ++i) {
    }
    const auto reason = harness.events.wait_close_of(id);
    REQUIRE(reason.has_value());
    CHECK(*reason == reactor::CloseReason::output_overflow);
}

TEST_CASE("a handshake dripped a byte at a time is cut off by the handshake deadline") {
    test::TestPki pki;
    TlsServerOptions options = server_options(pki);
    options.handshake_timeout = 400ms;
    TlsEcho server(options);
    auto client = server.harness.connect();
    // A ClientHello record header announcing 512 bytes, then a byte every 50 ms.
    const std::string header("\x16\x03\x01\x02\x00\x01", 6);
    bool closed = false;
    for (std::size_t i = 0; i < 200 && !closed; ++i) {
        const char byte = i < header.size() ? header[i] : '\0';
        if (!client.send_all(std::string_view(&byte, 1), 50ms)) closed = true;
        const auto got = client.read_exactly(1, 50ms);
        if (got.end == test::ReadEnd::eof || got.end == test::ReadEnd::error) closed = true;
    }
    CHECK(closed);  // within 200 x 50 ms at most; the deadline is 400 ms
    CHECK(server.harness.events.open_count() == 0);
}

TEST_CASE("a client that asks to renegotiate is refused and the server goes on") {
    test::TestPki pki;
    TlsEcho server(server_options(pki));
    TlsClientSetup setup = verified(pki);
    setup.max_version = TLS1_2_VERSION;
    auto client = server.client(setup);
    REQUIRE_MESSAGE(client->handshake_ok(), client->error());
    REQUIRE(round_trip(*client, "before"));
    CHECK(client->renegotiate_refused());
    // Others are served.
    auto other = server.client(verified(pki));
    REQUIRE_MESSAGE(other->handshake_ok(), other->error());
    CHECK(round_trip(*other, "after"));
}
