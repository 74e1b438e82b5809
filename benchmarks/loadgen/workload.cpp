#include "workload.hpp"

#include <stdexcept>

#include "builtin.hpp"
#include "reactor/protocol_registry.hpp"
#include "reply_framers.hpp"

namespace loadgen {

namespace {

std::string resp_command(std::initializer_list<std::string_view> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto arg : args) {
        out += "$" + std::to_string(arg.size()) + "\r\n";
        out.append(arg);
        out += "\r\n";
    }
    return out;
}

// Line and length echo use reactor's own protocols, built the way reactord builds them, with a
// frame limit that fits the payload.
std::shared_ptr<const reactor::ProtocolFactory> builtin_protocol(const std::string& name,
                                                                 std::size_t payload) {
    reactor::ProtocolRegistry registry;
    reactor::protocols::register_builtin(registry);
    reactor::ProtocolConfig config;
    config.max_frame = std::max<std::size_t>(payload + 64, 1 << 20);
    return registry.build(name, config);
}

std::string encoded(const reactor::ProtocolFactory& factory, const std::string& payload) {
    std::string wire;
    reactor::FrameOutput out(wire);
    factory.create()->encode(payload, out);
    return wire;
}

}  // namespace

bool Workload::reply_ok(const reactor::Message& reply) const {
    switch (check) {
        case Check::none:
            return true;
        case Check::payload_size:
            return reply.payload.size() == expected_size;
        case Check::resp_not_error:
            return reply.payload.empty() || reply.payload.front() != '-';
        case Check::http_2xx:
            return reply.payload.size() >= 12 && reply.payload[9] == '2';
    }
    return false;
}

Workload make_workload(const Settings& s) {
    Workload w;
    w.name = s.workload;
    const std::string payload(s.size, 'x');
    if (s.workload == "echo-raw") {
        w.request = payload;
        w.replies = fixed_size_replies(s.size);
    } else if (s.workload == "echo-line") {
        w.replies = builtin_protocol("line", s.size);
        w.request = encoded(*w.replies, payload);
        w.check = Workload::Check::payload_size;
        w.expected_size = s.size;
    } else if (s.workload == "echo-length") {
        w.replies = builtin_protocol("length", s.size);
        w.request = encoded(*w.replies, payload);
        w.check = Workload::Check::payload_size;
        w.expected_size = s.size;
    } else if (s.workload == "resp-ping") {
        w.request = resp_command({"PING"});
        w.replies = resp_replies();
        w.check = Workload::Check::resp_not_error;
    } else if (s.workload == "resp-set") {
        w.request = resp_command({"SET", s.key, payload});
        w.replies = resp_replies();
        w.check = Workload::Check::resp_not_error;
    } else if (s.workload == "resp-get") {
        w.request = resp_command({"GET", s.key});
        w.replies = resp_replies();
        w.check = Workload::Check::resp_not_error;
    } else if (s.workload == "http-get") {
        w.request =
            "GET " + s.path + " HTTP/1.1\r\nHost: " + s.host + "\r\nUser-Agent: loadgen\r\n\r\n";
        w.replies = http_responses();
        w.check = Workload::Check::http_2xx;
    } else {
        throw std::invalid_argument("unknown workload '" + s.workload +
                                    "' (echo-raw, echo-line, echo-length, resp-ping, resp-set, "
                                    "resp-get, http-get)");
    }
    return w;
}

}  // namespace loadgen
