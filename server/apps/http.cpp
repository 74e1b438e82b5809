#include "apps/builtin_apps.hpp"
#include "http_response.hpp"

namespace reactord {

namespace {

using reactor::protocols::HttpResponse;

// Stateless apart from the shared counters, so safe on several loops at once. A small site: GET /
// (text), GET /json, POST /echo (the body back), GET /stats (counters as JSON); HEAD wherever GET
// works; 404 and 405 otherwise.
class HttpApp final : public App {
  public:
    explicit HttpApp(AppContext& context) : server_(context.server), stats_(context.stats) {}

    void on_message(reactor::Connection& conn, reactor::Message& message) override {
        const reactor::HttpRequest& request = *message.http;
        const bool head = request.method == "HEAD";
        const bool get = request.method == "GET" || head;
        std::string_view path = request.target.substr(0, request.target.find('?'));

        HttpResponse response(200);
        if (path == "/") {
            response = get ? text(200, "Hello, World!") : not_allowed("GET, HEAD");
        } else if (path == "/json") {
            response = get ? json(R"({"message":"Hello, World!"})") : not_allowed("GET, HEAD");
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
