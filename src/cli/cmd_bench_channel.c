/* psl bench channel: 1 KiB messages over the attested secure channel against plain ZeroMQ
 * (same sockets, same echo loop, same process layout), and over the channel's stream transport
 * (plain TCP, stream://), in one run: handshake time (including
 * report creation and verification on both sides), round trips with one message in flight, and
 * throughput with many in flight. The echo server runs in a thread of this process. Both echo
 * loops receive the same way (a non-blocking try first, zmq_poll only when nothing is queued).
 * Besides wall-clock rates it reports the process CPU time per message of the throughput phase
 * (all threads: client, server, ZeroMQ I/O), which is what a loaded machine makes scarce, and
 * with --repeat N it alternates plain, secure and batched N times and prints medians. */
#include "cli/cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "tee/tee.h"

enum { PLAIN, SECURE, BATCHED, STREAM, NMODES }; /* transports, in the order they are run */
static const char *const mode_name[NMODES] = {"plain zeromq", "secure channel", "secure, batched",
                                              "secure, stream"};
static const char *const mode_short[NMODES] = {"plain", "secure", "batched", "stream"};

typedef struct bench_srv {
    int mode;
    void *ctx;
    const net_auth *auth;
    char endpoint[256];
    atomic_int ready, stop;
} bench_srv;

static void *srv_main(void *arg) {
    bench_srv *b = arg;
    if (b->mode != PLAIN) {
        net_server *s;
        const char *ep = b->mode == STREAM ? "stream://127.0.0.1:0" : "tcp://127.0.0.1:0";
        if (net_server_open(b->ctx, ep, b->auth, &s) != 0) {
            atomic_store(&b->ready, -1);
            return NULL;
        }
        snprintf(b->endpoint, sizeof b->endpoint, "%s", net_server_endpoint(s));
        atomic_store(&b->ready, 1);
        while (!atomic_load(&b->stop)) {
            uint64_t peer;
            uint8_t *m;
            size_t n;
            if (net_server_recv(s, 100, &peer, &m, &n) != 0)
                continue;
            /* batched: queue the echo; the server sends its queue as one frame when it finds no
             * more input waiting */
            if ((b->mode == BATCHED ? net_server_send_more(s, peer, m, n)
                                    : net_server_send(s, peer, m, n)) != 0)
                fprintf(stderr, "psl bench: echo to peer failed\n");
            free(m);
        }
        net_server_close(s);
        return NULL;
    }
    void *sock = zmq_socket(b->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, "tcp://127.0.0.1:0") != 0) {
        atomic_store(&b->ready, -1);
        return NULL;
    }
    size_t el = sizeof b->endpoint;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, b->endpoint, &el);
    atomic_store(&b->ready, 1);
    while (!atomic_load(&b->stop)) {
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&id, sock, ZMQ_DONTWAIT) < 0) {
            zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
            if (zmq_poll(&it, 1, 100) <= 0 || zmq_msg_recv(&id, sock, 0) < 0) {
                zmq_msg_close(&id);
                zmq_msg_close(&m);
                continue;
            }
        }
        zmq_msg_recv(&m, sock, 0);
        zmq_msg_send(&id, sock, ZMQ_SNDMORE);
        zmq_msg_send(&m, sock, 0);
        zmq_msg_close(&id);
        zmq_msg_close(&m);
    }
    zmq_close(sock);
    return NULL;
}

typedef struct bench_res {
    double rtt_us, tput, hs_us, cpu_us; /* cpu_us: process CPU per message, throughput phase */
} bench_res;

static double cpu_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int c_send(int mode, net_chan *c, void *sock, const uint8_t *b, size_t n, bool more) {
    if (mode == BATCHED && more)
        return net_chan_send_more(c, b, n);
    if (mode != PLAIN)
        return net_chan_send(c, b, n);
    return zmq_send(sock, b, n, 0) == (int)n ? 0 : ERR_IO;
}

static int c_recv(int mode, net_chan *c, void *sock) {
    if (mode != PLAIN) {
        uint8_t *m;
        size_t n;
        int rc = net_chan_recv(c, 5000, &m, &n);
        free(m);
        return rc;
    }
    uint8_t buf[2048];
    return zmq_recv(sock, buf, sizeof buf, 0) >= 0 ? 0 : ERR_IO;
}

static int run_one(int mode, const net_auth *auth, size_t size, int rtts, int msgs, int window,
                   int handshakes, bench_res *res) {
    void *ctx = zmq_ctx_new();
    bench_srv b = {.mode = mode, .ctx = ctx, .auth = auth};
    pthread_t th;
    pthread_create(&th, NULL, srv_main, &b);
    while (atomic_load(&b.ready) == 0)
        ;
    int rc = atomic_load(&b.ready) < 0 ? ERR_IO : 0;
    net_chan *c = NULL;
    void *sock = NULL;
    char why[300];
    uint8_t *buf = xcalloc(1, size);
    memset(buf, 0x42, size);
    res->hs_us = 0;
    if (!rc && mode != PLAIN) {
        uint64_t t0 = plat_now_ns();
        for (int i = 0; i < handshakes && !rc; i++) {
            rc = net_chan_connect(ctx, b.endpoint, auth, &c, why, sizeof why);
            if (!rc && i + 1 < handshakes) {
                net_chan_close(c);
                c = NULL;
            }
        }
        res->hs_us = (double)(plat_now_ns() - t0) / 1e3 / handshakes;
    } else if (!rc) {
        sock = zmq_socket(ctx, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
        rc = zmq_connect(sock, b.endpoint) == 0 ? 0 : ERR_IO;
    }
    if (!rc) {
        uint64_t t0 = plat_now_ns();
        for (int i = 0; i < rtts && !rc; i++) {
            rc = c_send(mode, c, sock, buf, size, false);
            if (!rc)
                rc = c_recv(mode, c, sock);
        }
        res->rtt_us = (double)(plat_now_ns() - t0) / 1e3 / rtts;
        t0 = plat_now_ns();
        double c0 = cpu_now_us();
        int sent = 0, got = 0, flush_every = window / 4 > 0 ? window / 4 : 1;
        while (!rc && got < msgs) {
            while (sent < msgs && sent - got < window && !rc)
                rc = c_send(mode, c, sock, buf, size, (sent + 1) % flush_every != 0), sent++;
            if (!rc)
                rc = c_recv(mode, c, sock), got++; /* batched: waiting flushes the queue */
        }
        res->tput = (double)msgs / ((double)(plat_now_ns() - t0) / 1e9);
        res->cpu_us = (cpu_now_us() - c0) / msgs;
    }
    if (rc)
        cli_err("bench channel (%s): %s", mode_name[mode], c ? net_chan_error(c) : err_str(rc));
    free(buf);
    net_chan_close(c);
    if (sock)
        zmq_close(sock);
    atomic_store(&b.stop, 1);
    pthread_join(th, NULL);
    zmq_ctx_term(ctx);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of @p n values (sorts a copy). */
static double median(const double *v, int n) {
    double tmp[64];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static int cmd_bench_channel(int argc, char **argv) {
    int msgs = 100000, rtts = 20000, window = 64, hs = 200, repeat = 1, only = -1;
    const char *home = NULL;
    const struct {
        const char *name;
        int *v, max;
    } nums[] = {{"--messages", &msgs, 100000000},
                {"--round-trips", &rtts, 100000000},
                {"--window", &window, 1000000},
                {"--handshakes", &hs, 1000000},
                {"--repeat", &repeat, 64}};
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        while (k < sizeof nums / sizeof nums[0] && strcmp(argv[i], nums[k].name) != 0)
            k++;
        if (i + 1 < argc && k < sizeof nums / sizeof nums[0]) {
            if (cli_opt_int("bench channel", argv[i], argv[i + 1], 1, nums[k].max, nums[k].v) != 0)
                return EXIT_USAGE;
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--home") == 0) {
            home = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--only") == 0) {
            const char *m = argv[++i];
            only = -2;
            for (int md = 0; md < NMODES; md++)
                if (!strcmp(m, mode_short[md]))
                    only = md;
            if (only == -2) {
                cli_err("bench channel: --only takes plain, secure, batched or stream");
                return EXIT_USAGE;
            }
        } else {
            cli_err("bench channel: unknown option %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    tee_opts to = {.home = home};
    tee_enclave *t;
    if (tee_open(&to, &t) != 0)
        return EXIT_IO;
    tee_policy p;
    tee_policy_for(t, false, &p);
    net_auth a = {.tee = t, .peer = &p, .name = "bench"};
    if (only >= 0) { /* one transport, once (for profiling) */
        bench_res res;
        int rc = run_one(only, &a, 1024, rtts, msgs, window, hs, &res);
        if (!rc)
            printf("%s: round trip %.1f us, %.0f msg/s, %.2f CPU us/msg, handshake %.1f us\n",
                   mode_name[only], res.rtt_us, res.tput, res.cpu_us, res.hs_us);
        tee_policy_fini(&p);
        tee_close(t);
        return rc ? EXIT_FAILED : EXIT_OK;
    }
    /* Columns: 3 per transport (rtt, tput, cpu), then handshake, then for secure and batched
     * the throughput ratio and the CPU ratio (plain cpu / theirs) against plain. */
    enum { HS = 3 * NMODES, RATIO = HS + 1, NCOL = RATIO + 2 * (NMODES - 1) };
    double col[NCOL][64];
    int rc = 0;
    printf("psl bench channel: 1 KiB messages, loopback TCP, echo server in a thread\n");
    printf("AEAD: %s; window %d, %d messages, %d round trips, %d handshakes per run\n",
           cr_aead_name(cr_aead_pick(cr_aead_supported())), window, msgs, rtts, hs);
    printf("secure: one frame (one AEAD call, one ZeroMQ message) per message; batched: the\n"
           "client queues its window with net_chan_send_more and the echo server answers with\n"
           "net_server_send_more, so queued messages share frames; stream: one frame per\n"
           "message on the stream transport (plain TCP, no ZeroMQ)\n");
    if (repeat > 1)
        printf("%-4s %12s %12s %12s %12s %12s %10s %8s %8s %8s\n", "run", "plain msg/s",
               "secure msg/s", "batched msg/s", "stream msg/s", "hs us", "plain cpu", "secure%",
               "batched%", "stream%");
    for (int r = 0; r < repeat && !rc; r++) {
        bench_res res[NMODES];
        for (int k = 0; k < NMODES && !rc; k++)
            rc = run_one(k, &a, 1024, rtts, msgs, window, k == BATCHED ? 1 : hs, &res[k]);
        if (rc)
            break;
        for (int k = 0; k < NMODES; k++) {
            col[3 * k][r] = res[k].rtt_us;
            col[3 * k + 1][r] = res[k].tput;
            col[3 * k + 2][r] = res[k].cpu_us;
        }
        col[HS][r] = res[SECURE].hs_us;
        for (int k = 1; k < NMODES; k++) {
            col[RATIO + 2 * (k - 1)][r] = 100.0 * res[k].tput / res[PLAIN].tput;
            col[RATIO + 2 * (k - 1) + 1][r] = 100.0 * res[PLAIN].cpu_us / res[k].cpu_us;
        }
        if (repeat > 1) {
            printf("%-4d %12.0f %12.0f %12.0f %12.0f %12.1f %10.2f %8.1f %8.1f %8.1f\n", r + 1,
                   res[PLAIN].tput, res[SECURE].tput, res[BATCHED].tput, res[STREAM].tput,
                   col[HS][r], res[PLAIN].cpu_us, col[RATIO][r], col[RATIO + 2][r],
                   col[RATIO + 4][r]);
            fflush(stdout);
        }
    }
    if (!rc) {
        double m[NCOL];
        for (int k = 0; k < NCOL; k++)
            m[k] = median(col[k], repeat);
        if (repeat > 1)
            printf("medians of %d runs:\n", repeat);
        printf("%-16s %14s %18s %14s %14s\n", "transport", "round trip us", "throughput msg/s",
               "CPU us/msg", "handshake us");
        for (int k = 0; k < NMODES; k++) {
            char hsb[32] = "-";
            if (k == SECURE)
                snprintf(hsb, sizeof hsb, "%.1f", m[HS]);
            printf("%-16s %14.1f %18.0f %14.2f %14s\n", mode_name[k], m[3 * k], m[3 * k + 1],
                   m[3 * k + 2], hsb);
        }
        for (int k = 1; k < NMODES; k++)
            printf("%s/plain throughput: %.1f%%%s; CPU per message plain/%s: %.1f%%\n",
                   mode_short[k], m[RATIO + 2 * (k - 1)],
                   repeat > 1 ? " (median of the per-run ratios)" : "", mode_short[k],
                   m[RATIO + 2 * (k - 1) + 1]);
    }
    tee_policy_fini(&p);
    tee_close(t);
    return rc ? EXIT_FAILED : EXIT_OK;
}

/* `psl bench KIND`: dispatch to the benchmark of that kind. Other benchmarks (capsule, ycsb,
 * ...) add a branch here. */
void cmd_bench_help(FILE *out) {
    fprintf(out, "usage: psl bench channel [--messages N] [--round-trips N] [--window N]\n"
                 "                         [--handshakes N] [--repeat N] [--home DIR]\n"
                 "                         [--only plain|secure|batched|stream]\n"
                 "       psl bench capsule [--seconds S] [--writers N] [--port P]\n"
                 "       psl bench ycsb [--target redis,psl-fn,...] [--workload a,c] ... (--help)\n"
                 "channel: 1 KiB messages over the attested secure channel (on ZeroMQ, batched,\n"
                 "  and on the stream transport) vs plain ZeroMQ.\n"
                 "capsule: DataCapsule appends to 3 local storage replicas, reads, raw limits.\n"
                 "       psl bench dnn [--lambdas 1,2,4] [--mode sync,async] ... (--help)\n"
                 "ycsb: YCSB core workloads against psl (in-function, client) and Redis.\n"
                 "dnn: data-parallel MLP training on Fashion-MNIST across lambdas.\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "channel") == 0)
        return cmd_bench_channel(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "capsule") == 0) /* cmd_capsule.c */
        return cmd_bench_capsule(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "ycsb") == 0) /* cmd_ycsb.c */
        return cmd_bench_ycsb(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "dnn") == 0) /* cmd_dnn.c */
        return cmd_bench_dnn(argc - 1, argv + 1);
    cmd_bench_help(stderr);
    return EXIT_USAGE;
}
