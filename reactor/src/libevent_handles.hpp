#pragma once

// Owning handles for libevent objects: each released with its matching _free. Internal header.

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <chrono>
#include <memory>

namespace reactor {

struct EventBaseFree {
    void operator()(event_base* p) const { event_base_free(p); }
};
struct EventFree {
    void operator()(event* p) const { event_free(p); }
};
struct BufferEventFree {
    void operator()(bufferevent* p) const { bufferevent_free(p); }
};
struct ListenerFree {
    void operator()(evconnlistener* p) const { evconnlistener_free(p); }
};
struct EvBufferFree {
    void operator()(evbuffer* p) const { evbuffer_free(p); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventFree>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerFree>;
using EvBufferPtr = std::unique_ptr<evbuffer, EvBufferFree>;

// libevent's timeouts are timevals.
inline timeval to_timeval(std::chrono::microseconds after) {
    const auto us = after.count();
    return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

}  // namespace reactor
