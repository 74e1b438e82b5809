#include <charconv>
#include <functional>
#include <limits>
#include <map>

#include "apps/builtin_apps.hpp"
#include "apps/kv_store.hpp"
#include "resp_encode.hpp"

namespace reactord {

namespace {

namespace resp = reactor::protocols::resp;
using Args = std::span<const std::string_view>;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
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
        reply_.clear();
        quit_ = false;
        const Args args = message.args;
        if (args.empty()) return;
        const std::string name = lower(args[0]);
        const auto it = commands().find(name);
        if (it == commands().end()) {
            std::string text = "ERR unknown command '" + std::string(args[0]) +
                               "', with args beginning with: ";
            for (std::size_t i = 1; i < args.size(); ++i) text += "'" + std::string(args[i]) + "' ";
            resp::append_error(reply_, text);
        } else if (const int arity = it->second.arity;
                   (arity > 0 && static_cast<int>(args.size()) != arity) ||
                   (arity < 0 && static_cast<int>(args.size()) < -arity)) {
            resp::append_error(reply_, "ERR wrong number of arguments for '" + name + "' command");
        } else {
            it->second.run(*this, conn, args);
        }
        conn.send_raw(reply_);
        if (quit_) conn.close();
    }

private:
    struct Command {
        int arity;  // Redis's convention: N exactly, -N at least N (the name counts)
        std::function<void(KvApp&, reactor::Connection&, Args)> run;
    };

    static const std::map<std::string, Command>& commands() {
        static const std::map<std::string, Command> table = {
            {"ping", {-1, [](KvApp& a, auto&, Args args) { a.ping(args); }}},
            {"echo", {2, [](KvApp& a, auto&, Args args) { resp::append_bulk(a.reply_, args[1]); }}},
            {"set", {-3, [](KvApp& a, auto&, Args args) { a.set(args); }}},
            {"get", {2, [](KvApp& a, auto&, Args args) { a.get(args[1]); }}},
            {"del", {-2, [](KvApp& a, auto&, Args args) { a.del(args); }}},
            {"exists", {-2, [](KvApp& a, auto&, Args args) { a.exists(args); }}},
            {"incr", {2, [](KvApp& a, auto&, Args args) { a.incr_by(args[1], 1); }}},
            {"decr", {2, [](KvApp& a, auto&, Args args) { a.incr_by(args[1], -1); }}},
            {"incrby", {3, [](KvApp& a, auto&, Args args) { a.incr_by_text(args[1], args[2], false); }}},
            {"decrby", {3, [](KvApp& a, auto&, Args args) { a.incr_by_text(args[1], args[2], true); }}},
            {"mget", {-2, [](KvApp& a, auto&, Args args) { a.mget(args); }}},
            {"mset", {-3, [](KvApp& a, auto&, Args args) { a.mset(args); }}},
            {"dbsize", {1, [](KvApp& a, auto&, Args) { resp::append_integer(a.reply_, static_cast<std::int64_t>(a.store_.size())); }}},
            {"flushall", {-1, [](KvApp& a, auto&, Args) { a.store_.clear(); resp::append_simple_string(a.reply_, "OK"); }}},
            {"flushdb", {-1, [](KvApp& a, auto&, Args) { a.store_.clear(); resp::append_simple_string(a.reply_, "OK"); }}},
            // redis-cli asks COMMAND DOCS at start and redis-benchmark asks CONFIG GET: an
            // empty answer tells them there is nothing to learn, which both accept.
            {"command", {-1, [](KvApp& a, auto&, Args) { resp::append_array_header(a.reply_, 0); }}},
            {"config", {-2, [](KvApp& a, auto&, Args) { resp::append_array_header(a.reply_, 0); }}},
            {"client", {-2, [](KvApp& a, reactor::Connection& c, Args args) { a.client(c, args); }}},
            {"select", {2, [](KvApp& a, auto&, Args args) { a.select(args[1]); }}},
            {"quit", {-1, [](KvApp& a, auto&, Args) { resp::append_simple_string(a.reply_, "OK"); a.quit_ = true; }}},
        };
        return table;
    }

    void ping(Args args) {
        if (args.size() > 2) {
            resp::append_error(reply_, "ERR wrong number of arguments for 'ping' command");
        } else if (args.size() == 2) {
            resp::append_bulk(reply_, args[1]);
        } else {
            resp::append_simple_string(reply_, "PONG");
        }
    }

    void set(Args args) {
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

    void get(std::string_view key) {
        const std::string* value = store_.get(key);
        value != nullptr ? resp::append_bulk(reply_, *value) : resp::append_null_bulk(reply_);
    }

    void del(Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store_.erase(args[i]) ? 1 : 0;
        resp::append_integer(reply_, n);
    }

    void exists(Args args) {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < args.size(); ++i) n += store_.exists(args[i]) ? 1 : 0;
        resp::append_integer(reply_, n);
    }

    void incr_by_text(std::string_view key, std::string_view amount_text, bool negate) {
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
        incr_by(key, amount);
    }

    void incr_by(std::string_view key, std::int64_t amount) {
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

    void mget(Args args) {
        resp::append_array_header(reply_, args.size() - 1);
        for (std::size_t i = 1; i < args.size(); ++i) get(args[i]);
    }

    void mset(Args args) {
        if (args.size() % 2 == 0) {
            resp::append_error(reply_, "ERR wrong number of arguments for 'mset' command");
            return;
        }
        for (std::size_t i = 1; i + 1 < args.size(); i += 2) store_.set(args[i], args[i + 1], std::nullopt);
        resp::append_simple_string(reply_, "OK");
    }

    void client(reactor::Connection& conn, Args args) {
        const std::string sub = lower(args[1]);
        if (sub == "id" && args.size() == 2) {
            resp::append_integer(reply_, static_cast<std::int64_t>(conn.id()));
        } else if (sub == "setname" || sub == "setinfo") {
            resp::append_simple_string(reply_, "OK");
        } else {
            resp::append_error(reply_, "ERR unknown subcommand '" + std::string(args[1]) +
                                           "'. Try CLIENT HELP.");
        }
    }

    void select(std::string_view db) {
        if (db == "0") {
            resp::append_simple_string(reply_, "OK");
        } else {
            resp::append_error(reply_, "ERR DB index is out of range");
        }
    }

    KvStore store_;
    std::string reply_;
    bool quit_ = false;
};

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
