#include "apps/admin_commands.hpp"

#include <charconv>
#include <chrono>
#include <sstream>

namespace reactord {

namespace {

std::string_view next_word(std::string_view& rest) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find(' ');
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    return word;
}

bool parse_id(std::string_view text, reactor::ConnectionId& id) {
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

bool decode_hex(std::string_view hex, std::string& out, std::string* error) {
    out.clear();
    for (std::size_t i = 0; i < hex.size(); ++i) {
        if (hex_value(hex[i]) < 0) {
            if (error != nullptr) {
                const auto c = static_cast<unsigned char>(hex[i]);
                *error = (c >= 0x21 && c < 0x7f ? "'" + std::string(1, hex[i]) + "'"
                                                : "byte " + std::to_string(c)) +
                         " at position " + std::to_string(i) + " is not a hex digit";
            }
            return false;
        }
    }
    if (hex.size() % 2 != 0) {
        if (error != nullptr) *error = "expected an even number of hex digits";
        return false;
    }
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        out.push_back(static_cast<char>(hex_value(hex[i]) * 16 + hex_value(hex[i + 1])));
    }
    return true;
}

bool tokens_equal(std::string_view given, std::string_view token) {
    // Every byte of what was sent is compared, against the token repeated, and the differences
    // are gathered without a branch on them.
    volatile unsigned char diff = given.size() == token.size() ? 0 : 1;
    if (token.empty()) return given.empty();
    for (std::size_t i = 0; i < given.size(); ++i) {
        diff = diff | static_cast<unsigned char>(given[i] ^ token[i % token.size()]);
    }
    return diff == 0;
}

AdminSessions& AdminSessions::instance() {
    static AdminSessions sessions;
    return sessions;
}

void AdminSessions::listener_added(const std::string& listener) {
    std::lock_guard lock(mutex_);
    ++listeners_[listener];
}

void AdminSessions::listener_removed(const std::string& listener) {
    std::lock_guard lock(mutex_);
    const auto it = listeners_.find(listener);
    if (it != listeners_.end() && --it->second == 0) listeners_.erase(it);
}

bool AdminSessions::is_admin_listener(std::string_view listener) const {
    std::lock_guard lock(mutex_);
    return listeners_.find(listener) != listeners_.end();
}

void AdminSessions::opened(reactor::ConnectionId id, const std::string& listener,
                           bool authenticated) {
    std::lock_guard lock(mutex_);
    sessions_[id] = Session{listener, authenticated};
}

void AdminSessions::authenticated(reactor::ConnectionId id) {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(id);
    if (it != sessions_.end()) it->second.authenticated = true;
}

void AdminSessions::closed(reactor::ConnectionId id) {
    std::lock_guard lock(mutex_);
    sessions_.erase(id);
}

bool AdminSessions::is_authenticated(reactor::ConnectionId id) const {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(id);
    return it != sessions_.end() && it->second.authenticated;
}

std::vector<reactor::ConnectionId> AdminSessions::authenticated_of(
    std::string_view listener) const {
    std::vector<reactor::ConnectionId> out;
    std::lock_guard lock(mutex_);
    for (const auto& [id, session] : sessions_) {
        if (session.authenticated && session.listener == listener) out.push_back(id);
    }
    return out;
}

std::string AdminCommands::misfit(std::string_view listener, std::string_view payload) const {
    if (!max_payload_) return {};
    const std::size_t most = max_payload_(listener);
    if (payload.size() <= most) return {};
    return "ERR too long for listener " + std::string(listener) + ": " +
           std::to_string(payload.size()) + " bytes, its framing takes at most " +
           std::to_string(most) + "\n";
}

bool AdminCommands::send_to(reactor::ConnectionId id, std::string_view payload) {
    const std::string listener = server_.listener_of(id);
    if (listener.empty()) return false;
    auto& sessions = AdminSessions::instance();
    // An admin session may be opened, not yet registered: unknown ones count as unauthenticated.
    if (sessions.is_admin_listener(listener) && !sessions.is_authenticated(id)) return false;
    return server_.send(id, payload);
}

const char* AdminCommands::help_text() {
    return "commands:\n"
           "  list                     id, listener, peer, age, bytes in/out of every connection\n"
           "  send ID TEXT             send TEXT to connection ID, framed by its listener's "
           "protocol\n"
           "  sendhex ID HEX           send the bytes given in hex\n"
           "  broadcast LISTENER TEXT  send TEXT to every connection of LISTENER\n"
           "  kick ID                  close connection ID\n"
           "  stats                    counters as JSON\n"
           "  help                     this text\n"
           "  auth TOKEN               authenticate (first, when the console has a token)\n"
           "  quit                     end this session\n";
}

void AdminCommands::execute(std::string_view line, Respond respond) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    std::string_view rest = line;
    const std::string_view command = next_word(rest);
    if (command.empty()) return respond({});
    if (command == "help") return respond({help_text()});
    if (command == "quit") return respond({"bye\n", true});
    if (command == "stats") return respond({stats_.to_json(server_.loop_stats()) + "\n"});
    if (command == "list") {
        server_.collect_connections([respond](std::vector<reactor::ConnectionInfo> all) {
            std::ostringstream out;
            const auto now = std::chrono::steady_clock::now();
            for (const auto& c : all) {
                const auto age =
                    std::chrono::duration_cast<std::chrono::seconds>(now - c.stats.opened);
                out << c.id << ' ' << c.listener << ' ' << c.peer << " loop=" << c.loop
                    << " age=" << age.count() << "s in=" << c.stats.bytes_in
                    << " out=" << c.stats.bytes_out << '\n';
            }
            out << "OK " << all.size() << " connections\n";
            respond({out.str()});
        });
        return;
    }
    if (command == "send" || command == "sendhex" || command == "kick") {
        reactor::ConnectionId id = 0;
        const std::string_view id_text = next_word(rest);
        if (!parse_id(id_text, id)) {
            return respond({"ERR usage: " + std::string(command) + " ID" +
                            (command == "kick" ? "" : " DATA") + "\n"});
        }
        const std::string no_connection = "ERR no connection " + std::string(id_text) + "\n";
        if (command == "kick") {
            const bool ok =
                server_.close(id, reactor::CloseMode::flush, reactor::CloseReason::kicked);
            return respond({ok ? "OK\n" : no_connection});
        }
        std::string bytes;
        if (command == "sendhex") {
            std::string error;
            if (!decode_hex(rest, bytes, &error)) return respond({"ERR bad hex: " + error + "\n"});
            rest = bytes;
        }
        // Whether the target's framing can carry it is checked here, where the operator hears
        // the answer: a receiver's encoder never sees a payload it cannot frame.
        const std::string listener = server_.listener_of(id);
        if (listener.empty()) return respond({no_connection});
        std::string refusal = misfit(listener, rest);
        if (!refusal.empty()) return respond({std::move(refusal)});
        return respond({send_to(id, rest) ? "OK\n" : no_connection});
    }
    if (command == "broadcast") {
        const std::string_view listener = next_word(rest);
        if (listener.empty()) return respond({"ERR usage: broadcast LISTENER TEXT\n"});
        if (!stats_.has_listener(std::string(listener))) {
            return respond({"ERR no listener " + std::string(listener) + "\n"});
        }
        std::string refusal = misfit(listener, rest);
        if (!refusal.empty()) return respond({std::move(refusal)});
        std::size_t n = 0;
        if (AdminSessions::instance().is_admin_listener(listener)) {
            // Operators hear it; a session still to authenticate does not.
            for (const auto id : AdminSessions::instance().authenticated_of(listener)) {
                if (server_.send(id, rest)) ++n;
            }
        } else {
            n = server_.broadcast(rest, listener);
        }
        return respond({"OK sent to " + std::to_string(n) + "\n"});
    }
    respond({"ERR unknown command '" + std::string(command) + "' (try help)\n"});
}

}  // namespace reactord
