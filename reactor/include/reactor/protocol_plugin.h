/*
 * The C ABI of out-of-tree protocol plugins.
 *
 * A plugin is a shared object that exports one function,
 *
 *     REACTOR_PROTOCOL_PLUGIN_EXPORT const reactor_protocol_v1* reactor_protocol_plugin(void);
 *
 * returning a descriptor with static storage duration. The host loads it, checks abi_version and
 * struct_size, and registers the protocol under descriptor->name like a built-in one. Plain C, no
 * host types: a plugin needs only this header, and it may be written in C or C++.
 *
 * Objects and threads
 *  - A factory is built once per listener from that listener's options and shared by all of its
 *    connections. instance_new() may run on any loop thread, concurrently: treat the factory as
 *    read-only after factory_new() returned.
 *  - An instance belongs to one connection and is only used on that connection's loop thread, so it
 *    may keep decode state without locks.
 *  - No function may let a C++ exception or a longjmp escape into the host.
 *
 * The framing contract (the same as reactor::Protocol)
 *  - decode() looks at the front of the input. With a whole frame there, it calls deliver() once
 *    with the frame's payload, calls consume() with the frame's length and returns
 *    REACTOR_DECODE_FRAME. The payload may point into the input, or into the instance's own
 *    storage: it must stay valid until deliver() returns.
 *  - With only part of a frame, it returns REACTOR_DECODE_NEED_MORE without consuming anything. It
 *    may call expect() with the frame's total length, once it knows it, so that the host does not
 *    call again before that many bytes are buffered.
 *  - It may consume bytes without delivering (a skipped keep-alive) and return FRAME. Returning
 *    FRAME without consuming, or delivering without returning FRAME, breaks the contract and
 *    closes the connection.
 *  - The host calls decode() again while it returns REACTOR_DECODE_FRAME and bytes remain, so every
 *    pipelined frame of one read is handled in that read.
 *  - Max frame length is enforced fail-fast: as soon as a frame's declared or buffered length
 *    passes the limit, decode() calls fail() and returns REACTOR_DECODE_ERROR, without waiting for
 *    the rest of the frame.
 *  - fail() closes the connection as a protocol error, after writing the optional last reply.
 *  - decode_eof() runs once when the peer closes its write side, with whatever bytes are left.
 *
 * The input view is bounded. It shows at most max_frame + REACTOR_PROTOCOL_VIEW_SLACK bytes (the
 * listener's frame limit plus room for framing), so the host never makes an unbounded amount of
 * buffered data contiguous. When in->size < in->buffered the view was cut there: a plugin that
 * needs to see more should return REACTOR_DECODE_NEED_MORE, and the host then closes the
 * connection itself because that frame cannot fit the limit.
 *
 * Reentrancy: deliver() runs the application, which may send a reply at once; encode() on the same
 * instance can therefore run while decode() is waiting for deliver() to return.
 */
#ifndef REACTOR_PROTOCOL_PLUGIN_H
#define REACTOR_PROTOCOL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The descriptor layout this header describes. A host accepts exactly this version. */
#define REACTOR_PROTOCOL_ABI_VERSION 1u

/* The name of the exported entry point, for dlsym(). */
#define REACTOR_PROTOCOL_PLUGIN_SYMBOL "reactor_protocol_plugin"

/* Bytes the input view shows beyond the listener's max_frame, for length prefixes, headers and
 * trailers around a payload of max_frame bytes. */
#define REACTOR_PROTOCOL_VIEW_SLACK 1024u

/* Keeps the entry point exported when a plugin is built with -fvisibility=hidden. */
#define REACTOR_PROTOCOL_PLUGIN_VISIBLE __attribute__((visibility("default")))

#ifdef __cplusplus
#define REACTOR_PROTOCOL_PLUGIN_EXPORT extern "C" REACTOR_PROTOCOL_PLUGIN_VISIBLE
#else
#define REACTOR_PROTOCOL_PLUGIN_EXPORT REACTOR_PROTOCOL_PLUGIN_VISIBLE
#endif

/* What decode() and decode_eof() return. */
enum reactor_decode_status {
    REACTOR_DECODE_NEED_MORE = 0,
    REACTOR_DECODE_FRAME = 1,
    REACTOR_DECODE_ERROR = 2
};

/* What a factory is built from. Valid only during factory_new(). */
typedef struct reactor_protocol_config {
    uint32_t struct_size; /* sizeof this struct as the host knows it; later versions append */
    /* The listener's "protocol" object without "name", as JSON text; NUL-terminated. */
    const char* options_json;
    size_t options_json_size;
    /* The listener's frame limit. A protocol's own limits must not exceed it. */
    size_t max_frame;
    /* Reports unusable options; factory_new() then returns NULL. option names the offending key
     * ("max_length"), or is NULL or "" when the problem is the options as a whole. problem says
     * what was expected ("expected an integer from 1 to 1048576"). Both strings are copied. */
    void* host;
    void (*reject)(void* host, const char* option, const char* problem);
} reactor_protocol_config;

/* A read-only view of the front of a connection's input. Valid only during the call. */
typedef struct reactor_protocol_input {
    const char* data;
    size_t size;     /* bytes shown in data */
    size_t buffered; /* bytes buffered in all; more than size when the view was cut */
} reactor_protocol_input;

/* Where decode() reports. Valid only during the call; host is the first argument of each. */
typedef struct reactor_protocol_decode_out {
    uint32_t struct_size;
    void* host;
    /* Hands one message to the application; at most once per call. Returns nonzero while the
     * receiver still accepts messages, zero once its connection is closing. */
    int (*deliver)(void* host, const char* payload, size_t size);
    /* Removes n bytes (n <= buffered) from the front of the input once decode() returns. */
    void (*consume)(void* host, size_t n);
    /* Gives up on the connection: reason for the log, and an optional last reply (NULL or
     * size 0 for none) written before closing, in the protocol's own form. Copied. */
    void (*fail)(void* host, const char* reason, const char* last_reply, size_t last_reply_size);
    /* Optional hint with REACTOR_DECODE_NEED_MORE: the pending frame is frame_size bytes long. */
    void (*expect)(void* host, size_t frame_size);
} reactor_protocol_decode_out;

/* Where encode() and busy_notice() write. Valid only during the call. */
typedef struct reactor_protocol_writer {
    uint32_t struct_size;
    void* host;
    void (*append)(void* host, const char* bytes, size_t size);
} reactor_protocol_writer;

/* The descriptor a plugin exports. Fields are only ever appended, so struct_size tells a host
 * which ones a plugin filled. */
typedef struct reactor_protocol_v1 {
    uint32_t abi_version; /* REACTOR_PROTOCOL_ABI_VERSION */
    uint32_t struct_size; /* sizeof(reactor_protocol_v1) as the plugin was built */
    /* The registry name listeners use ("netstrings"); must not clash with another protocol. */
    const char* name;

    /* Validates the options and builds the factory; NULL after config->reject() on bad options
     * (NULL without reject() reads as "the plugin rejected its options"). */
    void* (*factory_new)(const reactor_protocol_config* config);
    void (*factory_free)(void* factory);

    /* One instance per connection; NULL means out of memory. */
    void* (*instance_new)(const void* factory);
    void (*instance_free)(void* instance);

    /* Returns a reactor_decode_status. See the framing contract above. */
    int (*decode)(void* instance, const reactor_protocol_input* in,
                  const reactor_protocol_decode_out* out);
    /* Optional (NULL: leftover bytes are dropped quietly). Runs once at end of input. */
    int (*decode_eof)(void* instance, const reactor_protocol_input* in,
                      const reactor_protocol_decode_out* out);

    /* Frames one outbound payload. */
    void (*encode)(void* instance, const char* payload, size_t size,
                   const reactor_protocol_writer* out);
    /* Optional: the bytes sent to a connection refused because the listener is full. */
    void (*busy_notice)(void* instance, const reactor_protocol_writer* out);
} reactor_protocol_v1;

/* The entry point every plugin defines. */
REACTOR_PROTOCOL_PLUGIN_VISIBLE const reactor_protocol_v1* reactor_protocol_plugin(void);

#ifdef __cplusplus
}
#endif

#endif /* REACTOR_PROTOCOL_PLUGIN_H */
