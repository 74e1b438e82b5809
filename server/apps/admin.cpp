#include <atomic>
#include <chrono>
#include <deque>

#include "apps/admin_commands.hpp"
#include "apps/builtin_apps.hpp"
#include "reactor/event_loop.hpp"

namespace reactord {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct AdminLimits {
    std::size_t max_sessions = 16;
    std::size_t max_unauthenticated = 4;
    milliseconds auth_timeout{10000};
    milliseconds idle_timeout{900000};  // 0: none
    std::size_t max_auth_failures = 3;
    milliseconds auth_failure_delay{1000};
};

// Lines taken ahead of the one running: above the high mark the session is not read until the
// queue is down to the low mark. Before authentication a few lines are all a client may send
// ahead ("auth TOKEN", then its commands); more closes the session.
constexpr std::size_t kQueueHigh = 64;
constexpr std::size_t kQueueLow = 8;
constexpr std::size_t kMaxQueuedUnauthenticated = 16;

// One line of a session: a command, or a line over the limit that the protocol skipped.
struct QueuedLine {
    std::string text;
    bool too_long = false;
};

// One operator session. Commands run one at a time, so replies come back in the order the commands
// were sent even when a listing answers from another loop.
struct AdminSession {
    bool authenticated = false;
    bool busy = false;  // a command runs, or the session waits out a wrong token's delay
    std::deque<QueuedLine> queued;
    bool peer_ended = false;  // close once the queued commands are answered
    bool paused_for_queue = false;
    enum class Slot { none, unauthenticated, authenticated } slot = Slot::none;
    std::size_t failures = 0;
    reactor::TimerHandle deadline;  // the authentication deadline, then the idle timer
    reactor::TimerHandle delay;     // a wrong token's delay
    Clock::time_point last_command = Clock::now();
};

// The admin console over the line protocol (with "too_long": "report", so a line over the limit is
// answered "ERR line too long" and the session goes on).
//
// With a token configured, a session must first send "auth TOKEN". Until it has, it hears only the
// prompt to authenticate, has auth_timeout to do so, and counts against max_unauthenticated; a
// wrong token stops reading the session for auth_failure_delay (a timer: the loop goes on) and
// the max_auth_failures-th closes it after that delay, so the listener takes at most
// max_unauthenticated guesses per delay. Authenticated sessions count against max_sessions and are
// closed after idle_timeout without a command. Every refusal and close says why.
class AdminApp final : public App {
  public:
    AdminApp(AppContext& context, std::string token, AdminLimits limits)
        : server_(context.server),
          listener_(context.listener),
          commands_(context.server, context.stats, context.max_payload),
          token_(std::move(token)),
          limits_(limits) {
        AdminSessions::instance().listener_added(listener_);
    }
    ~AdminApp() override { AdminSessions::instance().listener_removed(listener_); }

    void on_open(reactor::Connection& conn) override {
        conn.context = AdminSession{};
        auto& session = std::any_cast<AdminSession&>(conn.context);
        const bool open = token_.empty();
        AdminSessions::instance().opened(conn.id(), listener_, open);
        if (open) {
            if (!take(authenticated_, limits_.max_sessions)) {
                return refuse(conn, "ERR too many admin sessions (at most " +
                                        std::to_string(limits_.max_sessions) + ")");
            }
            session.authenticated = true;
            session.slot = AdminSession::Slot::authenticated;
            arm_idle(conn, session, limits_.idle_timeout);
            conn.send("reactord admin: type help");
            return;
        }
        if (!take(unauthenticated_, limits_.max_unauthenticated)) {
            return refuse(conn, "ERR too many sessions waiting to authenticate (at most " +
                                    std::to_string(limits_.max_unauthenticated) + ")");
        }
        session.slot = AdminSession::Slot::unauthenticated;
        session.deadline = after(conn, limits_.auth_timeout, [](reactor::Connection& c) {
            if (std::any_cast<AdminSession&>(c.context).authenticated) return;
            c.send("ERR authentication timeout");
            c.close();
        });
        conn.send("reactord admin: auth TOKEN first");
    }

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        if (conn.closing()) return;
        if (!session.authenticated && session.queued.size() >= kMaxQueuedUnauthenticated) {
            conn.send("ERR too many lines before authentication");
            conn.close();
            return;
        }
        session.queued.push_back({std::string(message.payload), !message.error.empty()});
        if (session.queued.size() >= kQueueHigh && !session.paused_for_queue) {
            session.paused_for_queue = true;
            conn.pause_reading();
        }
        if (!session.busy) run_next(conn);
    }

    void on_close(reactor::Connection& conn, reactor::CloseReason) override {
        AdminSessions::instance().closed(conn.id());
        auto* session = std::any_cast<AdminSession>(&conn.context);
        if (session == nullptr) return;
        session->deadline.cancel();
        session->delay.cancel();
        release(*session);
    }

    // `printf 'list\nstats\n' | nc -N`: every command sent before the half-close is answered.
    void on_peer_closed(reactor::Connection& conn) override {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        session.peer_ended = true;
        if (!session.busy) run_next(conn);
    }

  private:
    // Takes one of `limit` slots.
    static bool take(std::atomic<std::size_t>& count, std::size_t limit) {
        if (count.fetch_add(1) < limit) return true;
        count.fetch_sub(1);
        return false;
    }
    void release(AdminSession& session) {
        if (session.slot == AdminSession::Slot::unauthenticated) unauthenticated_.fetch_sub(1);
        if (session.slot == AdminSession::Slot::authenticated) authenticated_.fetch_sub(1);
        session.slot = AdminSession::Slot::none;
    }
    void refuse(reactor::Connection& conn, const std::string& why) {
        conn.send(why);
        conn.close();
    }

    // Runs fn(conn) on the connection's loop after `delay`, unless it has gone by then.
    template <typename Fn>
    reactor::TimerHandle after(reactor::Connection& conn, milliseconds delay, Fn fn) {
        const reactor::ConnectionId id = conn.id();
        return conn.loop().run_after(delay, [this, id, fn = std::move(fn)] {
            reactor::Connection* c = server_.find(id);
            if (c != nullptr && !c->closing()) fn(*c);
        });
    }

    void arm_idle(reactor::Connection& conn, AdminSession& session, milliseconds in) {
        if (limits_.idle_timeout.count() == 0) return;
        session.deadline = after(conn, in, [this](reactor::Connection& c) {
            auto& s = std::any_cast<AdminSession&>(c.context);
            const auto idle =
                std::chrono::duration_cast<milliseconds>(Clock::now() - s.last_command);
            if (s.busy || idle < limits_.idle_timeout) {
                // A command still running counts as activity.
                arm_idle(c, s, s.busy ? limits_.idle_timeout : limits_.idle_timeout - idle);
                return;
            }
            c.send("ERR idle timeout");
            c.close();
        });
    }

    void run_next(reactor::Connection& conn) {
        auto& session = std::any_cast<AdminSession&>(conn.context);
        while (!session.busy && !conn.closing()) {
            if (session.queued.empty()) {
                if (session.peer_ended)
                    conn.close(reactor::CloseMode::flush, reactor::CloseReason::peer_closed);
                return;
            }
            QueuedLine line = std::move(session.queued.front());
            session.queued.pop_front();
            if (session.paused_for_queue && session.queued.size() <= kQueueLow) {
                resume_later(conn);
            }
            session.last_command = Clock::now();
            if (line.too_long) {
                conn.send("ERR line too long");
                continue;
            }
            if (!session.authenticated) {
                before_authentication(conn, session, line.text);
                continue;
            }
            execute(conn, session, line.text);
        }
    }

    // Reading resumes from a task of its own: resume_reading() may decode and deliver at once,
    // which must not happen inside this session's own callbacks.
    void resume_later(reactor::Connection& conn) {
        const reactor::ConnectionId id = conn.id();
        conn.loop().post([this, id] {
            reactor::Connection* c = server_.find(id);
            if (c == nullptr) return;
            auto& s = std::any_cast<AdminSession&>(c->context);
            if (!s.paused_for_queue) return;
            s.paused_for_queue = false;
            c->resume_reading();
        });
    }

    void before_authentication(reactor::Connection& conn, AdminSession& session,
                               std::string_view line) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (line == "help") {
            conn.send(
                "auth TOKEN  authenticate with the console's token (admin.token); "
                "then help lists the commands");
            return;
        }
        constexpr std::string_view prefix = "auth ";
        if (line.substr(0, prefix.size()) != prefix) {
            conn.send("ERR authentication required");
            return;
        }
        if (tokens_equal(line.substr(prefix.size()), token_)) {
            authenticate(conn, session);
            return;
        }
        ++session.failures;
        conn.send("ERR invalid token");
        const bool last = session.failures >= limits_.max_auth_failures;
        if (last) conn.send("ERR too many failed attempts");
        if (limits_.auth_failure_delay.count() == 0) {
            if (last) conn.close();
            return;
        }
        // Not read, not answered, still holding its slot until the delay is over.
        session.busy = true;
        conn.pause_reading();
        session.delay =
            after(conn, limits_.auth_failure_delay, [this, last](reactor::Connection& c) {
                if (last) {
                    c.close();
                    return;
                }
                // The lines that came before reading stopped first, then whatever arrives.
                std::any_cast<AdminSession&>(c.context).busy = false;
                run_next(c);
                c.resume_reading();
            });
    }

    void authenticate(reactor::Connection& conn, AdminSession& session) {
        release(session);
        if (!take(authenticated_, limits_.max_sessions)) {
            return refuse(conn, "ERR too many admin sessions (at most " +
                                    std::to_string(limits_.max_sessions) + ")");
        }
        session.slot = AdminSession::Slot::authenticated;
        session.authenticated = true;
        AdminSessions::instance().authenticated(conn.id());
        session.deadline.cancel();
        arm_idle(conn, session, limits_.idle_timeout);
        conn.send("OK");
    }

    void execute(reactor::Connection& conn, AdminSession& session, const std::string& line) {
        session.busy = true;
        reactor::EventLoop* loop = &conn.loop();
        const reactor::ConnectionId id = conn.id();
        commands_.execute(line, [this, loop, id](AdminCommands::Reply reply) {
            // Back on the session's own loop, where its connection lives.
            loop->run_in_loop([this, id, reply = std::move(reply)] {
                reactor::Connection* conn = server_.find(id);
                if (conn == nullptr) return;
                std::string_view text = reply.text;
                if (!text.empty() && text.back() == '\n')
                    text.remove_suffix(1);  // the protocol adds it
                if (!text.empty()) conn->send(text);
                if (reply.quit) {
                    conn->close();
                    return;
                }
                auto& s = std::any_cast<AdminSession&>(conn->context);
                s.busy = false;
                s.last_command = Clock::now();
                run_next(*conn);
            });
        });
    }

    reactor::Server& server_;
    const std::string listener_;
    AdminCommands commands_;
    std::string token_;
    const AdminLimits limits_;
    // Sessions holding each kind of slot, over every loop.
    std::atomic<std::size_t> unauthenticated_{0};
    std::atomic<std::size_t> authenticated_{0};
};

}  // namespace

AppSpec admin_app_spec() {
    AppSpec spec;
    spec.protocols = {"line"};
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options in(options);
        std::string token = in.string("token", "");
        AdminLimits limits;
        limits.max_sessions = in.integer("max_sessions", limits.max_sessions, 1, 1024);
        limits.max_unauthenticated =
            in.integer("max_unauthenticated", limits.max_unauthenticated, 1, 1024);
        limits.auth_timeout =
            milliseconds(in.integer("auth_timeout_ms", limits.auth_timeout.count(), 1, 3600000));
        limits.idle_timeout =
            milliseconds(in.integer("idle_timeout_ms", limits.idle_timeout.count(), 0, 86400000));
        limits.max_auth_failures =
            in.integer("max_auth_failures", limits.max_auth_failures, 1, 100);
        limits.auth_failure_delay = milliseconds(
            in.integer("auth_failure_delay_ms", limits.auth_failure_delay.count(), 0, 60000));
        in.finish();
        return [token, limits](AppContext& context) -> std::unique_ptr<App> {
            return std::make_unique<AdminApp>(context, token, limits);
        };
    };
    return spec;
}

}  // namespace reactord
