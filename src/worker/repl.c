/* Replication of the memtable through DataCapsules and multicast; see repl.h.
 * Invariant: for every peer capsule, records 1 .. next_seq-1 have been verified and applied here,
 * and its reader's verified chain reaches at least record next_seq-1 (multicast batches extend it,
 * cap_reader_extend). All peer state is guarded by r->mu. */
#include "worker/repl.h"

#include "base/base.h"
#include "base/err.h"
#include "capsule/capsule.h"
#include "crypto/crypto.h"
#include "platform/platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#define NAME_PREFIX "psl-worker-"
#define CHECKPOINT_LOG_BYTES (64u << 20) /* log after which a checkpoint is due in any case */
#define BIG_CHECKPOINT_LOG (4ull << 30)  /* default of repl_opts.big_checkpoint_log */
#define DUR_MARKS 64                     /* flushes whose durability repl_durable_hlc awaits */

typedef struct pcap {
    struct pcap *next;
    uint8_t id[CAP_ID_BYTES];
    uint64_t writer; /* from the metadata name; 0 when it is not a worker capsule */
    uint8_t pk[32];
    uint8_t dkey[32];
    uint64_t next_seq;
    cap_reader *rd;
    bool known; /* metadata read and verified */
    bool bad;   /* cannot be decrypted with our key: not our deployment */
} pcap;

struct repl {
    uint64_t writer;
    char name[64];
    kvs *kv;
    uint8_t data_root[32];
    cap_keys keys;
    char **eps;
    size_t neps;
    cap_client *cl;
    cap_writer *w;
    uint8_t own_id[CAP_ID_BYTES];
    void *zctx, *pub, *sub;
    pthread_t rx;
    bool rx_started;
    atomic_bool stop;
    bool recovered; /* the start-up recovery is done: our own capsule holds nothing we lack */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pcap *caps;
    pthread_mutex_t flush_mu;
    _Atomic uint64_t last_seq;
    /* Counters are atomics: the heartbeat reads them without waiting for a lock that storage
     * I/O may hold for seconds. */
    _Atomic uint64_t appends, applied_batches, multicast_in, repaired, rejected;
    _Atomic uint64_t checkpoints, from_checkpoint;
    uint64_t checkpoint_every; /* own records between checkpoints; 0 = never */
    uint64_t ckpt_seq;         /* seqno of our last checkpoint (or of the resume point) */
    uint64_t big_ckpt_every_ms, big_ckpt_ms; /* multi-record checkpoints: interval, last one */
    uint64_t big_ckpt_log;                   /* ... and the log that makes one due sooner */
    uint64_t bytes_since_ckpt;               /* payload appended since the last checkpoint */
    /* Which of our writes are durable (repl_durable_hlc): each flush marks (its last record, the
     * memtable's own HLC before it took the batches); once that record is durable, so is every
     * write of ours up to that HLC. Marks are added by flushes and consumed by the writer's
     * on_durable callback, under dur_mu (never held while waiting). */
    pthread_mutex_t dur_mu;
    struct {
        uint64_t seq, hlc;
    } dur_marks[DUR_MARKS];
    unsigned ndur;
    _Atomic uint64_t durable_hlc;
    atomic_bool dur_lost; /* a flush failed after taking writes: no write counts as durable */
    /* Trimming our capsule: once a checkpoint run is durable, the replicas may drop what comes
     * before the previous one (so a reader replaying from that one is not cut off). Set under
     * flush_mu, read by the rx thread. */
    _Atomic uint64_t ckpt_start, ckpt_end; /* newest checkpoint run: first part, CHECKPOINT */
    _Atomic uint64_t trim_want;            /* the first record of the previous run */
    uint64_t trim_sent;                    /* rx thread: below this, every replica has agreed */
    uint32_t trim_acked, trim_given_up;    /* rx thread: replicas that took trim_want, or did
                                            * not answer (bits) */
};

static void rlog(const repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rlog(const repl *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", r->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- peer capsules (under r->mu) ---- */

static pcap *find_cap(repl *r, const uint8_t id[CAP_ID_BYTES]) {
    for (pcap *c = r->caps; c; c = c->next)
        if (memcmp(c->id, id, CAP_ID_BYTES) == 0)
            return c;
    pcap *c = xcalloc(1, sizeof *c);
    memcpy(c->id, id, CAP_ID_BYTES);
    c->next_seq = 1;
    c->next = r->caps;
    r->caps = c;
    return c;
}

static pcap *cap_of_writer(repl *r, uint64_t writer) {
    for (pcap *c = r->caps; c; c = c->next)
        if (c->known && c->writer == writer)
            return c;
    return NULL;
}

typedef struct apply_ctx {
    repl *r;
    int rc;
} apply_ctx;

/* Records whose payload is a kvs batch: data, and checkpoints (snapshot batches) and their parts;
 * metadata carries no writes. */
static bool carries_writes(int kind) {
    return kind == CAP_KIND_DATA || kind == CAP_KIND_CHECKPOINT || kind == CAP_KIND_CKPT_PART;
}

static int apply_payload(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len) {
    apply_ctx *a = arg;
    (void)seq;
    if (atomic_load(&a->r->stop))
        return -EINTR; /* shutting down: the rest is caught up at the next start */
    if (!carries_writes(kind))
        return 0;
    int rc = kvs_apply_batch(a->r->kv, p, len);
    if (rc < 0) {
        a->rc = rc;
        return rc;
    }
    atomic_fetch_add(&a->r->applied_batches, 1);
    return 0;
}

/* Catch capsule c up from storage, verifying everything (the capsule reader does). */
static int catch_up(repl *r, pcap *c) {
    if (c->bad)
        return ERR_AUTH;
    int rc;
    bool first = !c->rd;
    if (!c->rd && (rc = cap_reader_open(r->cl, c->id, r->data_root, &c->rd)) != 0)
        return rc;
    if (first) {
        /* Replay starts at the newest checkpoint (a snapshot of the writer's whole memtable):
         * everything before it is covered by the snapshot, so recovery is bounded. */
        uint64_t ck = 0;
        if ((rc = cap_reader_sync_from_checkpoint(c->rd, &ck)) != 0)
            return rc;
        if (ck > c->next_seq) {
            c->next_seq = ck;
            atomic_fetch_add(&r->from_checkpoint, 1);
        }
    } else if ((rc = cap_reader_sync(c->rd)) != 0) {
        if (rc != CAP_ERR_TRIMMED)
            return rc;
        /* The writer trimmed records we had not read yet: start over from its newest checkpoint
         * (a snapshot of everything before it). */
        rlog(r,
             "capsule of writer %llu was trimmed past what we had read: replaying from its "
             "newest checkpoint",
             (unsigned long long)c->writer);
        cap_reader_close(c->rd);
        c->rd = NULL;
        return catch_up(r, c);
    }
    if (!c->known) {
        const cap_meta *m = cap_reader_meta(c->rd);
        memcpy(c->pk, m->writer_pk, 32);
        if (strncmp(m->name, NAME_PREFIX, strlen(NAME_PREFIX)) == 0)
            c->writer = strtoull(m->name + strlen(NAME_PREFIX), NULL, 10);
        cap_data_key(r->data_root, c->id, c->dkey);
        c->known = true;
    }
    cap_head h;
    cap_reader_head(c->rd, &h);
    if (h.seqno >= c->next_seq) {
        apply_ctx a = {r, 0};
        rc = cap_read_range(c->rd, c->next_seq, h.seqno, apply_payload, &a);
        if (rc == ERR_AUTH) {
            c->bad = true;
            rlog(r,
                 "capsule %02x%02x%02x%02x... is not readable with this deployment's key: "
                 "skipped",
                 c->id[0], c->id[1], c->id[2], c->id[3]);
            return rc;
        }
        if (rc)
            return rc;
        c->next_seq = h.seqno + 1;
        atomic_fetch_add(&r->repaired, 1);
    }
    cap_reader_trim(c->rd, c->next_seq);
    pthread_cond_broadcast(&r->cv);
    return 0;
}

/* Learn every capsule the replicas hold and catch each one up. */
static int recover_all(repl *r) {
    uint8_t *ids = NULL;
    size_t n = 0;
    int rc = ERR_IO;
    for (size_t i = 0; i < cap_client_count(r->cl) && rc; i++)
        rc = cap_client_list(r->cl, i, &ids, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !atomic_load(&r->stop); i++) {
        /* Our own capsule is read back only at start-up: afterwards every record in it came
         * from this process's memtable, so reading it again (every second, under write load
         * megabytes of it) would only re-apply our own writes. */
        if (r->recovered && memcmp(ids + i * CAP_ID_BYTES, r->own_id, CAP_ID_BYTES) == 0)
            continue;
        pcap *c = find_cap(r, ids + i * CAP_ID_BYTES);
        if (c->bad)
            continue;
        int crc = catch_up(r, c);
        if (crc && crc != ERR_AUTH && !atomic_load(&r->stop))
            rlog(r, "recovering capsule of writer %llu: %s", (unsigned long long)c->writer,
                 cap_strerror(crc));
    }
    free(ids);
    return 0;
}

/* ---- multicast ---- */

/* Writer thread: a batch is durable; send the same bytes to the peers. */
static void publish(void *ud, const uint8_t *const *recs, const size_t *lens, size_t n,
                    const uint8_t *head) {
    repl *r = ud;
    cap_head h;
    if (cap_head_decode(head, CAP_HEAD_BYTES, &h) == 0) {
        pthread_mutex_lock(&r->dur_mu);
        unsigned k = 0;
        uint64_t d = atomic_load(&r->durable_hlc);
        while (k < r->ndur && r->dur_marks[k].seq <= h.seqno) {
            if (r->dur_marks[k].hlc > d)
                d = r->dur_marks[k].hlc;
            k++;
        }
        memmove(r->dur_marks, r->dur_marks + k, (r->ndur - k) * sizeof r->dur_marks[0]);
        r->ndur -= k;
        atomic_store(&r->durable_hlc, d);
        pthread_mutex_unlock(&r->dur_mu);
    }
    if (!r->pub)
        return;
    uint8_t hdr[8 + CAP_ID_BYTES];
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)(r->writer >> (8 * i));
    memcpy(hdr + 8, r->own_id, CAP_ID_BYTES);
    zmq_send(r->pub, hdr, sizeof hdr, ZMQ_SNDMORE);
    zmq_send(r->pub, head, CAP_HEAD_BYTES, n ? ZMQ_SNDMORE : 0);
    for (size_t i = 0; i < n; i++)
        zmq_send(r->pub, recs[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

/* Verify a multicast batch against capsule c's state, then apply it. Returns 0, or an error after
 * which the caller repairs from storage. */
static int apply_multicast(repl *r, pcap *c, zmq_msg_t *frames, size_t nf) {
    cap_head head;
    if (nf < 3 || cap_head_decode(zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), &head))
        return ERR_MALFORMED;
    /* Skip what we already have; a gap means we lost a multicast. */
    size_t first = 2;
    uint64_t seq = 0;
    for (; first < nf; first++) {
        cap_hdr h;
        const uint8_t *body;
        size_t bl;
        if (cap_record_parse(zmq_msg_data(&frames[first]), zmq_msg_size(&frames[first]), &h, &body,
                             &bl))
            return ERR_MALFORMED;
        if (h.seqno >= c->next_seq) {
            seq = h.seqno;
            break;
        }
    }
    if (first == nf)
        return 0; /* nothing new */
    if (seq != c->next_seq)
        return CAP_ERR_GAP;
    /* Verify the whole run before applying any of it (links, head hash, head signature): the
     * capsule reader does, and extends its verified chain with it, so the next sync from storage
     * fetches only what multicast did not bring. */
    size_t n = nf - first;
    const uint8_t **recs = xmalloc(n * sizeof *recs);
    size_t *lens = xmalloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        recs[i] = zmq_msg_data(&frames[first + i]);
        lens[i] = zmq_msg_size(&frames[first + i]);
    }
    int vrc = cap_reader_extend(c->rd, recs, lens, n, &head);
    free(recs);
    free(lens);
    if (vrc)
        return vrc;
    for (size_t i = first; i < nf; i++) {
        const uint8_t *rec = zmq_msg_data(&frames[i]);
        size_t len = zmq_msg_size(&frames[i]);
        cap_hdr h;
        const uint8_t *body;
        size_t bl;
        if (cap_record_parse(rec, len, &h, &body, &bl))
            return ERR_MALFORMED;
        uint8_t *pt = xmalloc(h.payload_len ? h.payload_len : 1);
        int rc = cap_record_open(c->dkey, rec, len, pt);
        if (rc == 0 && carries_writes(h.kind))
            rc = kvs_apply_batch(r->kv, pt, h.payload_len) < 0 ? ERR_CORRUPT : 0;
        free(pt);
        if (rc)
            return rc; /* the chain was signed, so this is a key problem: repair reports it */
        c->next_seq = h.seqno + 1;
        atomic_fetch_add(&r->applied_batches, 1);
    }
    cap_reader_trim(c->rd, c->next_seq); /* applied records are never read again */
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Tell every replica it may drop our records before trim_want (the first record of our previous
 * checkpoint run) once the newest run is durable. A replica that is behind (CAP_ERR_GAP) is asked
 * again next round; one that does not answer is not (this thread also receives the multicast, and
 * each try waits for the client's timeout): it gets the next trim, or learns this one from its
 * peers when it catches up across it (anti-entropy). rx thread only (r->cl is not shared). */
static void send_trim(repl *r) {
    uint64_t want = atomic_load(&r->trim_want);
    if (!r->w || want <= r->trim_sent)
        return;
    cap_head h;
    cap_writer_head(r->w, &h);
    if (h.seqno < atomic_load(&r->ckpt_end))
        return; /* the newest checkpoint is not durable yet */
    cap_trim t;
    if (cap_writer_trim_statement(r->w, want, &t) != 0)
        return;
    size_t n = cap_client_count(r->cl);
    uint32_t all = n >= 32 ? UINT32_MAX : (1u << n) - 1;
    for (size_t i = 0; i < n && i < 32; i++) {
        if ((r->trim_acked | r->trim_given_up) & (1u << i))
            continue;
        char why[200];
        int rc = cap_client_trim(r->cl, i, &t, why, sizeof why);
        if (rc == 0)
            r->trim_acked |= 1u << i;
        else if (rc != CAP_ERR_GAP) {
            r->trim_given_up |= 1u << i;
            if (rc != -ETIMEDOUT)
                rlog(r, "trim of our capsule below %llu refused by %s: %s",
                     (unsigned long long)want, cap_client_endpoint(r->cl, i), why);
        }
    }
    if (((r->trim_acked | r->trim_given_up) & all) == all) {
        r->trim_sent = want;
        r->trim_acked = r->trim_given_up = 0;
    }
}

/* Receives peers' multicast; every ANTI_ENTROPY_MS it also pulls from storage whatever multicast
 * lost (the forwarder is untrusted and may drop anything), so replicas converge without it. */
#define ANTI_ENTROPY_MS 1000
static void *rx_main(void *arg) {
    plat_thread_name("repl-rx");
    repl *r = arg;
    enum { MAXF = 4100 };
    zmq_msg_t *frames = xcalloc(MAXF, sizeof *frames);
    uint64_t next_sync = now_ms() + ANTI_ENTROPY_MS;
    while (!atomic_load(&r->stop)) {
        if (now_ms() >= next_sync) {
            pthread_mutex_lock(&r->mu);
            (void)recover_all(r);
            pthread_mutex_unlock(&r->mu);
            send_trim(r);
            next_sync = now_ms() + ANTI_ENTROPY_MS;
        }
        if (!r->sub) {
            struct timespec ts = {0, 200000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        zmq_pollitem_t it = {r->sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        size_t nf = 0;
        int more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, r->sub, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            if (nf < MAXF)
                frames[nf++] = m;
            else
                zmq_msg_close(&m);
        }
        if (nf >= 2 && zmq_msg_size(&frames[0]) == 8 + CAP_ID_BYTES) {
            const uint8_t *id = (const uint8_t *)zmq_msg_data(&frames[0]) + 8;
            if (memcmp(id, r->own_id, CAP_ID_BYTES) != 0) {
                pthread_mutex_lock(&r->mu);
                atomic_fetch_add(&r->multicast_in, 1);
                pcap *c = find_cap(r, id);
                int rc = 0;
                if (!c->known)
                    rc = catch_up(r, c); /* learn its key and history from storage */
                if (!rc && !c->bad) {
                    rc = apply_multicast(r, c, frames, nf);
                    if (rc) {
                        if (rc != CAP_ERR_GAP) {
                            atomic_fetch_add(&r->rejected, 1);
                            rlog(r,
                                 "multicast batch of writer %llu rejected (%s): repairing "
                                 "from storage",
                                 (unsigned long long)c->writer, cap_strerror(rc));
                        }
                        rc = catch_up(r, c);
                        if (rc)
                            rlog(r, "repair of writer %llu from storage failed: %s",
                                 (unsigned long long)c->writer, cap_strerror(rc));
                    }
                }
                pthread_cond_broadcast(&r->cv);
                pthread_mutex_unlock(&r->mu);
            }
        }
        for (size_t i = 0; i < nf; i++)
            zmq_msg_close(&frames[i]);
    }
    free(frames);
    return NULL;
}

/* ---- opening ---- */

static int split_endpoints(repl *r, const char *list) {
    char *copy = xstrdup(list);
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
        r->eps = xrealloc(r->eps, (r->neps + 1) * sizeof *r->eps);
        r->eps[r->neps++] = xstrdup(t);
    }
    free(copy);
    return r->neps ? 0 : ERR_USAGE;
}

int repl_open(const repl_opts *o, repl **out, char *why, size_t whylen) {
    *out = NULL;
    repl *r = xcalloc(1, sizeof *r);
    r->writer = o->writer;
    r->checkpoint_every = o->checkpoint_every;
    r->big_ckpt_every_ms = o->big_checkpoint_ms ? o->big_checkpoint_ms : 1800000;
    r->big_ckpt_ms = now_ms(); /* the first one too waits an interval: not during a bulk load */
    r->big_ckpt_log = o->big_checkpoint_log ? o->big_checkpoint_log : BIG_CHECKPOINT_LOG;
    snprintf(r->name, sizeof r->name, "%s", o->name ? o->name : "repl");
    r->kv = o->kv;
    r->zctx = o->zctx;
    memcpy(r->data_root, o->data_root, 32);
    cr_sign_seed_keypair(r->keys.sign_pk, r->keys.sign_sk, o->sign_seed);
    memcpy(r->keys.data_root, o->data_root, 32);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_mutex_init(&r->flush_mu, NULL);
    pthread_mutex_init(&r->dur_mu, NULL);
    atomic_init(&r->stop, false);
    int rc = split_endpoints(r, o->storage ? o->storage : "");
    if (rc) {
        snprintf(why, whylen, "no storage endpoints");
        goto fail;
    }
    if ((rc = cap_client_open((const char *const *)r->eps, r->neps, 2000, &r->cl)) != 0) {
        snprintf(why, whylen, "storage client: %s", cap_strerror(rc));
        goto fail;
    }
    if (o->fwd_pub) {
        r->pub = zmq_socket(r->zctx, ZMQ_PUB);
        int linger = 1000;
        zmq_setsockopt(r->pub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(r->pub, o->fwd_pub);
    }

    /* Our own capsule: resume it when its id is on disk, else create it. */
    mkdir(o->dir, 0700);
    char idpath[1024], jpath[1024], cname[64], ctr[64];
    snprintf(idpath, sizeof idpath, "%s/capsule.id", o->dir);
    snprintf(jpath, sizeof jpath, "%s/capsule.journal", o->dir);
    snprintf(cname, sizeof cname, NAME_PREFIX "%llu", (unsigned long long)o->writer);
    /* Workers of one cluster may share an enclave home: one counter per writer id. */
    snprintf(ctr, sizeof ctr, "capsule-journal-%llu", (unsigned long long)o->writer);
    cap_writer_opts wo = {.replicas = (const char *const *)r->eps,
                          .nreplicas = r->neps,
                          .name = cname,
                          .journal = jpath,
                          .tee = o->tee,
                          .journal_counter = o->tee ? ctr : NULL,
                          .on_durable = publish,
                          .on_durable_ud = r};
    FILE *fp = fopen(idpath, "r");
    if (fp) {
        char hex[2 * CAP_ID_BYTES + 2] = {0};
        bool ok = fgets(hex, sizeof hex, fp) != NULL;
        fclose(fp);
        if (!ok || cr_unhex(r->own_id, CAP_ID_BYTES, hex, 2 * CAP_ID_BYTES) != 0) {
            snprintf(why, whylen, "%s is damaged", idpath);
            rc = ERR_CORRUPT;
            goto fail;
        }
        rc = cap_writer_open(&r->keys, &wo, r->own_id, &r->w, NULL);
    } else {
        rc = cap_writer_open(&r->keys, &wo, NULL, &r->w, r->own_id);
        if (!rc) {
            char hex[2 * CAP_ID_BYTES + 1];
            cr_hex(hex, r->own_id, CAP_ID_BYTES);
            fp = fopen(idpath, "w");
            if (!fp || fprintf(fp, "%s\n", hex) < 0 || fclose(fp) != 0) {
                snprintf(why, whylen, "cannot write %s", idpath);
                rc = ERR_IO;
                goto fail;
            }
        }
    }
    if (rc) {
        snprintf(why, whylen, "capsule writer: %s", cap_strerror(rc));
        goto fail;
    }
    cap_head h;
    cap_writer_head(r->w, &h);
    r->last_seq = h.seqno;
    r->ckpt_seq = h.seqno;

    /* Rebuild the key space from every capsule (ours too: a restart starts empty). */
    pthread_mutex_lock(&r->mu);
    pcap *own = find_cap(r, r->own_id);
    (void)own;
    rc = recover_all(r);
    r->recovered = true;
    atomic_store(&r->durable_hlc, kvs_own_hlc(r->kv)); /* what recovery brought back is durable */
    pthread_mutex_unlock(&r->mu);
    if (rc) {
        snprintf(why, whylen, "recovery from storage: %s", cap_strerror(rc));
        goto fail;
    }
    if (o->fwd_sub) {
        r->sub = zmq_socket(r->zctx, ZMQ_SUB);
        zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, "", 0);
        int linger = 0;
        zmq_setsockopt(r->sub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(r->sub, o->fwd_sub);
    }
    if (pthread_create(&r->rx, NULL, rx_main, r) == 0)
        r->rx_started = true;
    *out = r;
    return 0;
fail:
    repl_close(r);
    return rc;
}

void repl_close(repl *r) {
    if (!r)
        return;
    atomic_store(&r->stop, true);
    if (r->rx_started)
        pthread_join(r->rx, NULL);
    if (r->w) {
        (void)repl_flush(r, true, NULL);
        int rc = cap_writer_close(r->w);
        if (rc)
            rlog(r, "closing the capsule writer: %s", cap_strerror(rc));
    }
    if (r->sub)
        zmq_close(r->sub);
    if (r->pub)
        zmq_close(r->pub);
    for (pcap *c = r->caps, *nx; c; c = nx) {
        nx = c->next;
        cap_reader_close(c->rd);
        free(c);
    }
    cap_client_close(r->cl);
    for (size_t i = 0; i < r->neps; i++)
        free(r->eps[i]);
    free(r->eps);
    cr_memzero(&r->keys, sizeof r->keys);
    cr_memzero(r->data_root, sizeof r->data_root);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->flush_mu);
    pthread_mutex_destroy(&r->dur_mu);
    free(r);
}

/* ---- flushing and waiting ---- */

/* Write a checkpoint: a snapshot of the whole memtable, taken while flush_mu (held by the caller)
 * keeps any other record from slipping in between snapshot and checkpoint (every record before
 * it had its writes in the memtable before the snapshot). A state that fits one record is
 * written as one and waited for, as every checkpoint_every records. A larger one is written in
 * parts (cap_checkpoint_parts), not waited for under flush_mu (its parts only wait for room in the
 * capsule writer's bounded queue, CAP_QUEUE_MAX), and only every big_ckpt_every_ms
 * once the log since the last checkpoint holds half its size: its cost (a copy of the state
 * under the memtable's read lock, then the state's size in appends) stays a fraction of the
 * log's. Until then the capsule keeps replaying from the previous one, and the replicas keep
 * everything since it: so a log of big_ckpt_log bytes and twice the state's size makes one due
 * before the interval ends (at YCSB A's 80 MB/s, 30 minutes of log were ~144 GB per interval,
 * and a replica keeps two). */
static int checkpoint(repl *r) {
    const size_t part = CAP_PAYLOAD_MAX - 64;
    size_t est = kvs_snapshot_bytes(r->kv);
    bool big = est > part;
    uint64_t now = now_ms();
    bool log_full = r->bytes_since_ckpt >= r->big_ckpt_log && r->bytes_since_ckpt / 2 >= est;
    if (big && (r->bytes_since_ckpt < est / 2 ||
                (now < r->big_ckpt_ms + r->big_ckpt_every_ms && !log_full) ||
                atomic_load(&r->stop)))
        return 0; /* not yet (and never while stopping, which would wait for it); the test above
                   * costs nothing, so the next flush asks again */
    kvs_part *parts;
    size_t np;
    uint32_t n;
    int rc = kvs_snapshot_parts(r->kv, part, 0, &parts, &np, &n);
    if (rc) {
        r->ckpt_seq = r->last_seq; /* try again after checkpoint_every more records (or */
        r->bytes_since_ckpt = 0;   /* CHECKPOINT_LOG_BYTES more) */
        rlog(r, "no checkpoint: the snapshot of %u keys failed (%s)", n, err_str(rc));
        return 0;
    }
    const void **pp = xmalloc(np * sizeof *pp);
    size_t *pl = xmalloc(np * sizeof *pl);
    for (size_t i = 0; i < np; i++) {
        pp[i] = parts[i].data;
        pl[i] = parts[i].len;
    }
    uint64_t s;
    rc = cap_checkpoint_parts(r->w, pp, pl, np, np == 1, &s);
    free(pp);
    free(pl);
    kvs_parts_free(parts, np);
    if (rc)
        return rc;
    r->last_seq = s;
    r->ckpt_seq = s;
    r->bytes_since_ckpt = 0;
    uint64_t prev_start = atomic_load(&r->ckpt_start);
    atomic_store(&r->ckpt_end, s);
    atomic_store(&r->ckpt_start, s - np + 1);
    if (prev_start >= 2)
        atomic_store(&r->trim_want, prev_start);
    if (big) {
        r->big_ckpt_ms = now;
        rlog(r, "checkpoint of %u keys in %zu records (%zu bytes)", n, np, est);
    }
    atomic_fetch_add(&r->checkpoints, 1);
    return 0;
}

/* After a flush: every write of ours up to @p hlc is in records up to @p seq. */
static void mark_flushed(repl *r, uint64_t seq, uint64_t hlc) {
    cap_head h;
    cap_writer_head(r->w, &h);
    pthread_mutex_lock(&r->dur_mu);
    if (h.seqno >= seq) { /* durable already (nothing new, or it was quick) */
        if (hlc > atomic_load(&r->durable_hlc))
            atomic_store(&r->durable_hlc, hlc);
    } else if (r->ndur && (r->dur_marks[r->ndur - 1].seq == seq || r->ndur == DUR_MARKS)) {
        /* The same record (nothing new appended), or no room: the newest mark moves up (seq and
         * hlc only grow), so it waits for the newest record. */
        r->dur_marks[r->ndur - 1].seq = seq;
        r->dur_marks[r->ndur - 1].hlc = hlc;
    } else {
        r->dur_marks[r->ndur].seq = seq;
        r->dur_marks[r->ndur].hlc = hlc;
        r->ndur++;
    }
    pthread_mutex_unlock(&r->dur_mu);
}

uint64_t repl_durable_hlc(repl *r) {
    return atomic_load(&r->dur_lost) ? 0 : atomic_load(&r->durable_hlc);
}

int repl_flush(repl *r, bool wait, uint64_t *seq) {
    pthread_mutex_lock(&r->flush_mu);
    int rc = 0;
    uint64_t own = kvs_own_hlc(r->kv); /* before taking: every write up to it is pending or sent */
    for (;;) {
        uint8_t *data;
        size_t len;
        uint32_t n;
        kvs_take_batch(r->kv, CAP_PAYLOAD_MAX - 64, &data, &len, &n);
        if (!data)
            break;
        uint64_t s;
        rc = cap_append_submit(r->w, data, len, &s);
        free(data);
        if (rc)
            break;
        r->last_seq = s;
        r->bytes_since_ckpt += len;
        atomic_fetch_add(&r->appends, 1);
    }
    if (!rc)
        mark_flushed(r, r->last_seq, own);
    else /* writes taken and not appended: a later flush's mark would cover them */
        atomic_store(&r->dur_lost, true);
    /* Every checkpoint_every records, or sooner once the records since the last checkpoint
     * hold CHECKPOINT_LOG_BYTES: in function mode one record carries a whole invocation's
     * writes, and counting records alone left heavy writers without checkpoints (and so without
     * trims) for minutes. */
    if (!rc && r->checkpoint_every &&
        (r->last_seq >= r->ckpt_seq + r->checkpoint_every ||
         r->bytes_since_ckpt >= CHECKPOINT_LOG_BYTES))
        rc = checkpoint(r);
    uint64_t last = r->last_seq;
    pthread_mutex_unlock(&r->flush_mu);
    if (!rc && wait && last)
        rc = cap_wait_durable(r->w, last);
    if (seq)
        *seq = last;
    return rc;
}

int repl_wait_for(repl *r, uint64_t writer, uint64_t seqno, int timeout_ms) {
    if (writer == r->writer || seqno == 0)
        return 0;
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    for (int round = 0;; round++) {
        pcap *c = cap_of_writer(r, writer);
        if (c && c->next_seq > seqno)
            break;
        /* Give multicast a moment, then pull from storage. */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        if (t.tv_sec > end.tv_sec || (t.tv_sec == end.tv_sec && t.tv_nsec >= end.tv_nsec)) {
            rc = -ETIMEDOUT;
            break;
        }
        if (round > 0) {
            if (c)
                (void)catch_up(r, c);
            else
                (void)recover_all(r);
            c = cap_of_writer(r, writer);
            if (c && c->next_seq > seqno)
                break;
        }
        t.tv_nsec += 20000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &t);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void repl_get_stats(repl *r, repl_stats *s) {
    s->appends = atomic_load(&r->appends);
    s->own_seq = atomic_load(&r->last_seq);
    s->applied_batches = atomic_load(&r->applied_batches);
    s->multicast_in = atomic_load(&r->multicast_in);
    s->repaired = atomic_load(&r->repaired);
    s->rejected = atomic_load(&r->rejected);
    s->checkpoints = atomic_load(&r->checkpoints);
    s->from_checkpoint = atomic_load(&r->from_checkpoint);
}
