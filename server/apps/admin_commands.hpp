#pragma once

// The operator's commands, shared by the admin listener and `reactord --console`. Safe from any
// loop thread; the reply may come later and from another loop's thread (a listing asks every loop).

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/server.hpp"
#include "stats.hpp"

namespace reactord {

// The admin sessions of every admin listener in the process and whether each has authenticated,
// so that no command sends anything to a session that has not (it hears only the prompt to
// authenticate). Safe from any thread.
class AdminSessions {
  public:
    static AdminSessions& instance();

    // An admin app serves this listener (counted: one call to listener_removed() each).
    void listener_added(const std::string& listener);
    void listener_removed(const std::string& listener);
    bool is_admin_listener(std::string_view listener) const;

    void opened(reactor::ConnectionId id, const std::string& listener, bool authenticated);
    void authenticated(reactor::ConnectionId id);
    void closed(reactor::ConnectionId id);
    bool is_authenticated(reactor::ConnectionId id) const;
    // The authenticated sessions of one admin listener.
    std::vector<reactor::ConnectionId> authenticated_of(std::string_view listener) const;

  private:
    struct Session {
        std::string listener;
        bool authenticated = false;
    };
    mutable std::mutex mutex_;
    std::map<std::string, int, std::less<>> listeners_;
    std::map<reactor::ConnectionId, Session> sessions_;
};

class AdminCommands {
  public:
    // max_payload: the longest payload each listener's protocol can frame (AppContext's); empty
    // means unbounded.
    AdminCommands(reactor::Server& server, Stats& stats,
                  std::function<std::size_t(std::string_view listener)> max_payload = {})
        : server_(server), stats_(stats), max_payload_(std::move(max_payload)) {}

    struct Reply {
        std::string text;  // one or more lines, each ending in "\n"
        bool quit = false;
    };
    using Respond = std::function<void(Reply)>;
    // Runs one command line; respond is called exactly once.
    void execute(std::string_view line, Respond respond);

    static const char* help_text();

  private:
    // Empty when payload fits the framing of listener; otherwise the error line.
    std::string misfit(std::string_view listener, std::string_view payload) const;
    // Server::send, except to an admin session that has not authenticated.
    bool send_to(reactor::ConnectionId id, std::string_view payload);

    reactor::Server& server_;
    Stats& stats_;
    std::function<std::size_t(std::string_view)> max_payload_;
};

// Decodes "48656c6c6f" (either case) into bytes. False on an odd length or a non-hex digit, with
// what is wrong in error when given.
bool decode_hex(std::string_view hex, std::string& out, std::string* error = nullptr);

// Whether a token someone sent equals the configured one, in time that depends on the length of
// what was sent only, not on how much of it matches.
bool tokens_equal(std::string_view given, std::string_view token);

}  // namespace reactord
