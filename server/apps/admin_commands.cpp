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

bool decode_hex(std::string_view hex, std::string& out) {
    if (hex.size() % 2 != 0) return false;
    out.clear();
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hex_value(hex[i]);
        const int lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return true;
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
        bool ok = false;
        if (command == "kick") {
            ok = server_.close(id, reactor::CloseMode::flush, reactor::CloseReason::kicked);
        } else if (command == "send") {
            ok = server_.send(id, rest);
        } else {
            std::string bytes;
            if (!decode_hex(rest, bytes)) {
                return respond({"ERR bad hex: expected an even number of hex digits\n"});
            }
            ok = server_.send(id, bytes);
        }
        return respond({ok ? "OK\n" : "ERR no connection " + std::string(id_text) + "\n"});
    }
    if (command == "broadcast") {
        const std::string_view listener = next_word(rest);
        if (listener.empty()) return respond({"ERR usage: broadcast LISTENER TEXT\n"});
        if (!stats_.has_listener(std::string(listener))) {
            return respond({"ERR no listener " + std::string(listener) + "\n"});
        }
        const std::size_t n = server_.broadcast(rest, listener);
        return respond({"OK sent to " + std::to_string(n) + "\n"});
    }
    respond({"ERR unknown command '" + std::string(command) + "' (try help)\n"});
}

}  // namespace reactord
