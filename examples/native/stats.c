/* Running statistics kept in the key-value store, written once against the C guest API and built
 * both as a WebAssembly module (stats.wasm) and as a native shared object (stats.so) through
 * sdk/c/psl_native.h. Both builds answer byte for byte the same. Requests:
 *   "add NAME X..."   adds the integers X to the series NAME under the lock "stats/NAME"; prints
 *                     the series as "NAME n=N sum=S min=A max=B"
 *   "show NAME"       prints the series (n=0 when it is empty)
 *   "reset NAME"      deletes it; prints "reset NAME"
 *   "call FN INPUT"   invokes FN with INPUT and prints "FN said: RESPONSE"
 * A series is stored under "stats/NAME" as the decimal text "N S A B". */
#define _POSIX_C_SOURCE 200809L
#include <psl_native.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct series {
    long n, sum, min, max;
} series;

static int load(const char *key, series *s) {
    char val[96] = {0};
    memset(s, 0, sizeof *s);
    int len = psl_get(key, strlen(key), val, sizeof val - 1);
    if (len == PSL_ENOTFOUND)
        return 0;
    if (len < 0)
        return len;
    if (sscanf(val, "%ld %ld %ld %ld", &s->n, &s->sum, &s->min, &s->max) != 4)
        memset(s, 0, sizeof *s);
    return 0;
}

static int print(const char *name, const series *s) {
    char out[200];
    int n = snprintf(out, sizeof out, "%s n=%ld sum=%ld min=%ld max=%ld\n", name, s->n, s->sum,
                     s->min, s->max);
    return psl_write(out, (size_t)n);
}

static int fail(const char *what, int err) {
    char msg[100];
    int n = snprintf(msg, sizeof msg, "%s failed: %d\n", what, err);
    psl_write_error(msg, (size_t)n);
    return 2;
}

static int handle(const uint8_t *in, size_t inlen) {
    char req[1024];
    size_t n = inlen < sizeof req - 1 ? inlen : sizeof req - 1;
    memcpy(req, in, n);
    req[n] = 0;
    char *save = NULL;
    char *cmd = strtok_r(req, " \n", &save);
    char *name = cmd ? strtok_r(NULL, " \n", &save) : NULL;
    if (!cmd || !name || strlen(name) > 64) {
        const char *u = "usage: add NAME X... | show NAME | reset NAME | call FN INPUT\n";
        psl_write_error(u, strlen(u));
        return 64;
    }
    char key[80];
    snprintf(key, sizeof key, "stats/%s", name);
    series s;
    int rc;
    if (!strcmp(cmd, "add")) {
        if ((rc = psl_lock(key)) != 0)
            return fail("lock", rc);
        rc = load(key, &s);
        for (char *x = strtok_r(NULL, " \n", &save); !rc && x; x = strtok_r(NULL, " \n", &save)) {
            long v = strtol(x, NULL, 10);
            s.min = s.n == 0 || v < s.min ? v : s.min;
            s.max = s.n == 0 || v > s.max ? v : s.max;
            s.sum += v;
            s.n++;
        }
        char val[96];
        int vlen = snprintf(val, sizeof val, "%ld %ld %ld %ld", s.n, s.sum, s.min, s.max);
        if (!rc)
            rc = psl_put(key, strlen(key), val, (size_t)vlen);
        psl_unlock(key);
        if (rc)
            return fail("put", rc);
        return print(name, &s) ? 3 : 0;
    }
    if (!strcmp(cmd, "show")) {
        if ((rc = load(key, &s)) != 0)
            return fail("get", rc);
        return print(name, &s) ? 3 : 0;
    }
    if (!strcmp(cmd, "reset")) {
        if ((rc = psl_delete(key, strlen(key))) != 0)
            return fail("delete", rc);
        psl_log("stats: a series was reset");
        char out[100];
        int len = snprintf(out, sizeof out, "reset %s\n", name);
        return psl_write(out, (size_t)len) ? 3 : 0;
    }
    if (!strcmp(cmd, "call")) {
        const char *arg = strtok_r(NULL, "\n", &save);
        if (!arg)
            arg = "";
        char resp[512];
        int len = psl_invoke(name, arg, strlen(arg), resp, sizeof resp);
        if (len < 0)
            return fail("invoke", len);
        char out[600];
        int olen = snprintf(out, sizeof out, "%s said: %.*s", name,
                            len > (int)sizeof resp ? (int)sizeof resp : len, resp);
        return psl_write(out, (size_t)olen) ? 3 : 0;
    }
    return fail("unknown command", 0);
}

PSL_HANDLER(handle)
