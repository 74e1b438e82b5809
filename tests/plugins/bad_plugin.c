/*
 * Plugins the loader must refuse, one per build of this file:
 *   BAD_PLUGIN_WRONG_ABI     the descriptor claims an ABI version the host does not speak
 *   BAD_PLUGIN_SHORT         the descriptor is smaller than ABI version 1 needs
 *   BAD_PLUGIN_NAMED_RAW     a complete plugin whose name clashes with a built-in protocol
 *   BAD_PLUGIN_NO_ENTRY      no entry point at all
 */
#include <stddef.h>

#include "reactor/protocol_plugin.h"

static void* factory_new(const reactor_protocol_config* config) {
    (void)config;
    static int factory;
    return &factory;
}
static void factory_free(void* factory) {
    (void)factory;
}
static void* instance_new(const void* factory) {
    return (void*)factory;
}
static void instance_free(void* instance) {
    (void)instance;
}
static int decode(void* instance, const reactor_protocol_input* in,
                  const reactor_protocol_decode_out* out) {
    (void)instance;
    (void)in;
    (void)out;
    return REACTOR_DECODE_NEED_MORE;
}
static void encode(void* instance, const char* payload, size_t size,
                   const reactor_protocol_writer* out) {
    (void)instance;
    out->append(out->host, payload, size);
}

#if defined(BAD_PLUGIN_WRONG_ABI)
#define ABI_VERSION (REACTOR_PROTOCOL_ABI_VERSION + 1)
#else
#define ABI_VERSION REACTOR_PROTOCOL_ABI_VERSION
#endif

#if defined(BAD_PLUGIN_SHORT)
#define DESCRIPTOR_SIZE offsetof(reactor_protocol_v1, decode)
#else
#define DESCRIPTOR_SIZE sizeof(reactor_protocol_v1)
#endif

#if defined(BAD_PLUGIN_NAMED_RAW)
#define NAME "raw"
#else
#define NAME "bad"
#endif

static const reactor_protocol_v1 descriptor = {
    .abi_version = ABI_VERSION,
    .struct_size = DESCRIPTOR_SIZE,
    .name = NAME,
    .factory_new = factory_new,
    .factory_free = factory_free,
    .instance_new = instance_new,
    .instance_free = instance_free,
    .decode = decode,
    .decode_eof = NULL,
    .encode = encode,
    .busy_notice = NULL,
};

#if defined(BAD_PLUGIN_NO_ENTRY)
/* Exported under another name, so the library loads but has no entry point. */
REACTOR_PROTOCOL_PLUGIN_VISIBLE const reactor_protocol_v1* protocol_plugin_misnamed(void) {
    return &descriptor;
}
#else
REACTOR_PROTOCOL_PLUGIN_EXPORT const reactor_protocol_v1* reactor_protocol_plugin(void) {
    return &descriptor;
}
#endif
