/* libcurl loaded on first use; see http_lazy.h. Every variadic option curl takes is one long,
 * pointer, function pointer or curl_off_t: all passed as one 64-bit integer-class argument on the
 * x86-64 and aarch64 ABIs, so it is forwarded as such. */
#include <curl/curl.h>

#include "platform/platform.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free_)(void *);
} C;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void *need(void *h, const char *name) {
    void *p = plat_module_sym(h, name);
    if (!p) {
        fprintf(stderr, "psl: libcurl.so.4 lacks %s\n", name);
        abort();
    }
    return p;
}

static void load(void) {
    char why[512];
    void *h = plat_module_open("libcurl.so.4", why, sizeof why);
    if (!h) {
        fprintf(stderr, "psl: this command needs libcurl (Debian package libcurl4): %s\n", why);
        exit(121);
    }
    *(void **)&C.global_init = need(h, "curl_global_init");
    *(void **)&C.global_cleanup = need(h, "curl_global_cleanup");
    *(void **)&C.easy_init = need(h, "curl_easy_init");
    *(void **)&C.easy_setopt = need(h, "curl_easy_setopt");
    *(void **)&C.easy_perform = need(h, "curl_easy_perform");
    *(void **)&C.easy_getinfo = need(h, "curl_easy_getinfo");
    *(void **)&C.easy_cleanup = need(h, "curl_easy_cleanup");
    *(void **)&C.easy_strerror = need(h, "curl_easy_strerror");
    *(void **)&C.slist_append = need(h, "curl_slist_append");
    *(void **)&C.slist_free_all = need(h, "curl_slist_free_all");
    *(void **)&C.easy_escape = need(h, "curl_easy_escape");
    *(void **)&C.free_ = need(h, "curl_free");
}

#define LOAD() pthread_once(&g_once, load)

CURLcode psl_curl_global_init(long flags);
void psl_curl_global_cleanup(void);
CURL *psl_curl_easy_init(void);
CURLcode psl_curl_easy_setopt(CURL *h, CURLoption opt, ...);
CURLcode psl_curl_easy_perform(CURL *h);
CURLcode psl_curl_easy_getinfo(CURL *h, CURLINFO info, ...);
void psl_curl_easy_cleanup(CURL *h);
const char *psl_curl_easy_strerror(CURLcode c);
struct curl_slist *psl_curl_slist_append(struct curl_slist *l, const char *s);
void psl_curl_slist_free_all(struct curl_slist *l);
char *psl_curl_easy_escape(CURL *h, const char *s, int len);
void psl_curl_free(void *p);

CURLcode psl_curl_global_init(long flags) {
    LOAD();
    return C.global_init(flags);
}

void psl_curl_global_cleanup(void) {
    LOAD();
    C.global_cleanup();
}

CURL *psl_curl_easy_init(void) {
    LOAD();
    return C.easy_init();
}

CURLcode psl_curl_easy_setopt(CURL *h, CURLoption opt, ...) {
    LOAD();
    va_list ap;
    va_start(ap, opt);
    uintptr_t v = va_arg(ap, uintptr_t);
    va_end(ap);
    return C.easy_setopt(h, opt, v);
}

CURLcode psl_curl_easy_perform(CURL *h) {
    LOAD();
    return C.easy_perform(h);
}

CURLcode psl_curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
    LOAD();
    va_list ap;
    va_start(ap, info);
    void *p = va_arg(ap, void *);
    va_end(ap);
    return C.easy_getinfo(h, info, p);
}

void psl_curl_easy_cleanup(CURL *h) {
    LOAD();
    C.easy_cleanup(h);
}

const char *psl_curl_easy_strerror(CURLcode c) {
    LOAD();
    return C.easy_strerror(c);
}

struct curl_slist *psl_curl_slist_append(struct curl_slist *l, const char *s) {
    LOAD();
    return C.slist_append(l, s);
}

void psl_curl_slist_free_all(struct curl_slist *l) {
    LOAD();
    C.slist_free_all(l);
}

char *psl_curl_easy_escape(CURL *h, const char *s, int len) {
    LOAD();
    return C.easy_escape(h, s, len);
}

void psl_curl_free(void *p) {
    LOAD();
    C.free_(p);
}
