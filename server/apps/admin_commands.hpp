#pragma once

// The operator's commands, shared by the admin listener and `reactord --console`. Safe from any
// loop thread; the reply may come later and from another loop's thread (a listing asks every loop).

#include <functional>
#include <string>
#include <string_view>

#include "reactor/server.hpp"
#include "stats.hpp"

namespace reactord {

class AdminCommands {
  public:
    AdminCommands(reactor::Server& server, Stats& stats) : server_(server), stats_(stats) {}

    struct Reply {
        std::string text;  // one or more lines, each ending in "\n"
        bool quit = false;
    };
    using Respond = std::function<void(Reply)>;
    // Runs one command line; respond is called exactly once.
    void execute(std::string_view line, Respond respond);

    static const char* help_text();

  private:
    reactor::Server& server_;
    Stats& stats_;
};

// Decodes "48656c6c6f" (either case) into bytes; false on an odd length or a non-hex digit.
bool decode_hex(std::string_view hex, std::string& out);

}  // namespace reactord
