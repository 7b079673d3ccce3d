/* The function registry at rest: DIR/functions/NAME.wasm (the module) and NAME.json (limits,
 * code hash, version). Both are written to a temporary file, fsynced and renamed, the .wasm first,
 * so a crash leaves either the old or the new function, and a .json whose hash does not match its
 * .wasm is reported and skipped on load (never served). */
#include "coord/coord_int.h"

#include "crypto/crypto.h"
#include "platform/platform.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void co_limits_default(co_limits *l) {
    l->timeout_ms = 10000;
    l->max_memory_mb = 256;
    l->max_request = 8u << 20;
    l->max_response = 8u << 20;
    l->sync = false;
}

bool co_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > CO_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

co_fn *co_fn_find(co_fn *list, const char *name) {
    for (co_fn *f = list; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

co_fn *co_fn_new(const char *name, const uint8_t *code, size_t len, const co_limits *lim,
                 uint32_t log_lines) {
    co_fn *f = xcalloc(1, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->code = xmalloc(len ? len : 1);
    memcpy(f->code, code, len);
    f->len = len;
    f->lim = *lim;
    cr_hash(f->hash, code, len);
    f->log_cap = log_lines ? log_lines : 512;
    f->log = xcalloc(f->log_cap, sizeof *f->log);
    f->deployed_ns = plat_realtime_ns();
    return f;
}

void co_fn_free(co_fn *f) {
    if (!f)
        return;
    for (uint32_t i = 0; i < f->log_cap; i++)
        free(f->log[i]);
    free(f->log);
    free(f->code);
    free(f);
}

void co_fn_log(co_fn *f, const char *line) {
    uint32_t slot = (f->log_head + f->log_n) % f->log_cap;
    if (f->log_n == f->log_cap) {
        slot = f->log_head;
        f->log_head = (f->log_head + 1) % f->log_cap;
    } else {
        f->log_n++;
    }
    free(f->log[slot]);
    f->log[slot] = xstrdup(line);
}

static int write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    const uint8_t *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    if (rename(tmp, path) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void fn_dir(char *out, size_t n, const char *dir) {
    snprintf(out, n, "%s/functions", dir);
}

int co_registry_save(const char *dir, const co_fn *f) {
    char d[4096], path[4200];
    fn_dir(d, sizeof d, dir);
    if (mkdir(d, 0700) != 0 && errno != EEXIST)
        return ERR_IO;
    snprintf(path, sizeof path, "%s/%s.wasm", d, f->name);
    int rc = write_atomic(path, f->code, f->len);
    if (rc)
        return ERR_IO;
    char hex[65];
    cr_hex(hex, f->hash, 32);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", f->name);
    cJSON_AddStringToObject(j, "hash", hex);
    cJSON_AddNumberToObject(j, "size", (double)f->len);
    cJSON_AddNumberToObject(j, "version", (double)f->version);
    cJSON_AddNumberToObject(j, "deployed_ns", (double)f->deployed_ns);
    cJSON_AddNumberToObject(j, "timeout_ms", f->lim.timeout_ms);
    cJSON_AddNumberToObject(j, "max_memory_mb", f->lim.max_memory_mb);
    cJSON_AddNumberToObject(j, "max_request", f->lim.max_request);
    cJSON_AddNumberToObject(j, "max_response", f->lim.max_response);
    cJSON_AddStringToObject(j, "durability", f->lim.sync ? "sync" : "async");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/%s.json", d, f->name);
    rc = write_atomic(path, s, strlen(s));
    free(s);
    sync_dir(d);
    return rc ? ERR_IO : 0;
}

int co_registry_delete(const char *dir, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/functions/%s.json", dir, name);
    int rc = unlink(path) == 0 || errno == ENOENT ? 0 : ERR_IO;
    snprintf(path, sizeof path, "%s/functions/%s.wasm", dir, name);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/functions", dir);
    sync_dir(path);
    return rc;
}

static uint32_t jnum(const cJSON *j, const char *k, uint32_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (uint32_t)v->valuedouble : dflt;
}

static int load_one(const char *d, const char *name, co_fn **out, uint32_t log_lines) {
    char path[4300];
    uint8_t *meta = NULL, *code = NULL;
    size_t mlen = 0, clen = 0;
    cJSON *j = NULL;
    int rc = ERR_IO;
    snprintf(path, sizeof path, "%s/%s.json", d, name);
    if (plat_read_file(path, &meta, &mlen) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/%s.wasm", d, name);
    if (plat_read_file(path, &code, &clen) != 0)
        goto fail;
    rc = ERR_CORRUPT;
    j = cJSON_ParseWithLength((const char *)meta, mlen);
    const cJSON *h = j ? cJSON_GetObjectItemCaseSensitive(j, "hash") : NULL;
    if (!cJSON_IsString(h))
        goto fail;
    uint8_t want[32], got[32];
    if (strlen(h->valuestring) != 64 || cr_unhex(want, 32, h->valuestring, 64) != 0)
        goto fail;
    cr_hash(got, code, clen);
    if (memcmp(want, got, 32) != 0)
        goto fail;
    co_limits lim;
    co_limits_default(&lim);
    lim.timeout_ms = jnum(j, "timeout_ms", lim.timeout_ms);
    lim.max_memory_mb = jnum(j, "max_memory_mb", lim.max_memory_mb);
    lim.max_request = jnum(j, "max_request", lim.max_request);
    lim.max_response = jnum(j, "max_response", lim.max_response);
    const cJSON *du = cJSON_GetObjectItemCaseSensitive(j, "durability");
    lim.sync = cJSON_IsString(du) && strcmp(du->valuestring, "sync") == 0;
    co_fn *f = co_fn_new(name, code, clen, &lim, log_lines);
    f->version = jnum(j, "version", 1);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "deployed_ns");
    if (cJSON_IsNumber(t))
        f->deployed_ns = (uint64_t)t->valuedouble;
    *out = f;
    rc = 0;
fail:
    cJSON_Delete(j);
    free(meta);
    free(code);
    return rc;
}

int co_registry_load(const char *dir, co_fn **list, uint32_t log_lines) {
    char d[4096];
    fn_dir(d, sizeof d, dir);
    DIR *dh = opendir(d);
    if (!dh)
        return errno == ENOENT ? 0 : ERR_IO;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char name[CO_NAME_MAX + 1];
        if (n - 5 > CO_NAME_MAX)
            continue;
        memcpy(name, e->d_name, n - 5);
        name[n - 5] = 0;
        if (!co_name_ok(name))
            continue;
        co_fn *f = NULL;
        int rc = load_one(d, name, &f, log_lines);
        if (rc) {
            fprintf(stderr, "psl coordinator: function '%s' not loaded from %s: %s\n", name, d,
                    rc == ERR_CORRUPT ? "its code does not match the recorded hash (or the "
                                        "metadata is damaged)"
                                      : "cannot read its files");
            continue;
        }
        f->next = *list;
        *list = f;
    }
    closedir(dh);
    return 0;
}

/* ---- lock vectors at rest ---- */

int co_locks_save(const char *dir, const co_lock *list) {
    cJSON *a = cJSON_CreateArray();
    for (const co_lock *l = list; l; l = l->next) {
        if (!l->nvec)
            continue;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", l->name);
        cJSON *v = cJSON_CreateArray();
        for (size_t i = 0; i < l->nvec; i++) {
            /* Decimal strings: seqnos and writer ids are 64-bit, JSON numbers are doubles. */
            char w[24], q[24];
            snprintf(w, sizeof w, "%" PRIu64, l->vec[i].writer);
            snprintf(q, sizeof q, "%" PRIu64, l->vec[i].seqno);
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateString(w));
            cJSON_AddItemToArray(e, cJSON_CreateString(q));
            cJSON_AddItemToArray(v, e);
        }
        cJSON_AddItemToObject(j, "vector", v);
        cJSON_AddItemToArray(a, j);
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char path[4200];
    snprintf(path, sizeof path, "%s/locks.json", dir);
    int rc = write_atomic(path, s, strlen(s));
    cJSON_free(s);
    return rc ? ERR_IO : 0;
}

int co_locks_load(const char *dir, co_lock **list) {
    char path[4200];
    snprintf(path, sizeof path, "%s/locks.json", dir);
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = plat_read_file(path, &b, &n);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return ERR_IO;
    cJSON *a = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return ERR_CORRUPT;
    }
    const cJSON *j;
    cJSON_ArrayForEach(j, a) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vector");
        if (!cJSON_IsString(nm) || !cJSON_IsArray(v))
            continue;
        co_lock *l = co_lock_get(list, nm->valuestring);
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            const cJSON *w = cJSON_GetArrayItem(e, 0), *q = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsString(w) || !cJSON_IsString(q))
                continue;
            co_vec one = {strtoull(w->valuestring, NULL, 10), strtoull(q->valuestring, NULL, 10)};
            co_grant g;
            /* Merging through a release by nobody keeps the max-per-writer rule in one place. */
            (void)co_lock_release(l, UINT64_MAX, &one, 1, 0, &g);
        }
    }
    cJSON_Delete(a);
    return 0;
}
