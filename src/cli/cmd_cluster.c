/* Cluster subcommands: the coordinator daemon, `psl up/down/status` for a local cluster on
 * loopback, and the client commands that talk to the HTTP gateway (deploy, invoke, list, remove,
 * logs, kv). The gateway is found with --gateway URL, else $PSL_GATEWAY, else DIR/cluster.json
 * (DIR = --dir, else $PSL_DIR, else ./psl-data), which `psl up` writes. */
#include "cli/cli.h"
#include "cli/cli_secure.h"

#include "base/base.h"
#include "base/err.h"
#include "coord/coord.h"
#include "crypto/crypto.h"
#include "tee/tee.h"
#include "platform/platform.h"

#include <cjson/cJSON.h>
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include "cli/http_lazy.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---- psl coordinator --------------------------------------------------------------------- */

void cmd_coordinator_help(FILE *out) {
    fprintf(out,
            "usage: psl coordinator --listen ENDPOINT --http PORT --dir DIR --policy FILE\n"
            "                       [--home DIR] [--http-addr IP] [--dead-ms MS] [--lease-ms MS]\n"
            "                       [--token-file FILE]\n"
            "  Run the coordinator: function registry (kept in DIR/functions), worker membership\n"
            "  and scheduling, lock server, key manager, and the HTTP gateway on IP:PORT\n"
            "  (default 127.0.0.1). Workers connect to ENDPOINT (e.g. tcp://127.0.0.1:7700) over\n"
            "  the attested channel and must pass the policy FILE. --dead-ms: silence after which\n"
            "  a worker is dead (2000); --lease-ms: lock lease (10000). See docs/deploy.md and\n"
            "  docs/gateway.md. --home: enclave home (platform key, sealed key manager state;\n"
            "  default $PSL_HOME, else DIR). --token-file: every /system/* request must carry\n"
            "  'Authorization: Bearer TOKEN' with the token in FILE (psl up creates one).\n");
}

static bool parse_u32(const char *s, uint32_t *out) {
    uint64_t v;
    if (cli_parse_u64(s, 0, UINT32_MAX, &v) != 0)
        return false;
    *out = (uint32_t)v;
    return true;
}

int cmd_coordinator(int argc, char **argv) {
    co_opts o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t u;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cmd_coordinator_help(stdout);
            return EXIT_OK;
        }
        if (!v) {
            cli_err("coordinator: %s needs a value (see psl help coordinator)", a);
            return EXIT_USAGE;
        }
        if (strcmp(a, "--listen") == 0)
            o.listen = v;
        else if (strcmp(a, "--http") == 0 && parse_u32(v, &u) && u < 65536)
            o.http_port = u;
        else if (strcmp(a, "--http-addr") == 0)
            o.http_addr = v;
        else if (strcmp(a, "--dir") == 0)
            o.dir = v;
        else if (strcmp(a, "--home") == 0)
            o.home = v;
        else if (strcmp(a, "--token-file") == 0)
            o.token_file = v;
        else if (strcmp(a, "--policy") == 0)
            o.policy = v;
        else if (strcmp(a, "--dead-ms") == 0 && parse_u32(v, &u))
            o.dead_ms = u;
        else if (strcmp(a, "--lease-ms") == 0 && parse_u32(v, &u))
            o.lease_ms = u;
        else {
            cli_err("coordinator: bad option %s %s (see psl help coordinator)", a, v);
            return EXIT_USAGE;
        }
        i++;
    }
    if (!o.listen || !o.dir || !o.policy) {
        cmd_coordinator_help(stderr);
        return EXIT_USAGE;
    }
    /* A trusted role: no core dumps, not attachable (as the key manager and the workers). */
    if (tee_harden_process() != 0)
        cli_err("coordinator: warning: process hardening (prctl) failed");
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    int rc = co_run(&o, &g_stop);
    if (rc == 0)
        return EXIT_OK;
    return rc == ERR_USAGE ? EXIT_USAGE : EXIT_IO;
}

/* ---- the HTTP client ------------------------------------------------------------------------ */

static char *g_token; /* owner token sent with every request (NULL: none) */

/* One request. @return 0 and *status, or -1 when the gateway cannot be reached (printed). */
static int http(const char *method, const char *url, const void *body, size_t blen, long *status,
                cli_buf *out, bool quiet) {
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    *out = (cli_buf){.p = xmalloc(1), .cap = 1};
    out->p[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
    hd = curl_slist_append(hd, "Content-Type: application/octet-stream");
    if (g_token) {
        size_t n = strlen(g_token) + 32;
        char *auth = xmalloc(n);
        snprintf(auth, n, "Authorization: Bearer %s", g_token);
        hd = curl_slist_append(hd, auth);
        free(auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, blen ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    CURLcode cc = curl_easy_perform(h);
    int rc = 0;
    if (cc != CURLE_OK) {
        if (!quiet)
            cli_err("cannot reach the gateway at %s: %s", url, curl_easy_strerror(cc));
        rc = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return rc;
}

/* Print the gateway's JSON error and map it to psl's exit statuses (docs/cli.md). */
static int http_fail(long status, const cli_buf *o) {
    cJSON *j = cJSON_ParseWithLength((const char *)o->p, o->n);
    const cJSON *code = j ? cJSON_GetObjectItemCaseSensitive(j, "code") : NULL;
    const cJSON *msg = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    const char *cw = cJSON_IsString(code) ? code->valuestring : "";
    if (cJSON_IsString(msg))
        cli_err("%s (HTTP %ld %s)", msg->valuestring, status, cw);
    else
        cli_err("HTTP %ld: %.*s", status, (int)o->n, (const char *)o->p);
    int ex = EXIT_FAILED;
    if (status == 404)
        ex = EXIT_NOTFOUND;
    else if (status == 400)
        ex = EXIT_MALFORMED;
    else if (status == 413)
        ex = EXIT_LIMIT;
    else if (status == 401)
        ex = EXIT_USAGE;
    else if (strcmp(cw, "TRAP") == 0)
        ex = EXIT_TRAP;
    else if (strcmp(cw, "TIMEOUT") == 0)
        ex = EXIT_TIMEOUT;
    else if (strcmp(cw, "LIMIT") == 0)
        ex = EXIT_LIMIT;
    else if (status >= 502)
        ex = EXIT_IO;
    cJSON_Delete(j);
    return ex;
}

/* ---- cluster file and options --------------------------------------------------------------- */

typedef struct copts {
    const char *dir;
    const char *gateway;
    const char *token;
    const char *data;
    bool data_set;
    const char *pos[4];
    int npos;
    uint32_t workers, replicas, threads, timeout_ms, max_memory_mb, max_request, max_response;
    const char *durability;
    const char *worker_bin;
    const char *cluster; /* psl up --cluster FILE */
    const char *host;    /* psl up --host NAME */
    bool json;
    bool secure;             /* psl invoke --secure: over a worker's attested channel */
    const char *measurement; /* --measurement HEX demanded of the worker */
    const char *policy;      /* --policy FILE the worker must pass */
    const char *client_keys; /* psl up --client-keys FILE: the clients workers serve */
    const char *tier;        /* psl up --tier interp|jit: the workers' tier */
    const char *identity;    /* psl invoke --secure --identity SEED */
} copts;

static const char *default_dir(const copts *o) {
    if (o->dir)
        return o->dir;
    const char *e = getenv("PSL_DIR");
    return e && *e ? e : "./psl-data";
}

static cJSON *read_cluster(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    uint8_t *b;
    size_t n;
    if (plat_read_file(path, &b, &n) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    return j;
}

/* The owner token: --token, else $PSL_TOKEN, else DIR/admin.token when it exists. */
static void load_token(const copts *o) {
    free(g_token);
    g_token = NULL;
    const char *e = getenv("PSL_TOKEN");
    if (o->token || (e && *e)) {
        g_token = xstrdup(o->token ? o->token : e);
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/admin.token", default_dir(o));
    uint8_t *b;
    size_t n;
    if (plat_read_file(path, &b, &n) != 0)
        return;
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
        n--;
    g_token = xmalloc(n + 1);
    memcpy(g_token, b, n);
    g_token[n] = 0;
    free(b);
}

/* The gateway's base URL, malloc'd, or NULL (printed). Loads the owner token too. */
static char *gateway_url(const copts *o) {
    load_token(o);
    if (o->gateway)
        return xstrdup(o->gateway);
    const char *e = getenv("PSL_GATEWAY");
    if (e && *e)
        return xstrdup(e);
    char *u = cli_cluster_gateway(default_dir(o));
    if (!u)
        cli_err("no cluster found: run `psl up` first, or give --gateway URL (or PSL_GATEWAY)");
    return u;
}

static int parse_common(int argc, char **argv, copts *o, int maxpos) {
    memset(o, 0, sizeof *o);
    o->workers = 2;
    o->replicas = 3;
    o->threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->npos >= maxpos) {
                cli_err("%s: unexpected argument '%s'", argv[0], a);
                return EXIT_USAGE;
            }
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--secure") == 0) {
            o->secure = true;
            continue;
        }
        if (!v) {
            cli_err("%s: %s needs a value", argv[0], a);
            return EXIT_USAGE;
        }
        bool ok = true;
        if (strcmp(a, "--dir") == 0)
            o->dir = v;
        else if (strcmp(a, "--gateway") == 0)
            o->gateway = v;
        else if (strcmp(a, "--token") == 0)
            o->token = v;
        else if (strcmp(a, "--data") == 0 || strcmp(a, "-d") == 0)
            o->data = v, o->data_set = true;
        else if (strcmp(a, "--workers") == 0)
            ok = parse_u32(v, &o->workers) && o->workers >= 1 && o->workers <= 64;
        else if (strcmp(a, "--replicas") == 0)
            ok = parse_u32(v, &o->replicas) && o->replicas >= 1 && o->replicas % 2 == 1 &&
                 o->replicas <= 15;
        else if (strcmp(a, "--threads") == 0)
            ok = parse_u32(v, &o->threads) && o->threads >= 1;
        else if (strcmp(a, "--timeout-ms") == 0)
            ok = parse_u32(v, &o->timeout_ms);
        else if (strcmp(a, "--max-memory-mb") == 0)
            ok = parse_u32(v, &o->max_memory_mb);
        else if (strcmp(a, "--max-request") == 0)
            ok = parse_u32(v, &o->max_request);
        else if (strcmp(a, "--max-response") == 0)
            ok = parse_u32(v, &o->max_response);
        else if (strcmp(a, "--durability") == 0)
            o->durability = v;
        else if (strcmp(a, "--worker-bin") == 0)
            o->worker_bin = v;
        else if (strcmp(a, "--cluster") == 0)
            o->cluster = v;
        else if (strcmp(a, "--client-keys") == 0)
            o->client_keys = v;
        else if (strcmp(a, "--tier") == 0)
            o->tier = v, ok = !strcmp(v, "interp") || !strcmp(v, "jit");
        else if (strcmp(a, "--identity") == 0)
            o->identity = v;
        else if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--measurement") == 0)
            o->measurement = v;
        else if (strcmp(a, "--policy") == 0)
            o->policy = v;
        else
            ok = false;
        if (!ok) {
            cli_err("%s: bad option %s %s (see psl help %s)", argv[0], a, v, argv[0]);
            return EXIT_USAGE;
        }
        i++;
    }
    return 0;
}

/* ---- psl up / down / status ----------------------------------------------------------------- */

void cmd_up_help(FILE *out) {
    fprintf(out,
            "usage: psl up [--workers N] [--replicas R] [--dir DIR] [--threads T]\n"
            "  Start a local cluster on loopback in the background: R storage replicas (odd,\n"
            "  default 3: f = (R-1)/2 failures tolerated; each one the others' anti-entropy\n"
            "  peer), the forwarder, the coordinator with\n"
            "  its HTTP gateway, and N workers (default 2). Writes DIR/cluster.json (pids and\n"
            "  endpoints; DIR defaults to ./psl-data), waits until every worker has joined, and\n"
            "  prints the gateway URL. Logs go to DIR/logs/. Stop with `psl down`.\n"
            "  --worker-bin PATH runs PATH instead of `psl worker` (same arguments).\n"
            "  --client-keys FILE: the workers' client channel serves only the identities\n"
            "  FILE lists ('client_key: HEX' lines, as psl identity prints them); default: any.\n"
            "  --tier interp|jit: how the workers run functions (jit: each deployed module is\n"
            "  compiled with LLVM at deploy time); default $PSL_TIER, else interp.\n"
            "usage: psl up --cluster FILE [--host NAME] [--dir DIR]\n"
            "  Start the roles that the cluster file assigns to host NAME (default: this\n"
            "  machine's hostname), with their data under DIR. See docs/deploy.md.\n");
}

static char g_self[4096];

static const char *self_exe(void) {
    if (!g_self[0]) {
        ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
        if (n <= 0)
            snprintf(g_self, sizeof g_self, "psl");
        else
            g_self[n] = 0;
    }
    return g_self;
}

/* Does this psl build have subcommand @p name? (`psl help NAME` exits 0.) */
static bool have_cmd(const char *name) {
    pid_t p = fork();
    if (p < 0)
        return false;
    if (p == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(self_exe(), "psl", "help", name, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Does `psl help CMD` mention @p opt? (Options of daemons that are still growing.) */
static bool cmd_has_opt(const char *cmd, const char *opt) {
    char line[4200];
    snprintf(line, sizeof line, "'%s' help %s 2>/dev/null", self_exe(), cmd);
    FILE *p = popen(line, "r");
    if (!p)
        return false;
    bool found = false;
    while (fgets(line, sizeof line, p))
        found |= strstr(line, opt) != NULL;
    pclose(p);
    return found;
}

/* Start argv in the background: own session, stdin /dev/null, output appended to @p log. */
static pid_t spawn(char *const argv[], const char *log) {
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        setsid();
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in >= 0)
            dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        execv(argv[0], argv);
        fprintf(stderr, "psl up: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return p;
}

static bool pid_alive(pid_t p) {
    if (p <= 0)
        return false;
    int st;
    if (waitpid(p, &st, WNOHANG) == p)
        return false; /* our own child that exited */
    if (kill(p, 0) != 0)
        return false;
    /* A zombie still answers kill(0): look at its state. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

typedef struct proc {
    char role[32];
    pid_t pid;
    char log[4400];
} proc;

static void tail_log(const char *path) {
    uint8_t *b;
    size_t n;
    if (plat_read_file(path, &b, &n) != 0)
        return;
    size_t start = n > 2000 ? n - 2000 : 0;
    fprintf(stderr, "--- last lines of %s ---\n%.*s", path, (int)(n - start),
            (const char *)b + start);
    free(b);
}

/* Is @p pid still the process psl up started as @p role? cluster.json may be older than the
 * last reboot, and a pid may have been reused: only signal a process whose command line names
 * the role's subcommand (workers name the coordinator they joined). */
static bool still_ours(pid_t pid, const char *role) {
    if (!pid_alive(pid))
        return false;
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    buf[n] = 0;
    const char *word = strncmp(role, "storage", 7) == 0     ? "storage"
                       : strncmp(role, "forwarder", 9) == 0 ? "forwarder"
                                                            : "coordinator";
    return strstr(buf, word) != NULL;
}

/* The shutdown stage of a role: workers first (their last writes still go to storage, and they
 * release locks at the coordinator), then the coordinator and the forwarder, then the storage
 * replicas, which must outlive every writer. */
static int stop_stage(const char *role) {
    if (!strncmp(role, "worker", 6))
        return 0;
    if (!strcmp(role, "coordinator") || !strcmp(role, "forwarder"))
        return 1;
    return 2;
}

/* Stop @p ps stage by stage: SIGTERM to the stage's processes, wait up to @p wait_ms for them to
 * exit, SIGKILL what is left (said on stderr), then the next stage. */
static void stop_procs(proc *ps, int n, int wait_ms) {
    for (int i = 0; i < n; i++)
        if (!still_ours(ps[i].pid, ps[i].role))
            ps[i].pid = 0; /* gone, or the pid now belongs to someone else */
    for (int stage = 0; stage < 3; stage++) {
        bool any = false;
        for (int i = n - 1; i >= 0; i--)
            if (ps[i].pid && stop_stage(ps[i].role) == stage) {
                kill(ps[i].pid, SIGTERM);
                any = true;
            }
        if (!any)
            continue;
        uint64_t deadline = plat_now_ns() + (uint64_t)wait_ms * 1000000u;
        for (;;) {
            any = false;
            for (int i = 0; i < n; i++)
                any |= stop_stage(ps[i].role) == stage && pid_alive(ps[i].pid);
            if (!any || plat_now_ns() > deadline)
                break;
            usleep(20000);
        }
        for (int i = 0; i < n; i++) {
            if (stop_stage(ps[i].role) == stage && pid_alive(ps[i].pid)) {
                cli_err("%s (pid %d) did not stop in time: killed", ps[i].role, (int)ps[i].pid);
                kill(ps[i].pid, SIGKILL);
            }
        }
    }
}

static int write_file(const char *path, const char *text) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fputs(text, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

/* GET /healthz: the number of live workers, or -1 when the gateway does not answer. */
static int live_workers(const char *gw) {
    char url[600];
    snprintf(url, sizeof url, "%s/healthz", gw);
    long st = 0;
    cli_buf o;
    if (http("GET", url, NULL, 0, &st, &o, true) != 0) {
        free(o.p);
        return -1;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)o.p, o.n);
    const cJSON *w = j ? cJSON_GetObjectItemCaseSensitive(j, "workers") : NULL;
    int n = cJSON_IsNumber(w) ? (int)w->valuedouble : -1;
    cJSON_Delete(j);
    free(o.p);
    return n;
}

#define MAX_PROCS 96

/* ---- psl up --cluster FILE: the roles of one host ----------------------------------------------
 */

static const char *jstr(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum_u32(const cJSON *j, const char *k, uint32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > UINT32_MAX)
        return false;
    *out = (uint32_t)v->valuedouble;
    return true;
}

/* Is role object @p r assigned to @p host? */
static bool on_host(const cJSON *r, const char *host) {
    const char *h = jstr(r, "host");
    return h && strcmp(h, host) == 0;
}

static bool running_in(const char *dir) {
    cJSON *old = read_cluster(dir);
    bool running = false;
    const cJSON *p;
    const cJSON *procs = old ? cJSON_GetObjectItemCaseSensitive(old, "processes") : NULL;
    cJSON_ArrayForEach(p, procs) {
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(p, "pid");
        if (cJSON_IsNumber(pid) && pid_alive((pid_t)pid->valuedouble))
            running = true;
    }
    cJSON_Delete(old);
    return running;
}

/* The anti-entropy peers of replica @p self: the other endpoints of @p eps, comma-separated, into
 * @p out ("" when it is the only one). */
static void peer_list(const char *const *eps, size_t n, size_t self, char *out, size_t cap) {
    out[0] = 0;
    for (size_t j = 0; j < n; j++) {
        size_t l = strlen(out);
        if (j != self)
            snprintf(out + l, cap - l, "%s%s", l ? "," : "", eps[j]);
    }
}

static int up_from_file(const copts *o, const char *dir) {
    char hostbuf[256];
    const char *host = o->host;
    if (!host) {
        if (gethostname(hostbuf, sizeof hostbuf) != 0)
            return EXIT_IO;
        hostbuf[sizeof hostbuf - 1] = 0;
        host = hostbuf;
    }
    uint8_t *text;
    size_t tlen;
    if (plat_read_file(o->cluster, &text, &tlen) != 0) {
        cli_err("up: cannot read the cluster file %s", o->cluster);
        return EXIT_IO;
    }
    cJSON *cf = cJSON_ParseWithLength((const char *)text, tlen);
    free(text);
    const char *policy = cf ? jstr(cf, "policy") : NULL;
    const cJSON *co = cf ? cJSON_GetObjectItemCaseSensitive(cf, "coordinator") : NULL;
    const cJSON *fw = cf ? cJSON_GetObjectItemCaseSensitive(cf, "forwarder") : NULL;
    const cJSON *st = cf ? cJSON_GetObjectItemCaseSensitive(cf, "storage") : NULL;
    const cJSON *wk = cf ? cJSON_GetObjectItemCaseSensitive(cf, "workers") : NULL;
    const char *co_ep = co ? jstr(co, "endpoint") : NULL;
    if (!cf || !policy || !co_ep || !jstr(co, "host") || !cJSON_IsArray(wk)) {
        cli_err("up: %s: a cluster file needs \"policy\", \"coordinator\" {host, endpoint, "
                "http} and \"workers\" [{host, id}] (docs/deploy.md)",
                o->cluster);
        cJSON_Delete(cf);
        return EXIT_USAGE;
    }
    if (running_in(dir)) {
        cli_err("up: processes from %s/cluster.json are running: `psl down` first", dir);
        cJSON_Delete(cf);
        return EXIT_USAGE;
    }
    char logs[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_err("up: cannot create %s: %s", dir, strerror(errno));
        cJSON_Delete(cf);
        return EXIT_IO;
    }
    snprintf(logs, sizeof logs, "%s/logs", dir);
    (void)mkdir(logs, 0700);
    tee_enclave *tee = NULL;
    tee_opts to = {.home = dir, .quiet = true};
    if (tee_open(&to, &tee) != 0) {
        cli_err("up: cannot open the enclave home %s", dir);
        cJSON_Delete(cf);
        return EXIT_IO;
    }
    tee_close(tee);
    setenv("PSL_HOME", dir, 1);

    /* Endpoints everyone connects to: storage list, forwarder. */
    char storage_eps[2048] = "";
    const cJSON *r;
    cJSON_ArrayForEach(r, st) {
        const char *ep = jstr(r, "endpoint");
        size_t l = strlen(storage_eps);
        if (ep)
            snprintf(storage_eps + l, sizeof storage_eps - l, "%s%s", l ? "," : "", ep);
    }
    const char *xsub = fw ? jstr(fw, "xsub") : NULL, *xpub = fw ? jstr(fw, "xpub") : NULL;
    const char *exe = self_exe();
    proc ps[MAX_PROCS];
    int np = 0;
    cJSON *cj = cJSON_CreateObject();
    cJSON *jp = cJSON_CreateArray();
    cJSON_AddStringToObject(cj, "cluster_file", o->cluster);
    cJSON_AddStringToObject(cj, "host", host);
    char gw[300] = "";
    uint32_t hport = 0;
    if (jnum_u32(co, "http", &hport)) {
        const char *ha = jstr(co, "http_addr");
        snprintf(gw, sizeof gw, "http://%s:%u", ha ? ha : "127.0.0.1", hport);
        const char *g = jstr(cf, "gateway");
        cJSON_AddStringToObject(cj, "gateway", g ? g : gw);
    }

#define START(ROLE, ARGV)                                                                          \
    do {                                                                                           \
        if (np == MAX_PROCS)                                                                       \
            break;                                                                                 \
        snprintf(ps[np].role, sizeof ps[np].role, "%s", ROLE);                                     \
        snprintf(ps[np].log, sizeof ps[np].log, "%s/%s.log", logs, ROLE);                          \
        ps[np].pid = spawn(ARGV, ps[np].log);                                                      \
        cJSON *e_ = cJSON_CreateObject();                                                          \
        cJSON_AddStringToObject(e_, "role", ROLE);                                                 \
        cJSON_AddNumberToObject(e_, "pid", ps[np].pid);                                            \
        cJSON_AddStringToObject(e_, "log", ps[np].log);                                            \
        cJSON_AddItemToArray(jp, e_);                                                              \
        np++;                                                                                      \
    } while (0)

    int k = 0;
    cJSON_ArrayForEach(r, st) {
        const char *ep = jstr(r, "endpoint"), *lis = jstr(r, "listen");
        if (ep && on_host(r, host)) {
            /* Its peers for anti-entropy: every other replica's endpoint. */
            const char *all[16];
            size_t nall = 0, self = 0;
            const cJSON *q;
            cJSON_ArrayForEach(q, st) {
                const char *qe = jstr(q, "endpoint");
                if (q == r)
                    self = nall;
                if (qe && nall < 16)
                    all[nall++] = qe;
            }
            char data[4300], role[32], peers[16 * 300];
            peer_list(all, nall, self, peers, sizeof peers);
            snprintf(data, sizeof data, "%s/storage-%d", dir, k);
            snprintf(role, sizeof role, "storage-%d", k);
            char *av[] = {(char *)exe, "storage", "--listen", (char *)(lis ? lis : ep),
                          "--data",    data,      "--peers",  peers,
                          NULL};
            if (!peers[0])
                av[6] = NULL; /* the only replica: no --peers */
            START(role, av);
        }
        k++;
    }
    if (fw && on_host(fw, host) && xsub && xpub) {
        const char *ls = jstr(fw, "listen_xsub"), *lp = jstr(fw, "listen_xpub");
        char *av[] = {(char *)exe, "forwarder",
                      "--xsub",    (char *)(ls ? ls : xsub),
                      "--xpub",    (char *)(lp ? lp : xpub),
                      NULL};
        START("forwarder", av);
    }
    if (on_host(co, host)) {
        char hp[16], cdir[4300];
        const char *lis = jstr(co, "listen"), *ha = jstr(co, "http_addr"),
                   *tf = jstr(co, "token_file");
        snprintf(hp, sizeof hp, "%u", hport);
        snprintf(cdir, sizeof cdir, "%s/coordinator", dir);
        char *av[16];
        int n = 0;
        av[n++] = (char *)exe, av[n++] = "coordinator", av[n++] = "--listen";
        av[n++] = (char *)(lis ? lis : co_ep);
        av[n++] = "--http", av[n++] = hp, av[n++] = "--dir", av[n++] = cdir;
        av[n++] = "--policy", av[n++] = (char *)policy;
        if (ha)
            av[n++] = "--http-addr", av[n++] = (char *)ha;
        if (tf)
            av[n++] = "--token-file", av[n++] = (char *)tf;
        av[n] = NULL;
        START("coordinator", av);
    }
    bool w_storage = o->worker_bin || cmd_has_opt("worker", "--storage");
    bool w_fwd = o->worker_bin || cmd_has_opt("worker", "--forwarder-pub");
    cJSON_ArrayForEach(r, wk) {
        uint32_t id = 0, threads = 2;
        if (!on_host(r, host) || !jnum_u32(r, "id", &id) || id == 0)
            continue;
        (void)jnum_u32(r, "threads", &threads);
        char ids[16], wdir[4300], th[16], role[32];
        snprintf(ids, sizeof ids, "%u", id);
        snprintf(wdir, sizeof wdir, "%s/worker-%u", dir, id);
        snprintf(th, sizeof th, "%u", threads ? threads : 2);
        snprintf(role, sizeof role, "worker-%u", id);
        char *av[24];
        int n = 0;
        if (o->worker_bin) {
            av[n++] = (char *)o->worker_bin;
        } else {
            av[n++] = (char *)exe;
            av[n++] = "worker";
        }
        av[n++] = "--coordinator", av[n++] = (char *)co_ep, av[n++] = "--id", av[n++] = ids;
        av[n++] = "--dir", av[n++] = wdir, av[n++] = "--policy", av[n++] = (char *)policy;
        if (storage_eps[0] && w_storage)
            av[n++] = "--storage", av[n++] = storage_eps;
        if (xsub && xpub && w_fwd)
            av[n++] = "--forwarder-pub", av[n++] = (char *)xsub, av[n++] = "--forwarder-sub",
            av[n++] = (char *)xpub;
        av[n++] = "--threads", av[n++] = th;
        /* Where clients reach it over the attested channel (default: a loopback port). */
        const char *cl = jstr(r, "client_listen");
        if (cl && cmd_has_opt("worker", "--client-listen"))
            av[n++] = "--client-listen", av[n++] = (char *)cl;
        const char *cp = jstr(cf, "client_keys"); /* the clients they serve */
        if (cp)
            av[n++] = "--client-keys", av[n++] = (char *)cp;
        const char *tr = jstr(cf, "tier"); /* interp or jit (the worker checks it) */
        if (tr)
            av[n++] = "--tier", av[n++] = (char *)tr;
        av[n] = NULL;
        START(role, av);
    }
#undef START
    cJSON_AddItemToObject(cj, "processes", jp);
    char *out = cJSON_Print(cj);
    cJSON_Delete(cj);
    char path[4300];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    int rc = write_file(path, out);
    free(out);
    bool local_coord = on_host(co, host);
    cJSON_Delete(cf);
    if (rc != 0) {
        cli_err("up: cannot write %s", path);
        stop_procs(ps, np, 5000);
        return EXIT_IO;
    }
    if (np == 0) {
        cli_err("up: the cluster file assigns no role to host '%s'", host);
        unlink(path);
        return EXIT_USAGE;
    }
    /* Local processes must survive their start; a local gateway must answer. */
    uint64_t deadline = plat_now_ns() + 30ull * 1000000000u;
    uint64_t settle = plat_now_ns() + 1000000000u;
    for (;;) {
        for (int i = 0; i < np; i++) {
            if (!pid_alive(ps[i].pid)) {
                cli_err("up: %s (pid %d) exited during start-up", ps[i].role, (int)ps[i].pid);
                tail_log(ps[i].log);
                stop_procs(ps, np, 5000);
                unlink(path);
                return EXIT_FAILED;
            }
        }
        bool ready = plat_now_ns() > settle && (!local_coord || live_workers(gw) >= 0);
        if (ready)
            break;
        if (plat_now_ns() > deadline) {
            cli_err("up: the gateway %s did not answer within 30 s (logs in %s)", gw, logs);
            stop_procs(ps, np, 5000);
            unlink(path);
            return EXIT_FAILED;
        }
        usleep(50000);
    }
    if (local_coord)
        printf("%s\n", gw);
    fprintf(stderr, "psl up: host %s: %d process(es) started from %s (data in %s)\n", host, np,
            o->cluster, dir);
    return EXIT_OK;
}

int cmd_up(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 0);
    if (rc)
        return rc;
    const char *dir = default_dir(&o);
    if (o.cluster)
        return up_from_file(&o, dir);
    /* The client policy, checked now and passed to the workers as an absolute path. */
    char client_keys[PATH_MAX] = "";
    if (o.client_keys) {
        tee_policy cp;
        char why[300];
        if (!realpath(o.client_keys, client_keys)) {
            cli_err("up: --client-keys %s: %s", o.client_keys, strerror(errno));
            return EXIT_USAGE;
        }
        if (tee_client_list_load(client_keys, &cp, why, sizeof why) != 0) {
            cli_err("up: --client-keys %s: %s", o.client_keys, why);
            return EXIT_USAGE;
        }
        tee_policy_fini(&cp);
    }
    cJSON *old = read_cluster(dir);
    if (old) {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(old, "processes");
        const cJSON *p;
        bool running = false;
        cJSON_ArrayForEach(p, ps) {
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(p, "pid");
            if (cJSON_IsNumber(pid) && pid_alive((pid_t)pid->valuedouble))
                running = true;
        }
        cJSON_Delete(old);
        if (running) {
            cli_err("up: a cluster from %s/cluster.json is running: `psl down` first", dir);
            return EXIT_USAGE;
        }
    }
    char path[4300], logs[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_err("up: cannot create %s: %s", dir, strerror(errno));
        return EXIT_IO;
    }
    snprintf(logs, sizeof logs, "%s/logs", dir);
    (void)mkdir(logs, 0700);
    /* Every trusted process of the cluster shares DIR as its enclave home, hence one platform
     * key, created here once so that concurrent starts never race to create it. */
    tee_enclave *tee = NULL;
    tee_opts to = {.home = dir, .quiet = true};
    if (tee_open(&to, &tee) != 0) {
        cli_err("up: cannot open the enclave home %s", dir);
        return EXIT_IO;
    }
    uint8_t pk[TEE_KEY_BYTES];
    tee_platform_key(tee, pk);
    tee_close(tee);
    setenv("PSL_HOME", dir, 1);
    /* Development policy: sim enclaves of any measurement, on this machine's platform key. A
     * deployment across machines pins measurements too (docs/deploy.md). */
    char policy[4300];
    snprintf(policy, sizeof policy, "%s/policy.txt", dir);
    if (access(policy, F_OK) != 0) {
        char hex[2 * TEE_KEY_BYTES + 1], text[512];
        cr_hex(hex, pk, sizeof pk);
        snprintf(text, sizeof text,
                 "# psl up: development policy (sim backend, any measurement, this platform)\n"
                 "allow_sim: yes\nmeasurement: any\nplatform_key: %s\nmax_age: 300\n",
                 hex);
        if (write_file(policy, text) != 0) {
            cli_err("up: cannot write %s", policy);
            return EXIT_IO;
        }
    }
    /* The owner's token for the gateway's /system/ endpoints (the CLI reads it from here). */
    char token_file[4300];
    snprintf(token_file, sizeof token_file, "%s/admin.token", dir);
    if (access(token_file, F_OK) != 0) {
        uint8_t raw[32];
        char hex[2 * sizeof raw + 2];
        cr_random(raw, sizeof raw);
        cr_hex(hex, raw, sizeof raw);
        cr_memzero(raw, sizeof raw);
        int fd = open(token_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        size_t hl = strlen(hex);
        hex[hl] = '\n';
        bool ok = fd >= 0 && write(fd, hex, hl + 1) == (ssize_t)(hl + 1) && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        cr_memzero(hex, sizeof hex);
        if (!ok) {
            cli_err("up: cannot write %s", token_file);
            return EXIT_IO;
        }
    }
    const char *exe = self_exe();
    bool have_storage = have_cmd("storage"), have_fwd = have_cmd("forwarder");
    const char *worker = o.worker_bin;
    if (!worker && !have_cmd("worker")) {
        cli_err("up: this psl has no `worker` command yet (give --worker-bin PATH)");
        return EXIT_USAGE;
    }
    proc ps[MAX_PROCS];
    int np = 0;
    char coord_ep[64], xsub[64], xpub[64], storage_eps[1024] = "";
    unsigned http_port = cli_free_port(), cport = cli_free_port();
    snprintf(coord_ep, sizeof coord_ep, "tcp://127.0.0.1:%u", cport);
    snprintf(xsub, sizeof xsub, "tcp://127.0.0.1:%u", cli_free_port());
    snprintf(xpub, sizeof xpub, "tcp://127.0.0.1:%u", cli_free_port());
    cJSON *cj = cJSON_CreateObject();
    cJSON *jp = cJSON_CreateArray();
    char gw[64];
    snprintf(gw, sizeof gw, "http://127.0.0.1:%u", http_port);
    cJSON_AddStringToObject(cj, "gateway", gw);
    cJSON_AddStringToObject(cj, "coordinator", coord_ep);
    cJSON_AddStringToObject(cj, "forwarder_pub", xsub);
    cJSON_AddStringToObject(cj, "forwarder_sub", xpub);
    cJSON_AddNumberToObject(cj, "workers", o.workers);
    cJSON_AddNumberToObject(cj, "replicas", o.replicas);

#define ADD_PROC(ROLE, ARGV)                                                                       \
    do {                                                                                           \
        snprintf(ps[np].role, sizeof ps[np].role, "%s", ROLE);                                     \
        snprintf(ps[np].log, sizeof ps[np].log, "%s/%s.log", logs, ROLE);                          \
        ps[np].pid = spawn(ARGV, ps[np].log);                                                      \
        cJSON *e_ = cJSON_CreateObject();                                                          \
        cJSON_AddStringToObject(e_, "role", ROLE);                                                 \
        cJSON_AddNumberToObject(e_, "pid", ps[np].pid);                                            \
        cJSON_AddStringToObject(e_, "log", ps[np].log);                                            \
        cJSON_AddItemToArray(jp, e_);                                                              \
        np++;                                                                                      \
    } while (0)

    if (have_storage) {
        /* Each replica names the others as its peers (anti-entropy: one that was down, or behind
         * past the writers' resend window or a trim point, catches up from them). */
        char eps[16][64];
        uint32_t nrep = o.replicas < 16 ? o.replicas : 16;
        for (uint32_t k = 0; k < nrep; k++) {
            snprintf(eps[k], sizeof eps[k], "tcp://127.0.0.1:%u", cli_free_port());
            size_t l = strlen(storage_eps);
            snprintf(storage_eps + l, sizeof storage_eps - l, "%s%s", l ? "," : "", eps[k]);
        }
        const char *epp[16];
        for (uint32_t k = 0; k < nrep; k++)
            epp[k] = eps[k];
        for (uint32_t k = 0; k < nrep; k++) {
            char data[4300], role[32], peers[16 * 66];
            snprintf(data, sizeof data, "%s/storage-%u", dir, k);
            snprintf(role, sizeof role, "storage-%u", k);
            peer_list(epp, nrep, k, peers, sizeof peers);
            char *av[] = {(char *)exe, "storage", "--listen", eps[k], "--data",
                          data,        "--peers", peers,      NULL};
            if (!peers[0])
                av[6] = NULL; /* the only replica: no --peers */
            ADD_PROC(role, av);
        }
    } else {
        cli_err("up: note: this psl has no `storage` command yet: no storage replicas started");
    }
    cJSON_AddStringToObject(cj, "storage", storage_eps);
    if (have_fwd) {
        char *av[] = {(char *)exe, "forwarder", "--xsub", xsub, "--xpub", xpub, NULL};
        ADD_PROC("forwarder", av);
    } else {
        cli_err("up: note: this psl has no `forwarder` command yet: no forwarder started");
    }
    {
        char hp[16], cdir[4300];
        snprintf(hp, sizeof hp, "%u", http_port);
        snprintf(cdir, sizeof cdir, "%s/coordinator", dir);
        char *av[] = {(char *)exe, "coordinator", "--listen", coord_ep, "--http",       hp,
                      "--dir",     cdir,          "--policy", policy,   "--token-file", token_file,
                      NULL};
        ADD_PROC("coordinator", av);
    }
    /* A worker given --worker-bin takes every option; psl's own says which it knows. */
    bool w_storage = worker || cmd_has_opt("worker", "--storage");
    bool w_fwd = worker || cmd_has_opt("worker", "--forwarder-pub");
    if (!w_storage || !w_fwd)
        cli_err("up: note: this psl worker takes no --storage/--forwarder options yet: workers "
                "run without capsules and multicast");
    for (uint32_t i = 0; i < o.workers; i++) {
        char id[16], wdir[4300], th[16], role[32];
        snprintf(id, sizeof id, "%u", i + 1);
        snprintf(wdir, sizeof wdir, "%s/worker-%u", dir, i + 1);
        snprintf(th, sizeof th, "%u", o.threads);
        snprintf(role, sizeof role, "worker-%u", i + 1);
        char *av[24];
        int k = 0;
        if (worker) {
            av[k++] = (char *)worker;
        } else {
            av[k++] = (char *)exe;
            av[k++] = "worker";
        }
        av[k++] = "--coordinator", av[k++] = coord_ep, av[k++] = "--id", av[k++] = id;
        av[k++] = "--dir", av[k++] = wdir, av[k++] = "--policy", av[k++] = policy;
        if (storage_eps[0] && w_storage)
            av[k++] = "--storage", av[k++] = storage_eps;
        if (have_fwd && w_fwd)
            av[k++] = "--forwarder-pub", av[k++] = xsub, av[k++] = "--forwarder-sub",
            av[k++] = xpub;
        av[k++] = "--threads", av[k++] = th;
        if (client_keys[0])
            av[k++] = "--client-keys", av[k++] = client_keys;
        if (o.tier)
            av[k++] = "--tier", av[k++] = (char *)o.tier;
        av[k] = NULL;
        ADD_PROC(role, av);
    }
#undef ADD_PROC
    cJSON_AddItemToObject(cj, "processes", jp);
    char *text = cJSON_Print(cj);
    cJSON_Delete(cj);
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    if (write_file(path, text) != 0) {
        free(text);
        cli_err("up: cannot write %s", path);
        stop_procs(ps, np, 5000);
        return EXIT_IO;
    }
    free(text);
    /* Wait until every worker has joined. */
    uint64_t deadline = plat_now_ns() + 60ull * 1000000000u;
    int live = -1;
    for (;;) {
        for (int i = 0; i < np; i++) {
            if (!pid_alive(ps[i].pid)) {
                cli_err("up: %s (pid %d) exited during start-up", ps[i].role, (int)ps[i].pid);
                tail_log(ps[i].log);
                stop_procs(ps, np, 5000);
                unlink(path);
                return EXIT_FAILED;
            }
        }
        live = live_workers(gw);
        if (live >= (int)o.workers)
            break;
        if (plat_now_ns() > deadline) {
            cli_err("up: only %d of %u workers joined within 60 s (logs in %s)",
                    live < 0 ? 0 : live, o.workers, logs);
            stop_procs(ps, np, 5000);
            unlink(path);
            return EXIT_FAILED;
        }
        usleep(50000);
    }
    printf("%s\n", gw);
    fprintf(stderr, "psl up: %u worker(s), %u storage replica(s), gateway %s (data in %s)\n",
            o.workers, have_storage ? o.replicas : 0, gw, dir);
    return EXIT_OK;
}

static int load_procs(const char *dir, proc *ps, int max) {
    cli_proc cp[MAX_PROCS];
    int n = cli_cluster_procs(dir, cp, max < MAX_PROCS ? max : MAX_PROCS);
    for (int i = 0; i < n; i++) {
        _Static_assert(sizeof ps[i].role == sizeof cp[i].role, "role buffers differ");
        memcpy(ps[i].role, cp[i].role, sizeof ps[i].role);
        ps[i].pid = (pid_t)cp[i].pid;
        ps[i].log[0] = 0;
    }
    return n;
}

void cmd_down_help(FILE *out) {
    fprintf(out, "usage: psl down [--dir DIR]\n"
                 "  Stop the cluster that `psl up` started from DIR (SIGTERM, then SIGKILL after\n"
                 "  10 s) and wait until every process has exited. The data stays in DIR.\n");
}

int cmd_down(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 0);
    if (rc)
        return rc;
    const char *dir = default_dir(&o);
    proc ps[MAX_PROCS];
    int n = load_procs(dir, ps, MAX_PROCS);
    if (n < 0) {
        cli_err("down: no cluster in %s (no cluster.json)", dir);
        return EXIT_NOTFOUND;
    }
    /* Workers first (they may still write to storage), then the coordinator and forwarder, then
     * the storage replicas: stop_procs goes stage by stage. */
    stop_procs(ps, n, 10000);
    char path[4300];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    unlink(path);
    fprintf(stderr, "psl down: stopped %d process(es)\n", n);
    return EXIT_OK;
}

void cmd_status_help(FILE *out) {
    fprintf(out, "usage: psl status [--dir DIR] [--gateway URL]\n"
                 "  Show the local cluster's processes, the gateway's health and the workers.\n");
}

int cmd_status(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 0);
    if (rc)
        return rc;
    const char *dir = default_dir(&o);
    proc ps[MAX_PROCS];
    int n = load_procs(dir, ps, MAX_PROCS);
    if (n >= 0) {
        for (int i = 0; i < n; i++)
            printf("%-12s pid %-7d %s\n", ps[i].role, (int)ps[i].pid,
                   pid_alive(ps[i].pid) ? "running" : "stopped");
    } else if (!o.gateway && !getenv("PSL_GATEWAY")) {
        printf("no cluster in %s (no cluster.json)\n", dir);
        return EXIT_NOTFOUND;
    }
    char *gw = gateway_url(&o);
    if (!gw)
        return EXIT_NOTFOUND;
    char url[700];
    snprintf(url, sizeof url, "%s/system/workers", gw);
    long st = 0;
    cli_buf b;
    if (http("GET", url, NULL, 0, &st, &b, false) != 0) {
        free(b.p);
        free(gw);
        return EXIT_IO;
    }
    printf("gateway %s: %d live worker(s)\n", gw, live_workers(gw));
    cJSON *j = cJSON_ParseWithLength((const char *)b.p, b.n);
    const cJSON *w;
    cJSON_ArrayForEach(w, j) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "id");
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(w, "alive");
        const cJSON *inv = cJSON_GetObjectItemCaseSensitive(w, "invocations");
        const cJSON *inf = cJSON_GetObjectItemCaseSensitive(w, "inflight");
        printf("  worker %-3.0f %-5s invocations %-8.0f in flight %.0f\n",
               cJSON_IsNumber(id) ? id->valuedouble : 0, cJSON_IsTrue(al) ? "live" : "dead",
               cJSON_IsNumber(inv) ? inv->valuedouble : 0,
               cJSON_IsNumber(inf) ? inf->valuedouble : 0);
    }
    cJSON_Delete(j);
    free(b.p);
    free(gw);
    return EXIT_OK;
}

/* ---- client commands ------------------------------------------------------------------------ */

/* Run one request against the gateway; prints errors. @return exit status; *out on success. */
static int call(const copts *o, const char *method, const char *path, const void *body, size_t blen,
                cli_buf *out) {
    memset(out, 0, sizeof *out); /* callers free out->p on every path */
    char *gw = gateway_url(o);
    if (!gw)
        return EXIT_NOTFOUND;
    size_t ul = strlen(gw) + strlen(path) + 1;
    char *url = xmalloc(ul);
    snprintf(url, ul, "%s%s", gw, path);
    free(gw);
    long st = 0;
    int rc = http(method, url, body, blen, &st, out, false);
    free(url);
    if (rc != 0)
        return EXIT_IO;
    if (st >= 400) {
        int ex = http_fail(st, out);
        if (out->n && ex == EXIT_FAILED) {
            /* nothing more to print */
        }
        return ex;
    }
    return EXIT_OK;
}

static char *escape(const char *s) {
    CURL *h = curl_easy_init();
    char *e = h ? curl_easy_escape(h, s, 0) : NULL;
    char *r = xstrdup(e ? e : s);
    curl_free(e);
    if (h)
        curl_easy_cleanup(h);
    return r;
}

/* call() on the gateway path @p prefix followed by @p name, URL-escaped. */
static int call_at(const copts *o, const char *method, const char *prefix, const char *name,
                   const void *body, size_t blen, cli_buf *out) {
    char *e = escape(name);
    size_t pl = strlen(prefix) + strlen(e) + 1;
    char *path = xmalloc(pl);
    snprintf(path, pl, "%s%s", prefix, e);
    free(e);
    int rc = call(o, method, path, body, blen, out);
    free(path);
    return rc;
}

void cmd_deploy_help(FILE *out) {
    fprintf(out, "usage: psl deploy NAME FILE [--timeout-ms MS] [--max-memory-mb MB]\n"
                 "                  [--max-request BYTES] [--max-response BYTES]\n"
                 "                  [--durability sync|async] [--gateway URL] [--dir DIR]\n"
                 "  Deploy (or replace) function NAME from the WebAssembly module FILE.\n");
}

int cmd_deploy(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 2);
    if (rc)
        return rc;
    if (o.npos != 2) {
        cmd_deploy_help(stderr);
        return EXIT_USAGE;
    }
    uint8_t *code;
    size_t len;
    rc = plat_read_file(o.pos[1], &code, &len);
    if (rc) {
        cli_err("deploy: cannot read %s: %s", o.pos[1], err_str(rc));
        return rc == -ENOENT ? EXIT_NOTFOUND : EXIT_IO;
    }
    char path[1024], q[64];
    char *name = escape(o.pos[0]);
    snprintf(path, sizeof path, "/system/functions/%s?", name);
    free(name);
#define QARG(field, key)                                                                           \
    if (o.field) {                                                                                 \
        snprintf(q, sizeof q, "%s=%u&", key, o.field);                                             \
        strncat(path, q, sizeof path - strlen(path) - 1);                                          \
    }
    QARG(timeout_ms, "timeout_ms")
    QARG(max_memory_mb, "max_memory_mb")
    QARG(max_request, "max_request")
    QARG(max_response, "max_response")
#undef QARG
    if (o.durability) {
        snprintf(q, sizeof q, "durability=%s&", o.durability);
        strncat(path, q, sizeof path - strlen(path) - 1);
    }
    path[strlen(path) - 1] = 0; /* the trailing '?' or '&' */
    cli_buf out;
    rc = call(&o, "POST", path, code, len, &out);
    free(code);
    if (rc == EXIT_OK) {
        cJSON *j = cJSON_ParseWithLength((const char *)out.p, out.n);
        const cJSON *h = j ? cJSON_GetObjectItemCaseSensitive(j, "hash") : NULL;
        const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "version") : NULL;
        printf("deployed %s (version %.0f, code %.16s...)\n", o.pos[0],
               cJSON_IsNumber(v) ? v->valuedouble : 0, cJSON_IsString(h) ? h->valuestring : "?");
        cJSON_Delete(j);
    }
    free(out.p);
    return rc;
}

void cmd_invoke_help(FILE *out) {
    fprintf(out,
            "usage: psl invoke NAME [--data STRING | < FILE] [--gateway URL] [--dir DIR]\n"
            "                  [--secure [--measurement HEX] [--policy FILE] [--identity SEED]]\n"
            "  Invoke function NAME with the request body STRING (or standard input) and\n"
            "  write its response to standard output. By default through the HTTP gateway.\n"
            "  --secure: straight to a worker over the attested secure channel (its endpoint\n"
            "  from the gateway's GET /endpoints). The worker's report must pass the policy\n"
            "  FILE (default DIR/policy.txt, the deployment's worker policy) with exactly the\n"
            "  measurement HEX (default: the one the coordinator verified and published);\n"
            "  otherwise nothing is sent and the reason is printed. The client proves the\n"
            "  Ed25519 identity in SEED (psl identity), else a fresh one: workers accept any,\n"
            "  as the gateway's invoke path does, unless started with --client-keys.\n");
}

/* psl invoke --secure: one request over a worker's client channel. */
static int invoke_secure(const copts *o, const uint8_t *body, size_t blen) {
    char *gw = gateway_url(o);
    if (!gw)
        return EXIT_NOTFOUND;
    cli_secure s;
    int rc = cli_secure_init(&s, gw, default_dir(o), o->policy, o->measurement, o->identity);
    free(gw);
    cl_conn *c = NULL;
    if (rc == 0) /* a worker at random: the load spreads as the gateway's scheduler would */
        rc = cli_secure_connect(&s, (size_t)plat_now_ns() % s.n, NULL, &c, false);
    if (rc) {
        cli_secure_fini(&s);
        return rc;
    }
    cl_result r;
    int ir = cl_invoke(c, o->pos[0], body, blen, -1, &r);
    if (ir) {
        cli_err("invoke: %s", cl_error(c)[0] ? cl_error(c) : err_str(ir));
        rc = ir == ERR_LIMIT ? EXIT_LIMIT : EXIT_IO;
    } else if (r.status == 0) {
        if (r.len && fwrite(r.body, 1, r.len, stdout) != r.len)
            rc = EXIT_IO;
        if (r.exit_code) {
            cli_err("function '%s' exited with status %d%s%s", o->pos[0], r.exit_code,
                    r.msg[0] ? ": " : "", r.msg);
            rc = EXIT_FAILED;
        }
    } else {
        cli_err("%s (%s)", r.msg[0] ? r.msg : err_str(r.status), err_str(r.status));
        rc = r.status == ERR_NOTFOUND ? EXIT_NOTFOUND
             : r.status == ERR_TRAP   ? EXIT_TRAP
             : r.status == -ETIMEDOUT ? EXIT_TIMEOUT
             : r.status == ERR_LIMIT  ? EXIT_LIMIT
                                      : EXIT_FAILED;
        if (r.status == ERR_TRAP && strstr(r.msg, "time budget"))
            rc = EXIT_TIMEOUT;
    }
    cl_close(c);
    cli_secure_fini(&s);
    return rc;
}

int cmd_invoke(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.npos != 1) {
        cmd_invoke_help(stderr);
        return EXIT_USAGE;
    }
    uint8_t *body = NULL;
    size_t blen = 0;
    if (o.data_set) {
        body = (uint8_t *)xstrdup(o.data);
        blen = strlen(o.data);
    } else if (isatty(0)) {
        body = xmalloc(1);
    } else if ((rc = plat_read_fd(0, 64u << 20, &body, &blen)) != 0) {
        cli_err("invoke: cannot read standard input: %s", err_str(rc));
        return EXIT_IO;
    }
    if (o.secure) {
        rc = invoke_secure(&o, body, blen);
        free(body);
        return rc;
    }
    cli_buf out;
    rc = call_at(&o, "POST", "/function/", o.pos[0], body, blen, &out);
    free(body);
    if (rc == EXIT_OK && out.n && fwrite(out.p, 1, out.n, stdout) != out.n)
        rc = EXIT_IO;
    free(out.p);
    return rc;
}

void cmd_list_help(FILE *out) {
    fprintf(out, "usage: psl list [--json] [--gateway URL] [--dir DIR]\n"
                 "  List the deployed functions.\n");
}

int cmd_list(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 0);
    if (rc)
        return rc;
    cli_buf out;
    rc = call(&o, "GET", "/system/functions", NULL, 0, &out);
    if (rc == EXIT_OK) {
        if (o.json) {
            fwrite(out.p, 1, out.n, stdout);
        } else {
            cJSON *j = cJSON_ParseWithLength((const char *)out.p, out.n);
            printf("%-24s %7s %9s %11s %9s  %s\n", "NAME", "VERSION", "SIZE", "INVOCATIONS",
                   "TIMEOUT", "CODE");
            const cJSON *f;
            cJSON_ArrayForEach(f, j) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
                const cJSON *h = cJSON_GetObjectItemCaseSensitive(f, "hash");
                printf("%-24s %7.0f %9.0f %11.0f %7.0fms  %.16s\n",
                       cJSON_IsString(nm) ? nm->valuestring : "?",
                       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "version")),
                       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "size")),
                       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "invocationCount")),
                       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "timeout_ms")),
                       cJSON_IsString(h) ? h->valuestring : "?");
            }
            cJSON_Delete(j);
        }
    }
    free(out.p);
    return rc;
}

void cmd_remove_help(FILE *out) {
    fprintf(out, "usage: psl remove NAME [--gateway URL] [--dir DIR]\n"
                 "  Remove function NAME from the registry and from every worker.\n");
}

int cmd_remove(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.npos != 1) {
        cmd_remove_help(stderr);
        return EXIT_USAGE;
    }
    cli_buf out;
    rc = call_at(&o, "DELETE", "/system/functions/", o.pos[0], NULL, 0, &out);
    if (rc == EXIT_OK)
        printf("removed %s\n", o.pos[0]);
    free(out.p);
    return rc;
}

void cmd_logs_help(FILE *out) {
    fprintf(out, "usage: psl logs NAME [--gateway URL] [--dir DIR]\n"
                 "  Print the recent log lines (psl_log) of function NAME.\n");
}

int cmd_logs(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.npos != 1) {
        cmd_logs_help(stderr);
        return EXIT_USAGE;
    }
    cli_buf out;
    rc = call_at(&o, "GET", "/system/logs?name=", o.pos[0], NULL, 0, &out);
    if (rc == EXIT_OK && out.n)
        fwrite(out.p, 1, out.n, stdout);
    free(out.p);
    return rc;
}

void cmd_kv_help(FILE *out) {
    fprintf(out, "usage: psl kv get KEY | psl kv put KEY [VALUE | < FILE] | psl kv del KEY\n"
                 "       [--gateway URL] [--dir DIR]\n"
                 "  The owner's admin path to the deployment's key-value store (through a\n"
                 "  worker's replica). get prints the value; a missing key exits 127.\n");
}

int cmd_kv(int argc, char **argv) {
    copts o;
    int rc = parse_common(argc, argv, &o, 3);
    if (rc)
        return rc;
    if (o.npos < 2) {
        cmd_kv_help(stderr);
        return EXIT_USAGE;
    }
    const char *op = o.pos[0];
    const char *method = strcmp(op, "get") == 0                                ? "GET"
                         : strcmp(op, "put") == 0                              ? "PUT"
                         : strcmp(op, "del") == 0 || strcmp(op, "delete") == 0 ? "DELETE"
                                                                               : NULL;
    if (!method || (strcmp(method, "PUT") != 0 && o.npos != 2)) {
        cmd_kv_help(stderr);
        return EXIT_USAGE;
    }
    uint8_t *val = NULL;
    size_t vlen = 0;
    if (strcmp(method, "PUT") == 0) {
        if (o.npos == 3) {
            val = (uint8_t *)xstrdup(o.pos[2]);
            vlen = strlen(o.pos[2]);
        } else if ((rc = plat_read_fd(0, 1u << 20, &val, &vlen)) != 0) {
            cli_err("kv put: cannot read standard input: %s", err_str(rc));
            return EXIT_IO;
        }
    }
    cli_buf out;
    rc = call_at(&o, method, "/system/kv/", o.pos[1], val, vlen, &out);
    free(val);
    if (rc == EXIT_OK && strcmp(method, "GET") == 0) {
        fwrite(out.p, 1, out.n, stdout);
        if (isatty(1))
            fputc('\n', stdout);
    }
    free(out.p);
    return rc;
}
