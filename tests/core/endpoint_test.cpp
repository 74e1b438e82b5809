#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "reactor/endpoint.hpp"

using reactor::Endpoint;

TEST_CASE("parse an IPv4 endpoint") {
    const Endpoint e = Endpoint::parse("127.0.0.1:7000");
    CHECK(e.host == "127.0.0.1");
    CHECK(e.port == 7000);
    CHECK_FALSE(e.is_unix());
    CHECK(e.to_string() == "127.0.0.1:7000");

    CHECK(Endpoint::parse("0.0.0.0:0").port == 0);
    CHECK(Endpoint::parse("10.1.2.3:65535").port == 65535);
}

TEST_CASE("parse a bracketed IPv6 endpoint") {
    const Endpoint e = Endpoint::parse("[::1]:0");
    CHECK(e.host == "::1");
    CHECK(e.port == 0);
    CHECK(e.to_string() == "[::1]:0");

    const Endpoint full = Endpoint::parse("[fe80::1:2]:8080");
    CHECK(full.host == "fe80::1:2");
    CHECK(full.port == 8080);
    CHECK(full.to_string() == "[fe80::1:2]:8080");
}

TEST_CASE("parse a host name endpoint") {
    const Endpoint e = Endpoint::parse("localhost:80");
    CHECK(e.host == "localhost");
    CHECK(e.port == 80);
}

TEST_CASE("parse a unix socket endpoint") {
    const Endpoint e = Endpoint::parse("unix:/run/reactor.sock");
    CHECK(e.is_unix());
    CHECK(e.unix_path == "/run/reactor.sock");
    CHECK(e.to_string() == "unix:/run/reactor.sock");
    CHECK(Endpoint::parse("unix:relative.sock").unix_path == "relative.sock");
}

TEST_CASE("the helpers build what parse would") {
    CHECK(Endpoint::tcp("::1", 9).to_string() == "[::1]:9");
    CHECK(Endpoint::unix_socket("/x").to_string() == "unix:/x");
    CHECK(Endpoint::parse(Endpoint::tcp("127.0.0.1", 1).to_string()).port == 1);
}

TEST_CASE("malformed endpoints are rejected") {
    const char* bad[] = {
        "",                              // nothing
        "127.0.0.1",                     // no port
        "127.0.0.1:",                    // empty port
        ":80",                           // empty host
        "1.2.3.4:65536",                 // port out of range
        "1.2.3.4:-1",                    // negative port
        "1.2.3.4:80x",                   // trailing junk
        "1.2.3.4: 80",                   // space
        "1.2.3.4:99999999999999999999",  // overflow
        "[::1]",                         // bracketed without port
        "[::1]80",                       // no colon after bracket
        "[::1:80",                       // unclosed bracket
        "[::1]:",                        // empty port after bracket
        "[]:80",                         // empty bracketed host
        "unix:",                         // empty path
    };
    for (const char* text : bad) {
        INFO("endpoint '" << text << "'");
        CHECK_THROWS_AS(Endpoint::parse(text), std::invalid_argument);
    }
}

TEST_CASE("the error names the offending text") {
    try {
        Endpoint::parse("nowhere");
        FAIL("expected an exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("nowhere") != std::string::npos);
    }
}
