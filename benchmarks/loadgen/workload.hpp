#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "reactor/message.hpp"
#include "reactor/protocol.hpp"
#include "settings.hpp"

namespace loadgen {

// One request kind: the bytes sent, how replies are framed, and what counts as a good reply.
struct Workload {
    enum class Check {
        none,            // any framed reply is good
        payload_size,    // echo: the reply carries as many payload bytes as were sent
        resp_not_error,  // RESP: not a "-ERR ..." reply
        http_2xx,        // HTTP: a 2xx status
    };

    std::string name;
    std::string request;  // wire bytes of one request, framing included
    std::shared_ptr<const reactor::ProtocolFactory> replies;
    Check check = Check::none;
    std::size_t expected_size = 0;

    bool reply_ok(const reactor::Message& reply) const;
};

// Builds the workload named in settings; throws std::invalid_argument for an unknown name.
Workload make_workload(const Settings& settings);

}  // namespace loadgen
