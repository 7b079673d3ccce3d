/* Always-on assertion failure, allocation wrappers and error strings. */
#include "base/base.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void base_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "psl: internal error at %s:%d: assertion '%s' failed\n", file, line, what);
    abort();
}

static void *oom(size_t n) {
    fprintf(stderr, "psl: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    return p ? p : oom(n * sz);
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

const char *err_str(int err) {
    switch (err) {
    case 0: return "ok";
    case ERR_NOTFOUND: return "not found";
    case ERR_CORRUPT: return "integrity failure";
    case ERR_AUTH: return "authentication failed";
    case ERR_TRAP: return "guest trapped";
    case ERR_MALFORMED: return "malformed input";
    case ERR_INVALID: return "invalid input";
    case ERR_UNLINKABLE: return "unlinkable";
    case ERR_LIMIT: return "limit exceeded";
    case ERR_NOMEM: return "out of memory";
    case ERR_IO: return "i/o error";
    case ERR_USAGE: return "usage error";
    case ERR_EXIT: return "guest exited";
    default: break;
    }
    if (err < 0 && err > ERR_BASE)
        return strerror(-err);
    return "unknown error";
}
