#include <algorithm>
#include <any>
#include <array>
#include <limits>
#include <mutex>
#include <span>

#include "apps/builtin_apps.hpp"
#include "apps/kv_store.hpp"
#include "resp.hpp"
#include "resp_encode.hpp"

namespace reactord {

namespace {

namespace resp = reactor::protocols::resp;
using Args = std::span<const std::string_view>;
using Millis = KvStore::Millis;

// Redis's default number of databases (SELECT 0 to 15).
constexpr int kDatabases = 16;

char ascii_lower(char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

// ASCII case-insensitive equality with a lower-case word, as Redis's strcasecmp on options.
bool is_word(std::string_view text, std::string_view lower_word) {
    if (text.size() != lower_word.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (ascii_lower(text[i]) != lower_word[i]) return false;
    }
    return true;
}

// What Redis's "%.Ns" prints of an argument: up to its first NUL, at most max bytes.
std::string_view c_prefix(std::string_view text, std::size_t max) {
    return text.substr(0, std::min(text.find('\0'), max));
}

constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
constexpr std::string_view kSyntaxError = "ERR syntax error";

// Per-connection state, kept in Connection::context only once it differs from a new
// connection's (SELECT of another database, CLIENT SETNAME), so most connections carry none.
struct Session {
    int db = 0;
    std::string name;
};

// An in-memory store that redis-cli and redis-benchmark accept. Replies and error texts are worded
// as Redis 7.0 words them, byte for byte (tests/integration/test_resp_conformance.py compares them
// with redis-server's and lists where they differ).
class KvApp final : public App {
  public:
    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        // Per-call state: handlers of several loops may run at once; the stores have their own
        // lock. The reply's bytes are reused from call to call on each thread.
        thread_local std::string reply;
        reply.clear();
        Call call{reply, conn};
        const auto* command = message.get<reactor::protocols::RespCommand>();
        on_command(call, command != nullptr ? command->args : Args{});
        conn.send_raw(reply);
        if (reply.capacity() > kKeptReplyCapacity) std::string().swap(reply);
        if (call.quit) conn.close();
    }

  private:
    static constexpr std::size_t kKeptReplyCapacity = 64 * 1024;

    struct Call {
        std::string& reply;
        reactor::Connection& conn;
        KvStore* store = nullptr;  // the connection's database, for commands that use one
        bool quit = false;
    };

    struct Command {
        std::string_view name;  // lower case
        int arity;              // Redis's convention: N exactly, -N at least N (the name counts)
        bool uses_store;        // runs under store_mutex_ with call.store set
        void (*run)(KvApp&, Call&, Args);
    };

    void on_command(Call& call, Args args) {
        if (args.empty()) return;
        const Command* command = find_command(args[0]);
        if (command == nullptr) {
            unknown_command(call.reply, args);
        } else if (!arity_ok(command->arity, args.size())) {
            wrong_arity(call.reply, command->name);
        } else if (command->uses_store) {
            // Most connections have no session: one test, no type check.
            const std::any& context = call.conn.context;
            const Session* session =
                context.has_value() ? std::any_cast<Session>(&context) : nullptr;
            call.store = &stores_[session != nullptr ? session->db : 0];
            std::lock_guard lock(store_mutex_);
            command->run(*this, call, args);
        } else {
            command->run(*this, call, args);
        }
    }

    static bool arity_ok(int arity, std::size_t argc) {
        return arity > 0 ? argc == static_cast<std::size_t>(arity)
                         : argc >= static_cast<std::size_t>(-arity);
    }

    static void wrong_arity(std::string& reply, std::string_view name) {
        resp::append_error(reply,
                           "ERR wrong number of arguments for '" + std::string(name) + "' command");
    }

    // Redis's wording, including its cuts: the name to 128 bytes, the arguments quoted one by one
    // while the list is under 128 bytes, each to what is left of those 128; every one also ends at
    // its first NUL, being printed as a C string.
    static void unknown_command(std::string& reply, Args args) {
        constexpr std::size_t kCut = 128;
        std::string text = "ERR unknown command '";
        text += c_prefix(args[0], kCut);
        text += "', with args beginning with: ";
        std::string list;
        for (std::size_t i = 1; i < args.size() && list.size() < kCut; ++i) {
            list += '\'';
            list += c_prefix(args[i], kCut - (list.size() - 1));
            list += "' ";
        }
        resp::append_error(reply, text + list);
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

    static void ping(std::string& reply, Args args) {
        if (args.size() > 2) {
            wrong_arity(reply, "ping");
        } else if (args.size() == 2) {
            resp::append_bulk(reply, args[1]);
        } else {
            reply.append("+PONG\r\n");
        }
    }

    // SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL], parsed
    // as Redis 7.0 does: options in any order, the same expiry option again replaces the first
    // (only the last one's number is read), two different ones or KEEPTTL with one are a syntax
    // error, and the syntax is checked before the number.
    static void set(KvStore& store, std::string& reply, Args args) {
        enum class Expiry { none, ex, px, exat, pxat, keepttl };
        Expiry expiry = Expiry::none;
        std::string_view amount_text;
        bool nx = false;
        bool xx = false;
        bool get = false;
        for (std::size_t i = 3; i < args.size(); ++i) {
            const std::string_view option = args[i];
            const bool has_next = i + 1 < args.size();
            const auto timed = [&](Expiry kind) {
                return is_word(option, kind == Expiry::ex     ? "ex"
                                       : kind == Expiry::px   ? "px"
                                       : kind == Expiry::exat ? "exat"
                                                              : "pxat") &&
                       (expiry == Expiry::none || expiry == kind) && has_next;
            };
            if (is_word(option, "nx") && !xx) {
                nx = true;
            } else if (is_word(option, "xx") && !nx) {
                xx = true;
            } else if (is_word(option, "get")) {
                get = true;
            } else if (is_word(option, "keepttl") &&
                       (expiry == Expiry::none || expiry == Expiry::keepttl)) {
                expiry = Expiry::keepttl;
            } else if (const auto kind = timed(Expiry::ex)     ? Expiry::ex
                                         : timed(Expiry::px)   ? Expiry::px
                                         : timed(Expiry::exat) ? Expiry::exat
                                         : timed(Expiry::pxat) ? Expiry::pxat
                                                               : Expiry::none;
                       kind != Expiry::none) {
                expiry = kind;
                amount_text = args[++i];
            } else {
                resp::append_error(reply, kSyntaxError);
                return;
            }
        }
        std::optional<Millis> expires_at;
        if (expiry != Expiry::none && expiry != Expiry::keepttl) {
            const bool seconds = expiry == Expiry::ex || expiry == Expiry::exat;
            const bool relative = expiry == Expiry::ex || expiry == Expiry::px;
            Millis ms = 0;
            if (!resp::parse_integer(amount_text, ms)) {
                resp::append_error(reply, kNotInteger);
                return;
            }
            // Redis's checks: positive, seconds that fit in milliseconds, a sum with the clock
            // that does not overflow (where Redis's wraps negative and fails the same way).
            constexpr Millis kMax = std::numeric_limits<Millis>::max();
            bool valid = ms > 0 && !(seconds && ms > kMax / 1000);
            if (valid && seconds) ms *= 1000;
            if (valid && relative) valid = !__builtin_add_overflow(ms, KvStore::now_ms(), &ms);
            if (!valid) {
                resp::append_error(reply, "ERR invalid expire time in 'set' command");
                return;
            }
            expires_at = ms;
        }
        const std::string* old = store.get(args[1]);
        const bool had = old != nullptr;
        std::string previous = had && get ? *old : std::string();
        const bool write = !(nx && had) && !(xx && !had);
        if (write) {
            expiry == Expiry::keepttl ? store.set_keep_ttl(args[1], args[2])
                                      : store.set(args[1], args[2], expires_at);
        }
        if (get) {
            had ? resp::append_bulk(reply, previous) : resp::append_null_bulk(reply);
        } else if (write) {
            resp::append_simple_string(reply, "OK");
        } else {
            resp::append_null_bulk(reply);
        }
    }

    static void get(KvStore& store, std::string& reply, std::string_view key) {
        const std::string* value = store.get(key);
        value != nullptr ? resp::append_bulk(reply, *value) : resp::append_null_bulk(reply);
    }

    static void del(KvStore& store, std::string& reply, Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store.erase(args[i]) ? 1 : 0;
        resp::append_integer(reply, n);
    }

    static void exists(KvStore& store, std::string& reply, Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store.exists(args[i]) ? 1 : 0;
        resp::append_integer(reply, n);
    }

    // TTL (seconds, rounded) and PTTL: -2 for no key, -1 for no expiry, as Redis.
    static void ttl(KvStore& store, std::string& reply, std::string_view key, bool in_ms) {
        std::optional<Millis> expires_at;
        if (!store.expiry(key, expires_at)) {
            resp::append_integer(reply, -2);
        } else if (!expires_at) {
            resp::append_integer(reply, -1);
        } else {
            const Millis left = std::max<Millis>(*expires_at - KvStore::now_ms(), 0);
            resp::append_integer(reply, in_ms ? left : (left + 500) / 1000);
        }
    }

    static void incr_by_text(KvStore& store, std::string& reply, std::string_view key,
                             std::string_view amount_text, bool negate) {
        std::int64_t amount = 0;
        if (!resp::parse_integer(amount_text, amount)) {
            resp::append_error(reply, kNotInteger);
            return;
        }
        if (negate) {
            if (amount == std::numeric_limits<std::int64_t>::min()) {
                resp::append_error(reply, "ERR decrement would overflow");
                return;
            }
            amount = -amount;
        }
        incr_by(store, reply, key, amount);
    }

    // Like Redis, the key keeps its expiry time.
    static void incr_by(KvStore& store, std::string& reply, std::string_view key,
                        std::int64_t amount) {
        std::int64_t value = 0;
        if (const std::string* current = store.get(key)) {
            if (!resp::parse_integer(*current, value)) {
                resp::append_error(reply, kNotInteger);
                return;
            }
        }
        std::int64_t result = 0;
        if (__builtin_add_overflow(value, amount, &result)) {
            resp::append_error(reply, "ERR increment or decrement would overflow");
            return;
        }
        store.set_keep_ttl(key, std::to_string(result));
        resp::append_integer(reply, result);
    }

    static void mget(KvStore& store, std::string& reply, Args args) {
        resp::append_array_header(reply, args.size() - 1);
        for (std::size_t i = 1; i < args.size(); ++i) get(store, reply, args[i]);
    }

    static void mset(KvStore& store, std::string& reply, Args args) {
        if (args.size() % 2 == 0) {
            wrong_arity(reply, "mset");
            return;
        }
        for (std::size_t i = 1; i + 1 < args.size(); i += 2)
            store.set(args[i], args[i + 1], std::nullopt);
        resp::append_simple_string(reply, "OK");
    }

    // FLUSHALL and FLUSHDB take nothing, SYNC or ASYNC (both flush at once here).
    static bool flush_args_ok(std::string& reply, Args args) {
        if (args.size() == 1 ||
            (args.size() == 2 && (is_word(args[1], "sync") || is_word(args[1], "async")))) {
            return true;
        }
        resp::append_error(reply, kSyntaxError);
        return false;
    }

    void flushall(Call& call, Args args) {
        if (!flush_args_ok(call.reply, args)) return;
        for (KvStore& store : stores_) store.clear();
        resp::append_simple_string(call.reply, "OK");
    }

    static Session& session(reactor::Connection& conn) {
        if (!conn.context.has_value()) conn.context = Session{};
        return std::any_cast<Session&>(conn.context);
    }

    // CLIENT ID | GETNAME | SETNAME name; subcommands are checked as Redis checks them: the name
    // first, then the arity ("client|setname").
    static void client(Call& call, Args args) {
        struct Sub {
            std::string_view name;
            int arity;
        };
        static constexpr std::array<Sub, 3> kSubs{{{"id", 2}, {"getname", 2}, {"setname", 3}}};
        const auto sub = std::find_if(kSubs.begin(), kSubs.end(),
                                      [&](const Sub& s) { return is_word(args[1], s.name); });
        if (sub == kSubs.end()) {
            resp::append_error(call.reply, "ERR unknown subcommand '" +
                                               std::string(c_prefix(args[1], 128)) +
                                               "'. Try CLIENT HELP.");
        } else if (!arity_ok(sub->arity, args.size())) {
            wrong_arity(call.reply, "client|" + std::string(sub->name));
        } else if (sub->name == "id") {
            resp::append_integer(call.reply, static_cast<std::int64_t>(call.conn.id()));
        } else if (sub->name == "getname") {
            const Session* s = std::any_cast<Session>(&call.conn.context);
            s != nullptr && !s->name.empty() ? resp::append_bulk(call.reply, s->name)
                                             : resp::append_null_bulk(call.reply);
        } else {
            const std::string_view name = args[2];
            // Redis compares signed chars: bytes from 0x80 up are refused too.
            if (std::any_of(name.begin(), name.end(), [](char c) { return c < '!' || c > '~'; })) {
                resp::append_error(call.reply,
                                   "ERR Client names cannot contain spaces, newlines or special "
                                   "characters.");
                return;
            }
            if (!name.empty() || call.conn.context.has_value()) session(call.conn).name = name;
            resp::append_simple_string(call.reply, "OK");
        }
    }

    static void select(Call& call, std::string_view index_text) {
        std::int64_t index = 0;
        if (!resp::parse_integer(index_text, index)) {
            resp::append_error(call.reply, kNotInteger);
        } else if (index < std::numeric_limits<int>::min() ||
                   index > std::numeric_limits<int>::max()) {
            // Redis's wording, "must between" included.
            resp::append_error(call.reply,
                               "ERR value is out of range, value must between -2147483648 and "
                               "2147483647");
        } else if (index < 0 || index >= kDatabases) {
            resp::append_error(call.reply, "ERR DB index is out of range");
        } else {
            if (index != 0 || call.conn.context.has_value()) {
                session(call.conn).db = static_cast<int>(index);
            }
            resp::append_simple_string(call.reply, "OK");
        }
    }

    std::mutex store_mutex_;
    std::array<KvStore, kDatabases> stores_;  // guarded by store_mutex_
};

std::span<const KvApp::Command> KvApp::commands() {
    using A = KvApp;
    static const Command table[] = {
        {"ping", -1, false, [](A&, Call& c, Args args) { ping(c.reply, args); }},
        {"echo", 2, false, [](A&, Call& c, Args args) { resp::append_bulk(c.reply, args[1]); }},
        {"get", 2, true, [](A&, Call& c, Args args) { get(*c.store, c.reply, args[1]); }},
        {"set", -3, true, [](A&, Call& c, Args args) { set(*c.store, c.reply, args); }},
        {"del", -2, true, [](A&, Call& c, Args args) { del(*c.store, c.reply, args); }},
        {"exists", -2, true, [](A&, Call& c, Args args) { exists(*c.store, c.reply, args); }},
        {"incr", 2, true, [](A&, Call& c, Args args) { incr_by(*c.store, c.reply, args[1], 1); }},
        {"decr", 2, true, [](A&, Call& c, Args args) { incr_by(*c.store, c.reply, args[1], -1); }},
        {"incrby", 3, true,
         [](A&, Call& c, Args args) { incr_by_text(*c.store, c.reply, args[1], args[2], false); }},
        {"decrby", 3, true,
         [](A&, Call& c, Args args) { incr_by_text(*c.store, c.reply, args[1], args[2], true); }},
        {"mget", -2, true, [](A&, Call& c, Args args) { mget(*c.store, c.reply, args); }},
        {"mset", -3, true, [](A&, Call& c, Args args) { mset(*c.store, c.reply, args); }},
        {"ttl", 2, true, [](A&, Call& c, Args args) { ttl(*c.store, c.reply, args[1], false); }},
        {"pttl", 2, true, [](A&, Call& c, Args args) { ttl(*c.store, c.reply, args[1], true); }},
        {"dbsize", 1, true,
         [](A&, Call& c, Args) {
             resp::append_integer(c.reply, static_cast<std::int64_t>(c.store->size()));
         }},
        {"flushall", -1, true, [](A& a, Call& c, Args args) { a.flushall(c, args); }},
        {"flushdb", -1, true,
         [](A&, Call& c, Args args) {
             if (!flush_args_ok(c.reply, args)) return;
             c.store->clear();
             resp::append_simple_string(c.reply, "OK");
         }},
        // redis-cli asks COMMAND DOCS at start and redis-benchmark asks CONFIG GET: an
        // empty answer tells them there is nothing to learn, which both accept.
        {"command", -1, false, [](A&, Call& c, Args) { resp::append_array_header(c.reply, 0); }},
        {"config", -2, false, [](A&, Call& c, Args) { resp::append_array_header(c.reply, 0); }},
        {"client", -2, false, [](A&, Call& c, Args args) { client(c, args); }},
        {"select", 2, false, [](A&, Call& c, Args args) { select(c, args[1]); }},
        {"quit", -1, false,
         [](A&, Call& c, Args) {
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
