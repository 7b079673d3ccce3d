/* capsule writer: group commit of concurrent appends into signed batches, quorum replication.
 * One committer thread owns the chain state (seqno, prev hash, hlc) and the replica sockets;
 * appenders only queue payloads under the mutex. A batch is journaled (fdatasync) before it is
 * sent, so a writer that crashes mid-batch resends exactly the same signed bytes on restart and
 * never signs a second, different record at a seqno some replica may already hold (a fork).
 * Up to MAX_INFLIGHT batches are on their way at once (pipelining): the next batch is built,
 * signed and journaled while the replicas commit the previous ones, and batches become durable
 * strictly in order. Each batch is packed once; all replicas are sent the same bytes. */
#include "capsule/capsule_int.h"

#include "crypto/crypto.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct pend {
    struct pend *next;
    uint8_t kind;
    size_t len;
    uint8_t data[];
} pend;

/* A packed append message, shared by the batch and every ZeroMQ message sending it. */
typedef struct wire {
    int refs;
    size_t len;
    uint8_t data[];
} wire;

typedef struct wbatch {
    uint64_t first, last;
    size_t n, bytes;
    uint8_t **recs;
    size_t *lens;
    uint8_t head[CAP_HEAD_BYTES];
    wire *wire; /* packed CapAppend, made on first send */
} wbatch;

#define CACHE_MAX 64
/* Batches sent but not yet durable; another one is started only when at least PIPE_MIN_*
 * are queued (a few records rather wait for the batch ahead: group commit). */
#define MAX_INFLIGHT 4
#define PIPE_MIN_RECORDS 32u
#define PIPE_MIN_BYTES (256u << 10)
/* Journal size (bytes, records) after which the pipeline drains so that the journal restarts at
 * offset 0 (a resumed journal is resent as one append, which must stay within the limits). */
#define JOURNAL_WRAP (16u << 20)
#define JOURNAL_WRAP_RECS 32768u

struct cap_writer {
    cap_keys k;
    uint8_t id[CAP_ID_BYTES];
    uint8_t dkey[32];
    unsigned f;
    unsigned version; /* the capsule's record format (CAP_V_*), record 0's */
    cap_client *c;
    cap_writer_opts o;
    int journal_fd;

    pthread_t thr;
    bool thr_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_done;
    int wake[2];    /* pipe: appenders wake the committer out of zmq_poll when it is idle */
    bool idle;      /* the committer waits for work (under mu) */
    size_t wake_qn; /* ... and wants waking when this many records are queued */
    pend *qh, *qt;
    size_t qn, qbytes;    /* queued records and payload bytes */
    uint64_t next_seq;    /* seqno the next submit gets */
    uint64_t durable_seq; /* highest seqno durable on f+1 replicas */
    cap_head head;        /* signed head of durable_seq */
    int failed;           /* sticky failure */
    bool closing;
    cap_writer_stats st;

    /* committer-thread state */
    uint8_t prev[CAP_HASH_BYTES];
    uint64_t last_hlc;
    uint64_t built_seq; /* last seqno put into a batch */
    wbatch *cache[CACHE_MAX];
    size_t ncache;
    uint64_t *acked;            /* per replica: highest stored seqno it reported */
    uint64_t *sent_upto;        /* per replica: highest seqno sent since the last (re)sync */
    uint64_t *last_io;          /* per replica: when we last sent or resent (ns) */
    uint64_t *gap_from;         /* per replica: where the last resend started */
    wbatch *infl[MAX_INFLIGHT]; /* sent, not yet durable, oldest first (owned by the cache) */
    size_t ninfl;
    uint64_t joff;    /* journal: where the next batch goes (0 when nothing is in flight) */
    size_t jrecs;     /* records journaled since offset 0 */
    uint8_t jkey[32]; /* journal entry tags */
    uint64_t jctr;    /* the TEE counter's value (opts.tee) */
    char jname[TEE_COUNTER_NAME_MAX + 1]; /* opts.journal_counter, copied at open */
};

static void wire_unref(wire *x) {
    if (x && __atomic_sub_fetch(&x->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(x);
}
static void wire_zmq_free(void *data, void *hint) {
    (void)data;
    wire_unref(hint);
}

static void batch_free(wbatch *b) {
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->recs[i]);
    free(b->recs);
    free(b->lens);
    wire_unref(b->wire);
    free(b);
}

static uint64_t hlc_next(cap_writer *w) {
    uint64_t phys = (plat_realtime_ns() / 1000000u) << 16;
    uint64_t h = phys > w->last_hlc ? phys : w->last_hlc + 1;
    w->last_hlc = h;
    return h;
}

static void fail_sticky(cap_writer *w, int rc, const char *why) {
    pthread_mutex_lock(&w->mu);
    if (!w->failed) {
        w->failed = rc;
        fprintf(stderr, "psl capsule writer: %s: %s\n", why, cap_strerror(rc));
    }
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
}

/* ---- journal ----------------------------------------------------------------------------------
 * Entries "PSJ2" || u64 n || u64 counter || tag 32 || head 136 || n x (u32 len || record); older
 * files may hold "PSJ1" || u64 n || head || records (counter 0). The tag is keyed BLAKE2b (a key
 * derived from the data root) over the entry's first 20 bytes and the head, so the counter value
 * cannot be edited into an old entry. Each batch is written after the previous ones still in
 * flight, or at offset 0 when none is; the file is never truncated (fdatasync then has no size
 * change to commit). On load, entries are read from offset 0 while each continues the chain of the
 * one before; what follows (a torn write, or older entries of an earlier lap) is ignored.
 * With a TEE counter bound (opts.tee), the counter is incremented after each entry is durable, so
 * the newest entry always carries the counter's value (or one more, after a crash in between). */
#define JHDR1 12u
#define JHDR2 (20u + 32u)

static void journal_tag(const cap_writer *w, const uint8_t *entry, uint8_t tag[32]) {
    uint8_t msg[20 + CAP_HEAD_BYTES];
    memcpy(msg, entry, 20);
    memcpy(msg + 20, entry + JHDR2, CAP_HEAD_BYTES);
    cr_hash_ex(tag, 32, w->jkey, sizeof w->jkey, msg, sizeof msg);
}

static int journal_write(cap_writer *w, const wbatch *b) {
    if (w->journal_fd < 0)
        return 0;
    if (w->ninfl == 0) {
        w->joff = 0;
        w->jrecs = 0;
    }
    size_t n = JHDR2 + CAP_HEAD_BYTES + 4 * b->n + b->bytes;
    uint8_t *buf = xmalloc(n), *p = buf;
    memcpy(p, "PSJ2", 4);
    uint64_t cnt = b->n, ctr = w->o.tee ? w->jctr + 1 : 0;
    memcpy(p + 4, &cnt, 8);
    memcpy(p + 12, &ctr, 8);
    memcpy(p + JHDR2, b->head, CAP_HEAD_BYTES);
    journal_tag(w, buf, p + 20);
    p += JHDR2 + CAP_HEAD_BYTES;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t l = (uint32_t)b->lens[i];
        memcpy(p, &l, 4);
        memcpy(p + 4, b->recs[i], l);
        p += 4 + l;
    }
    int rc = 0;
    if (pwrite(w->journal_fd, buf, n, (off_t)w->joff) != (ssize_t)n || fdatasync(w->journal_fd))
        rc = ERR_IO;
    w->joff += n;
    w->jrecs += b->n;
    free(buf);
    if (rc == 0 && w->o.tee) {
        uint64_t v;
        rc = tee_counter_increment(w->o.tee, w->o.journal_counter, &v);
        if (rc == 0 && v != ctr)
            rc = CAP_ERR_ROLLBACK; /* someone else moves this counter */
        if (rc == 0)
            w->jctr = v;
    }
    return rc;
}

/* Parse one journal entry at @p d (n bytes): a chain of this capsule ending at its valid signed
 * head, continuing @p prev_last / @p prev_hash when @p cont. Appends its records to @p b.
 * @return bytes consumed, or 0 when the entry is missing, torn or does not continue the chain. */
static size_t journal_entry(cap_writer *w, const uint8_t *d, size_t n, wbatch *b, bool cont,
                            uint8_t hash[CAP_HASH_BYTES], uint64_t *ctr) {
    uint64_t cnt;
    cap_head h;
    size_t hl;
    if (n >= JHDR1 + CAP_HEAD_BYTES && memcmp(d, "PSJ1", 4) == 0) {
        hl = JHDR1;
        *ctr = 0;
    } else if (n >= JHDR2 + CAP_HEAD_BYTES && memcmp(d, "PSJ2", 4) == 0) {
        uint8_t tag[32];
        journal_tag(w, d, tag);
        if (!cr_equal(tag, d + 20, 32))
            return 0;
        hl = JHDR2;
        memcpy(ctr, d + 12, 8);
    } else {
        return 0;
    }
    memcpy(&cnt, d + 4, 8);
    if (cnt == 0 || cnt > 1000000 || cap_head_decode(d + hl, CAP_HEAD_BYTES, &h) ||
        memcmp(h.capsule, w->id, CAP_ID_BYTES) != 0 || cap_head_verify(&h, w->k.sign_pk) != 0)
        return 0;
    /* Check the whole entry before taking any of it. */
    size_t off = hl + CAP_HEAD_BYTES;
    uint8_t hh[CAP_HASH_BYTES];
    memcpy(hh, hash, CAP_HASH_BYTES);
    uint64_t last = b->last;
    for (uint64_t i = 0; i < cnt; i++) {
        uint32_t l;
        cap_hdr hd;
        if (off + 4 > n)
            return 0;
        memcpy(&l, d + off, 4);
        if (l > n - off - 4 || cap_record_parse(d + off + 4, l, &hd, NULL, NULL))
            return 0;
        if ((i > 0 || cont) && (hd.seqno != last + 1 || memcmp(hd.prev, hh, CAP_HASH_BYTES) != 0))
            return 0;
        last = hd.seqno;
        cap_record_hash(d + off + 4, l, hh);
        off += 4 + l;
    }
    if (last != h.seqno || memcmp(hh, h.hash, CAP_HASH_BYTES) != 0)
        return 0;
    b->recs = xrealloc(b->recs, (b->n + cnt) * sizeof *b->recs);
    b->lens = xrealloc(b->lens, (b->n + cnt) * sizeof *b->lens);
    size_t o = hl + CAP_HEAD_BYTES;
    for (uint64_t i = 0; i < cnt; i++) {
        uint32_t l;
        memcpy(&l, d + o, 4);
        if (b->n == 0) {
            cap_hdr hd;
            CAP_IGNORE(cap_record_parse(d + o + 4, l, &hd, NULL, NULL));
            b->first = hd.seqno;
        }
        b->recs[b->n] = xmalloc(l);
        memcpy(b->recs[b->n], d + o + 4, l);
        b->lens[b->n] = l;
        b->n++;
        b->bytes += l;
        o += 4 + l;
    }
    b->last = last;
    memcpy(b->head, d + hl, CAP_HEAD_BYTES);
    memcpy(hash, hh, CAP_HASH_BYTES);
    return off;
}

/* Load the journal: its chained entries from offset 0, merged into one batch that ends at the
 * last entry's signed head (a replica accepts it as one append). *out = NULL when empty.
 * @param[out] ctr the counter value of the last entry (0 when none). */
static int journal_load(cap_writer *w, wbatch **out, uint64_t *ctr) {
    *out = NULL;
    *ctr = 0;
    uint8_t *d = NULL;
    size_t n = 0;
    if (lseek(w->journal_fd, 0, SEEK_SET) < 0 || plat_read_fd(w->journal_fd, 1u << 30, &d, &n))
        return ERR_IO;
    wbatch *b = xcalloc(1, sizeof *b);
    uint8_t hash[CAP_HASH_BYTES] = {0};
    size_t off = 0, used;
    uint64_t c = 0;
    while (off < n && (used = journal_entry(w, d + off, n - off, b, b->n > 0, hash, &c)) > 0) {
        off += used;
        *ctr = c;
    }
    free(d);
    if (b->n == 0) {
        batch_free(b); /* no journal, or a torn first entry: that batch was never sent */
        return 0;
    }
    *out = b;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------- */
static void send_batch(cap_writer *w, size_t i, wbatch *b) {
    if (!b->wire) {
        Psl__CapAppend a = PSL__CAP_APPEND__INIT;
        a.capsule.data = w->id;
        a.capsule.len = CAP_ID_BYTES;
        a.first = b->first;
        a.n_records = b->n;
        ProtobufCBinaryData *rv = xmalloc(b->n * sizeof *rv);
        for (size_t k = 0; k < b->n; k++) {
            rv[k].data = b->recs[k];
            rv[k].len = b->lens[k];
        }
        a.records = rv;
        a.head.data = (uint8_t *)b->head;
        a.head.len = CAP_HEAD_BYTES;
        Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
        req.body_case = PSL__CAP_REQUEST__BODY_APPEND;
        req.append = &a;
        /* Append replies are matched by the replica's head, not by id: one id serves all. */
        req.id = __atomic_fetch_add(&w->c->next_id, 1, __ATOMIC_RELAXED);
        size_t n = psl__cap_request__get_packed_size(&req);
        b->wire = xmalloc(sizeof *b->wire + n);
        b->wire->refs = 1;
        b->wire->len = n;
        psl__cap_request__pack(&req, b->wire->data);
        free(rv);
    }
    /* Zero copy: the message points at the shared packed bytes and drops its reference when
     * ZeroMQ has sent it. */
    zmq_msg_t m;
    __atomic_add_fetch(&b->wire->refs, 1, __ATOMIC_ACQ_REL);
    if (zmq_msg_init_data(&m, b->wire->data, b->wire->len, wire_zmq_free, b->wire) != 0) {
        wire_unref(b->wire);
    } else if (zmq_msg_send(&m, w->c->socks[i], ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
    } else if (b->last > w->sent_upto[i]) {
        w->sent_upto[i] = b->last;
    }
    w->last_io[i] = plat_now_ns();
}

/* Bring replica i up to date from the cache, starting after what it acknowledged. */
static void resend(cap_writer *w, size_t i) {
    uint64_t a = w->acked[i] == UINT64_MAX ? 0 : w->acked[i];
    bool sent = false;
    w->sent_upto[i] = a;
    w->gap_from[i] = a;
    w->last_io[i] = plat_now_ns();
    for (size_t k = 0; k < w->ncache; k++) {
        wbatch *b = w->cache[k];
        if (b->last <= a)
            continue;
        if (b->first > w->sent_upto[i] + 1)
            break; /* older than the cache: the replica's anti-entropy pulls it from peers */
        send_batch(w, i, b);
        sent = true;
        w->st.resends++;
    }
    /* Nothing could be sent: probe with the newest batch so that the replica's reply (a gap, once
     * its anti-entropy has caught up, or an ack) tells us where it stands. */
    if (!sent && w->ncache > 0) {
        uint64_t keep = w->sent_upto[i];
        send_batch(w, i, w->cache[w->ncache - 1]);
        w->sent_upto[i] = keep;
    }
}

static void cache_add(cap_writer *w, wbatch *b) {
    size_t bytes = 0;
    for (size_t k = 0; k < w->ncache; k++)
        bytes += w->cache[k]->bytes;
    while (w->ncache == CACHE_MAX || (w->ncache > 1 && bytes > (64u << 20))) {
        bytes -= w->cache[0]->bytes;
        batch_free(w->cache[0]);
        memmove(w->cache, w->cache + 1, (w->ncache - 1) * sizeof *w->cache);
        w->ncache--;
    }
    w->cache[w->ncache++] = b;
}

/* Handle every reply that is waiting (or wait up to @p wait_ms for one). */
static int pump(cap_writer *w, int wait_ms) {
    size_t n = w->c->n;
    zmq_pollitem_t items[17];
    ASSERT(n <= 16);
    for (size_t i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){.socket = w->c->socks[i], .events = ZMQ_POLLIN};
    items[n] = (zmq_pollitem_t){.socket = NULL, .fd = w->wake[0], .events = ZMQ_POLLIN};
    int r = zmq_poll(items, (int)n + (w->wake[0] >= 0), wait_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (w->wake[0] >= 0 && (items[n].revents & ZMQ_POLLIN)) {
        char junk[64];
        while (read(w->wake[0], junk, sizeof junk) > 0) {
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        Psl__CapReply *rep;
        while (cap__recv(w->c, i, 0, &rep) == 0) {
            if (rep->status == 0 && rep->has_head) {
                if (rep->have > w->acked[i] || w->acked[i] == UINT64_MAX)
                    w->acked[i] = rep->have;
            } else if (rep->status == CAP_ERR_GAP && rep->has_head) {
                w->acked[i] = rep->have;
                /* Several pipelined batches report the same gap: resend once for it. */
                if (plat_now_ns() - w->last_io[i] > 20000000u ||
                    (w->sent_upto[i] > rep->have && w->gap_from[i] != rep->have))
                    resend(w, i);
            } else if (rep->status == ERR_NOTFOUND) {
                w->acked[i] = 0; /* the replica lost or never had record 0 */
                if (plat_now_ns() - w->last_io[i] > 20000000u)
                    resend(w, i);
            } else if (rep->status == CAP_ERR_CONFLICT) {
                psl__cap_reply__free_unpacked(rep, NULL);
                fail_sticky(w, CAP_ERR_FORK, "a replica holds a different record (fork)");
                return CAP_ERR_FORK;
            } else if (rep->status != 0) {
                fprintf(stderr, "psl capsule writer: replica %s: %s%s%s\n", w->c->eps[i],
                        cap_strerror(rep->status), rep->error[0] ? ": " : "", rep->error);
            }
            psl__cap_reply__free_unpacked(rep, NULL);
        }
        /* A replica that answered everything we sent but misses newer batches (it was slow to
         * answer record 0, or came back) is caught up at once rather than at the next timeout. */
        if (w->ncache && w->acked[i] != UINT64_MAX && w->acked[i] >= w->sent_upto[i] &&
            w->sent_upto[i] < w->cache[w->ncache - 1]->last)
            resend(w, i);
    }
    return 0;
}

static size_t count_acked(cap_writer *w, uint64_t seq) {
    size_t k = 0;
    for (size_t i = 0; i < w->c->n; i++)
        if (w->acked[i] != UINT64_MAX && w->acked[i] >= seq)
            k++;
    return k;
}

/* Send @p b to all replicas and wait until f+1 hold it. */
static int replicate(cap_writer *w, wbatch *b) {
    int tmo = w->o.timeout_ms > 0 ? w->o.timeout_ms : 1000;
    for (size_t i = 0; i < w->c->n; i++)
        if (w->acked[i] != UINT64_MAX && w->sent_upto[i] + 1 >= b->first) /* pipelined */
            send_batch(w, i, b);
        else if (plat_now_ns() - w->last_io[i] > (uint64_t)tmo * 1000000u)
            resend(w, i);
    while (count_acked(w, b->last) < w->f + 1) {
        int rc = pump(w, 5);
        if (rc)
            return rc;
        uint64_t now = plat_now_ns();
        for (size_t i = 0; i < w->c->n; i++)
            if ((w->acked[i] == UINT64_MAX || w->acked[i] < b->last) &&
                now - w->last_io[i] > (uint64_t)tmo * 1000000u) {
                if (w->acked[i] == UINT64_MAX)
                    w->acked[i] = 0;
                resend(w, i);
            }
        pthread_mutex_lock(&w->mu);
        bool closing_hard = w->closing && w->failed;
        pthread_mutex_unlock(&w->mu);
        if (closing_hard)
            return ERR_IO;
    }
    return 0;
}

static void mark_durable(cap_writer *w, const wbatch *b, size_t nrec, size_t bytes) {
    cap_head h;
    CAP_IGNORE(cap_head_decode(b->head, CAP_HEAD_BYTES, &h));
    pthread_mutex_lock(&w->mu);
    w->durable_seq = b->last;
    w->head = h;
    w->st.batches++;
    w->st.records += nrec;
    w->st.bytes += bytes;
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
}

/* Take the next batch off the queue (up to the limits; a checkpoint always ends its batch), then
 * encrypt, chain and sign it. Called with w->mu held and w->qh non-NULL; returns with it released.
 */
static wbatch *build_batch(cap_writer *w, size_t maxr, size_t maxb, size_t *nrec_out,
                           size_t *bytes_out) {
    pend *take = w->qh, *last = NULL;
    size_t nrec = 0, bytes = 0;
    for (pend *p = w->qh; p; p = p->next) {
        if (nrec > 0 && (nrec >= maxr || bytes + p->len > maxb))
            break;
        last = p;
        nrec++;
        bytes += p->len;
        if (p->kind == CAP_KIND_CHECKPOINT)
            break;
    }
    w->qh = last->next;
    w->qn -= nrec;
    /* A waiting submitter saw qbytes + len > CAP_QUEUE_MAX with len <= CAP_PAYLOAD_MAX, so the
     * queue then held more than half of it. */
    _Static_assert(CAP_PAYLOAD_MAX <= CAP_QUEUE_MAX / 2, "a waiter implies a half-full queue");
    bool was_full = w->qbytes >= CAP_QUEUE_MAX / 2;
    w->qbytes -= bytes;
    if (!w->qh)
        w->qt = NULL;
    last->next = NULL;
    if (was_full) /* submitters may be waiting for room */
        pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);

    wbatch *b = xcalloc(1, sizeof *b);
    b->recs = xcalloc(nrec, sizeof *b->recs);
    b->lens = xcalloc(nrec, sizeof *b->lens);
    b->first = w->built_seq + 1;
    for (pend *p = take, *nx; p; p = nx) {
        nx = p->next;
        cap_hdr h = {.version = (uint8_t)w->version,
                     .kind = p->kind,
                     .payload_len = (uint32_t)p->len,
                     .seqno = w->built_seq + 1,
                     .hlc = hlc_next(w)};
        memcpy(h.capsule, w->id, CAP_ID_BYTES);
        memcpy(h.prev, w->prev, CAP_HASH_BYTES);
        int rc = cap_record_build(w->dkey, &h, p->data, &b->recs[b->n], &b->lens[b->n], w->prev);
        ASSERT(rc == 0);
        b->bytes += b->lens[b->n];
        b->n++;
        w->built_seq++;
        free(p);
    }
    b->last = w->built_seq;
    cap_head hd = {.seqno = b->last};
    memcpy(hd.capsule, w->id, CAP_ID_BYTES);
    memcpy(hd.hash, w->prev, CAP_HASH_BYTES);
    cap_head_sign(&hd, w->k.sign_sk);
    cap_head_encode(&hd, b->head);
    *nrec_out = nrec;
    *bytes_out = bytes;
    return b;
}

/* Report the in-flight batches that f+1 replicas now hold, oldest first. */
static void complete_durable(cap_writer *w) {
    while (w->ninfl && count_acked(w, w->infl[0]->last) >= w->f + 1) {
        wbatch *b = w->infl[0];
        size_t plain = 0;
        for (size_t i = 0; i < b->n; i++)
            plain += b->lens[i] - CAP_HDR_BYTES - CAP_AEAD_OVERHEAD;
        mark_durable(w, b, b->n, plain);
        if (w->o.on_durable)
            w->o.on_durable(w->o.on_durable_ud, (const uint8_t *const *)b->recs, b->lens, b->n,
                            b->head);
        memmove(w->infl, w->infl + 1, (w->ninfl - 1) * sizeof *w->infl);
        w->ninfl--;
    }
}

static void *committer(void *arg) {
    plat_thread_name("capsule-commit");
    cap_writer *w = arg;
    size_t maxr = w->o.max_batch_records ? w->o.max_batch_records : 4096;
    size_t maxb = w->o.max_batch_bytes ? w->o.max_batch_bytes : (4u << 20);
    int tmo = w->o.timeout_ms > 0 ? w->o.timeout_ms : 1000;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool closing = w->closing, failed = w->failed != 0;
        /* A long journal drains the pipeline so that the next batch can restart it at 0. */
        bool wrap = w->ninfl > 0 && (w->joff >= JOURNAL_WRAP || w->jrecs >= JOURNAL_WRAP_RECS);
        if (failed) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        bool worth = w->ninfl == 0 || w->qn >= PIPE_MIN_RECORDS || w->qbytes >= PIPE_MIN_BYTES;
        if (w->qh && w->ninfl < MAX_INFLIGHT && !wrap && worth) {
            size_t nrec, bytes;
            wbatch *b = build_batch(w, maxr, maxb, &nrec, &bytes); /* releases mu */
            int rc = journal_write(w, b);
            if (rc) {
                batch_free(b);
                fail_sticky(w, rc, "journal write failed");
                break;
            }
            cache_add(w, b);
            w->infl[w->ninfl++] = b;
            for (size_t i = 0; i < w->c->n; i++)
                if (w->acked[i] != UINT64_MAX && w->sent_upto[i] + 1 >= b->first) /* in step */
                    send_batch(w, i, b);
                else if (plat_now_ns() - w->last_io[i] > (uint64_t)tmo * 1000000u)
                    resend(w, i);
            rc = pump(w, 0);
            if (rc) {
                fail_sticky(w, rc, "replication failed");
                break;
            }
            complete_durable(w);
            continue;
        }
        if (!w->qh && closing && w->ninfl == 0) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* Idle: no batch to start now. An appender wakes us once the queue is worth a batch. */
        w->idle = true;
        w->wake_qn = w->ninfl == 0 ? 1 : PIPE_MIN_RECORDS;
        pthread_mutex_unlock(&w->mu);
        /* Wait for acks, or (idle) for new appends; the pipe wakes us from zmq_poll. */
        int rc = pump(w, w->ninfl ? 5 : 20);
        pthread_mutex_lock(&w->mu);
        w->idle = false;
        pthread_mutex_unlock(&w->mu);
        if (rc) {
            fail_sticky(w, rc, "replication failed");
            break;
        }
        complete_durable(w);
        if (w->ninfl) {
            wbatch *b = w->infl[0];
            uint64_t now = plat_now_ns();
            for (size_t i = 0; i < w->c->n; i++)
                if ((w->acked[i] == UINT64_MAX || w->acked[i] < b->last) &&
                    now - w->last_io[i] > (uint64_t)tmo * 1000000u) {
                    if (w->acked[i] == UINT64_MAX)
                        w->acked[i] = 0;
                    resend(w, i);
                }
        }
    }
    /* Closing: give lagging replicas a moment to acknowledge the tail, so that a short-lived
     * writer (the CLI) leaves all 2f+1 copies, not only f+1 (anti-entropy would fix it later). */
    uint64_t until = plat_now_ns() + 500000000u;
    while (!w->failed && w->ninfl == 0 && count_acked(w, w->built_seq) < w->c->n &&
           plat_now_ns() < until)
        if (pump(w, 10))
            break;
    return NULL;
}

/* ---- open / resume ------------------------------------------------------------------------- */
static int writer_create(cap_writer *w) {
    uint8_t *rec = NULL;
    size_t len = 0;
    int rc = cap_default_version();
    if (rc < 0)
        return rc;
    w->version = (unsigned)rc;
    rc = cap_meta_build(&w->k, w->o.name, w->f, w->version, &rec, &len, w->id);
    if (rc)
        return rc;
    cap_hdr h;
    rc = cap_record_parse(rec, len, &h, NULL, NULL);
    ASSERT(rc == 0);
    wbatch *b = xcalloc(1, sizeof *b);
    b->recs = xcalloc(1, sizeof *b->recs);
    b->lens = xcalloc(1, sizeof *b->lens);
    b->recs[0] = rec;
    b->lens[0] = len;
    b->n = 1;
    b->bytes = len;
    cap_record_hash(rec, len, w->prev);
    w->last_hlc = h.hlc;
    cap_head hd = {.seqno = 0};
    memcpy(hd.capsule, w->id, CAP_ID_BYTES);
    memcpy(hd.hash, w->prev, CAP_HASH_BYTES);
    cap_head_sign(&hd, w->k.sign_sk);
    cap_head_encode(&hd, b->head);
    cap_data_key(w->k.data_root, w->id, w->dkey);
    cr_kdf(w->jkey, sizeof w->jkey, w->k.data_root, "psl-capsule-journal-v1", w->id, CAP_ID_BYTES);
    rc = journal_write(w, b);
    if (rc) {
        batch_free(b);
        return rc;
    }
    for (size_t i = 0; i < w->c->n; i++)
        w->acked[i] = 0; /* nothing yet; record 0 is sent to everyone */
    cache_add(w, b);
    for (size_t i = 0; i < w->c->n; i++)
        send_batch(w, i, b);
    /* acked = 0 would count as "holds record 0": use a sentinel until the first reply. */
    for (size_t i = 0; i < w->c->n; i++)
        w->acked[i] = UINT64_MAX;
    rc = replicate(w, b);
    if (rc)
        return rc;
    w->built_seq = 0;
    w->durable_seq = 0;
    w->head = hd;
    return 0;
}

static int writer_resume(cap_writer *w, const uint8_t *id) {
    memcpy(w->id, id, CAP_ID_BYTES);
    cap_data_key(w->k.data_root, w->id, w->dkey);
    cr_kdf(w->jkey, sizeof w->jkey, w->k.data_root, "psl-capsule-journal-v1", w->id, CAP_ID_BYTES);
    cap_meta m;
    int rc = cap__fetch_meta(w->c, id, &m, NULL, NULL);
    if (rc)
        return rc;
    if (!cr_equal(m.writer_pk, w->k.sign_pk, 32))
        return ERR_AUTH;
    w->version = m.version;
    /* The newest head among the replicas that answer. */
    size_t answered = 0;
    bool have = false;
    cap_head best = {0};
    for (size_t i = 0; i < w->c->n; i++) {
        cap_head h;
        w->acked[i] = UINT64_MAX;
        rc = cap__get_head(w->c, i, id, &h);
        if (rc == ERR_NOTFOUND) {
            answered++;
            w->acked[i] = 0;
            continue;
        }
        if (rc || cap_head_verify(&h, w->k.sign_pk) != 0)
            continue;
        answered++;
        w->acked[i] = h.seqno;
        if (have && h.seqno == best.seqno && memcmp(h.hash, best.hash, CAP_HASH_BYTES) != 0)
            return CAP_ERR_FORK;
        if (!have || h.seqno > best.seqno) {
            best = h;
            have = true;
        }
    }
    size_t need = w->journal_fd >= 0 ? w->f + 1 : w->c->n;
    if (answered < need || !have)
        return CAP_ERR_QUORUM;
    /* Learn the clock of the head record. */
    uint64_t hlc = 0;
    for (size_t i = 0; i < w->c->n && !hlc; i++) {
        if (w->acked[i] == UINT64_MAX || w->acked[i] < best.seqno)
            continue;
        Psl__CapReply *rep = NULL;
        if (cap__read(w->c, i, id, best.seqno, 1, &rep) != 0)
            continue;
        uint8_t hh[CAP_HASH_BYTES];
        cap_hdr hd;
        if (rep->n_records == 1 &&
            cap_record_parse(rep->records[0].data, rep->records[0].len, &hd, NULL, NULL) == 0) {
            cap_record_hash(rep->records[0].data, rep->records[0].len, hh);
            if (memcmp(hh, best.hash, CAP_HASH_BYTES) == 0)
                hlc = hd.hlc ? hd.hlc : 1;
        }
        psl__cap_reply__free_unpacked(rep, NULL);
    }
    if (!hlc)
        return CAP_ERR_TRUNCATED;
    w->built_seq = best.seqno;
    w->durable_seq = best.seqno;
    w->head = best;
    memcpy(w->prev, best.hash, CAP_HASH_BYTES);
    w->last_hlc = hlc;
    for (size_t i = 0; i < w->c->n; i++)
        w->sent_upto[i] = w->acked[i] == UINT64_MAX ? 0 : w->acked[i];
    /* Replay the journaled batch when it goes beyond the durable head. */
    if (w->journal_fd >= 0) {
        wbatch *b = NULL;
        uint64_t jc = 0;
        rc = journal_load(w, &b, &jc);
        if (rc)
            return rc;
        if (w->o.tee && jc != w->jctr) {
            /* One more: the writer died between journaling and counting. Fewer: the journal is
             * an older copy (or gone), and batches it no longer holds may sit on a replica. */
            if (jc == w->jctr + 1) {
                uint64_t v;
                rc = tee_counter_increment(w->o.tee, w->o.journal_counter, &v);
                if (rc == 0 && v != jc)
                    rc = CAP_ERR_ROLLBACK;
                if (rc) {
                    batch_free(b);
                    return rc;
                }
                w->jctr = v;
            } else {
                fprintf(stderr,
                        "psl capsule writer: the journal is older than its TEE counter "
                        "(entry %llu, counter %llu): refusing to resume (it could fork)\n",
                        (unsigned long long)jc, (unsigned long long)w->jctr);
                batch_free(b);
                return CAP_ERR_ROLLBACK;
            }
        }
        if (b && b->last > best.seqno) {
            if (b->first > best.seqno + 1) {
                batch_free(b);
                return CAP_ERR_TRUNCATED; /* records between the quorum head and the journal */
            }
            cap_head jh;
            CAP_IGNORE(cap_head_decode(b->head, CAP_HEAD_BYTES, &jh));
            cache_add(w, b);
            for (size_t i = 0; i < w->c->n; i++)
                if (w->acked[i] != UINT64_MAX)
                    resend(w, i);
            rc = replicate(w, b);
            if (rc)
                return rc;
            cap_hdr hd;
            CAP_IGNORE(cap_record_parse(b->recs[b->n - 1], b->lens[b->n - 1], &hd, NULL, NULL));
            w->built_seq = b->last;
            w->durable_seq = b->last;
            w->head = jh;
            memcpy(w->prev, jh.hash, CAP_HASH_BYTES);
            w->last_hlc = hd.hlc;
        } else {
            batch_free(b);
        }
    }
    return 0;
}

int cap_writer_open(const cap_keys *keys, const cap_writer_opts *o, const uint8_t *id,
                    cap_writer **out, uint8_t id_out[CAP_ID_BYTES]) {
    if (!o || o->nreplicas == 0 || o->nreplicas > 16)
        return ERR_USAGE;
    int rc = cr_init();
    if (rc)
        return rc;
    cap_writer *w = xcalloc(1, sizeof *w);
    w->k = *keys;
    w->o = *o;
    w->f = o->f ? o->f : (unsigned)((o->nreplicas - 1) / 2);
    w->journal_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->wake[0] = w->wake[1] = -1;
    pthread_cond_init(&w->cv_done, NULL);
    w->acked = xcalloc(o->nreplicas, sizeof *w->acked);
    w->sent_upto = xcalloc(o->nreplicas, sizeof *w->sent_upto);
    w->last_io = xcalloc(o->nreplicas, sizeof *w->last_io);
    w->gap_from = xcalloc(o->nreplicas, sizeof *w->gap_from);
    for (size_t i = 0; i < o->nreplicas; i++)
        w->gap_from[i] = UINT64_MAX;
    if (2 * w->f + 1 > o->nreplicas) {
        rc = ERR_USAGE;
        goto fail;
    }
    rc = cap_client_open(o->replicas, o->nreplicas, o->timeout_ms, &w->c);
    if (rc)
        goto fail;
    if (pipe(w->wake) != 0) {
        w->wake[0] = w->wake[1] = -1;
        rc = -errno;
        goto fail;
    }
    for (int k = 0; k < 2; k++)
        if (fcntl(w->wake[k], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(w->wake[k], F_SETFD, FD_CLOEXEC) != 0) {
            rc = -errno;
            goto fail;
        }
    if (o->journal) {
        w->journal_fd = open(o->journal, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (w->journal_fd < 0) {
            rc = -errno;
            goto fail;
        }
    }
    if (o->tee) {
        if (!o->journal || !o->journal_counter || strlen(o->journal_counter) >= sizeof w->jname) {
            rc = ERR_USAGE;
            goto fail;
        }
        memcpy(w->jname, o->journal_counter, strlen(o->journal_counter) + 1);
        w->o.journal_counter = w->jname; /* the caller's string need not outlive the open */
        rc = tee_counter_read(o->tee, o->journal_counter, &w->jctr);
        if (rc)
            goto fail;
    }
    rc = id ? writer_resume(w, id) : writer_create(w);
    if (rc)
        goto fail;
    w->next_seq = w->built_seq + 1;
    if (pthread_create(&w->thr, NULL, committer, w) != 0) {
        rc = ERR_NOMEM;
        goto fail;
    }
    w->thr_started = true;
    if (id_out)
        memcpy(id_out, w->id, CAP_ID_BYTES);
    *out = w;
    return 0;
fail:
    CAP_IGNORE(cap_writer_close(w));
    return rc;
}

static int submit(cap_writer *w, uint8_t kind, const void *payload, size_t len, uint64_t *seq) {
    if (len > CAP_PAYLOAD_MAX)
        return ERR_LIMIT;
    pend *p = xmalloc(sizeof *p + len);
    p->next = NULL;
    p->kind = kind;
    p->len = len;
    if (len)
        memcpy(p->data, payload, len);
    pthread_mutex_lock(&w->mu);
    while (w->qbytes > 0 && w->qbytes + len > CAP_QUEUE_MAX && !w->failed && !w->closing)
        pthread_cond_wait(&w->cv_done, &w->mu); /* broadcast as the committer takes records */
    if (w->failed || w->closing) {
        int rc = w->failed ? w->failed : ERR_USAGE;
        pthread_mutex_unlock(&w->mu);
        free(p);
        return rc;
    }
    if (w->qt)
        w->qt->next = p;
    else
        w->qh = p;
    w->qt = p;
    w->qn++;
    w->qbytes += len;
    *seq = w->next_seq++;
    bool wake = w->idle && (w->qn >= w->wake_qn || w->qbytes >= PIPE_MIN_BYTES);
    if (wake)
        w->idle = false;
    pthread_mutex_unlock(&w->mu);
    if (wake)
        CAP_IGNORE(write(w->wake[1], "w", 1) < 0); /* full pipe: a wakeup is pending anyway */
    return 0;
}

int cap_append_submit(cap_writer *w, const void *payload, size_t len, uint64_t *seq) {
    return submit(w, CAP_KIND_DATA, payload, len, seq);
}

int cap_wait_durable(cap_writer *w, uint64_t seq) {
    pthread_mutex_lock(&w->mu);
    while (w->durable_seq < seq && !w->failed)
        pthread_cond_wait(&w->cv_done, &w->mu);
    int rc = w->durable_seq >= seq ? 0 : w->failed;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int cap_append(cap_writer *w, const void *payload, size_t len, uint64_t *seq) {
    uint64_t s;
    int rc = cap_append_submit(w, payload, len, &s);
    if (rc)
        return rc;
    if (seq)
        *seq = s;
    return cap_wait_durable(w, s);
}

int cap_checkpoint_parts(cap_writer *w, const void *const *parts, const size_t *lens, size_t n,
                         bool wait, uint64_t *seq) {
    if (n == 0)
        return ERR_USAGE;
    for (size_t i = 0; i < n; i++)
        if (lens[i] > CAP_PAYLOAD_MAX)
            return ERR_LIMIT;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int rc =
            submit(w, i + 1 < n ? CAP_KIND_CKPT_PART : CAP_KIND_CHECKPOINT, parts[i], lens[i], &s);
        if (rc) /* only the writer's sticky failure: nothing more of this writer goes out */
            return rc;
    }
    if (seq)
        *seq = s;
    return wait ? cap_wait_durable(w, s) : 0;
}

int cap_checkpoint(cap_writer *w, const void *summary, size_t len, uint64_t *seq) {
    return cap_checkpoint_parts(w, &summary, &len, 1, true, seq);
}

int cap_writer_trim_statement(cap_writer *w, uint64_t below, cap_trim *t) {
    pthread_mutex_lock(&w->mu);
    uint64_t durable = w->head.seqno;
    pthread_mutex_unlock(&w->mu);
    if (below < 2 || below > durable)
        return ERR_USAGE;
    memcpy(t->capsule, w->id, CAP_ID_BYTES);
    t->below = below;
    cap_trim_sign(t, w->k.sign_sk);
    return 0;
}

void cap_writer_head(cap_writer *w, cap_head *h) {
    pthread_mutex_lock(&w->mu);
    *h = w->head;
    pthread_mutex_unlock(&w->mu);
}

void cap_writer_stats_get(cap_writer *w, cap_writer_stats *s) {
    pthread_mutex_lock(&w->mu);
    *s = w->st;
    pthread_mutex_unlock(&w->mu);
}

int cap_writer_close(cap_writer *w) {
    if (!w)
        return 0;
    int rc = 0;
    if (w->thr_started) {
        pthread_mutex_lock(&w->mu);
        w->closing = true;
        pthread_cond_broadcast(&w->cv_done); /* submitters waiting for room */
        pthread_mutex_unlock(&w->mu);
        CAP_IGNORE(write(w->wake[1], "c", 1) < 0);
        pthread_join(w->thr, NULL);
        rc = w->failed;
    }
    for (pend *p = w->qh, *nx; p; p = nx) {
        nx = p->next;
        free(p);
    }
    for (size_t k = 0; k < w->ncache; k++)
        batch_free(w->cache[k]);
    cap_client_close(w->c);
    if (w->journal_fd >= 0)
        close(w->journal_fd);
    free(w->acked);
    free(w->sent_upto);
    free(w->last_io);
    free(w->gap_from);
    pthread_mutex_destroy(&w->mu);
    for (int k = 0; k < 2; k++)
        if (w->wake[k] >= 0)
            close(w->wake[k]);
    pthread_cond_destroy(&w->cv_done);
    cr_memzero(&w->k, sizeof w->k);
    cr_memzero(w->dkey, sizeof w->dkey);
    cr_memzero(w->jkey, sizeof w->jkey);
    free(w);
    return rc;
}
