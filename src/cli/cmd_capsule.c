/* psl capsule: operator commands for DataCapsules (keygen, create, append, read, verify) and
 * `psl bench capsule`. Everything goes through src/capsule; storage replicas are separate
 * `psl storage` processes. */
#include "cli/cli.h"

#include "capsule/capsule.h"
#include "crypto/crypto.h"
#include "platform/platform.h"
#include "storage/storage.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void cmd_capsule_help(FILE *out) {
    fprintf(
        out,
        "usage: psl capsule keygen --keys FILE\n"
        "       psl capsule create --replicas EP,EP,EP --keys FILE [--name NAME] [--journal FILE]\n"
        "       psl capsule append --replicas LIST --keys FILE --capsule ID [--journal FILE]\n"
        "                          [--stream N [--prefix P] [--window W]] [TEXT...]\n"
        "       psl capsule read   --replicas LIST --keys FILE --capsule ID [--from N] [--to N]\n"
        "       psl capsule verify --replicas LIST --capsule ID [--known-seq N]\n"
        "Options shared by read/verify: --quorum Q (answers needed; default f+1).\n"
        "create prints the capsule id. append prints 'SEQ TEXT' for each record once it is\n"
        "durable on f+1 replicas. read prints 'SEQ<TAB>TEXT' for verified records. verify\n"
        "prints the verified head, and the first record kept when the writer trimmed the\n"
        "capsule (its workers do behind their checkpoints). Tampering, truncation, rollback\n"
        "and forks are reported\n"
        "with evidence on stderr and exit status 1. See docs/capsule.md.\n");
}

typedef struct copts {
    const char *reps[16];
    size_t nreps;
    const char *keys, *capsule, *journal, *name, *prefix;
    long long stream, window, from, to, quorum, known_seq;
    int first_arg;
} copts;

static int parse(int argc, char **argv, copts *o) {
    memset(o, 0, sizeof *o);
    o->from = 1;
    o->to = -1;
    o->known_seq = -1;
    o->window = 1;
    o->prefix = "rec";
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-')
            break;
        if (i + 1 >= argc) {
            cli_err("capsule: option %s needs a value", a);
            return -1;
        }
        char *v = argv[++i];
        if (!strcmp(a, "--replicas"))
            o->nreps = cli_split_list(v, o->reps, 16);
        else if (!strcmp(a, "--keys"))
            o->keys = v;
        else if (!strcmp(a, "--capsule"))
            o->capsule = v;
        else if (!strcmp(a, "--journal"))
            o->journal = v;
        else if (!strcmp(a, "--name"))
            o->name = v;
        else if (!strcmp(a, "--prefix"))
            o->prefix = v;
        else if (!strcmp(a, "--stream"))
            o->stream = atoll(v);
        else if (!strcmp(a, "--window"))
            o->window = atoll(v) > 0 ? atoll(v) : 1;
        else if (!strcmp(a, "--from"))
            o->from = atoll(v);
        else if (!strcmp(a, "--to"))
            o->to = atoll(v);
        else if (!strcmp(a, "--quorum"))
            o->quorum = atoll(v);
        else if (!strcmp(a, "--known-seq"))
            o->known_seq = atoll(v);
        else {
            cli_err("capsule: unknown option %s (see psl help capsule)", a);
            return -1;
        }
    }
    o->first_arg = i;
    return 0;
}

static int exit_for(int rc) {
    switch (rc) {
    case 0: return EXIT_OK;
    case CAP_ERR_TAMPER:
    case CAP_ERR_TRUNCATED:
    case CAP_ERR_ROLLBACK:
    case CAP_ERR_FORK:
    case ERR_AUTH:
    case ERR_INVALID: return EXIT_FAILED;
    case ERR_USAGE: return EXIT_USAGE;
    default: return EXIT_IO;
    }
}

static int get_id(const copts *o, uint8_t id[CAP_ID_BYTES]) {
    if (!o->capsule || cr_unhex(id, CAP_ID_BYTES, o->capsule, strlen(o->capsule)) != 0) {
        cli_err("capsule: --capsule needs a 64-digit hex capsule id");
        return -1;
    }
    return 0;
}

static int load_keys(const copts *o, cap_keys *k) {
    if (!o->keys) {
        cli_err("capsule: --keys FILE is required");
        return -1;
    }
    int rc = cap_keys_load(k, o->keys);
    if (rc) {
        cli_err("capsule: cannot load keys from %s: %s", o->keys, cap_strerror(rc));
        return -1;
    }
    return 0;
}

static void print_evidence(const cap_reader *r) {
    size_t n;
    const cap_evidence *e = cap_reader_evidence(r, &n);
    for (size_t i = 0; i < n; i++) {
        char line[600];
        cap_evidence_format(&e[i], line, sizeof line);
        fprintf(stderr, "psl: evidence: %s\n", line);
    }
}

static int do_create(const copts *o) {
    cap_keys k;
    if (load_keys(o, &k))
        return EXIT_USAGE;
    cap_writer_opts wo = {
        .replicas = o->reps, .nreplicas = o->nreps, .name = o->name, .journal = o->journal};
    cap_writer *w;
    uint8_t id[CAP_ID_BYTES];
    int rc = cap_writer_open(&k, &wo, NULL, &w, id);
    cr_memzero(&k, sizeof k);
    if (rc) {
        cli_err("capsule create: %s", cap_strerror(rc));
        return exit_for(rc);
    }
    rc = cap_writer_close(w);
    char hex[65];
    cr_hex(hex, id, CAP_ID_BYTES);
    printf("%s\n", hex);
    return exit_for(rc);
}

static int do_append(const copts *o, int argc, char **argv) {
    cap_keys k;
    uint8_t id[CAP_ID_BYTES];
    if (load_keys(o, &k) || get_id(o, id))
        return EXIT_USAGE;
    cap_writer_opts wo = {.replicas = o->reps, .nreplicas = o->nreps, .journal = o->journal};
    cap_writer *w;
    int rc = cap_writer_open(&k, &wo, id, &w, NULL);
    cr_memzero(&k, sizeof k);
    if (rc) {
        cli_err("capsule append: cannot open the writer: %s", cap_strerror(rc));
        return exit_for(rc);
    }
    if (o->stream > 0) {
        char buf[256];
        uint64_t *seqs = xmalloc((size_t)o->window * sizeof *seqs);
        for (long long i = 0; i < o->stream && rc == 0;) {
            long long n = 0;
            for (; n < o->window && i + n < o->stream && rc == 0; n++) {
                int l = snprintf(buf, sizeof buf, "%s-%lld", o->prefix, i + n);
                rc = cap_append_submit(w, buf, (size_t)l, &seqs[n]);
            }
            if (rc == 0 && n > 0)
                rc = cap_wait_durable(w, seqs[n - 1]);
            for (long long j = 0; rc == 0 && j < n; j++)
                printf("%llu %s-%lld\n", (unsigned long long)seqs[j], o->prefix, i + j);
            fflush(stdout);
            i += n;
        }
        free(seqs);
    } else {
        for (int i = o->first_arg; i < argc && rc == 0; i++) {
            uint64_t seq;
            rc = cap_append(w, argv[i], strlen(argv[i]), &seq);
            if (rc == 0) {
                printf("%llu %s\n", (unsigned long long)seq, argv[i]);
                fflush(stdout);
            }
        }
    }
    int rc2 = cap_writer_close(w);
    if (rc == 0)
        rc = rc2;
    if (rc)
        cli_err("capsule append: %s", cap_strerror(rc));
    return exit_for(rc);
}

static int open_reader(const copts *o, const uint8_t *root, cap_client **c, cap_reader **r) {
    uint8_t id[CAP_ID_BYTES];
    if (get_id(o, id))
        return ERR_USAGE;
    if (o->nreps == 0) {
        cli_err("capsule: --replicas is required");
        return ERR_USAGE;
    }
    int rc = cap_client_open(o->reps, o->nreps, 2000, c);
    if (rc)
        return rc;
    rc = cap_reader_open(*c, id, root, r);
    if (rc)
        return rc;
    if (o->quorum > 0)
        cap_reader_set_quorum(*r, (size_t)o->quorum);
    if (o->known_seq >= 0) {
        /* An operator-supplied floor: any served head below it is a rollback. Its signature is not
         * known here, so only the seqno is compared. */
        cap_head kh = {.seqno = (uint64_t)o->known_seq};
        memcpy(kh.capsule, id, CAP_ID_BYTES);
        cap_reader_set_known(*r, &kh);
    }
    return cap_reader_sync(*r);
}

static int print_rec(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len) {
    (void)arg;
    printf("%llu\t%s%.*s\n", (unsigned long long)seq,
           kind == CAP_KIND_CHECKPOINT  ? "[checkpoint] "
           : kind == CAP_KIND_CKPT_PART ? "[checkpoint part] "
                                        : "",
           (int)len, (const char *)p);
    return 0;
}

static int do_read(const copts *o, bool verify_only) {
    cap_keys k;
    if (!verify_only && load_keys(o, &k))
        return EXIT_USAGE;
    cap_client *c = NULL;
    cap_reader *r = NULL;
    int rc = open_reader(o, verify_only ? NULL : k.data_root, &c, &r);
    if (!verify_only)
        cr_memzero(&k, sizeof k);
    if (rc == 0 && !verify_only) {
        cap_head h;
        cap_reader_head(r, &h);
        uint64_t to = o->to < 0 || (uint64_t)o->to > h.seqno ? h.seqno : (uint64_t)o->to;
        if (o->from >= 1 && (uint64_t)o->from <= to)
            rc = cap_read_range(r, (uint64_t)o->from, to, print_rec, NULL);
    }
    if (rc == 0 && verify_only) {
        cap_head h;
        cap_reader_head(r, &h);
        char hx[65];
        cr_hex(hx, h.hash, 32);
        const cap_meta *m = cap_reader_meta(r);
        printf("capsule %s\nname %s\nf %u\nhead %llu %s\n", o->capsule, m->name, m->f,
               (unsigned long long)h.seqno, hx);
        if (cap_reader_first(r) > 1)
            printf("first %llu (records 1 to %llu dropped by the writer's trim)\n",
                   (unsigned long long)cap_reader_first(r),
                   (unsigned long long)cap_reader_first(r) - 1);
        printf("verified ok\n");
    }
    if (r)
        print_evidence(r);
    if (rc)
        cli_err("capsule %s: %s", verify_only ? "verify" : "read", cap_strerror(rc));
    cap_reader_close(r);
    cap_client_close(c);
    return exit_for(rc);
}

int cmd_capsule(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cmd_capsule_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    copts o;
    if (parse(argc, argv, &o))
        return EXIT_USAGE;
    if (cr_init() != 0)
        return EXIT_IO;
    const char *sub = argv[1];
    if (!strcmp(sub, "keygen")) {
        if (!o.keys) {
            cli_err("capsule keygen: --keys FILE is required");
            return EXIT_USAGE;
        }
        cap_keys k;
        cap_keys_generate(&k);
        int rc = cap_keys_save(&k, o.keys);
        cr_memzero(&k, sizeof k);
        if (rc)
            cli_err("capsule keygen: cannot write %s: %s", o.keys, cap_strerror(rc));
        return rc ? EXIT_IO : EXIT_OK;
    }
    if (o.nreps == 0) {
        cli_err("capsule %s: --replicas is required", sub);
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "create"))
        return do_create(&o);
    if (!strcmp(sub, "append"))
        return do_append(&o, argc, argv);
    if (!strcmp(sub, "read"))
        return do_read(&o, false);
    if (!strcmp(sub, "verify"))
        return do_read(&o, true);
    cli_err("capsule: unknown subcommand '%s' (see psl help capsule)", sub);
    return EXIT_USAGE;
}

/* ---- psl bench capsule --------------------------------------------------------------------- */
typedef struct bench_ctx {
    cap_writer *w;
    size_t size, window;
    uint64_t deadline;
    uint64_t records;
    double *lat; /* microseconds, one per record (window: one per window) */
    size_t nlat, caplat;
    int rc;
} bench_ctx;

static void *bench_writer(void *arg) {
    bench_ctx *b = arg;
    uint8_t *buf = xcalloc(1, b->size);
    cr_random(buf, b->size);
    while (plat_now_ns() < b->deadline && b->rc == 0) {
        uint64_t t0 = plat_now_ns(), seq = 0;
        for (size_t i = 0; i < b->window && b->rc == 0; i++)
            b->rc = cap_append_submit(b->w, buf, b->size, &seq);
        if (b->rc == 0)
            b->rc = cap_wait_durable(b->w, seq);
        double us = (double)(plat_now_ns() - t0) / 1e3;
        if (b->nlat == b->caplat) {
            b->caplat = b->caplat ? 2 * b->caplat : 1024;
            b->lat = xrealloc(b->lat, b->caplat * sizeof *b->lat);
        }
        b->lat[b->nlat++] = us;
        b->records += b->window;
    }
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU seconds (user + system) and bytes written to storage by process @p pid (0 = this one), from
 * /proc: the cost per record of the writer and the replicas together, which on a shared machine
 * says more than records/s alone. */
static void proc_usage(pid_t pid, double *cpu, double *wbytes) {
    char path[64], buf[1024];
    *wbytes = 0;
    *cpu = cli_proc_cpu_s((int)pid);
    if (*cpu < 0)
        *cpu = 0;
    snprintf(path, sizeof path, pid ? "/proc/%d/io" : "/proc/self/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long wb;
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "write_bytes: %llu", &wb) == 1)
                *wbytes = (double)wb;
        fclose(f);
    }
}

static pid_t bench_pids[3];

static void bench_usage(double *cpu, double *wbytes) {
    double c, b;
    proc_usage(0, cpu, wbytes);
    for (int i = 0; i < 3; i++) {
        proc_usage(bench_pids[i], &c, &b);
        *cpu += c;
        *wbytes += b;
    }
}

static int bench_run(cap_writer *w, size_t writers, size_t size, size_t window, double secs,
                     const char *label) {
    double cpu0, wb0, cpu1, wb1;
    bench_usage(&cpu0, &wb0);
    bench_ctx *ctx = xcalloc(writers, sizeof *ctx);
    pthread_t *th = xcalloc(writers, sizeof *th);
    cap_writer_stats s0, s1;
    cap_writer_stats_get(w, &s0);
    uint64_t t0 = plat_now_ns();
    for (size_t i = 0; i < writers; i++) {
        ctx[i] = (bench_ctx){
            .w = w, .size = size, .window = window, .deadline = t0 + (uint64_t)(secs * 1e9)};
        pthread_create(&th[i], NULL, bench_writer, &ctx[i]);
    }
    uint64_t recs = 0;
    size_t nl = 0;
    int rc = 0;
    for (size_t i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        recs += ctx[i].records;
        nl += ctx[i].nlat;
        if (ctx[i].rc)
            rc = ctx[i].rc;
    }
    double el = (double)(plat_now_ns() - t0) / 1e9;
    bench_usage(&cpu1, &wb1);
    cap_writer_stats_get(w, &s1);
    double *all = xmalloc((nl + 1) * sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < writers; i++) {
        memcpy(all + k, ctx[i].lat, ctx[i].nlat * sizeof *all);
        k += ctx[i].nlat;
        free(ctx[i].lat);
    }
    qsort(all, nl, sizeof *all, cmp_double);
    double p50 = nl ? all[nl / 2] : 0, p99 = nl ? all[(size_t)((double)nl * 0.99)] : 0;
    uint64_t batches = s1.batches - s0.batches;
    printf("%-34s %4zu %6zu %10.0f %8.1f %9.0f %9.0f %8.1f %7.1f %7.2f\n", label, writers, window,
           (double)recs / el, (double)recs * (double)size / el / 1e6, p50, p99,
           batches ? (double)(s1.records - s0.records) / (double)batches : 0.0,
           recs ? (cpu1 - cpu0) * 1e6 / (double)recs : 0.0,
           recs ? (wb1 - wb0) / 1024.0 / (double)recs : 0.0);
    fflush(stdout);
    free(all);
    free(ctx);
    free(th);
    return rc;
}

static int bench_read_cb(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len) {
    (void)seq;
    (void)kind;
    (void)p;
    *(uint64_t *)arg += len;
    return 0;
}

int cmd_bench_capsule(int argc, char **argv) {
    double secs = 3;
    size_t writers = 64;
    int base = 27100, only = 0; /* only: run just that row of the append table (1-4) */
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--seconds"))
            secs = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--writers")) {
            int n;
            if (cli_opt_int("bench capsule", argv[i], argv[i + 1], 1, 4096, &n) != 0)
                return EXIT_USAGE;
            writers = (size_t)n;
            i++;
        } else if (i + 1 < argc && !strcmp(argv[i], "--port")) {
            if (cli_opt_int("bench capsule", argv[i], argv[i + 1], 1024, 65500, &base) != 0)
                return EXIT_USAGE;
            i++;
        } else if (i + 1 < argc && !strcmp(argv[i], "--only")) {
            if (cli_opt_int("bench capsule", argv[i], argv[i + 1], 1, 4, &only) != 0)
                return EXIT_USAGE;
            i++;
        } else {
            cli_err(
                "bench capsule: usage: psl bench capsule [--seconds S] [--writers N] [--port P] "
                "[--only ROW]");
            return EXIT_USAGE;
        }
    }
    if (cr_init() != 0)
        return EXIT_IO;
    char dir[] = "/tmp/psl-bench-capsule-XXXXXX";
    if (!mkdtemp(dir)) {
        cli_err("bench capsule: mkdtemp: %s", strerror(errno));
        return EXIT_IO;
    }
    char eps[3][64], data[3][300], peers[3][200], journal[300], lmdbdir[300];
    const char *reps[3];
    pid_t pids[3] = {0};
    for (int i = 0; i < 3; i++) {
        snprintf(eps[i], sizeof eps[i], "tcp://127.0.0.1:%d", base + i);
        snprintf(data[i], sizeof data[i], "%s/r%d", dir, i);
        reps[i] = eps[i];
    }
    for (int i = 0; i < 3; i++) {
        snprintf(peers[i], sizeof peers[i], "%s,%s", eps[(i + 1) % 3], eps[(i + 2) % 3]);
        pids[i] = fork();
        if (pids[i] == 0) {
            execl("/proc/self/exe", "psl", "storage", "--listen", eps[i], "--data", data[i],
                  "--peers", peers[i], (char *)NULL);
            _exit(127);
        }
    }
    usleep(300000);
    snprintf(journal, sizeof journal, "%s/journal", dir);
    snprintf(lmdbdir, sizeof lmdbdir, "%s/raw", dir);
    cap_keys k;
    cap_keys_generate(&k);
    cap_writer_opts wo = {.replicas = reps, .nreplicas = 3, .name = "bench", .journal = journal};
    cap_writer *w = NULL;
    uint8_t id[CAP_ID_BYTES];
    int rc = cap_writer_open(&k, &wo, NULL, &w, id);
    if (rc) {
        cli_err("bench capsule: cannot create the capsule: %s", cap_strerror(rc));
        goto out;
    }
    printf("psl bench capsule: 3 local replicas (psl storage, LMDB, durable commits), f = 1, "
           "writer journal on; %.0f s per row\n",
           secs);
    printf("%-34s %4s %6s %10s %8s %9s %9s %8s %7s %7s\n", "workload", "thr", "window", "records/s",
           "MB/s", "p50 us", "p99 us", "rec/batch", "cpu us", "disk KB");
    printf("%-34s (cpu us and disk KB: per record, writer and the 3 replicas together)\n", "");
    for (int i = 0; i < 3; i++)
        bench_pids[i] = pids[i];
    if (!only || only == 1)
        rc = bench_run(w, writers, 1024, 1, secs, "1 KiB, blocking appends");
    if (!rc && (!only || only == 2))
        rc = bench_run(w, 4, 1024, 512, secs, "1 KiB, pipelined (window/thread)");
    if (!rc && (!only || only == 3))
        rc = bench_run(w, 4, 64, 1024, secs, "64 B, pipelined (window/thread)");
    if (!rc && (!only || only == 4))
        rc = bench_run(w, 1, 1024, 1, secs, "1 KiB, one writer, blocking");
    if (rc) {
        cli_err("bench capsule: %s", cap_strerror(rc));
        goto out;
    }
    cap_head h;
    cap_writer_head(w, &h);
    rc = cap_writer_close(w);
    w = NULL;
    /* Reads: verify the whole chain, then read (fetch, chain check, AEAD open) every record. */
    cap_client *c = NULL;
    cap_reader *r = NULL;
    rc = cap_client_open(reps, 3, 5000, &c);
    uint64_t t0 = plat_now_ns();
    if (!rc)
        rc = cap_reader_open(c, id, k.data_root, &r);
    if (!rc)
        rc = cap_reader_sync(r);
    double tsync = (double)(plat_now_ns() - t0) / 1e9;
    uint64_t bytes = 0;
    t0 = plat_now_ns();
    if (!rc)
        rc = cap_read_range(r, 1, h.seqno, bench_read_cb, &bytes);
    double tread = (double)(plat_now_ns() - t0) / 1e9;
    if (!rc) {
        printf("%-34s %10.0f records/s (%llu records: fetch, hash, walk the chain)\n",
               "verify chain (sync)", (double)h.seqno / tsync, (unsigned long long)h.seqno);
        printf("%-34s %10.0f records/s (%.1f MB/s of plaintext)\n", "read + verify + decrypt",
               (double)h.seqno / tread, (double)bytes / tread / 1e6);
    }
    cap_reader_close(r);
    cap_client_close(c);
    /* Raw limits measured in the same run. */
    double ls;
    size_t nraw = 200000;
    if (stg_bench_lmdb(lmdbdir, nraw, CAP_HDR_BYTES + CAP_AEAD_OVERHEAD + 1024, 1000, &ls) == 0)
        printf("%-34s %10.0f puts/s (1000 per durable txn, one process)\n",
               "raw: LMDB batched puts", (double)nraw / ls);
    {
        uint8_t dk[32], pl[1024], *rec;
        size_t len;
        uint8_t hash[32];
        cr_random(dk, sizeof dk);
        cr_random(pl, sizeof pl);
        int v = cap_default_version();
        cap_hdr hd = {.version = (uint8_t)(v < 0 ? (int)CAP_V_BLAKE2B : v),
                      .kind = CAP_KIND_DATA,
                      .payload_len = 1024};
        size_t n = 100000;
        t0 = plat_now_ns();
        for (size_t i = 0; i < n; i++) {
            hd.seqno = i + 1;
            hd.hlc = i + 1;
            if (cap_record_build(dk, &hd, pl, &rec, &len, hash) == 0)
                free(rec);
            if (i % 1000 == 999) {
                cap_head hh = {.seqno = i};
                cap_head_sign(&hh, k.sign_sk);
            }
        }
        double t = (double)(plat_now_ns() - t0) / 1e9;
        printf("%-34s %10.0f records/s (AEAD + hash per record, 1 signature per 1000)\n",
               "raw: record crypto, 1 KiB", (double)n / t);
    }
out:
    cr_memzero(&k, sizeof k);
    if (w)
        if (cap_writer_close(w)) {
        }
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cli_err("bench capsule: could not remove %s", dir);
    return rc ? EXIT_IO : EXIT_OK;
}
