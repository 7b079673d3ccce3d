/* libmicrohttpd loaded on first use; see mhd_lazy.h. The variadic option list of
 * MHD_start_daemon is passed on through MHD_start_daemon_va. */
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "coord/mhd_lazy.h"
#include "platform/platform.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#undef MHD_start_daemon
#undef MHD_stop_daemon
#undef MHD_add_response_header
#undef MHD_create_response_from_buffer
#undef MHD_destroy_response
#undef MHD_lookup_connection_value
#undef MHD_queue_response

static struct {
    struct MHD_Daemon *(*start_va)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *,
                                   MHD_AccessHandlerCallback, void *, va_list);
    void (*stop)(struct MHD_Daemon *);
    enum MHD_Result (*add_header)(struct MHD_Response *, const char *, const char *);
    struct MHD_Response *(*from_buffer)(size_t, void *, enum MHD_ResponseMemoryMode);
    void (*destroy)(struct MHD_Response *);
    const char *(*lookup)(struct MHD_Connection *, enum MHD_ValueKind, const char *);
    enum MHD_Result (*queue)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
} M;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void *need(void *h, const char *name) {
    void *p = plat_module_sym(h, name);
    if (!p) {
        fprintf(stderr, "psl: libmicrohttpd.so.12 lacks %s\n", name);
        abort();
    }
    return p;
}

static void load(void) {
    char why[512];
    void *h = plat_module_open("libmicrohttpd.so.12", why, sizeof why);
    if (!h) {
        fprintf(stderr, "psl: the HTTP gateway needs libmicrohttpd (Debian libmicrohttpd12): %s\n",
                why);
        exit(121);
    }
    *(void **)&M.start_va = need(h, "MHD_start_daemon_va");
    *(void **)&M.stop = need(h, "MHD_stop_daemon");
    *(void **)&M.add_header = need(h, "MHD_add_response_header");
    *(void **)&M.from_buffer = need(h, "MHD_create_response_from_buffer");
    *(void **)&M.destroy = need(h, "MHD_destroy_response");
    *(void **)&M.lookup = need(h, "MHD_lookup_connection_value");
    *(void **)&M.queue = need(h, "MHD_queue_response");
}

#define LOAD() pthread_once(&g_once, load)

struct MHD_Daemon *psl_MHD_start_daemon(unsigned int flags, uint16_t port,
                                        MHD_AcceptPolicyCallback apc, void *apc_cls,
                                        MHD_AccessHandlerCallback dh, void *dh_cls, ...) {
    LOAD();
    va_list ap;
    va_start(ap, dh_cls);
    struct MHD_Daemon *d = M.start_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

void psl_MHD_stop_daemon(struct MHD_Daemon *d) {
    LOAD();
    M.stop(d);
}

enum MHD_Result psl_MHD_add_response_header(struct MHD_Response *r, const char *h,
                                            const char *v) {
    LOAD();
    return M.add_header(r, h, v);
}

struct MHD_Response *psl_MHD_create_response_from_buffer(size_t size, void *buffer,
                                                         enum MHD_ResponseMemoryMode mode) {
    LOAD();
    return M.from_buffer(size, buffer, mode);
}

void psl_MHD_destroy_response(struct MHD_Response *r) {
    LOAD();
    M.destroy(r);
}

const char *psl_MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                            const char *key) {
    LOAD();
    return M.lookup(c, kind, key);
}

enum MHD_Result psl_MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                       struct MHD_Response *r) {
    LOAD();
    return M.queue(c, status, r);
}
