/* psl bench ycsb: the YCSB core workloads against psl and Redis with one generator
 * (bench/ycsb/ycsb.c) and one report, measured side by side in one run.
 *
 * Targets: "redis" (a redis-server started here on a loopback port without persistence, driven
 * through hiredis, one connection per client thread); "psl-fn" (in-function mode: THREADS
 * concurrent invocations of the YCSB function each run the generator inside a worker against the
 * host API, bench/ycsb/fn.c); "psl-client" (client mode: every operation is one invocation of the
 * YCSB function sent over a worker's attested secure channel, src/client, one channel per client
 * thread and one operation in flight on it); "psl-http" (the same through the HTTP gateway, one
 * keep-alive connection per thread). psl targets take a durability suffix (":sync"; default
 * async). The psl cluster is started here (psl up in a temporary directory) unless --dir names a
 * running one.
 *
 * Every thread draws its own operation and key sequence; a run has a warm-up, then a measured
 * window of --duration seconds (or --ops operations per thread). Reads check that the record
 * returned is the one of the key asked for (ycsb_value_check). */
#include "cli/cli.h"
#include "cli/tier.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include "cli/http_lazy.h"
#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/err.h"
#include "bench/ycsb/ycsb.h"
#include "cli/cli_secure.h"
#include "client/client.h"
#include "platform/platform.h"

#include <zmq.h>

enum { T_REDIS, T_PSL_FN, T_PSL_CLIENT, T_PSL_HTTP, T_ZMQ, T_TCP };

#define MAX_TARGETS 8
#define MAX_LIST 16

typedef struct target {
    int kind;
    bool sync;
    bool wasm; /* psl-client-wasm: the operation function's WebAssembly build */
    char label[32];
} target;

typedef struct yopts {
    target targets[MAX_TARGETS];
    int ntargets;
    char workloads[MAX_LIST];
    int nworkloads;
    bool dist_set;
    ycsb_dist dist;
    uint32_t threads[MAX_LIST];
    int nthreads;
    uint64_t records, ops, seed;
    double warmup, duration;
    int runs, workers, load_threads;
    uint32_t chunk_ms; /* in-function mode: milliseconds per invocation (0: one per run) */
    const char *dir, *fn_path, *csv, *plot;
    const char *policy, *measurement; /* psl-client: what the workers must prove */
    const char *identity;             /* psl-client: the clients' identity (a seed file) */
    const char *tier;                 /* the workers' tier (psl up --tier) */
    int redis_port;
    bool check, quiet;
} yopts;

/* A psl cluster or a redis-server owned by this run. */
typedef struct env {
    char tmpdir[256];  /* our psl cluster's directory ("" when --dir was given) */
    char gateway[256]; /* psl gateway base URL */
    const char *dir;   /* the cluster's directory */
    pid_t redis_pid;   /* 0 when not started by us */
    int redis_port;
    char self[4096]; /* this binary */
    bool psl_loaded, redis_loaded;
    bool secure; /* sec holds the workers' client endpoints (psl-client targets) */
    cli_secure sec;
    void *zctx;    /* the client connections' ZeroMQ context (psl-client and zmq) */
    pid_t zmq_pid; /* the zmq target's echo server (a child process) */
    char zmq_ep[64];
    pid_t tcp_pid; /* the tcp target's echo server (a child process) */
    int tcp_port;
} env;

/* Where the CPU goes, per operation of the measured window (microseconds of user + system time
 * of each kind of process; < 0 when that kind could not be read). */
enum { CPU_CLIENT, CPU_SERVER, CPU_REPLICAS, CPU_OTHER, CPU_KINDS };
static const char *const cpu_kind_name[CPU_KINDS] = {"client", "server", "replicas", "other"};

typedef struct result {
    const target *t;
    char workload;
    ycsb_dist dist;
    uint32_t threads;
    double secs, tput;
    ycsb_stats *st;
    double cpu_us[CPU_KINDS];
} result;

static atomic_ullong g_progress;
static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

static double now_s(void) {
    return (double)plat_now_ns() / 1e9;
}

/* ---------- small process helpers ---------- */

/* ---------- HTTP (libcurl) ---------- */

typedef struct http {
    CURL *c;
    struct curl_slist *hdr;
    cli_buf out;
    char url[512];
    char worker[64]; /* X-Psl-Worker of the last answer: the worker that ran the invocation */
} http;

static size_t http_header(char *data, size_t sz, size_t nm, void *ud) {
    http *h = ud;
    size_t n = sz * nm;
    static const char name[] = "x-psl-worker:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        size_t i = sizeof name - 1, k = 0;
        while (i < n && data[i] == ' ')
            i++;
        while (i < n && data[i] != '\r' && data[i] != '\n' && k + 1 < sizeof h->worker)
            h->worker[k++] = data[i++];
        h->worker[k] = 0;
    }
    return n;
}

static int http_open(http *h, const char *url, long timeout_s) {
    memset(h, 0, sizeof *h);
    h->c = curl_easy_init();
    if (!h->c)
        return ERR_NOMEM;
    snprintf(h->url, sizeof h->url, "%s", url);
    h->hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h->hdr = curl_slist_append(h->hdr, "Expect:");
    curl_easy_setopt(h->c, CURLOPT_URL, h->url);
    curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, h->hdr);
    curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, cli_buf_write);
    curl_easy_setopt(h->c, CURLOPT_WRITEDATA, &h->out);
    curl_easy_setopt(h->c, CURLOPT_HEADERFUNCTION, http_header);
    curl_easy_setopt(h->c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(h->c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->c, CURLOPT_TCP_NODELAY, 1L);
    return 0;
}

static void http_close(http *h) {
    if (h->c)
        curl_easy_cleanup(h->c);
    curl_slist_free_all(h->hdr);
    free(h->out.p);
    memset(h, 0, sizeof *h);
}

/* POST (or PUT when put) body; the answer is in h->out. @return the HTTP status, or -1. */
static long http_send(http *h, const void *body, size_t len, bool put) {
    h->out.n = 0;
    h->worker[0] = 0;
    curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h->c, CURLOPT_CUSTOMREQUEST, put ? "PUT" : NULL);
    if (curl_easy_perform(h->c) != CURLE_OK)
        return -1;
    long code = 0;
    curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* ---------- targets: setup ---------- */

static const char *fn_name(bool sync) {
    return sync ? "ycsb_sync" : "ycsb";
}

/* Client mode over the channel: the one-operation function (bench/ycsb/op.c), native or wasm. */
static const char *op_name(const target *t) {
    return t->wasm ? (t->sync ? "ycsb_opw_sync" : "ycsb_opw")
                   : (t->sync ? "ycsb_op_sync" : "ycsb_op");
}

/* Deploy through `psl deploy` (which carries the cluster owner's credentials). */
static int psl_deploy(env *e, const yopts *o, const char *name, const char *path, bool sync) {
    if (access(path, R_OK) != 0) {
        cli_err("bench ycsb: cannot read the YCSB function %s (build it: cmake --build build)",
                path);
        return EXIT_IO;
    }
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%u", (unsigned)((o->warmup + o->duration) * 1000) + 120000);
    char *av[] = {e->self,
                  "deploy",
                  (char *)name,
                  (char *)path,
                  "--timeout-ms",
                  tmo,
                  "--durability",
                  sync ? "sync" : "async",
                  "--dir",
                  (char *)e->dir,
                  NULL};
    if (cli_run_wait(av, true) != 0) {
        cli_err("bench ycsb: psl deploy %s failed", name);
        return EXIT_FAILED;
    }
    return 0;
}

static int psl_start(env *e, const yopts *o) {
    uint32_t maxthr = 1;
    for (int i = 0; i < o->nthreads; i++)
        if (o->threads[i] > maxthr)
            maxthr = o->threads[i];
    if (o->dir) {
        e->dir = o->dir;
    } else {
        snprintf(e->tmpdir, sizeof e->tmpdir, "/tmp/psl-ycsb.XXXXXX");
        if (!mkdtemp(e->tmpdir)) {
            cli_err("bench ycsb: mkdtemp: %s", strerror(errno));
            e->tmpdir[0] = 0;
            return EXIT_IO;
        }
        e->dir = e->tmpdir;
        char workers[16], threads[16];
        snprintf(workers, sizeof workers, "%d", o->workers);
        /* Every in-function invocation holds a worker thread for the whole run. */
        uint32_t per = (maxthr + (uint32_t)o->workers - 1) / (uint32_t)o->workers;
        snprintf(threads, sizeof threads, "%u", per < 2 ? 2 : per);
        char *av[] = {e->self, "up",           "--workers", workers,         "--threads", threads,
                      "--dir", (char *)e->dir, "--tier",    (char *)o->tier, NULL};
        if (!o->quiet)
            fprintf(stderr, "ycsb: psl up --workers %s --threads %s --dir %s --tier %s\n", workers,
                    threads, e->dir, o->tier);
        if (cli_run_wait(av, true) != 0) {
            cli_err("bench ycsb: psl up failed (logs in %s/logs)", e->dir);
            return EXIT_FAILED;
        }
    }
    char *gw = cli_cluster_gateway(e->dir);
    if (!gw) {
        cli_err("bench ycsb: no cluster with a gateway in %s (cluster.json)", e->dir);
        return EXIT_FAILED;
    }
    snprintf(e->gateway, sizeof e->gateway, "%s", gw);
    free(gw);
    if (psl_deploy(e, o, fn_name(false), o->fn_path, false) != 0 ||
        psl_deploy(e, o, fn_name(true), o->fn_path, true) != 0)
        return EXIT_FAILED;
    bool secure = false;
    for (int i = 0; i < o->ntargets; i++) {
        const target *t = &o->targets[i];
        if (t->kind != T_PSL_CLIENT)
            continue;
        secure = true;
        /* bench/ycsb/op.c next to the YCSB function: ycsb_op.so (native) or ycsb_op.wasm. */
        char path[4200];
        const char *slash = strrchr(o->fn_path, '/');
        snprintf(path, sizeof path, "%.*sycsb_op.%s", slash ? (int)(slash - o->fn_path + 1) : 0,
                 o->fn_path, t->wasm ? "wasm" : "so");
        if (psl_deploy(e, o, op_name(t), path, t->sync) != 0)
            return EXIT_FAILED;
    }
    if (secure) {
        /* Every worker that has joined must be listed: the clients spread over all of them. */
        int rc = 0;
        for (int tries = 0; tries < 100; tries++) {
            rc = cli_secure_init(&e->sec, e->gateway, e->dir, o->policy, o->measurement,
                                 o->identity);
            if (rc || e->sec.n >= (size_t)o->workers)
                break;
            cli_secure_fini(&e->sec);
            usleep(100000);
        }
        if (rc)
            return rc;
        e->secure = true;
        e->zctx = zmq_ctx_new();
        if (!o->quiet)
            for (size_t i = 0; i < e->sec.n; i++)
                fprintf(stderr, "ycsb: psl-client: worker %llu serves clients at %s\n",
                        (unsigned long long)e->sec.eps[i].id, e->sec.eps[i].endpoint);
    }
    return 0;
}

static void psl_stop(env *e) {
    if (e->secure) {
        cli_secure_fini(&e->sec);
        e->secure = false;
    }
    if (e->zctx) {
        zmq_ctx_term(e->zctx);
        e->zctx = NULL;
    }
    if (!e->tmpdir[0])
        return;
    char *down[] = {e->self, "down", "--dir", e->tmpdir, NULL};
    cli_run_wait(down, true);
    if (!getenv("PSL_YCSB_KEEP")) {
        char *rm[] = {"/bin/rm", "-rf", e->tmpdir, NULL};
        cli_run_wait(rm, true);
    }
    e->tmpdir[0] = 0;
}

static redisContext *redis_connect(int port) {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

static int redis_start(env *e, const yopts *o) {
    if (o->redis_port) {
        e->redis_port = o->redis_port;
    } else {
        e->redis_port = (int)cli_free_port();
        if (e->redis_port <= 0)
            return EXIT_FAILED;
        char port[16];
        snprintf(port, sizeof port, "%d", e->redis_port);
        fflush(stdout);
        fflush(stderr);
        pid_t p = fork();
        if (p < 0)
            return EXIT_FAILED;
        if (p == 0) {
            FILE *f = freopen("/dev/null", "w", stdout);
            (void)f;
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                   (char *)NULL);
            fprintf(stderr, "psl: bench ycsb: cannot run redis-server (Debian package "
                            "redis-server; scripts/deps.sh installs it)\n");
            _exit(127);
        }
        e->redis_pid = p;
        if (!o->quiet)
            fprintf(stderr, "ycsb: redis-server --port %s --save '' --appendonly no (pid %d)\n",
                    port, (int)p);
    }
    for (int i = 0; i < 100; i++) {
        redisContext *c = redis_connect(e->redis_port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        int st;
        if (e->redis_pid && waitpid(e->redis_pid, &st, WNOHANG) == e->redis_pid) {
            e->redis_pid = 0;
            break;
        }
        usleep(50000);
    }
    cli_err("bench ycsb: redis-server on port %d did not answer", e->redis_port);
    return EXIT_FAILED;
}

/* The zmq target: plain ZeroMQ round trips of the same sizes, no security, function or store,
 * to show what the transport alone does with one operation in flight per connection. The echo
 * server is a child process with one thread on a ROUTER socket (as a worker's client server):
 * a read ("r KEY") is answered with a 1000-byte record, a write with an empty message. */
static int zmq_echo_start(env *e) {
    int port = (int)cli_free_port();
    if (port <= 0)
        return EXIT_FAILED;
    snprintf(e->zmq_ep, sizeof e->zmq_ep, "tcp://127.0.0.1:%d", port);
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p < 0)
        return EXIT_FAILED;
    if (p == 0) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_ROUTER);
        if (zmq_bind(r, e->zmq_ep) != 0)
            _exit(1);
        static uint8_t rec[YCSB_VALUE_LEN];
        memset(rec, 'x', sizeof rec);
        for (;;) {
            zmq_msg_t id, m;
            zmq_msg_init(&id);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&id, r, 0) < 0 || zmq_msg_recv(&m, r, 0) < 0)
                _exit(1);
            bool rd = zmq_msg_size(&m) > 0 && ((const char *)zmq_msg_data(&m))[0] == 'r';
            zmq_msg_close(&m);
            zmq_msg_send(&id, r, ZMQ_SNDMORE);
            zmq_send(r, rec, rd ? sizeof rec : 0, 0);
        }
    }
    e->zmq_pid = p;
    return 0;
}

/* The tcp target: the same requests and replies as zmq, each behind a 4-byte little-endian
 * length, over plain TCP sockets (TCP_NODELAY, as hiredis and psl's stream transport set) to a
 * child process with one thread in an epoll loop, as redis-server serves its connections: what
 * this machine's loopback does with one operation in flight per connection, with no protocol,
 * security or store at all. */
#define TCP_FRAME_MAX (YCSB_VALUE_LEN + 256)

typedef struct tcp_peer {
    int fd;
    size_t have;
    uint8_t buf[4 + TCP_FRAME_MAX];
} tcp_peer;

/* Answer every complete request in @p c's buffer. @return 0, or -1 to drop the connection. */
static int tcp_echo_serve(tcp_peer *c, const uint8_t *rec) {
    size_t off = 0;
    while (c->have - off >= 4) {
        uint32_t n = (uint32_t)c->buf[off] | (uint32_t)c->buf[off + 1] << 8 |
                     (uint32_t)c->buf[off + 2] << 16 | (uint32_t)c->buf[off + 3] << 24;
        if (n > TCP_FRAME_MAX)
            return -1;
        if (c->have - off < 4 + (size_t)n)
            break;
        bool rd = n > 0 && c->buf[off + 4] == 'r';
        uint8_t hdr[4] = {rd ? (uint8_t)(YCSB_VALUE_LEN & 0xff) : 0,
                          rd ? (uint8_t)(YCSB_VALUE_LEN >> 8) : 0, 0, 0};
        struct iovec iov[2] = {{hdr, 4}, {(void *)rec, rd ? YCSB_VALUE_LEN : 0}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(c->fd, &mh, MSG_NOSIGNAL) != (ssize_t)(4 + (rd ? YCSB_VALUE_LEN : 0)))
            return -1; /* a client with one request in flight never fills the socket buffer */
        off += 4 + (size_t)n;
    }
    memmove(c->buf, c->buf + off, c->have - off);
    c->have -= off;
    return 0;
}

static void tcp_echo_main(int ls) {
    static uint8_t rec[YCSB_VALUE_LEN];
    memset(rec, 'x', sizeof rec);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) != 0)
        _exit(1);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            _exit(1);
        for (int i = 0; i < n; i++) {
            tcp_peer *c = evs[i].data.ptr;
            if (!c) {
                int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                    continue;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = xcalloc(1, sizeof *c);
                c->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
                    close(fd);
                    free(c);
                }
                continue;
            }
            ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
            if (r > 0) {
                c->have += (size_t)r;
                if (tcp_echo_serve(c, rec) == 0)
                    continue;
            } else if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
                continue;
            }
            close(c->fd); /* also leaves the epoll set */
            free(c);
        }
    }
}

static int tcp_echo_start(env *e) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 128) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
        cli_err("bench ycsb: tcp echo: cannot listen on loopback: %s", strerror(errno));
        if (ls >= 0)
            close(ls);
        return EXIT_FAILED;
    }
    e->tcp_port = ntohs(sa.sin_port);
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p < 0) {
        close(ls);
        return EXIT_FAILED;
    }
    if (p == 0) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        tcp_echo_main(ls);
    }
    close(ls);
    e->tcp_pid = p;
    return 0;
}

/* One request over a tcp target connection: the frame, then its whole reply. @return the reply's
 * length, or -1. */
static long tcp_call(int fd, const void *req, size_t len, uint8_t *out, size_t cap) {
    uint8_t hdr[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                      (uint8_t)(len >> 24)};
    struct iovec iov[2] = {{hdr, 4}, {(void *)req, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)(4 + len))
        return -1;
    size_t got = 0, want = 4;
    uint8_t rh[4];
    while (got < want) {
        ssize_t r =
            got < 4 ? recv(fd, rh + got, 4 - got, 0) : recv(fd, out + got - 4, want - got, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
        if (got == 4) {
            size_t n =
                (size_t)rh[0] | (size_t)rh[1] << 8 | (size_t)rh[2] << 16 | (size_t)rh[3] << 24;
            if (n > cap)
                return -1;
            want = 4 + n;
        }
    }
    return (long)(want - 4);
}

static void redis_stop(env *e) {
    if (e->zmq_pid > 0) {
        kill(e->zmq_pid, SIGTERM);
        waitpid(e->zmq_pid, NULL, 0);
        e->zmq_pid = 0;
    }
    if (e->tcp_pid > 0) {
        kill(e->tcp_pid, SIGTERM);
        waitpid(e->tcp_pid, NULL, 0);
        e->tcp_pid = 0;
    }
    if (e->redis_pid > 0) {
        kill(e->redis_pid, SIGTERM);
        waitpid(e->redis_pid, NULL, 0);
        e->redis_pid = 0;
    }
}

/* ---------- one client thread (redis and psl client mode) ---------- */

typedef struct conn {
    int kind;
    uint64_t records;
    bool sync;
    const char *op_fn; /* psl-client: the function each operation invokes */
    redisContext *rc;
    http h;
    cl_conn *cc; /* psl-client: the attested channel to one worker */
    void *zs;    /* zmq: a DEALER to the echo server */
    int fd;      /* tcp: a socket to the echo server (-1: none) */
    uint8_t zbuf[YCSB_VALUE_LEN + 64];
    char err[160];
} conn;

/* Thread @p thread's connection; psl-client threads go round-robin over the workers. */
static int conn_open(conn *c, env *e, const target *t, uint64_t records, uint32_t thread) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->kind = t->kind;
    c->sync = t->sync;
    c->records = records;
    if (t->kind == T_REDIS) {
        c->rc = redis_connect(e->redis_port);
        return c->rc ? 0 : ERR_IO;
    }
    c->op_fn = op_name(t);
    if (t->kind == T_TCP) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)e->tcp_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            return ERR_IO;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return 0;
    }
    if (t->kind == T_ZMQ) {
        c->zs = zmq_socket(e->zctx, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt(c->zs, ZMQ_LINGER, &linger, sizeof linger);
        return c->zs && zmq_connect(c->zs, e->zmq_ep) == 0 ? 0 : ERR_IO;
    }
    if (t->kind == T_PSL_CLIENT)
        return cli_secure_connect(&e->sec, thread, e->zctx, &c->cc, false) ? ERR_AUTH : 0;
    char url[512];
    snprintf(url, sizeof url, "%s/function/%s", e->gateway, fn_name(t->sync));
    return http_open(&c->h, url, 60);
}

static void conn_close(conn *c) {
    cl_close(c->cc);
    if (c->zs)
        zmq_close(c->zs);
    if (c->fd >= 0)
        close(c->fd);
    if (c->rc)
        redisFree(c->rc);
    http_close(&c->h);
}

/* One operation over the attested channel: 0 when the function ran and exited with 0. */
static int conn_invoke(conn *c, const void *body, size_t len, cl_result *res) {
    int rc = cl_invoke(c->cc, c->op_fn, body, len, 60000, res);
    if (rc) {
        snprintf(c->err, sizeof c->err, "%s", cl_error(c->cc)[0] ? cl_error(c->cc) : err_str(rc));
        return rc;
    }
    if (res->status || res->exit_code) {
        snprintf(c->err, sizeof c->err, "%s", res->msg[0] ? res->msg : err_str(res->status));
        return res->status ? res->status : ERR_IO;
    }
    return 0;
}

/* Read key number k: 0 with *got set (false: absent), or a negative error. The record is checked
 * into st->bad. */
static int conn_read(conn *c, uint64_t k, ycsb_stats *st) {
    char key[YCSB_KEY_MAX + 2];
    size_t kl = ycsb_key_name(k, key + 2);
    const uint8_t *v = NULL;
    size_t vl = 0;
    int rc = 0;
    redisReply *r = NULL;
    if (c->kind == T_REDIS) {
        r = redisCommand(c->rc, "GET %b", key + 2, kl);
        if (!r)
            return ERR_IO;
        if (r->type == REDIS_REPLY_STRING)
            v = (const uint8_t *)r->str, vl = r->len;
        else if (r->type != REDIS_REPLY_NIL)
            rc = ERR_IO;
    } else if (c->kind == T_TCP) { /* transport only, as zmq */
        key[0] = 'r', key[1] = ' ';
        return tcp_call(c->fd, key, kl + 2, c->zbuf, sizeof c->zbuf) == YCSB_VALUE_LEN ? 0 : ERR_IO;
    } else if (c->kind == T_ZMQ) { /* transport only: the echo's record is not checked */
        key[0] = 'r', key[1] = ' ';
        if (zmq_send(c->zs, key, kl + 2, 0) < 0)
            return ERR_IO;
        int n = zmq_recv(c->zs, c->zbuf, sizeof c->zbuf, 0);
        return n == YCSB_VALUE_LEN ? 0 : ERR_IO;
    } else if (c->kind == T_PSL_CLIENT) {
        key[0] = 'r', key[1] = ' ';
        cl_result res;
        rc = conn_invoke(c, key, kl + 2, &res);
        if (rc)
            return rc;
        v = res.body, vl = res.len;
    } else {
        key[0] = 'r', key[1] = ' ';
        long code = http_send(&c->h, key, kl + 2, false);
        if (code != 200)
            return ERR_IO;
        v = (const uint8_t *)c->h.out.p, vl = c->h.out.n;
    }
    if (rc == 0) {
        if (vl == 0 && k >= c->records)
            st->stale++;
        else if (vl == 0)
            st->notfound++;
        else if (!ycsb_value_check(v, vl, k))
            st->bad++;
    }
    freeReplyObject(r);
    return rc;
}

static int conn_write(conn *c, uint64_t k, uint8_t *msg, size_t off) {
    char key[YCSB_KEY_MAX];
    size_t kl = ycsb_key_name(k, key);
    if (c->kind == T_REDIS) {
        redisReply *r = redisCommand(c->rc, "SET %b %b", key, kl, msg + off, YCSB_VALUE_LEN);
        int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : ERR_IO;
        freeReplyObject(r);
        return rc;
    }
    /* "w KEY\nRECORD": the record already sits at msg + off; the header goes right before it. */
    size_t hl = 2 + kl + 1;
    uint8_t *p = msg + off - hl;
    p[0] = 'w', p[1] = ' ';
    memcpy(p + 2, key, kl);
    p[2 + kl] = '\n';
    if (c->kind == T_PSL_CLIENT) {
        cl_result res;
        return conn_invoke(c, p, hl + YCSB_VALUE_LEN, &res);
    }
    if (c->kind == T_TCP)
        return tcp_call(c->fd, p, hl + YCSB_VALUE_LEN, c->zbuf, sizeof c->zbuf) == 0 ? 0 : ERR_IO;
    if (c->kind == T_ZMQ) {
        if (zmq_send(c->zs, p, hl + YCSB_VALUE_LEN, 0) < 0)
            return ERR_IO;
        return zmq_recv(c->zs, c->zbuf, sizeof c->zbuf, 0) == 0 ? 0 : ERR_IO;
    }
    long code = http_send(&c->h, p, hl + YCSB_VALUE_LEN, false);
    return code == 200 ? 0 : ERR_IO;
}

typedef struct job {
    env *e;
    const target *t;
    const yopts *o;
    ycsb_workload w;
    uint32_t thread, nthreads;
    double t_measure, t_end; /* absolute (now_s) */
    uint64_t maxops;
    ycsb_stats *st;
    double finished;          /* the thread ended */
    double finished_measured; /* in-function: the last measured invocation answered */
    int rc;
    /* load */
    uint64_t from, to;
    /* in-function: elapsed inside the function */
    double fn_secs;
    char err[256];
} job;

#define MSG_OFF 64

static void *client_thread(void *arg) {
    job *j = arg;
    conn c;
    uint8_t *msg = xmalloc(MSG_OFF + YCSB_VALUE_LEN);
    uint8_t *rec = msg + MSG_OFF;
    if (conn_open(&c, j->e, j->t, j->o->records, j->thread) != 0) {
        snprintf(j->err, sizeof j->err, "cannot connect");
        j->rc = ERR_IO;
        goto out;
    }
    ycsb_rng vr;
    ycsb_rng_seed(&vr, j->o->seed + j->thread + 1);
    ycsb_value_init(rec, &vr);
    if (j->to > j->from) { /* load phase */
        for (uint64_t k = j->from; k < j->to && !g_stop; k++) {
            ycsb_value_stamp(rec, k, 0);
            if (conn_write(&c, k, msg, MSG_OFF) != 0)
                j->st->errors[YCSB_INSERT]++;
            j->st->ops[YCSB_INSERT]++;
            atomic_fetch_add_explicit(&g_progress, 1, memory_order_relaxed);
        }
        goto out;
    }
    ycsb_gen g;
    ycsb_gen_init(&g, &j->w, j->o->records, j->thread, j->o->seed, 0, -1);
    uint32_t version = (uint32_t)j->o->seed;
    bool measuring = false;
    uint64_t measured = 0;
    ycsb_stats *st = j->st;
    ycsb_stats *warm = xcalloc(1, sizeof *warm);
    for (;;) {
        uint64_t b = plat_now_ns();
        double t = (double)b / 1e9;
        if (!measuring && t >= j->t_measure) {
            measuring = true;
            memset(st, 0, sizeof *st);
        }
        if (g_stop || (measuring && (t >= j->t_end || (j->maxops && measured >= j->maxops))))
            break;
        ycsb_stats *s = measuring ? st : warm; /* warm-up reads check records too, unreported */
        ycsb_op op = ycsb_gen_op(&g);
        int rc = 0;
        switch (op) {
        case YCSB_READ: rc = conn_read(&c, ycsb_gen_key(&g), s); break;
        case YCSB_UPDATE:
        case YCSB_INSERT: {
            uint64_t k = op == YCSB_UPDATE ? ycsb_gen_key(&g) : ycsb_gen_insert_key(&g);
            ycsb_value_stamp(rec, k, ++version);
            rc = conn_write(&c, k, msg, MSG_OFF);
            break;
        }
        case YCSB_RMW: {
            uint64_t k = ycsb_gen_key(&g);
            rc = conn_read(&c, k, s);
            if (rc == 0) {
                ycsb_value_stamp(rec, k, ++version);
                rc = conn_write(&c, k, msg, MSG_OFF);
            }
            break;
        }
        default: break;
        }
        uint64_t e2 = plat_now_ns();
        if (rc != 0 && c.err[0] && !j->err[0])
            snprintf(j->err, sizeof j->err, "first error: %s", c.err);
        if (measuring) {
            st->ops[op]++;
            if (rc != 0)
                st->errors[op]++;
            ycsb_hist_add(&st->hist[op], e2 - b);
            measured++;
        }
        atomic_fetch_add_explicit(&g_progress, 1, memory_order_relaxed);
    }
    free(warm);
out:
    if (j->rc == 0 && j->err[0] && !j->o->quiet)
        fprintf(stderr, "ycsb: %s thread %u: %s\n", j->t->label, j->thread, j->err);
    j->finished = now_s();
    conn_close(&c);
    free(msg);
    return NULL;
}

/* ---------- in-function mode ---------- */

#define LOAD_SLICE 1000 /* records per load invocation */

static uint64_t total_ops(const ycsb_stats *s) {
    uint64_t t = 0;
    for (int op = 0; op < YCSB_NOPS; op++)
        t += s->ops[op];
    return t;
}

/* Parse the YCSB function's run answer (bench/ycsb/fn.c) into st. */
static int parse_fn_answer(const char *s, ycsb_stats *st, double *secs, uint64_t *inserted,
                           double *zetan) {
    unsigned long long el, nf, stale, bad, ins;
    if (sscanf(s, "elapsed_ns %llu notfound %llu stale %llu bad %llu inserted %llu zetan %lf", &el,
               &nf, &stale, &bad, &ins, zetan) != 6)
        return ERR_MALFORMED;
    st->stale += stale;
    *secs = (double)el / 1e9;
    *inserted = ins;
    st->notfound += nf;
    st->bad += bad;
    const char *p = strchr(s, '\n');
    while (p && *++p) {
        int op;
        unsigned long long ops, errs, n, sum, max;
        if (sscanf(p, "op %d %llu %llu %llu %llu %llu", &op, &ops, &errs, &n, &sum, &max) != 6 ||
            op < 0 || op >= YCSB_NOPS)
            return ERR_MALFORMED;
        st->ops[op] += ops;
        st->errors[op] += errs;
        ycsb_hist *h = &st->hist[op];
        h->n += n;
        h->sum_ns += sum;
        if (max > h->max_ns)
            h->max_ns = max;
        p = strchr(p, '\n');
        if (!p || p[1] != 'b')
            return ERR_MALFORMED;
        char *q = (char *)p + 2;
        for (;;) {
            char *end;
            unsigned long b = strtoul(q, &end, 10);
            if (end == q)
                break;
            unsigned long cnt = strtoul(end, &q, 10);
            if (q == end || b >= YCSB_HIST_BUCKETS)
                return ERR_MALFORMED;
            h->b[b] += (uint32_t)cnt;
        }
        p = strchr(q, '\n');
    }
    return 0;
}

/* One invocation of the YCSB function; its answer lands in j->st (or scratch during warm-up). */
static int fn_call(job *j, http *h, const char *req, ycsb_stats *into, uint64_t *inserted,
                   double *zetan) {
    long code = http_send(h, req, strlen(req), false);
    const char *ans = h->out.p ? (const char *)h->out.p : "";
    if (code != 200) {
        snprintf(j->err, sizeof j->err, "HTTP %ld: %.200s", code, ans);
        return ERR_IO;
    }
    if (parse_fn_answer(ans, into, &j->fn_secs, inserted, zetan) != 0) {
        snprintf(j->err, sizeof j->err, "malformed answer: %.200s", ans);
        return ERR_MALFORMED;
    }
    return 0;
}

/* In-function mode. With --fn-chunk-ms 0 the whole run (warm-up included) is one invocation;
 * otherwise the thread invokes the function again and again for chunks of that many
 * milliseconds, continuing its generator (inserts and "latest" zeta), so that every invocation
 * ends (and its writes are flushed to the capsule) within the chunk. */
static void *fn_thread(void *arg) {
    job *j = arg;
    const yopts *o = j->o;
    char url[512], req[768];
    snprintf(url, sizeof url, "%s/function/%s", j->e->gateway, fn_name(j->t->sync));
    http h;
    if (http_open(&h, url, (long)(o->warmup + o->duration) + 120) != 0) {
        j->rc = ERR_NOMEM;
        return NULL;
    }
    if (j->to > j->from) {
        /* The load phase in slices, so every invocation's writes stay a small capsule flush. */
        for (uint64_t from = j->from; from < j->to && !g_stop; from += LOAD_SLICE) {
            uint64_t to = from + LOAD_SLICE < j->to ? from + LOAD_SLICE : j->to;
            snprintf(req, sizeof req, "load from=%llu to=%llu seed=%llu", (unsigned long long)from,
                     (unsigned long long)to, (unsigned long long)o->seed);
            long code = http_send(&h, req, strlen(req), false);
            /* A slice is idempotent (it writes the same records again): retry it when the worker
             * running it was lost or none was live for a moment. */
            for (int retry = 0; (code == 502 || code == 503) && retry < 10 && !g_stop; retry++) {
                if (!o->quiet)
                    fprintf(stderr, "ycsb: load slice %llu..%llu: HTTP %ld, retrying\n",
                            (unsigned long long)from, (unsigned long long)to, code);
                sleep(1);
                code = http_send(&h, req, strlen(req), false);
            }
            const char *ans = h.out.p ? (const char *)h.out.p : "";
            unsigned long long n, errs;
            if (code != 200) {
                snprintf(j->err, sizeof j->err, "HTTP %ld: %.200s", code, ans);
                j->rc = ERR_IO;
                break;
            }
            if (sscanf(ans, "loaded %llu errors %llu", &n, &errs) != 2) {
                j->rc = ERR_MALFORMED;
                break;
            }
            j->st->ops[YCSB_INSERT] += n + errs;
            j->st->errors[YCSB_INSERT] += errs;
            atomic_fetch_add_explicit(&g_progress, n + errs, memory_order_relaxed);
        }
        goto out;
    }
    uint64_t inserted = 0;
    double zetan = j->w.dist == YCSB_LATEST ? ycsb_zeta(o->records, YCSB_THETA) : 0;
    if (o->chunk_ms == 0) {
        snprintf(req, sizeof req,
                 "run w=%c d=%s records=%llu thread=%u seed=%llu warmup_ms=%llu duration_ms=%llu "
                 "ops=%llu zetan=%.17g",
                 j->w.name, ycsb_dist_name(j->w.dist), (unsigned long long)o->records, j->thread,
                 (unsigned long long)o->seed, (unsigned long long)(o->warmup * 1000),
                 (unsigned long long)(o->duration * 1000), (unsigned long long)j->maxops, zetan);
        j->rc = fn_call(j, &h, req, j->st, &inserted, &zetan);
        j->finished_measured = now_s();
        goto out;
    }
    ycsb_stats *scratch = xcalloc(1, sizeof *scratch);
    uint64_t measured = 0;
    for (uint32_t chunk = 0; !g_stop; chunk++) {
        double now = now_s();
        bool meas = now >= j->t_measure;
        if (now >= j->t_end || (j->maxops && measured >= j->maxops))
            break;
        double left = (meas ? j->t_end : j->t_measure) - now;
        uint64_t ms = (uint64_t)(left * 1000);
        if (ms > o->chunk_ms)
            ms = o->chunk_ms;
        if (ms == 0)
            ms = 1;
        snprintf(req, sizeof req,
                 "run w=%c d=%s records=%llu thread=%u seed=%llu warmup_ms=0 duration_ms=%llu "
                 "ops=%llu inserted=%llu zetan=%.17g",
                 j->w.name, ycsb_dist_name(j->w.dist), (unsigned long long)o->records, j->thread,
                 (unsigned long long)(o->seed + chunk * 7919u), (unsigned long long)ms,
                 (unsigned long long)(meas && j->maxops ? j->maxops - measured : 0),
                 (unsigned long long)inserted, zetan);
        ycsb_stats *into = meas ? j->st : scratch;
        uint64_t before = total_ops(into);
        if (!meas)
            memset(scratch, 0, sizeof *scratch);
        if ((j->rc = fn_call(j, &h, req, into, &inserted, &zetan)) != 0)
            break;
        uint64_t got = total_ops(into) - (meas ? before : 0);
        atomic_fetch_add_explicit(&g_progress, got, memory_order_relaxed);
        if (meas) {
            measured += got;
            j->finished_measured = now_s();
        }
    }
    free(scratch);
out:
    j->finished = now_s();
    http_close(&h);
    return NULL;
}

/* ---------- phases ---------- */

static void progress(const char *what, double t0, double total, bool tty) {
    static unsigned long long last_n;
    static double last_t;
    double t = now_s();
    unsigned long long n = atomic_load(&g_progress);
    if (last_t < t0) /* a new phase: the counter restarted at 0 */
        last_t = t0, last_n = 0;
    if (t - last_t < 0.5)
        return; /* a rate over at least half a second */
    if (tty) {
        double rate = (double)(n - last_n) / (t - last_t);
        if (total > 0 && n == 0) /* one invocation per thread: counts come at its end */
            fprintf(stderr, "\r\033[K%s  %5.1f / %.0f s  (running inside the workers)", what,
                    t - t0, total);
        else if (total > 0)
            fprintf(stderr, "\r\033[K%s  %5.1f / %.0f s  %10.0f ops/s", what, t - t0, total, rate);
        else
            fprintf(stderr, "\r\033[K%s  %5.1f s  %10llu ops", what, t - t0, n);
        fflush(stderr);
    }
    last_n = n;
    last_t = t;
}

/* Run njobs jobs on threads, with a progress line, and wait for them. */
static int run_jobs(job *jobs, uint32_t njobs, void *(*fn)(void *), const char *what,
                    double total) {
    pthread_t *th = xcalloc(njobs, sizeof *th);
    bool tty = isatty(STDERR_FILENO);
    atomic_store(&g_progress, 0);
    double t0 = now_s();
    for (uint32_t i = 0; i < njobs; i++)
        pthread_create(&th[i], NULL, fn, &jobs[i]);
    for (;;) {
        bool done = true;
        for (uint32_t i = 0; i < njobs; i++)
            if (jobs[i].finished == 0 && jobs[i].rc == 0)
                done = false;
        if (done)
            break;
        usleep(100000);
        progress(what, t0, total, tty);
    }
    for (uint32_t i = 0; i < njobs; i++)
        pthread_join(th[i], NULL);
    if (tty)
        fprintf(stderr, "\r\033[K");
    free(th);
    int rc = 0;
    for (uint32_t i = 0; i < njobs; i++)
        if (jobs[i].rc != 0) {
            cli_err("bench ycsb: %s thread %u: %s", what, i,
                    jobs[i].err[0] ? jobs[i].err : err_str(jobs[i].rc));
            rc = jobs[i].rc;
        }
    return rc;
}

/* After the load: wait until every worker holds every record (replication between workers is
 * eventually consistent; a run must not start on a worker that has not received the load).
 * Asks the YCSB function to count the records, until each of --workers workers (told apart by
 * X-Psl-Worker) has answered with all of them. */
static int psl_settle(env *e, const yopts *o) {
    char url[512], req[128], seen[64][64];
    int nseen = 0;
    snprintf(url, sizeof url, "%s/function/%s", e->gateway, fn_name(false));
    snprintf(req, sizeof req, "count from=0 to=%llu", (unsigned long long)o->records);
    http h;
    if (http_open(&h, url, 120) != 0)
        return ERR_NOMEM;
    double t0 = now_s();
    int rc = ERR_IO;
    unsigned long long present = 0;
    while (!g_stop && now_s() - t0 < 300) {
        long code = http_send(&h, req, strlen(req), false);
        if (code != 200 || sscanf(h.out.p ? (char *)h.out.p : "", "present %llu", &present) != 1) {
            cli_err("bench ycsb: count: HTTP %ld %s", code, h.out.p ? (char *)h.out.p : "");
            break;
        }
        if (present == o->records && h.worker[0]) {
            int k;
            for (k = 0; k < nseen; k++)
                if (strcmp(seen[k], h.worker) == 0)
                    break;
            if (k == nseen && nseen < 64)
                snprintf(seen[nseen++], sizeof seen[0], "%s", h.worker);
            if (nseen >= o->workers) {
                rc = 0;
                break;
            }
        } else if (present != o->records) {
            usleep(200000);
        }
    }
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "ycsb: every worker (%d) holds the %llu records after %.1f s\n", nseen,
                (unsigned long long)o->records, now_s() - t0);
    else if (rc != 0)
        cli_err("bench ycsb: after the load, %d of %d workers hold every record (last count %llu)",
                nseen, o->workers, present);
    http_close(&h);
    return rc;
}

static int load(env *e, const yopts *o, const target *t) {
    uint32_t n = (uint32_t)o->load_threads;
    job *jobs = xcalloc(n, sizeof *jobs);
    ycsb_stats *st = xcalloc(n, sizeof *st);
    if (t->kind == T_REDIS) {
        redisContext *c = redis_connect(e->redis_port);
        if (c) {
            freeReplyObject(redisCommand(c, "FLUSHALL"));
            redisFree(c);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        jobs[i] = (job){.e = e, .t = t, .o = o, .thread = i, .nthreads = n, .st = &st[i]};
        jobs[i].from = o->records * i / n;
        jobs[i].to = o->records * (i + 1) / n;
    }
    char what[64];
    snprintf(what, sizeof what, "load %s %llu records", t->kind == T_REDIS ? "redis" : "psl",
             (unsigned long long)o->records);
    double t0 = now_s();
    int rc = run_jobs(jobs, n, t->kind == T_REDIS ? client_thread : fn_thread, what, 0);
    uint64_t ok = 0, errs = 0;
    for (uint32_t i = 0; i < n; i++)
        ok += st[i].ops[YCSB_INSERT] - st[i].errors[YCSB_INSERT], errs += st[i].errors[YCSB_INSERT];
    if (!o->quiet)
        fprintf(stderr, "ycsb: loaded %llu records into %s in %.1f s (%llu errors)\n",
                (unsigned long long)ok, t->kind == T_REDIS ? "redis" : "psl", now_s() - t0,
                (unsigned long long)errs);
    if (rc == 0 && (errs || ok != o->records)) {
        cli_err("bench ycsb: load: %llu of %llu records stored", (unsigned long long)ok,
                (unsigned long long)o->records);
        rc = ERR_IO;
    }
    if (rc == 0 && t->kind != T_REDIS)
        rc = psl_settle(e, o);
    free(jobs);
    free(st);
    return rc;
}

/* ---------- CPU accounting ---------- */

/* The processes a target runs on, by kind: this process is the client; the server is psl's
 * workers (with the replicas and the coordinator, forwarder and gateway apart), or the
 * redis-server or ZeroMQ echo process this run started. */
typedef struct cpu_set {
    pid_t pid[64];
    int kind[64];
    int n;
} cpu_set;

static void cpu_set_add(cpu_set *c, pid_t pid, int kind) {
    if (pid > 0 && c->n < (int)(sizeof c->pid / sizeof c->pid[0])) {
        c->pid[c->n] = pid;
        c->kind[c->n++] = kind;
    }
}

static void cpu_set_for(const env *e, const target *t, cpu_set *c) {
    c->n = 0;
    cpu_set_add(c, getpid(), CPU_CLIENT);
    if (t->kind == T_REDIS) {
        cpu_set_add(c, e->redis_pid, CPU_SERVER);
        return;
    }
    if (t->kind == T_ZMQ || t->kind == T_TCP) {
        cpu_set_add(c, t->kind == T_ZMQ ? e->zmq_pid : e->tcp_pid, CPU_SERVER);
        return;
    }
    cli_proc ps[64];
    int n = e->dir ? cli_cluster_procs(e->dir, ps, 64) : -1;
    for (int i = 0; i < n; i++)
        cpu_set_add(c, (pid_t)ps[i].pid,
                    strncmp(ps[i].role, "worker", 6) == 0    ? CPU_SERVER
                    : strncmp(ps[i].role, "storage", 7) == 0 ? CPU_REPLICAS
                                                             : CPU_OTHER);
}

/* CPU seconds by kind (-1: no process of that kind could be read). */
static void cpu_sample(const cpu_set *c, double s[CPU_KINDS]) {
    for (int k = 0; k < CPU_KINDS; k++)
        s[k] = -1;
    for (int i = 0; i < c->n; i++) {
        double v = cli_proc_cpu_s((int)c->pid[i]);
        if (v >= 0)
            s[c->kind[i]] = (s[c->kind[i]] < 0 ? 0 : s[c->kind[i]]) + v;
    }
}

/* Takes the first sample when the warm-up ends (the measured window starts). */
typedef struct cpu_window {
    const cpu_set *set;
    double t_start; /* when to sample (now_s clock) */
    double at;      /* when it sampled */
    double s[CPU_KINDS];
    atomic_bool cancel;
} cpu_window;

static void *cpu_window_main(void *arg) {
    cpu_window *cw = arg;
    while (!atomic_load(&cw->cancel) && now_s() < cw->t_start) {
        double left = cw->t_start - now_s();
        struct timespec ts = {0, (long)((left < 0.05 ? left : 0.05) * 1e9)};
        if (left > 0)
            nanosleep(&ts, NULL);
    }
    cw->at = now_s();
    cpu_sample(cw->set, cw->s);
    return NULL;
}

static int run_once(env *e, const yopts *o, const target *t, const ycsb_workload *w,
                    uint32_t nthreads, result *res) {
    job *jobs = xcalloc(nthreads, sizeof *jobs);
    ycsb_stats *st = xcalloc(nthreads, sizeof *st);
    double start = now_s();
    bool fn = t->kind == T_PSL_FN;
    for (uint32_t i = 0; i < nthreads; i++) {
        jobs[i] = (job){.e = e,
                        .t = t,
                        .o = o,
                        .w = *w,
                        .thread = i,
                        .nthreads = nthreads,
                        .st = &st[i],
                        .maxops = o->ops};
        jobs[i].t_measure = start + o->warmup;
        jobs[i].t_end = start + o->warmup + o->duration;
    }
    char what[96];
    snprintf(what, sizeof what, "%s %c/%s x%u", t->label, w->name, ycsb_dist_name(w->dist),
             nthreads);
    cpu_set cs;
    cpu_set_for(e, t, &cs);
    cpu_window cw = {.set = &cs, .t_start = start + o->warmup};
    atomic_init(&cw.cancel, false);
    pthread_t cth;
    bool cth_ok = pthread_create(&cth, NULL, cpu_window_main, &cw) == 0;
    int rc =
        run_jobs(jobs, nthreads, fn ? fn_thread : client_thread, what, o->warmup + o->duration);
    double cpu_end[CPU_KINDS];
    cpu_sample(&cs, cpu_end);
    double cpu_at = now_s();
    if (cth_ok) {
        atomic_store(&cw.cancel, true);
        pthread_join(cth, NULL);
    }
    res->t = t;
    res->workload = w->name;
    res->dist = w->dist;
    res->threads = nthreads;
    res->st = xcalloc(1, sizeof *res->st);
    double last = 0, lastm = 0, fnmax = 0, t_measure = start + o->warmup;
    for (uint32_t i = 0; i < nthreads; i++) {
        ycsb_stats_merge(res->st, &st[i]);
        if (jobs[i].finished > last)
            last = jobs[i].finished;
        if (jobs[i].finished_measured > lastm)
            lastm = jobs[i].finished_measured;
        if (jobs[i].fn_secs > fnmax)
            fnmax = jobs[i].fn_secs;
    }
    /* The measured window. Client threads: from the end of the warm-up to the end of the window
     * (or to the last thread's end when --ops stopped them early). In-function, one invocation per
     * run: the function's own measured interval (they overlap; the longest counts). In-function,
     * chunked: from the end of the warm-up to the last measured invocation's answer, so the
     * invocations' overhead and their flushes count against psl. */
    double secs;
    if (!fn)
        secs = (last < t_measure + o->duration ? last : t_measure + o->duration) - t_measure;
    else if (o->chunk_ms == 0)
        secs = fnmax;
    else
        secs = lastm - t_measure;
    uint64_t total = 0;
    for (int op = 0; op < YCSB_NOPS; op++)
        total += res->st->ops[op];
    res->secs = secs;
    res->tput = secs > 0 ? (double)total / secs : 0;
    /* CPU per operation: what each kind used between the two samples over the operations the
     * throughput says ran in that time (the samples bracket the measured window to within the
     * threads' stop). */
    double span = cpu_at - cw.at;
    for (int k = 0; k < CPU_KINDS; k++)
        res->cpu_us[k] = cth_ok && span > 0.5 && res->tput > 0 && cw.s[k] >= 0 && cpu_end[k] >= 0
                             ? (cpu_end[k] - cw.s[k]) * 1e6 / (res->tput * span)
                             : -1;
    free(jobs);
    free(st);
    return rc;
}

/* ---------- output ---------- */

static void print_header(void) {
    printf("%-18s %-2s %-8s %4s %10s  %-6s %9s %7s %8s %8s %8s %8s %6s\n", "target", "wl", "dist",
           "thr", "ops/s", "op", "count", "avg us", "p50 us", "p95 us", "p99 us", "p99.9 us",
           "errs");
}

static void print_result(const result *r) {
    bool first = true;
    for (int op = 0; op < YCSB_NOPS; op++) {
        const ycsb_hist *h = &r->st->hist[op];
        if (!r->st->ops[op])
            continue;
        if (first)
            printf("%-18s %-2c %-8s %4u %10.0f  ", r->t->label, r->workload,
                   ycsb_dist_name(r->dist), r->threads, r->tput);
        else
            printf("%-18s %-2s %-8s %4s %10s  ", "", "", "", "", "");
        first = false;
        printf("%-6s %9llu %7.1f %8.1f %8.1f %8.1f %8.1f %6llu\n", ycsb_op_name((ycsb_op)op),
               (unsigned long long)r->st->ops[op],
               h->n ? (double)h->sum_ns / (double)h->n / 1e3 : 0,
               (double)ycsb_hist_quantile(h, 0.50) / 1e3, (double)ycsb_hist_quantile(h, 0.95) / 1e3,
               (double)ycsb_hist_quantile(h, 0.99) / 1e3,
               (double)ycsb_hist_quantile(h, 0.999) / 1e3, (unsigned long long)r->st->errors[op]);
    }
    if (r->st->notfound || r->st->bad || r->st->stale)
        printf("%-18s   reads: %llu of absent records, %llu wrong or short, %llu of a fresh insert "
               "not yet visible\n",
               "", (unsigned long long)r->st->notfound, (unsigned long long)r->st->bad,
               (unsigned long long)r->st->stale);
    double tot = 0;
    bool any = false;
    for (int k = 0; k < CPU_KINDS; k++)
        if (r->cpu_us[k] >= 0)
            tot += r->cpu_us[k], any = true;
    if (any) {
        printf("%-18s   cpu us/op:", "");
        for (int k = 0; k < CPU_KINDS; k++)
            if (r->cpu_us[k] >= 0)
                printf(" %s %.1f", cpu_kind_name[k], r->cpu_us[k]);
        printf(" (total %.1f, %.2f cores)\n", tot, tot * r->tput / 1e6);
    }
    fflush(stdout);
}

static int write_csv(const char *path, const result *rs, int n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_err("bench ycsb: %s: %s", path, strerror(errno));
        return EXIT_IO;
    }
    fprintf(f, "target,workload,distribution,threads,seconds,ops_per_s,op,count,errors,avg_us,"
               "p50_us,p95_us,p99_us,p999_us,max_us,notfound,bad,stale,cpu_client_us,"
               "cpu_server_us,cpu_replicas_us,cpu_other_us\n");
    for (int i = 0; i < n; i++) {
        const result *r = &rs[i];
        ycsb_hist all;
        memset(&all, 0, sizeof all);
        for (int op = 0; op <= YCSB_NOPS; op++) {
            const ycsb_hist *h = op < YCSB_NOPS ? &r->st->hist[op] : &all;
            uint64_t cnt = op < YCSB_NOPS ? r->st->ops[op] : total_ops(r->st), errs = 0;
            if (op < YCSB_NOPS) {
                errs = r->st->errors[op];
                ycsb_hist_merge(&all, h);
            } else {
                for (int k = 0; k < YCSB_NOPS; k++)
                    errs += r->st->errors[k];
            }
            if (!cnt)
                continue;
            fprintf(f,
                    "%s,%c,%s,%u,%.3f,%.1f,%s,%llu,%llu,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%llu,%llu,"
                    "%llu",
                    r->t->label, r->workload, ycsb_dist_name(r->dist), r->threads, r->secs, r->tput,
                    op < YCSB_NOPS ? ycsb_op_name((ycsb_op)op) : "ALL", (unsigned long long)cnt,
                    (unsigned long long)errs, h->n ? (double)h->sum_ns / (double)h->n / 1e3 : 0,
                    (double)ycsb_hist_quantile(h, 0.5) / 1e3,
                    (double)ycsb_hist_quantile(h, 0.95) / 1e3,
                    (double)ycsb_hist_quantile(h, 0.99) / 1e3,
                    (double)ycsb_hist_quantile(h, 0.999) / 1e3, (double)h->max_ns / 1e3,
                    (unsigned long long)r->st->notfound, (unsigned long long)r->st->bad,
                    (unsigned long long)r->st->stale);
            for (int k = 0; k < CPU_KINDS; k++) /* empty: not measured */
                if (r->cpu_us[k] >= 0)
                    fprintf(f, ",%.2f", r->cpu_us[k]);
                else
                    fputs(",", f);
            fputc('\n', f);
        }
    }
    int rc = fclose(f) == 0 ? 0 : EXIT_IO;
    if (rc == 0)
        fprintf(stderr, "ycsb: wrote %s\n", path);
    return rc;
}

/* Throughput and p99 latency (all operations) against threads, one line per target and workload,
 * drawn by gnuplot (Debian gnuplot-nox) into a PNG. */
static int write_plot(const char *png, const result *rs, int n, uint64_t records) {
    char dat[] = "/tmp/psl-ycsb-plot.XXXXXX";
    int fd = mkstemp(dat);
    if (fd < 0)
        return EXIT_IO;
    FILE *f = fdopen(fd, "w");
    char series[64][48];
    int ns = 0;
    for (int i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof name, "%s %c", rs[i].t->label, rs[i].workload);
        int k;
        for (k = 0; k < ns; k++)
            if (strcmp(series[k], name) == 0)
                break;
        if (k == ns && ns < 64)
            snprintf(series[ns++], sizeof series[0], "%s", name);
    }
    for (int k = 0; k < ns; k++) {
        fprintf(f, "# %s\n", series[k]);
        for (int i = 0; i < n; i++) {
            char name[48];
            snprintf(name, sizeof name, "%s %c", rs[i].t->label, rs[i].workload);
            if (strcmp(name, series[k]) != 0)
                continue;
            ycsb_hist all;
            memset(&all, 0, sizeof all);
            for (int op = 0; op < YCSB_NOPS; op++)
                ycsb_hist_merge(&all, &rs[i].st->hist[op]);
            fprintf(f, "%u %.1f %.2f\n", rs[i].threads, rs[i].tput,
                    (double)ycsb_hist_quantile(&all, 0.99) / 1e3);
        }
        fprintf(f, "\n\n");
    }
    fclose(f);
    char gp[] = "/tmp/psl-ycsb-gp.XXXXXX";
    fd = mkstemp(gp);
    if (fd < 0) {
        unlink(dat);
        return EXIT_IO;
    }
    f = fdopen(fd, "w");
    fprintf(f, "set terminal pngcairo size 1200,600 noenhanced\nset output '%s'\n", png);
    fprintf(f, "set multiplot layout 1,2 title 'psl bench ycsb (%llu records of %d bytes)'\n",
            (unsigned long long)records, YCSB_VALUE_LEN);
    fprintf(f, "set key below\nset grid\nset logscale x 2\nset xlabel 'connections'\n");
    fprintf(f, "set ylabel 'ops/s'\nset title 'throughput'\nplot ");
    for (int k = 0; k < ns; k++)
        fprintf(f, "%s'%s' index %d using 1:2 with linespoints title '%s'", k ? ", " : "", dat, k,
                series[k]);
    fprintf(f,
            "\nset ylabel 'us'\nset logscale y\nset title 'p99 latency (all operations)'\nplot ");
    for (int k = 0; k < ns; k++)
        fprintf(f, "%s'%s' index %d using 1:3 with linespoints title '%s'", k ? ", " : "", dat, k,
                series[k]);
    fprintf(f, "\nunset multiplot\n");
    fclose(f);
    return cli_gnuplot(gp, dat, png, "ycsb");
}

/* ---------- options ---------- */

static void ycsb_help(FILE *out) {
    fprintf(
        out,
        "usage: psl bench ycsb [--target LIST] [--workload LIST] [--threads LIST]\n"
        "                      [--records N] [--warmup S] [--duration S] [--ops N]\n"
        "                      [--distribution zipfian|uniform|latest] [--runs R]\n"
        "                      [--workers N] [--dir DIR] [--tier T] [--fn FILE] [--redis-port P]\n"
        "                      [--policy FILE] [--measurement HEX] [--identity SEED]\n"
        "                      [--csv FILE] [--plot FILE.png] [--seed N] [--check]\n"
        "  YCSB core workloads (a b c d f) against redis and psl, side by side.\n"
        "  --target: comma list of redis, zmq, tcp, psl-fn, psl-client, psl-client-wasm,\n"
        "    psl-http, each psl one with :sync or :async (psl = psl-fn; default\n"
        "    redis,psl-fn). zmq: plain ZeroMQ round trips of the same sizes to an echo\n"
        "    process (the transport alone, nothing checked); tcp: the same over plain\n"
        "    TCP to a one-thread epoll echo process (loopback's own ceiling). psl-fn\n"
        "    runs the YCSB function inside the workers (in-function mode); psl-client\n"
        "    sends each operation to the function over a worker's attested secure\n"
        "    channel (client mode: one channel per thread, round-robin over the workers,\n"
        "    one operation in flight; psl-client-wasm: the same operation function built\n"
        "    to wasm);\n"
        "    psl-http sends it through the HTTP gateway (keep-alive).\n"
        "  --policy FILE, --measurement HEX: what psl-client demands of the workers\n"
        "    (default: the cluster's DIR/policy.txt and the published measurement).\n"
        "  --identity SEED: the Ed25519 identity psl-client connects as (psl identity;\n"
        "    needed when the workers serve only listed clients, --client-keys).\n"
        "  --threads (alias --connections): comma list of client threads (default 16).\n"
        "  --records (default 100000) records of 10 x 100 bytes; --warmup (2) and\n"
        "  --duration (10) seconds; --ops N stops each thread after N operations.\n"
        "  --runs R runs each point R times and reports the run of median throughput.\n"
        "  --fn-chunk-ms MS: in-function threads invoke the function for MS ms at a time\n"
        "    (default 100); 0 runs warm-up and run in one invocation per thread.\n"
        "  psl: a cluster of --workers (2) is started in a temporary directory unless --dir\n"
        "  names a running one (of --workers workers): after the load, the run waits until\n"
        "  every worker holds every record. --tier interp|jit: how its workers run the wasm\n"
        "  functions (default jit when the JIT module psljit.so is there, else interp).\n"
        "  redis: redis-server is started on a free loopback port without persistence\n"
        "  unless --redis-port names a running one.\n"
        "  --check: exit 1 unless every operation succeeded, every read returned the record\n"
        "  of its key and the counts add up.\n"
        "  Under each row, and in the CSV: CPU microseconds per operation of the client (this\n"
        "  process), the server (redis-server, the zmq or tcp echo process, or psl's workers),\n"
        "  psl's storage replicas and its other processes (coordinator, forwarder, gateway), from\n"
        "  /proc over the measured window (not shown for windows under 0.5 s, nor for a\n"
        "  server this run did not start and cannot find: --redis-port).\n");
}

static int parse_list_u32(char *s, uint32_t *out, int max) {
    const char *parts[MAX_LIST];
    size_t n = cli_split_list(s, parts, MAX_LIST);
    int k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        char *end;
        unsigned long v = strtoul(parts[i], &end, 10);
        if (*end || v == 0 || v > 4096)
            return -1;
        out[k++] = (uint32_t)v;
    }
    return k;
}

static int parse_targets(char *s, yopts *o) {
    const char *parts[MAX_LIST];
    size_t n = cli_split_list(s, parts, MAX_LIST);
    o->ntargets = 0;
    for (size_t i = 0; i < n && o->ntargets < MAX_TARGETS; i++) {
        target *t = &o->targets[o->ntargets];
        memset(t, 0, sizeof *t);
        const char *p = parts[i];
        const char *colon = strchr(p, ':');
        size_t bl = colon ? (size_t)(colon - p) : strlen(p);
        if (colon && strcmp(colon + 1, "sync") == 0)
            t->sync = true;
        else if (colon && strcmp(colon + 1, "async") != 0)
            return -1;
        if (bl == 5 && strncmp(p, "redis", 5) == 0 && !colon)
            t->kind = T_REDIS;
        else if ((bl == 3 && strncmp(p, "psl", 3) == 0) ||
                 (bl == 6 && strncmp(p, "psl-fn", 6) == 0))
            t->kind = T_PSL_FN;
        else if (bl == 10 && strncmp(p, "psl-client", 10) == 0)
            t->kind = T_PSL_CLIENT;
        else if (bl == 15 && strncmp(p, "psl-client-wasm", 15) == 0)
            t->kind = T_PSL_CLIENT, t->wasm = true;
        else if (bl == 8 && strncmp(p, "psl-http", 8) == 0)
            t->kind = T_PSL_HTTP;
        else if (bl == 3 && strncmp(p, "zmq", 3) == 0 && !colon)
            t->kind = T_ZMQ;
        else if (bl == 3 && strncmp(p, "tcp", 3) == 0 && !colon)
            t->kind = T_TCP;
        else
            return -1;
        snprintf(t->label, sizeof t->label, "%s%s",
                 t->kind == T_REDIS        ? "redis"
                 : t->kind == T_PSL_FN     ? "psl-fn"
                 : t->kind == T_PSL_CLIENT ? (t->wasm ? "psl-client-wasm" : "psl-client")
                 : t->kind == T_ZMQ        ? "zmq"
                 : t->kind == T_TCP        ? "tcp"
                                           : "psl-http",
                 t->kind == T_REDIS || t->kind == T_ZMQ || t->kind == T_TCP ? ""
                 : t->sync                                                  ? ":sync"
                                                                            : ":async");
        o->ntargets++;
    }
    return o->ntargets ? 0 : -1;
}

static int parse_opts(int argc, char **argv, yopts *o) {
    memset(o, 0, sizeof *o);
    o->records = 100000;
    o->warmup = 2;
    o->duration = 10;
    o->runs = 1;
    o->workers = 2;
    o->seed = 1;
    o->load_threads = 4;
    o->chunk_ms = 100;
    o->workloads[0] = 'a', o->workloads[1] = 'c', o->nworkloads = 2;
    o->threads[0] = 16, o->nthreads = 1;
    char dflt[] = "redis,psl-fn";
    parse_targets(dflt, o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ycsb_help(stdout);
            return 1;
        }
        if (strcmp(a, "--check") == 0) {
            o->check = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            cli_err("bench ycsb: %s needs a value", a);
            return -1;
        }
        char *v = argv[++i];
        bool ok = true;
        if (strcmp(a, "--target") == 0 || strcmp(a, "--targets") == 0) {
            ok = parse_targets(v, o) == 0;
        } else if (strcmp(a, "--workload") == 0 || strcmp(a, "--workloads") == 0) {
            const char *parts[MAX_LIST];
            size_t n = cli_split_list(v, parts, MAX_LIST);
            o->nworkloads = 0;
            for (size_t k = 0; k < n; k++) {
                ycsb_workload w;
                if (strlen(parts[k]) != 1 || ycsb_workload_get(parts[k][0], &w) != 0)
                    ok = false;
                else
                    o->workloads[o->nworkloads++] = w.name;
            }
            ok = ok && o->nworkloads > 0;
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "--connections") == 0) {
            o->nthreads = parse_list_u32(v, o->threads, MAX_LIST);
            ok = o->nthreads > 0;
        } else if (strcmp(a, "--distribution") == 0) {
            ok = ycsb_dist_parse(v, &o->dist) == 0;
            o->dist_set = true;
        } else if (strcmp(a, "--records") == 0) {
            o->records = strtoull(v, NULL, 10);
            ok = o->records > 0 && o->records < YCSB_INSERT_STRIDE;
        } else if (strcmp(a, "--ops") == 0) {
            o->ops = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--warmup") == 0) {
            o->warmup = atof(v);
            ok = o->warmup >= 0;
        } else if (strcmp(a, "--duration") == 0) {
            o->duration = atof(v);
            ok = o->duration > 0;
        } else if (strcmp(a, "--runs") == 0) {
            o->runs = atoi(v);
            ok = o->runs >= 1 && o->runs <= 99;
        } else if (strcmp(a, "--workers") == 0) {
            o->workers = atoi(v);
            ok = o->workers >= 1 && o->workers <= 64;
        } else if (strcmp(a, "--load-threads") == 0) {
            o->load_threads = atoi(v);
            ok = o->load_threads >= 1 && o->load_threads <= 256;
        } else if (strcmp(a, "--fn-chunk-ms") == 0) {
            o->chunk_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--redis-port") == 0) {
            o->redis_port = atoi(v);
            ok = o->redis_port > 0 && o->redis_port < 65536;
        } else if (strcmp(a, "--dir") == 0) {
            o->dir = v;
        } else if (strcmp(a, "--tier") == 0) {
            o->tier = v;
            ok = !strcmp(v, "interp") || !strcmp(v, "jit");
        } else if (strcmp(a, "--fn") == 0) {
            o->fn_path = v;
        } else if (strcmp(a, "--policy") == 0) {
            o->policy = v;
        } else if (strcmp(a, "--measurement") == 0) {
            o->measurement = v;
        } else if (strcmp(a, "--identity") == 0) {
            o->identity = v;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else if (strcmp(a, "--plot") == 0) {
            o->plot = v;
        } else {
            cli_err("bench ycsb: unknown option %s", a);
            return -1;
        }
        if (!ok) {
            cli_err("bench ycsb: bad value for %s: %s", a, v);
            return -1;
        }
    }
    if (!o->tier) /* the JIT when this build has it (the paper's setting), else the interpreter */
        o->tier = cli_jit_available() ? "jit" : "interp";
    return 0;
}

static int cmp_tput(const void *a, const void *b) {
    const result *x = a, *y = b;
    return x->tput < y->tput ? -1 : x->tput > y->tput;
}

/* Counts add up, nothing failed, every read found the record of its key. */
static bool check_result(const result *r, const yopts *o) {
    bool ok = r->st->notfound == 0 && r->st->bad == 0;
    uint64_t total = 0;
    for (int op = 0; op < YCSB_NOPS; op++) {
        ok = ok && r->st->errors[op] == 0 && r->st->hist[op].n == r->st->ops[op];
        total += r->st->ops[op];
    }
    if (o->ops)
        ok = ok && total == o->ops * r->threads;
    else
        ok = ok && total > 0;
    if (!ok)
        cli_err("bench ycsb: check failed for %s %c x%u: %llu ops (expected %llu), %llu absent, "
                "%llu wrong records",
                r->t->label, r->workload, r->threads, (unsigned long long)total,
                (unsigned long long)(o->ops * r->threads), (unsigned long long)r->st->notfound,
                (unsigned long long)r->st->bad);
    return ok;
}

int cmd_bench_ycsb(int argc, char **argv) {
    yopts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc != 0)
        return prc > 0 ? EXIT_OK : EXIT_USAGE;
    env e;
    memset(&e, 0, sizeof e);
    ssize_t sl = readlink("/proc/self/exe", e.self, sizeof e.self - 1);
    if (sl <= 0) {
        cli_err("bench ycsb: cannot find this binary");
        return EXIT_FAILED;
    }
    e.self[sl] = 0;
    char fnpath[4200];
    if (!o.fn_path) {
        char *slash = strrchr(e.self, '/');
        snprintf(fnpath, sizeof fnpath, "%.*s/bench/ycsb.wasm", (int)(slash - e.self), e.self);
        o.fn_path = fnpath;
    }
    bool want_redis = false, want_psl = false, want_zmq = false, want_tcp = false;
    for (int i = 0; i < o.ntargets; i++)
        if (o.targets[i].kind == T_REDIS)
            want_redis = true;
        else if (o.targets[i].kind == T_ZMQ)
            want_zmq = true;
        else if (o.targets[i].kind == T_TCP)
            want_tcp = true;
        else
            want_psl = true;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int nres = 0, rc = EXIT_OK;
    result *rs =
        xcalloc((size_t)o.nworkloads * (size_t)o.nthreads * (size_t)o.ntargets, sizeof *rs);
    result *tries = xcalloc((size_t)o.runs, sizeof *tries);
    if (want_redis && (rc = redis_start(&e, &o)) != 0)
        goto out;
    if (want_zmq && (rc = zmq_echo_start(&e)) != 0) /* forks: before any ZeroMQ context */
        goto out;
    if (want_tcp && (rc = tcp_echo_start(&e)) != 0)
        goto out;
    if (want_psl && (rc = psl_start(&e, &o)) != 0)
        goto out;
    if (want_zmq && !e.zctx)
        e.zctx = zmq_ctx_new();
    for (int i = 0; i < o.ntargets && !g_stop; i++) {
        const target *t = &o.targets[i];
        if (t->kind == T_ZMQ || t->kind == T_TCP)
            continue; /* nothing to load */
        bool *loaded = t->kind == T_REDIS ? &e.redis_loaded : &e.psl_loaded;
        if (!*loaded) {
            if (load(&e, &o, t) != 0) {
                rc = EXIT_FAILED;
                goto out;
            }
            *loaded = true;
        }
    }
    if (!o.quiet)
        fprintf(stderr,
                "ycsb: %llu records, warm-up %.0f s, %s%.0f s per point, %d run(s) each, "
                "seed %llu\n",
                (unsigned long long)o.records, o.warmup, o.ops ? "at most " : "", o.duration,
                o.runs, (unsigned long long)o.seed);
    print_header();
    /* Side by side: for each workload and thread count, every target in turn. */
    for (int wi = 0; wi < o.nworkloads && !g_stop; wi++) {
        ycsb_workload w;
        ycsb_workload_get(o.workloads[wi], &w);
        if (o.dist_set)
            w.dist = o.dist;
        for (int ti = 0; ti < o.nthreads && !g_stop; ti++) {
            for (int k = 0; k < o.ntargets && !g_stop; k++) {
                int ok = 0;
                for (int r = 0; r < o.runs && !g_stop; r++) {
                    if (run_once(&e, &o, &o.targets[k], &w, o.threads[ti], &tries[ok]) != 0) {
                        free(tries[ok].st);
                        rc = EXIT_FAILED;
                        continue;
                    }
                    ok++;
                }
                if (!ok)
                    continue;
                qsort(tries, (size_t)ok, sizeof *tries, cmp_tput);
                rs[nres] = tries[ok / 2];
                for (int r = 0; r < ok; r++)
                    if (r != ok / 2)
                        free(tries[r].st);
                print_result(&rs[nres]);
                if (o.check && !check_result(&rs[nres], &o))
                    rc = EXIT_FAILED;
                nres++;
            }
        }
    }
    if (g_stop)
        rc = EXIT_INTERRUPTED;
    if (o.csv && nres && write_csv(o.csv, rs, nres) != 0)
        rc = EXIT_IO;
    if (o.plot && nres && write_plot(o.plot, rs, nres, o.records) != 0)
        rc = EXIT_FAILED;
out:
    redis_stop(&e);
    psl_stop(&e);
    for (int i = 0; i < nres; i++)
        free(rs[i].st);
    free(rs);
    free(tries);
    curl_global_cleanup();
    return rc;
}
