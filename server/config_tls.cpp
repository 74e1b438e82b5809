// The "tls" object of a listener (see config_tls.hpp) and tls_config_path() (config.hpp).

#include "config_tls.hpp"

#include <algorithm>
#include <chrono>

#include "config.hpp"
#include "config_within.hpp"
#include "options.hpp"

namespace reactord {

using reactor::ConfigError;
using reactor::protocols::Options;

namespace {

std::vector<std::string> read_strings(const nlohmann::json* value, bool allow_empty_array) {
    std::vector<std::string> out;
    if (value == nullptr) return out;
    if (!value->is_array() || (!allow_empty_array && value->empty())) {
        throw ConfigError("", allow_empty_array ? "expected an array of strings"
                                                : "expected a non-empty array of strings");
    }
    for (std::size_t i = 0; i < value->size(); ++i) {
        const auto& item = (*value)[i];
        if (!item.is_string() || item.get<std::string>().empty()) {
            throw ConfigError("[" + std::to_string(i) + "]", "expected a non-empty string");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

// "cert" and "key" in the object itself, or "certificates": [{"cert", "key"}, ...] (an ECDSA and
// an RSA pair, say). `at` is the object's path below "tls" ("" or "sni[1]").
std::vector<reactor::TlsCertificate> read_certificates(
    Options& in, const std::string& at, std::vector<std::pair<std::string, std::string>>& paths) {
    const std::string library_at = at.empty() ? "certificates" : at + ".certificates";
    std::vector<reactor::TlsCertificate> out;
    if (in.has("certificates")) {
        if (in.has("cert") || in.has("key")) {
            throw ConfigError("certificates", "give either cert and key or certificates");
        }
        const auto* list = in.get("certificates");
        if (!list->is_array() || list->empty()) {
            throw ConfigError("certificates", "expected a non-empty array of {cert, key}");
        }
        for (std::size_t i = 0; i < list->size(); ++i) {
            out.push_back(within("certificates[" + std::to_string(i) + "]", [&] {
                Options pair((*list)[i]);
                reactor::TlsCertificate c{pair.string("cert", ""), pair.string("key", "")};
                if (c.cert_file.empty()) throw ConfigError("cert", "expected a file name");
                if (c.key_file.empty()) throw ConfigError("key", "expected a file name");
                pair.finish();
                return c;
            }));
        }
        paths.emplace_back(library_at, library_at);
        return out;
    }
    reactor::TlsCertificate c{in.string("cert", ""), in.string("key", "")};
    if (c.cert_file.empty()) throw ConfigError("cert", "expected a file name (or certificates)");
    if (c.key_file.empty()) throw ConfigError("key", "expected a file name");
    out.push_back(c);
    paths.emplace_back(library_at + "[0]", at);
    return out;
}

}  // namespace

std::pair<reactor::TlsServerOptions, std::vector<std::pair<std::string, std::string>>> read_tls(
    const nlohmann::json& value, const std::string& protocol) {
    reactor::TlsServerOptions out;
    std::vector<std::pair<std::string, std::string>> paths;
    Options in(value);
    out.certificates = read_certificates(in, "", paths);
    out.ca_file = in.string("ca", "");
    out.verify_client = in.boolean("verify_client", false);
    out.min_version = in.choice("min_version", "1.2", {"1.2", "1.3"});
    out.ciphers = in.string("ciphers", "");
    out.ciphersuites = in.string("ciphersuites", "");
    out.alpn = within("alpn", [&] { return read_strings(in.get("alpn"), true); });
    if (const auto* sni = in.get("sni")) {
        if (!sni->is_array()) throw ConfigError("sni", "expected an array of {names, cert, key}");
        for (std::size_t i = 0; i < sni->size(); ++i) {
            const std::string at = "sni[" + std::to_string(i) + "]";
            out.sni.push_back(within(at, [&] {
                Options entry((*sni)[i]);
                reactor::TlsServerOptions::NamedCertificates named;
                named.names =
                    within("names", [&] { return read_strings(entry.get("names"), false); });
                if (named.names.empty()) throw ConfigError("names", "missing");
                named.certificates = read_certificates(entry, at, paths);
                entry.finish();
                return named;
            }));
        }
    }
    out.session_tickets = in.boolean("session_tickets", true);
    out.session_cache = in.integer("session_cache", out.session_cache, 0, 10000000);
    out.ticket_key_lifetime = std::chrono::seconds(
        in.integer("ticket_key_lifetime_s", out.ticket_key_lifetime.count(), 60, 7 * 24 * 3600));
    out.handshake_timeout = std::chrono::milliseconds(
        in.integer("handshake_timeout_ms", out.handshake_timeout.count(), 1, 3600000));
    // nginx answers a plain HTTP request on its TLS port: so does an http listener by default.
    out.answer_plain_http = in.boolean("answer_plain_http", protocol == "http");
    in.finish();
    // Longer library prefixes first: "sni[0].certificates[0]" before "certificates[0]".
    std::sort(paths.begin(), paths.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    return {out, paths};
}

std::string tls_config_path(const ListenerConfig& listener, const std::string& option_path) {
    for (const auto& [library, config] : listener.tls_paths) {
        if (option_path.rfind(library, 0) != 0) continue;
        const std::string rest = option_path.substr(library.size());
        if (!rest.empty() && rest.front() != '.') continue;  // "certificates[1]" vs "[10]"
        if (config.empty()) return rest.empty() ? rest : rest.substr(1);
        return config + rest;
    }
    return option_path;
}

}  // namespace reactord
