#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <mutex>
#include <span>

#include "apps/builtin_apps.hpp"
#include "apps/kv_store.hpp"
#include "resp_encode.hpp"

namespace reactord {

namespace {

namespace resp = reactor::protocols::resp;
using Args = std::span<const std::string_view>;

char ascii_lower(char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = ascii_lower(c);
    return out;
}

bool parse_int(std::string_view text, std::int64_t& value) {
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

// An in-memory store that redis-cli and redis-benchmark accept. Replies and error texts are worded
// as Redis words them.
class KvApp final : public App {
  public:
    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        // Per-call state: handlers of several loops may run at once; the store has its own lock.
        // The reply's bytes are reused from call to call on each thread.
        thread_local std::string reply;
        reply.clear();
        Call call{reply};
        on_command(call, conn, message.args);
        conn.send_raw(reply);
        if (reply.capacity() > kKeptReplyCapacity) std::string().swap(reply);
        if (call.quit) conn.close();
    }

  private:
    static constexpr std::size_t kKeptReplyCapacity = 64 * 1024;

    struct Call {
        std::string& reply;
        bool quit = false;
    };

    struct Command {
        std::string_view name;  // lower case
        int arity;              // Redis's convention: N exactly, -N at least N (the name counts)
        bool uses_store;        // runs under store_mutex_
        void (*run)(KvApp&, Call&, reactor::Connection&, Args);
    };

    void on_command(Call& call, reactor::Connection& conn, Args args) {
        std::string& reply_ = call.reply;
        if (args.empty()) return;
        const Command* command = find_command(args[0]);
        if (command == nullptr) {
            std::string text =
                "ERR unknown command '" + std::string(args[0]) + "', with args beginning with: ";
            for (std::size_t i = 1; i < args.size(); ++i) text += "'" + std::string(args[i]) + "' ";
            resp::append_error(reply_, text);
        } else if (const int arity = command->arity;
                   (arity > 0 && static_cast<int>(args.size()) != arity) ||
                   (arity < 0 && static_cast<int>(args.size()) < -arity)) {
            resp::append_error(reply_, "ERR wrong number of arguments for '" +
                                           std::string(command->name) + "' command");
        } else if (command->uses_store) {
            std::lock_guard lock(store_mutex_);
            command->run(*this, call, conn, args);
        } else {
            command->run(*this, call, conn, args);
        }
    }

    // Case-insensitive, without allocating; the commands benchmarks send most come first.
    static const Command* find_command(std::string_view name) {
        for (const Command& command : commands()) {
            if (command.name.size() != name.size()) continue;
            bool same = true;
            for (std::size_t i = 0; i < name.size() && same; ++i)
                same = ascii_lower(name[i]) == command.name[i];
            if (same) return &command;
        }
        return nullptr;
    }

    static std::span<const Command> commands();

    static void ping(std::string& reply_, Args args) {
        if (args.size() > 2) {
            resp::append_error(reply_, "ERR wrong number of arguments for 'ping' command");
        } else if (args.size() == 2) {
            resp::append_bulk(reply_, args[1]);
        } else {
            reply_.append("+PONG\r\n");
        }
    }

    void set(std::string& reply_, Args args) {
        std::optional<KvStore::Clock::time_point> expires;
        bool nx = false;
        bool xx = false;
        bool get = false;
        for (std::size_t i = 3; i < args.size(); ++i) {
            const std::string option = lower(args[i]);
            if ((option == "ex" || option == "px") && i + 1 < args.size() && !expires) {
                std::int64_t amount = 0;
                if (!parse_int(args[i + 1], amount)) {
                    resp::append_error(reply_, "ERR value is not an integer or out of range");
                    return;
                }
                if (amount <= 0) {
                    resp::append_error(reply_, "ERR invalid expire time in 'set' command");
                    return;
                }
                const auto span = option == "ex" ? std::chrono::milliseconds(amount) * 1000
                                                 : std::chrono::milliseconds(amount);
                expires = KvStore::Clock::now() + span;
                ++i;
            } else if (option == "nx" && !xx) {
                nx = true;
            } else if (option == "xx" && !nx) {
                xx = true;
            } else if (option == "get") {
                get = true;
            } else {
                resp::append_error(reply_, "ERR syntax error");
                return;
            }
        }
        const std::string* old = store_.get(args[1]);
        std::string previous = old != nullptr ? *old : std::string();
        const bool had = old != nullptr;
        const bool write = !(nx && had) && !(xx && !had);
        if (write) store_.set(args[1], args[2], expires);
        if (get) {
            had ? resp::append_bulk(reply_, previous) : resp::append_null_bulk(reply_);
        } else if (write) {
            resp::append_simple_string(reply_, "OK");
        } else {
            resp::append_null_bulk(reply_);
        }
    }

    void get(std::string& reply_, std::string_view key) {
        const std::string* value = store_.get(key);
        value != nullptr ? resp::append_bulk(reply_, *value) : resp::append_null_bulk(reply_);
    }

    void del(std::string& reply_, Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store_.erase(args[i]) ? 1 : 0;
        resp::append_integer(reply_, n);
    }

    void exists(std::string& reply_, Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store_.exists(args[i]) ? 1 : 0;
        resp::append_integer(reply_, n);
    }

    void incr_by_text(std::string& reply_, std::string_view key, std::string_view amount_text,
                      bool negate) {
        std::int64_t amount = 0;
        if (!parse_int(amount_text, amount)) {
            resp::append_error(reply_, "ERR value is not an integer or out of range");
            return;
        }
        if (negate) {
            if (amount == std::numeric_limits<std::int64_t>::min()) {
                resp::append_error(reply_, "ERR decrement would overflow");
                return;
            }
            amount = -amount;
        }
        incr_by(reply_, key, amount);
    }

    void incr_by(std::string& reply_, std::string_view key, std::int64_t amount) {
        std::int64_t value = 0;
        if (const std::string* current = store_.get(key)) {
            if (!parse_int(*current, value)) {
                resp::append_error(reply_, "ERR value is not an integer or out of range");
                return;
            }
        }
        std::int64_t result = 0;
        if (__builtin_add_overflow(value, amount, &result)) {
            resp::append_error(reply_, "ERR increment or decrement would overflow");
            return;
        }
        store_.set(key, std::to_string(result), std::nullopt);
        resp::append_integer(reply_, result);
    }

    void mget(std::string& reply_, Args args) {
        resp::append_array_header(reply_, args.size() - 1);
        for (std::size_t i = 1; i < args.size(); ++i) get(reply_, args[i]);
    }

    void mset(std::string& reply_, Args args) {
        if (args.size() % 2 == 0) {
            resp::append_error(reply_, "ERR wrong number of arguments for 'mset' command");
            return;
        }
        for (std::size_t i = 1; i + 1 < args.size(); i += 2)
            store_.set(args[i], args[i + 1], std::nullopt);
        resp::append_simple_string(reply_, "OK");
    }

    static void client(std::string& reply_, reactor::Connection& conn, Args args) {
        const std::string sub = lower(args[1]);
        if (sub == "id" && args.size() == 2) {
            resp::append_integer(reply_, static_cast<std::int64_t>(conn.id()));
        } else if (sub == "setname" || sub == "setinfo") {
            resp::append_simple_string(reply_, "OK");
        } else {
            resp::append_error(
                reply_, "ERR unknown subcommand '" + std::string(args[1]) + "'. Try CLIENT HELP.");
        }
    }

    static void select(std::string& reply_, std::string_view db) {
        if (db == "0") {
            resp::append_simple_string(reply_, "OK");
        } else {
            resp::append_error(reply_, "ERR DB index is out of range");
        }
    }

    std::mutex store_mutex_;
    KvStore store_;  // guarded by store_mutex_
};

std::span<const KvApp::Command> KvApp::commands() {
    static const KvApp::Command table[] = {
            {"ping", -1, false, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.ping(c.reply, args); }},
            {"echo", 2, false, [](KvApp&, Call& c, reactor::Connection&, Args args) { resp::append_bulk(c.reply, args[1]); }},
            {"get", 2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.get(c.reply, args[1]); }},
            {"set", -3, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.set(c.reply, args); }},
            {"del", -2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.del(c.reply, args); }},
            {"exists", -2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.exists(c.reply, args); }},
            {"incr", 2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.incr_by(c.reply, args[1], 1); }},
            {"decr", 2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.incr_by(c.reply, args[1], -1); }},
            {"incrby", 3, true, [](KvApp& a, Call& c, reactor::Connection&,
                    Args args) { a.incr_by_text(c.reply, args[1], args[2], false); }},
            {"decrby", 3, true, [](KvApp& a, Call& c, reactor::Connection&,
                    Args args) { a.incr_by_text(c.reply, args[1], args[2], true); }},
            {"mget", -2, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.mget(c.reply, args); }},
            {"mset", -3, true, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.mset(c.reply, args); }},
            {"dbsize", 1, true,
              [](KvApp& a, Call& c, reactor::Connection&, Args) {
                  resp::append_integer(c.reply, static_cast<std::int64_t>(a.store_.size()));
              }},
            {"flushall", -1, true,
              [](KvApp& a, Call& c, reactor::Connection&, Args) {
                  a.store_.clear();
                  resp::append_simple_string(c.reply, "OK");
              }},
            {"flushdb", -1, true,
              [](KvApp& a, Call& c, reactor::Connection&, Args) {
                  a.store_.clear();
                  resp::append_simple_string(c.reply, "OK");
              }},
            // redis-cli asks COMMAND DOCS at start and redis-benchmark asks CONFIG GET: an
            // empty answer tells them there is nothing to learn, which both accept.
            {"command", -1, false, [](KvApp&, Call& c, reactor::Connection&, Args) { resp::append_array_header(c.reply, 0); }},
            {"config", -2, false, [](KvApp&, Call& c, reactor::Connection&, Args) { resp::append_array_header(c.reply, 0); }},
            {"client", -2, false, [](KvApp& a, Call& c, reactor::Connection& conn,
                     Args args) { a.client(c.reply, conn, args); }},
            {"select", 2, false, [](KvApp& a, Call& c, reactor::Connection&, Args args) { a.select(c.reply, args[1]); }},
            {"quit", -1, false,
              [](KvApp&, Call& c, reactor::Connection&, Args) {
                  resp::append_simple_string(c.reply, "OK");
                  c.quit = true;
              }},
    };
    return table;
}

}  // namespace

AppSpec kv_app_spec() {
    AppSpec spec;
    spec.protocols = {"resp"};
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options(options).finish();
        return [](AppContext&) -> std::unique_ptr<App> { return std::make_unique<KvApp>(); };
    };
    return spec;
}

}  // namespace reactord
