/*
 * Netstrings ("5:hello,") as a protocol plugin, written against the C plugin header alone.
 *
 * Options: {"max_length": N}, the largest payload accepted, from 1 to the listener's max_frame
 * (the default). Malformed input (a length that is not plain decimal, a leading zero, a missing ':'
 * or ',') and a declared length above max_length fail the connection as soon as they are seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/protocol_plugin.h"

typedef struct netstrings_settings {
    size_t max_length;
} netstrings_settings;

/* ---- options: a flat JSON object, of which only "max_length" is known ---- */

static const char* skip_space(const char* p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    return p;
}

/* p is at the opening quote. Sets the raw contents (escapes left as they are) and returns the
 * position after the closing quote, or NULL when the string does not end. */
static const char* read_string(const char* p, const char* end, const char** text, size_t* size) {
    const char* start = ++p;
    while (p < end && *p != '"') p += (*p == '\\') ? 2 : 1;
    if (p >= end) return NULL;
    *text = start;
    *size = (size_t)(p - start);
    return p + 1;
}

/* A non-negative JSON integer in [1, max]; NULL for anything else (negative, fraction, text). */
static const char* read_length(const char* p, const char* end, size_t max, size_t* value) {
    size_t n = 0;
    const char* start = p;
    while (p < end && *p >= '0' && *p <= '9') {
        const size_t digit = (size_t)(*p - '0');
        if (n > max / 10 || n * 10 + digit > max) return NULL;
        n = n * 10 + digit;
        ++p;
    }
    if (p == start || n == 0) return NULL;
    const char* after = skip_space(p, end);
    if (after < end && *after != ',' && *after != '}') return NULL; /* 1.5, 1e3 */
    *value = n;
    return p;
}

static void reject_key(const reactor_protocol_config* config, const char* key, size_t size,
                       const char* problem) {
    char name[128];
    if (size >= sizeof name) size = sizeof name - 1;
    memcpy(name, key, size);
    name[size] = '\0';
    config->reject(config->host, name, problem);
}

static int parse_options(const reactor_protocol_config* config, netstrings_settings* settings) {
    const char* p = config->options_json;
    const char* end = p + config->options_json_size;
    p = skip_space(p, end);
    if (p >= end || *p != '{') {
        config->reject(config->host, NULL, "expected an object");
        return 0;
    }
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') return 1;
    for (;;) {
        const char* key = NULL;
        size_t key_size = 0;
        if (p >= end || *p != '"' || !(p = read_string(p, end, &key, &key_size))) break;
        p = skip_space(p, end);
        if (p >= end || *p != ':') break;
        p = skip_space(p + 1, end);
        if (key_size == 10 && memcmp(key, "max_length", 10) == 0) {
            p = read_length(p, end, config->max_frame, &settings->max_length);
            if (p == NULL) {
                char problem[96];
                snprintf(problem, sizeof problem, "expected an integer from 1 to %zu",
                         config->max_frame);
                config->reject(config->host, "max_length", problem);
                return 0;
            }
        } else {
            reject_key(config, key, key_size, "unknown option");
            return 0;
        }
        p = skip_space(p, end);
        if (p < end && *p == '}') return 1;
        if (p >= end || *p != ',') break;
        p = skip_space(p + 1, end);
    }
    config->reject(config->host, NULL, "malformed options");
    return 0;
}

/* ---- factory and instances: both are just the settings ---- */

static void* netstrings_factory_new(const reactor_protocol_config* config) {
    netstrings_settings settings;
    settings.max_length = config->max_frame;
    if (!parse_options(config, &settings)) return NULL;
    netstrings_settings* factory = malloc(sizeof *factory);
    if (factory == NULL) {
        config->reject(config->host, NULL, "out of memory");
        return NULL;
    }
    *factory = settings;
    return factory;
}

static void* netstrings_instance_new(const void* factory) {
    netstrings_settings* instance = malloc(sizeof *instance);
    if (instance != NULL) *instance = *(const netstrings_settings*)factory;
    return instance;
}

/* ---- framing ---- */

static int fail(const reactor_protocol_decode_out* out, const char* reason) {
    out->fail(out->host, reason, NULL, 0);
    return REACTOR_DECODE_ERROR;
}

static int netstrings_decode(void* instance, const reactor_protocol_input* in,
                             const reactor_protocol_decode_out* out) {
    const size_t max_length = ((const netstrings_settings*)instance)->max_length;
    const char* data = in->data;
    size_t length = 0;
    size_t i = 0;
    for (; i < in->size && data[i] >= '0' && data[i] <= '9'; ++i) {
        if (i == 1 && data[0] == '0') return fail(out, "netstring length has a leading zero");
        const size_t digit = (size_t)(data[i] - '0');
        /* Fail while the digits are still arriving, not once the payload is in. */
        if (length > max_length / 10 || length * 10 + digit > max_length) {
            char reason[96];
            snprintf(reason, sizeof reason, "netstring longer than max_length %zu", max_length);
            return fail(out, reason);
        }
        length = length * 10 + digit;
    }
    if (i == in->size) return REACTOR_DECODE_NEED_MORE;
    if (i == 0) return fail(out, "netstring does not start with a decimal length");
    if (data[i] != ':') return fail(out, "netstring length is not followed by ':'");

    const size_t header = i + 1;
    const size_t total = header + length + 1;
    if (in->size < total) {
        out->expect(out->host, total);
        return REACTOR_DECODE_NEED_MORE;
    }
    if (data[total - 1] != ',') return fail(out, "netstring payload is not followed by ','");
    out->deliver(out->host, data + header, length);
    out->consume(out->host, total);
    return REACTOR_DECODE_FRAME;
}

static int netstrings_decode_eof(void* instance, const reactor_protocol_input* in,
                                 const reactor_protocol_decode_out* out) {
    (void)instance;
    if (in->buffered != 0) return fail(out, "input ends inside a netstring");
    return REACTOR_DECODE_NEED_MORE;
}

static void netstrings_encode(void* instance, const char* payload, size_t size,
                              const reactor_protocol_writer* out) {
    (void)instance;
    char header[32];
    const int n = snprintf(header, sizeof header, "%zu:", size);
    out->append(out->host, header, (size_t)n);
    out->append(out->host, payload, size);
    out->append(out->host, ",", 1);
}

static void netstrings_busy_notice(void* instance, const reactor_protocol_writer* out) {
    static const char notice[] = "ERR max connections reached";
    netstrings_encode(instance, notice, sizeof notice - 1, out);
}

static const reactor_protocol_v1 netstrings_protocol = {
    .abi_version = REACTOR_PROTOCOL_ABI_VERSION,
    .struct_size = sizeof(reactor_protocol_v1),
    .name = "netstrings",
    .factory_new = netstrings_factory_new,
    .factory_free = free,
    .instance_new = netstrings_instance_new,
    .instance_free = free,
    .decode = netstrings_decode,
    .decode_eof = netstrings_decode_eof,
    .encode = netstrings_encode,
    .busy_notice = netstrings_busy_notice,
};

REACTOR_PROTOCOL_PLUGIN_EXPORT const reactor_protocol_v1* reactor_protocol_plugin(void) {
    return &netstrings_protocol;
}
