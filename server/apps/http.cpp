#include "http.hpp"
#include "apps/builtin_apps.hpp"

namespace reactord {

namespace {

using reactor::protocols::HttpRequest;
using reactor::protocols::HttpResponse;
using reactor::protocols::send_response;

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
// Replies go out with send_response(), which adds what each request needs (Date, Connection, no
// body for HEAD); after a request that does not keep the connection, the protocol closes it.
class HttpApp final : public App {
  public:
    explicit HttpApp(AppContext& context) : server_(context.server), stats_(context.stats) {}

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        const auto* found = message.get<HttpRequest>();
        if (found == nullptr) return;
        const HttpRequest& request = *found;
        const bool head = request.method == "HEAD";
        const bool get = request.method == "GET" || head;
        const std::string_view path = target_path(request.target);
        // The fixed pages are built once: sending one allocates nothing.
        if (get && (path == "/" || path == "/json")) {
            send_response(conn, request, path == "/" ? hello_ : hello_json_);
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
        send_response(conn, request, response);
    }

  private:
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
    const HttpResponse hello_ = text(200, "Hello, World!");
    const HttpResponse hello_json_ = json(R"({"message":"Hello, World!"})");
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
