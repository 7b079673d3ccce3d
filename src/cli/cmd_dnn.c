/* psl bench dnn: data-parallel training of an MLP on Fashion-MNIST across K concurrent
 * invocations ("lambdas") of the WebAssembly function examples/dnn/dnn.c, exchanging gradients
 * (synchronous mode: a barrier per step on psl locks) or parameter deltas (asynchronous,
 * Hogwild-style mode: eventual consistency) through the key-value store. Design: docs/dnn.md.
 *
 * The driver reads the IDX files of the Debian package dataset-fashion-mnist, starts a cluster
 * (psl up in a temporary directory) unless --dir names a running one, deploys the function,
 * loads the first --train training and --test test images into the store through it (1024
 * images per key), and then, for every mode and every K: initialises the parameters, and per
 * epoch runs K concurrent train invocations (one per lambda, each on its shard), waits for all,
 * and evaluates on the test images. It reports per epoch the test accuracy and loss, the mean
 * training loss, the epoch's wall time, steps/s and the KVS bytes the lambdas moved. */
#include "cli/cli.h"

#include <curl/curl.h>
#include "cli/http_lazy.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "base/base.h"
#include "base/err.h"
#include "platform/platform.h"

#define DNN_PKG "dataset-fashion-mnist"
#define DNN_DATA_DIR "/usr/share/datasets/fashion-mnist"
#define NPIX 784
#define REC (1 + NPIX) /* label byte + pixels, as the function stores them */
#define PER_KEY 1024
#define MAX_K 16
#define MAX_RUNS 32
#define MAX_EPOCHS 64

typedef struct dopts {
    uint32_t lambdas[8];
    int nlambdas;
    bool modes[2]; /* [0] sync, [1] async */
    int epochs, batch, workers, publish;
    long train, test;
    double lr;
    unsigned seed;
    const char *dir, *fn_path, *data_dir, *csv, *plot, *tier;
    double min_acc; /* exit 1 when a run's final accuracy is below (0: no check) */
    bool quiet, verbose;
} dopts;

typedef struct epoch_row {
    double acc, test_loss, train_loss, secs, eval_secs;
    long steps, images;
    unsigned long long bytes;
} epoch_row;

typedef struct run_result {
    bool sync;
    uint32_t K;
    int nepochs;
    epoch_row e[MAX_EPOCHS];
} run_result;

static double now_s(void) {
    return (double)plat_now_ns() / 1e9;
}

/* POST body to the function; @p out receives the answer (a NUL-terminated line, caller frees).
 * @return 0 when the HTTP status is 200 and the answer starts with "ok", else -1 (out has the
 * answer or the transport error). */
static int call_fn(const char *url, const void *body, size_t len, char **out) {
    cli_buf b = {0};
    CURL *c = curl_easy_init();
    int rc = -1;
    *out = NULL;
    if (!c)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 7200L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK) {
        cli_buf_write((char *)curl_easy_strerror(cc), 1, strlen(curl_easy_strerror(cc)), &b);
    } else if (code == 200 && b.p && strncmp(b.p, "ok", 2) == 0) {
        rc = 0;
    }
    if (!b.p)
        cli_buf_write("(empty answer)", 1, 14, &b);
    char *nl = strchr(b.p, '\n');
    if (nl)
        *nl = 0;
    *out = b.p;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static double field(const char *s, const char *name) {
    char pat[40];
    snprintf(pat, sizeof pat, " %s=", name);
    const char *p = strstr(s, pat);
    return p ? strtod(p + strlen(pat), NULL) : 0;
}

/* ---------- data: the IDX files of dataset-fashion-mnist ---------- */

static int read_gz(const char *path, uint8_t **out, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = xrealloc(b, cap);
        }
        int r = gzread(f, b + n, (unsigned)(cap - n));
        if (r < 0) {
            gzclose(f);
            free(b);
            return ERR_CORRUPT;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    gzclose(f);
    *out = b;
    *len = n;
    return 0;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The first @p want records (label + pixels) of set "train" or "t10k", in @p *out. */
static int load_idx(const char *dir, const char *set, long want, uint8_t **out) {
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, set);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, set);
    uint8_t *im = NULL, *lb = NULL;
    size_t ni = 0, nl = 0;
    if (read_gz(ip, &im, &ni) != 0 || read_gz(lp, &lb, &nl) != 0) {
        cli_err("bench dnn: cannot read %s and %s: install the Debian package %s "
                "(apt-get install %s; scripts/deps.sh) or give --data DIR",
                ip, lp, DNN_PKG, DNN_PKG);
        free(im);
        free(lb);
        return EXIT_IO;
    }
    int rc = 0;
    if (ni < 16 || nl < 8 || be32(im) != 0x803 || be32(lb) != 0x801 || be32(im + 8) != 28 ||
        be32(im + 12) != 28 || be32(im + 4) != be32(lb + 4) ||
        ni < 16 + (size_t)be32(im + 4) * NPIX || nl < 8 + (size_t)be32(lb + 4)) {
        cli_err("bench dnn: %s or %s is not an IDX file of 28x28 images and labels", ip, lp);
        rc = EXIT_IO;
    } else if ((long)be32(im + 4) < want) {
        cli_err("bench dnn: %s holds %u images, %ld asked for", ip, be32(im + 4), want);
        rc = EXIT_USAGE;
    } else {
        uint8_t *r = xmalloc((size_t)want * REC);
        for (long i = 0; i < want; i++) {
            r[(size_t)i * REC] = lb[8 + i];
            memcpy(r + (size_t)i * REC + 1, im + 16 + (size_t)i * NPIX, NPIX);
        }
        *out = r;
    }
    free(im);
    free(lb);
    return rc;
}

/* Store records through the function's loader ("put KEY"), PER_KEY per key. */
static int load_set(const char *url, const char *set, const uint8_t *recs, long n) {
    size_t hdr_max = 64;
    uint8_t *body = xmalloc(hdr_max + (size_t)PER_KEY * REC);
    int rc = 0;
    for (long j = 0; j * PER_KEY < n && rc == 0; j++) {
        long cnt = n - j * PER_KEY < PER_KEY ? n - j * PER_KEY : PER_KEY;
        int h = snprintf((char *)body, hdr_max, "put dnn/data/%s/%ld\n", set, j);
        memcpy(body + h, recs + (size_t)j * PER_KEY * REC, (size_t)cnt * REC);
        char *ans;
        if (call_fn(url, body, (size_t)h + (size_t)cnt * REC, &ans) != 0) {
            cli_err("bench dnn: loading %s/%ld: %s", set, j, ans ? ans : "?");
            rc = EXIT_FAILED;
        }
        free(ans);
    }
    free(body);
    return rc;
}

/* ---------- cluster ---------- */

typedef struct denv {
    char self[4096], tmpdir[256], url[512];
    const char *dir;
} denv;

static int cluster_start(denv *e, const dopts *o, uint32_t maxk) {
    if (o->dir) {
        e->dir = o->dir;
    } else {
        snprintf(e->tmpdir, sizeof e->tmpdir, "/tmp/psl-dnn.XXXXXX");
        if (!mkdtemp(e->tmpdir)) {
            e->tmpdir[0] = 0;
            cli_err("bench dnn: mkdtemp: %s", strerror(errno));
            return EXIT_IO;
        }
        e->dir = e->tmpdir;
        char w[16], t[16];
        snprintf(w, sizeof w, "%d", o->workers);
        /* Every lambda holds a worker thread for its whole epoch; one more for eval. */
        snprintf(t, sizeof t, "%u", (maxk + (uint32_t)o->workers - 1) / (uint32_t)o->workers + 1);
        if (o->tier)
            setenv("PSL_TIER", o->tier, 1);
        char *av[] = {e->self, "up", "--workers", w, "--threads", t, "--dir", e->tmpdir, NULL};
        if (!o->quiet)
            fprintf(stderr, "dnn: psl up --workers %s --threads %s --dir %s%s%s\n", w, t, e->tmpdir,
                    o->tier ? " (PSL_TIER=" : "", o->tier ? o->tier : "");
        if (cli_run_wait(av, true) != 0) {
            cli_err("bench dnn: psl up failed (logs in %s/logs)", e->tmpdir);
            return EXIT_FAILED;
        }
    }
    char *gw = cli_cluster_gateway(e->dir);
    if (!gw) {
        cli_err("bench dnn: no cluster with a gateway in %s (cluster.json)", e->dir);
        return EXIT_FAILED;
    }
    snprintf(e->url, sizeof e->url, "%s/function/dnn", gw);
    free(gw);
    char *av[] = {e->self,   "deploy",          "dnn", (char *)o->fn_path, "--timeout-ms",
                  "7200000", "--max-memory-mb", "512", "--max-request",    "2097152",
                  "--dir",   (char *)e->dir,    NULL};
    if (cli_run_wait(av, true) != 0) {
        cli_err("bench dnn: psl deploy dnn %s failed", o->fn_path);
        return EXIT_FAILED;
    }
    return 0;
}

static void cluster_stop(denv *e) {
    if (!e->tmpdir[0])
        return;
    char *down[] = {e->self, "down", "--dir", e->tmpdir, NULL};
    cli_run_wait(down, true);
    if (!getenv("PSL_DNN_KEEP")) {
        char *rm[] = {"/bin/rm", "-rf", e->tmpdir, NULL};
        cli_run_wait(rm, true);
    }
    e->tmpdir[0] = 0;
}

/* ---------- one training run ---------- */

typedef struct lambda_job {
    const char *url, *run;
    uint32_t k;
    int ep;
    char req[256];
    int rc;
    char *ans;
} lambda_job;

/* One lambda's invocation. When it fails (a trap, its time limit, a lost worker), the run is
 * aborted at once ("abort RUN REASON", examples/dnn/dnn.c), so in sync mode the other lambdas
 * leave the barrier instead of waiting for it until their own time limit. */
static void *lambda_main(void *arg) {
    lambda_job *j = arg;
    j->rc = call_fn(j->url, j->req, strlen(j->req), &j->ans);
    if (j->rc != 0) {
        char req[512], *ans = NULL;
        snprintf(req, sizeof req, "abort %s lambda %u failed in epoch %d: %.300s", j->run, j->k,
                 j->ep + 1, j->ans ? j->ans : "?");
        if (call_fn(j->url, req, strlen(req), &ans) != 0)
            cli_err("bench dnn: cannot abort run %s: %s", j->run, ans ? ans : "?");
        free(ans);
    }
    return NULL;
}

static int train_run(const denv *e, const dopts *o, bool sync, uint32_t K, run_result *r) {
    char run[64], req[256], *ans = NULL;
    snprintf(run, sizeof run, "%s%u-%d-%ld", sync ? "s" : "a", K, (int)getpid(),
             (long)plat_now_ns() % 1000000);
    r->sync = sync;
    r->K = K;
    r->nepochs = 0;
    snprintf(req, sizeof req, "init %s %u", run, o->seed);
    if (call_fn(e->url, req, strlen(req), &ans) != 0) {
        cli_err("bench dnn: init: %s", ans);
        free(ans);
        return EXIT_FAILED;
    }
    free(ans);
    double cum = 0;
    for (int ep = 0; ep < o->epochs; ep++) {
        lambda_job jobs[MAX_K];
        pthread_t th[MAX_K];
        double t0 = now_s();
        for (uint32_t k = 0; k < K; k++) {
            jobs[k] = (lambda_job){.url = e->url, .run = run, .k = k, .ep = ep};
            snprintf(jobs[k].req, sizeof jobs[k].req, "train %s %s %u %u %d %ld %d %g %d", run,
                     sync ? "sync" : "async", K, k, ep, o->train, o->batch,
                     sync ? o->lr * K : o->lr, o->publish);
            if (pthread_create(&th[k], NULL, lambda_main, &jobs[k]) != 0) {
                jobs[k].rc = -1;
                th[k] = 0;
                lambda_main(&jobs[k]);
            }
        }
        epoch_row *row = &r->e[ep];
        memset(row, 0, sizeof *row);
        int bad = 0;
        double loss = 0;
        for (uint32_t k = 0; k < K; k++) {
            if (th[k])
                pthread_join(th[k], NULL);
            if (jobs[k].rc != 0) {
                cli_err("bench dnn: lambda %u of %u, epoch %d: %s", k, K, ep + 1,
                        jobs[k].ans ? jobs[k].ans : "?");
                bad = 1;
            } else {
                if (o->verbose)
                    fprintf(stderr, "dnn: %s K=%u lambda %u epoch %d: %s\n",
                            sync ? "sync" : "async", K, k, ep + 1, jobs[k].ans);
                row->steps += (long)field(jobs[k].ans, "steps");
                row->images += (long)field(jobs[k].ans, "images");
                loss += field(jobs[k].ans, "loss");
                row->bytes +=
                    (unsigned long long)(field(jobs[k].ans, "get") + field(jobs[k].ans, "put"));
            }
            free(jobs[k].ans);
        }
        row->secs = now_s() - t0;
        if (bad)
            return EXIT_FAILED;
        row->train_loss = loss / K;
        cum += row->secs;
        double t1 = now_s();
        snprintf(req, sizeof req, "eval %s %s %u %ld", run, sync ? "sync" : "async", K, o->test);
        if (call_fn(e->url, req, strlen(req), &ans) != 0) {
            cli_err("bench dnn: eval: %s", ans);
            free(ans);
            return EXIT_FAILED;
        }
        row->eval_secs = now_s() - t1;
        row->acc = field(ans, "accuracy");
        row->test_loss = field(ans, "loss");
        free(ans);
        r->nepochs = ep + 1;
        printf("%-5s %2u %5d %8.2f%% %9.4f %10.4f %8.2f %8.2f %8.2f %10.1f\n",
               sync ? "sync" : "async", K, ep + 1, row->acc * 100, row->test_loss, row->train_loss,
               row->secs, cum, (double)row->steps / row->secs, (double)row->bytes / 1e6);
        fflush(stdout);
    }
    return 0;
}

/* ---------- output ---------- */

static int write_csv(const char *path, const run_result *rs, int n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_err("bench dnn: %s: %s", path, strerror(errno));
        return EXIT_IO;
    }
    fprintf(f, "mode,lambdas,epoch,test_accuracy,test_loss,train_loss,epoch_s,cum_s,steps,"
               "steps_per_s,kvs_bytes\n");
    for (int i = 0; i < n; i++) {
        double cum = 0;
        for (int ep = 0; ep < rs[i].nepochs; ep++) {
            const epoch_row *r = &rs[i].e[ep];
            cum += r->secs;
            fprintf(f, "%s,%u,%d,%.4f,%.5f,%.5f,%.3f,%.3f,%ld,%.3f,%llu\n",
                    rs[i].sync ? "sync" : "async", rs[i].K, ep + 1, r->acc, r->test_loss,
                    r->train_loss, r->secs, cum, r->steps, (double)r->steps / r->secs, r->bytes);
        }
    }
    fclose(f);
    return 0;
}

static int write_plot(const char *png, const run_result *rs, int n) {
    char dat[] = "/tmp/psl-dnn-plot.XXXXXX", gp[] = "/tmp/psl-dnn-gp.XXXXXX";
    int fd = mkstemp(dat);
    if (fd < 0)
        return EXIT_IO;
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < n; i++) {
        double cum = 0;
        fprintf(f, "# %s K=%u\n", rs[i].sync ? "sync" : "async", rs[i].K);
        for (int ep = 0; ep < rs[i].nepochs; ep++) {
            cum += rs[i].e[ep].secs;
            fprintf(f, "%.3f %.3f\n", cum, rs[i].e[ep].acc * 100);
        }
        fprintf(f, "\n\n");
    }
    fclose(f);
    fd = mkstemp(gp);
    if (fd < 0) {
        unlink(dat);
        return EXIT_IO;
    }
    f = fdopen(fd, "w");
    fprintf(f, "set terminal pngcairo size 900,600 noenhanced\nset output '%s'\n", png);
    fprintf(f, "set title 'psl bench dnn: test accuracy against training time'\n");
    fprintf(f, "set key bottom right\nset grid\nset xlabel 'training time (s)'\n"
               "set ylabel 'test accuracy (%%)'\nplot ");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s'%s' index %d using 1:2 with linespoints title '%s K=%u'", i ? ", " : "", dat,
                i, rs[i].sync ? "sync" : "async", rs[i].K);
    fprintf(f, "\n");
    fclose(f);
    return cli_gnuplot(gp, dat, png, "dnn");
}

/* ---------- options ---------- */

static void dnn_help(FILE *out) {
    fprintf(out,
            "usage: psl bench dnn [--lambdas LIST] [--mode sync,async] [--epochs E] [--train N]\n"
            "                     [--test N] [--batch B] [--lr X] [--workers W] [--dir DIR]\n"
            "                     [--publish-every P]\n"
            "                     [--tier interp|jit] [--fn FILE] [--data DIR] [--seed N]\n"
            "                     [--csv FILE] [--plot FILE.png] [--min-accuracy X]\n"
            "                     [--quiet|--verbose]\n"
            "  Trains a 784-128-10 MLP on Fashion-MNIST (Debian package " DNN_PKG ")\n"
            "  across K concurrent invocations of the dnn function, exchanging gradients\n"
            "  (sync: a barrier per step on psl locks) or parameter deltas (async, Hogwild)\n"
            "  through the key-value store, and reports per epoch the test accuracy and loss,\n"
            "  mean training loss, epoch time, steps/s and KVS bytes moved.\n"
            "  --lambdas: comma list of K (default 1,2,4); --mode (default sync,async);\n"
            "  --epochs (5); --train (10000) first training images, split into K shards;\n"
            "  --test (2000) first test images; --batch (32) per lambda and step; --lr (0.1):\n"
            "  sync mode averages K gradients of B images and steps with K x lr (linear\n"
            "  scaling: the same step per image as K=1); async lambdas step with lr each.\n"
            "  A cluster of --workers (2) is started in a temporary directory unless --dir\n"
            "  names a running one; --tier sets its workers' PSL_TIER (default interp).\n"
            "  --min-accuracy X: exit 1 unless every run ends with test accuracy >= X (0..1).\n"
            "  --publish-every P: async lambdas publish their delta every P steps (default 4).\n"
            "  --verbose: print every lambda's answer (compute and wait seconds, bytes).\n");
}

static int parse_opts(int argc, char **argv, dopts *o) {
    *o = (dopts){.epochs = 5,
                 .batch = 32,
                 .workers = 2,
                 .train = 10000,
                 .test = 2000,
                 .lr = 0.1,
                 .seed = 1,
                 .publish = 4,
                 .data_dir = DNN_DATA_DIR};
    o->lambdas[0] = 1, o->lambdas[1] = 2, o->lambdas[2] = 4, o->nlambdas = 3;
    o->modes[0] = o->modes[1] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            dnn_help(stdout);
            return -1;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "--verbose")) {
            *(a[2] == 'q' ? &o->quiet : &o->verbose) = true;
            continue;
        }
        if (!v) {
            cli_err("bench dnn: %s needs a value", a);
            return EXIT_USAGE;
        }
        i++;
        char *end = NULL;
        if (!strcmp(a, "--lambdas")) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            const char *parts[8];
            size_t n = cli_split_list(buf, parts, 8);
            o->nlambdas = 0;
            for (size_t k = 0; k < n; k++) {
                long x = strtol(parts[k], &end, 10);
                if (*end || x < 1 || x > MAX_K) {
                    cli_err("bench dnn: --lambdas: %s is not in 1..%d", parts[k], MAX_K);
                    return EXIT_USAGE;
                }
                o->lambdas[o->nlambdas++] = (uint32_t)x;
            }
            end = NULL; /* it pointed into buf, which ends here */
        } else if (!strcmp(a, "--mode")) {
            o->modes[0] = strstr(v, "sync") && (strstr(v, "sync") == v || strstr(v, ",sync"));
            o->modes[1] = strstr(v, "async") != NULL;
            if (!o->modes[0] && !o->modes[1]) {
                cli_err("bench dnn: --mode: sync, async or sync,async");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "--epochs"))
            o->epochs = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--train"))
            o->train = strtol(v, &end, 10);
        else if (!strcmp(a, "--test"))
            o->test = strtol(v, &end, 10);
        else if (!strcmp(a, "--batch"))
            o->batch = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--publish-every"))
            o->publish = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--workers"))
            o->workers = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--lr"))
            o->lr = strtod(v, &end);
        else if (!strcmp(a, "--min-accuracy"))
            o->min_acc = strtod(v, &end);
        else if (!strcmp(a, "--seed"))
            o->seed = (unsigned)strtoul(v, &end, 10);
        else if (!strcmp(a, "--dir"))
            o->dir = v;
        else if (!strcmp(a, "--fn"))
            o->fn_path = v;
        else if (!strcmp(a, "--data"))
            o->data_dir = v;
        else if (!strcmp(a, "--csv"))
            o->csv = v;
        else if (!strcmp(a, "--plot"))
            o->plot = v;
        else if (!strcmp(a, "--tier"))
            o->tier = v;
        else {
            cli_err("bench dnn: unknown option %s (psl bench dnn --help)", a);
            return EXIT_USAGE;
        }
        if (end && *end) {
            cli_err("bench dnn: %s: bad value %s", a, v);
            return EXIT_USAGE;
        }
    }
    if (o->epochs < 1 || o->epochs > MAX_EPOCHS || o->batch < 1 || o->workers < 1 ||
        o->publish < 1 || o->train < 1 || o->train > 60000 || o->test < 1 || o->test > 10000 ||
        !(o->lr > 0)) {
        cli_err("bench dnn: bad sizes (epochs 1..%d, train 1..60000, test 1..10000, batch, "
                "workers and lr > 0)",
                MAX_EPOCHS);
        return EXIT_USAGE;
    }
    for (int k = 0; k < o->nlambdas; k++)
        if (o->train / o->lambdas[k] < o->batch) {
            cli_err("bench dnn: %ld training images give lambda shards smaller than a batch "
                    "of %d at K=%u",
                    o->train, o->batch, o->lambdas[k]);
            return EXIT_USAGE;
        }
    return 0;
}

int cmd_bench_dnn(int argc, char **argv) {
    dopts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    denv e = {0};
    char fnpath[4200];
    ssize_t sl = readlink("/proc/self/exe", e.self, sizeof e.self - 1);
    if (sl <= 0) {
        cli_err("bench dnn: cannot find this binary");
        return EXIT_IO;
    }
    e.self[sl] = 0;
    if (!o.fn_path) {
        char *slash = strrchr(e.self, '/');
        snprintf(fnpath, sizeof fnpath, "%.*s/examples/dnn.wasm", (int)(slash - e.self), e.self);
        o.fn_path = fnpath;
    }
    if (access(o.fn_path, R_OK) != 0) {
        cli_err("bench dnn: cannot read the dnn function %s (build it: cmake --build build)",
                o.fn_path);
        return EXIT_IO;
    }
    uint8_t *train = NULL, *test = NULL;
    if ((rc = load_idx(o.data_dir, "train", o.train, &train)) != 0 ||
        (rc = load_idx(o.data_dir, "t10k", o.test, &test)) != 0) {
        free(train);
        return rc;
    }
    uint32_t maxk = 1;
    for (int k = 0; k < o.nlambdas; k++)
        maxk = o.lambdas[k] > maxk ? o.lambdas[k] : maxk;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run_result *rs = xcalloc(MAX_RUNS, sizeof *rs);
    int nr = 0;
    if ((rc = cluster_start(&e, &o, maxk)) != 0)
        goto done;
    double t0 = now_s();
    if ((rc = load_set(e.url, "tx", train, o.train)) != 0 ||
        (rc = load_set(e.url, "ex", test, o.test)) != 0)
        goto done;
    if (!o.quiet)
        fprintf(stderr, "dnn: loaded %ld training and %ld test images into the store in %.1f s\n",
                o.train, o.test, now_s() - t0);
    printf("# psl bench dnn: MLP 784-128-10, %ld training images (split in K shards), %ld test "
           "images, batch %d per lambda, lr %g (x K in sync mode), %d epochs\n",
           o.train, o.test, o.batch, o.lr, o.epochs);
    printf("%-5s %2s %5s %9s %9s %10s %8s %8s %8s %10s\n", "mode", "K", "epoch", "test_acc",
           "test_loss", "train_loss", "epoch_s", "cum_s", "steps/s", "kvs_MB");
    for (int m = 0; m < 2 && rc == 0; m++) {
        if (!o.modes[m])
            continue;
        for (int k = 0; k < o.nlambdas && rc == 0 && nr < MAX_RUNS; k++) {
            rc = train_run(&e, &o, m == 0, o.lambdas[k], &rs[nr]);
            if (rs[nr].nepochs > 0)
                nr++;
        }
    }
    if (nr > 0) {
        printf(
            "\n# summary: mean epoch time, speed-up over K=1 of the same mode, final accuracy\n");
        printf("%-5s %2s %10s %8s %9s %12s\n", "mode", "K", "epoch_s", "speedup", "final_acc",
               "MB/epoch");
        for (int i = 0; i < nr; i++) {
            double s = 0, base = 0, mb = 0;
            for (int ep = 0; ep < rs[i].nepochs; ep++)
                s += rs[i].e[ep].secs, mb += (double)rs[i].e[ep].bytes / 1e6;
            s /= rs[i].nepochs;
            for (int j = 0; j < nr; j++)
                if (rs[j].sync == rs[i].sync && rs[j].K == 1) {
                    for (int ep = 0; ep < rs[j].nepochs; ep++)
                        base += rs[j].e[ep].secs;
                    base /= rs[j].nepochs;
                }
            char sp[16] = "-";
            if (base > 0)
                snprintf(sp, sizeof sp, "%.2fx", base / s);
            printf("%-5s %2u %10.2f %8s %8.2f%% %12.1f\n", rs[i].sync ? "sync" : "async", rs[i].K,
                   s, sp, rs[i].e[rs[i].nepochs - 1].acc * 100, mb / rs[i].nepochs);
        }
    }
    if (o.min_acc > 0)
        for (int i = 0; i < nr && rc == 0; i++)
            if (rs[i].e[rs[i].nepochs - 1].acc < o.min_acc) {
                cli_err("bench dnn: %s K=%u ended at %.2f%% test accuracy, below %.2f%%",
                        rs[i].sync ? "sync" : "async", rs[i].K,
                        rs[i].e[rs[i].nepochs - 1].acc * 100, o.min_acc * 100);
                rc = EXIT_FAILED;
            }
    if (rc == 0 && o.csv)
        rc = write_csv(o.csv, rs, nr);
    if (rc == 0 && o.plot)
        rc = write_plot(o.plot, rs, nr);
done:
    cluster_stop(&e);
    curl_global_cleanup();
    free(rs);
    free(train);
    free(test);
    return rc;
}
