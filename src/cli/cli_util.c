/* Helpers shared by the subcommands that drive other psl processes (bench ycsb, bench dnn,
 * the cluster commands). */
#include "cli/cli.h"

#include "base/base.h"
#include "crypto/crypto.h"
#include "platform/platform.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_run_wait(char *const argv[], bool quiet) {
    fflush(stdout); /* the child must not write our buffered output again */
    fflush(stderr);
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        if (quiet) {
            FILE *f = freopen("/dev/null", "w", stdout);
            (void)f;
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

double cli_proc_cpu_s(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, pid ? "/proc/%d/stat" : "/proc/self/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long ut, st;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime (fields 3 to 15 of proc(5)) */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int cli_cluster_procs(const char *dir, cli_proc *ps, int max) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    uint8_t *b;
    size_t len;
    if (plat_read_file(path, &b, &len) != 0)
        return -1;
    cJSON *j = cJSON_ParseWithLength((const char *)b, len);
    free(b);
    if (!j)
        return -1;
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "processes")) {
        if (n >= max)
            break;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "role");
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(p, "pid");
        if (!cJSON_IsString(r) || !cJSON_IsNumber(pid))
            continue;
        snprintf(ps[n].role, sizeof ps[n].role, "%s", r->valuestring);
        ps[n].pid = (int)pid->valuedouble;
        n++;
    }
    cJSON_Delete(j);
    return n;
}

char *cli_cluster_gateway(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    uint8_t *b;
    size_t n;
    if (plat_read_file(path, &b, &n) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    const cJSON *g = j ? cJSON_GetObjectItemCaseSensitive(j, "gateway") : NULL;
    char *u = NULL;
    if (cJSON_IsString(g)) {
        u = malloc(strlen(g->valuestring) + 1);
        if (u)
            strcpy(u, g->valuestring);
    }
    cJSON_Delete(j);
    return u;
}

int cli_gnuplot(const char *script, const char *data, const char *png, const char *who) {
    char *av[] = {"/usr/bin/gnuplot", (char *)script, NULL};
    int rc = access(av[0], X_OK) == 0 ? cli_run_wait(av, false) : 127;
    unlink(data);
    unlink(script);
    if (rc != 0) {
        cli_err("%s: gnuplot failed (Debian package gnuplot-nox)", who);
        return EXIT_FAILED;
    }
    fprintf(stderr, "%s: wrote %s\n", who, png);
    return 0;
}

size_t cli_buf_write(char *data, size_t sz, size_t nm, void *ud) {
    cli_buf *b = ud;
    size_t n = sz * nm;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1)
            c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

int cli_identity_load(const char *path, uint8_t *sk, uint8_t *pk) {
    uint8_t *d = NULL, pub[CR_SIGN_PK];
    size_t n = 0;
    if (cr_init() != 0) {
        cli_err("identity: the crypto library failed to start");
        return EXIT_IO;
    }
    int rc = plat_read_file(path, &d, &n);
    if (rc || n != CR_SIGN_SEED) {
        cli_err("identity %s: %s", path,
                rc ? "cannot read it"
                   : "expected a 32-byte seed file (psl identity FILE makes one)");
        if (d)
            cr_memzero(d, n);
        free(d);
        return EXIT_USAGE;
    }
    cr_sign_seed_keypair(pk ? pk : pub, sk, d);
    cr_memzero(d, n);
    free(d);
    return 0;
}

unsigned cli_free_port(void) {
    static unsigned given[32]; /* this process's last picks: not yet bound by their daemons */
    static unsigned ngiven;
    uint32_t r = 0;
    (void)plat_random(&r, sizeof r);
    for (unsigned i = 0; i < 512; i++) {
        unsigned port = 10000u + (r + i * 7919u) % 10000u;
        bool seen = false;
        for (unsigned k = 0; k < 32 && k < ngiven; k++)
            seen |= given[k] == port;
        if (seen)
            continue;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return 0;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = bind(s, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(s);
        if (ok) {
            given[ngiven++ % 32] = port;
            return port;
        }
    }
    return 0;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_opt_int(const char *cmd, const char *opt, const char *v, int min, int max, int *out) {
    uint64_t n;
    if (min < 0 || cli_parse_u64(v, (uint64_t)min, (uint64_t)max, &n) != 0) {
        cli_err("%s: bad value for %s: '%s' (a whole number from %d to %d)", cmd, opt, v, min, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int cli_parse_size(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'K':
    case 'k':
        shift = 10;
        end++;
        break;
    case 'M':
    case 'm':
        shift = 20;
        end++;
        break;
    case 'G':
    case 'g':
        shift = 30;
        end++;
        break;
    case 'T':
    case 't':
        shift = 40;
        end++;
        break;
    default: return -1;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}
