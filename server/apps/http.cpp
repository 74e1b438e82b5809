#include "apps/builtin_apps.hpp"
#include "http_date.hpp"
#include "http_response.hpp"

namespace reactord {

namespace {

using reactor::protocols::HttpResponse;

// The path of a request target: origin-form as it is, absolute-form ("http://host/path?q", RFC
// 9112 §3.2.2) from the first slash after the authority; without the query or a fragment.
std::string_view target_path(std::string_view target) {
    if (!target.empty() && target.front() != '/') {
        const auto authority = target.find("://");
        if (authority == std::string_view::npos) return target;  // "*", or CONNECT's host:port
        const auto path = target.find_first_of("/?#", authority + 3);
        if (path == std::string_view::npos || target[path] != '/') return "/";
        target.remove_prefix(path);
    }
    return target.substr(0, target.find_first_of("?#"));
}

// Stateless apart from the shared counters, so safe on several loops at once. A small site: GET /
// (text), GET /json, POST /echo (the body back), GET /stats (counters as JSON); HEAD wherever GET
// works; OPTIONS anywhere (the methods allowed, or the server's for "*"); 404 and 405 otherwise.
class HttpApp final : public App {
  public:
    explicit HttpApp(AppContext& context) : server_(context.server), stats_(context.stats) {}

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        const auto& request = *message.get<reactor::protocols::HttpRequest>();
        const bool head = request.method == "HEAD";
        const bool get = request.method == "GET" || head;
        const std::string_view path = target_path(request.target);
        // The fixed pages skip the response builder: their replies are made once per second.
        if (get && (path == "/" || path == "/json")) {
            const bool http10 = request.version_major == 1 && request.version_minor == 0;
            const std::size_t connection = !request.keep_alive ? kClose
                                           : http10            ? kKeepAlive
                                                               : kDefault;
            conn.send_raw(fixed_reply(path == "/" ? kText : kJson, connection, head));
            if (!request.keep_alive) conn.close();
            return;
        }

        HttpResponse response(200);
        if (request.method == "OPTIONS") {
            response.header("Allow", path == "*"       ? "GET, HEAD, POST, OPTIONS"
                                     : path == "/echo" ? "POST, OPTIONS"
                                                       : "GET, HEAD, OPTIONS");
        } else if (path == "/" || path == "/json") {
            response = not_allowed("GET, HEAD");
        } else if (path == "/stats") {
            response = get ? json(stats_.to_json(server_.loop_stats())) : not_allowed("GET, HEAD");
        } else if (path == "/echo") {
            if (request.method == "POST") {
                response = HttpResponse(200);
                const auto type = request.header("Content-Type");
                response.header("Content-Type", type.empty() ? "application/octet-stream" : type);
                response.body(request.body);
            } else {
                response = not_allowed("POST");
            }
        } else {
            response = text(404, "Not Found");
        }
        if (head) response.omit_body();
        response.connection_for(request);
        // One buffer per loop thread: handlers of several loops run at once.
        thread_local std::string out;
        out.clear();
        response.write_to(out);
        conn.send_raw(out);
        if (!request.keep_alive) conn.close();
    }

  private:
    static constexpr std::string_view kHello = "Hello, World!";
    static constexpr std::string_view kHelloJson = R"({"message":"Hello, World!"})";
    enum : std::size_t { kText, kJson };                  // the fixed pages
    enum : std::size_t { kDefault, kKeepAlive, kClose };  // what the request asks of the connection
    // Header lines of the fixed pages, by connection.
    static constexpr std::string_view kTextLines[] = {
        "Content-Type: text/plain\r\n", "Content-Type: text/plain\r\nConnection: keep-alive\r\n",
        "Content-Type: text/plain\r\nConnection: close\r\n"};
    static constexpr std::string_view kJsonLines[] = {
        "Content-Type: application/json\r\n",
        "Content-Type: application/json\r\nConnection: keep-alive\r\n",
        "Content-Type: application/json\r\nConnection: close\r\n"};

    // The whole reply of a fixed page, remade when the Date changes. Per thread, as handlers of
    // several loops run at once.
    static std::string_view fixed_reply(std::size_t page, std::size_t connection, bool head) {
        struct Reply {
            std::string date;
            std::string bytes;
        };
        thread_local Reply replies[2][3][2];
        Reply& reply = replies[page][connection][head ? 1 : 0];
        const std::string_view date = reactor::protocols::http_date_now();
        if (reply.date != date) {
            const std::string_view body = page == kText ? kHello : kHelloJson;
            const auto& lines = page == kText ? kTextLines : kJsonLines;
            reply.date.assign(date);
            reply.bytes.clear();
            reactor::protocols::append_http_head(reply.bytes, 200, "OK", lines[connection],
                                                 body.size());
            if (!head) reply.bytes.append(body);
        }
        return reply.bytes;
    }

    static HttpResponse text(int status, std::string_view body) {
        HttpResponse r(status);
        r.header("Content-Type", "text/plain");
        r.body(body);
        return r;
    }
    static HttpResponse json(std::string_view body) {
        HttpResponse r(200);
        r.header("Content-Type", "application/json");
        r.body(body);
        return r;
    }
    static HttpResponse not_allowed(std::string_view allow) {
        HttpResponse r = text(405, "Method Not Allowed");
        r.header("Allow", allow);
        return r;
    }

    reactor::Server& server_;
    Stats& stats_;
};

}  // namespace

AppSpec http_app_spec() {
    AppSpec spec;
    spec.protocols = {"http"};
    spec.prepare = [](const nlohmann::json& options) {
        reactor::protocols::Options(options).finish();
        return [](AppContext& context) -> std::unique_ptr<App> {
            return std::make_unique<HttpApp>(context);
        };
    };
    return spec;
}

}  // namespace reactord
