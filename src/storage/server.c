/* storage server: a keyless DataCapsule replica on LMDB, with group commit and anti-entropy.
 * Invariant: every record stored for a capsule is linked to record 0 by prev hashes, or, once the
 * writer signed a trim statement (stored in `trims`), to the first record kept (records 1 ..
 * below-1 are dropped), and is covered by a stored head signature that verifies with the writer
 * key named in record 0. */
#include "storage/storage.h"

#include "capsule/capsule_int.h"
#include "crypto/crypto.h"
#include "platform/platform.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define READ_MAX_BYTES (16u << 20) /* largest read reply */
#define APPEND_MAX_RECORDS 65536u
#define GROUP_MAX 256 /* requests committed in one transaction */
#define SCRUB_QUEUE 64
#define TRIM_DELETE_MAX 4096 /* records dropped per transaction once a trim is stored */

typedef struct stg {
    const stg_opts *o;
    MDB_env *env;
    MDB_dbi recs, sigs, heads, trims;
    void *zctx, *router;
    volatile sig_atomic_t *stop;
    pthread_mutex_t mu;
    uint8_t scrubq[SCRUB_QUEUE][CAP_ID_BYTES];
    size_t nscrub;
} stg;

static void logf_(const stg *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const stg *s, const char *fmt, ...) {
    (void)s;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "psl storage: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void mkkey(uint8_t k[CAP_ID_BYTES + 8], const uint8_t *id, uint64_t seq) {
    memcpy(k, id, CAP_ID_BYTES);
    for (int i = 0; i < 8; i++)
        k[CAP_ID_BYTES + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static int mdb_err(int rc) {
    return rc == MDB_NOTFOUND ? ERR_NOTFOUND : rc == MDB_MAP_FULL ? ERR_LIMIT : ERR_IO;
}

static int get_head(stg *s, MDB_txn *t, const uint8_t *id, cap_head *h) {
    MDB_val k = {CAP_ID_BYTES, (void *)id}, v;
    int rc = mdb_get(t, s->heads, &k, &v);
    if (rc)
        return mdb_err(rc);
    return cap_head_decode(v.mv_data, v.mv_size, h) ? ERR_CORRUPT : 0;
}

static int get_rec(stg *s, MDB_txn *t, const uint8_t *id, uint64_t seq, MDB_val *v) {
    uint8_t kb[CAP_ID_BYTES + 8];
    mkkey(kb, id, seq);
    MDB_val k = {sizeof kb, kb};
    int rc = mdb_get(t, s->recs, &k, v);
    return rc ? mdb_err(rc) : 0;
}

/* The trim statement stored for capsule @p id: 0 (set), ERR_NOTFOUND, or an error. */
static int get_trim(stg *s, MDB_txn *t, const uint8_t *id, cap_trim *tr, MDB_val *raw) {
    MDB_val k = {CAP_ID_BYTES, (void *)id}, v;
    int rc = mdb_get(t, s->trims, &k, &v);
    if (rc)
        return mdb_err(rc);
    if (raw)
        *raw = v;
    return cap_trim_decode(v.mv_data, v.mv_size, tr) ? ERR_CORRUPT : 0;
}

/* First seqno above record 0 that this replica keeps for @p id (1 when untrimmed). */
static uint64_t kept_from(stg *s, MDB_txn *t, const uint8_t *id) {
    cap_trim tr;
    return get_trim(s, t, id, &tr, NULL) == 0 ? tr.below : 1;
}

/* Check trim statement @p enc against the writer key of record 0 (stored) and store it when it
 * drops more than the stored one; the records go later (trim_delete). @return 0, ERR_NOTFOUND
 * (no record 0 here), ERR_AUTH (does not verify) or ERR_MALFORMED. */
static int store_trim(stg *s, MDB_txn *t, const uint8_t *enc, size_t len, cap_trim *out) {
    cap_trim tr, cur;
    if (cap_trim_decode(enc, len, &tr) != 0)
        return ERR_MALFORMED;
    MDB_val v;
    cap_meta m;
    uint8_t mid[CAP_ID_BYTES];
    int rc = get_rec(s, t, tr.capsule, 0, &v);
    if (rc)
        return rc;
    if (cap_meta_parse(v.mv_data, v.mv_size, &m, mid) != 0 ||
        memcmp(mid, tr.capsule, CAP_ID_BYTES) != 0)
        return ERR_CORRUPT;
    if (cap_trim_verify(&tr, m.writer_pk) != 0)
        return ERR_AUTH;
    if (out)
        *out = tr;
    if (get_trim(s, t, tr.capsule, &cur, NULL) == 0 && cur.below >= tr.below)
        return 0;
    MDB_val k = {CAP_ID_BYTES, tr.capsule}, nv = {len, (void *)enc};
    rc = mdb_put(t, s->trims, &k, &nv, 0);
    return rc ? mdb_err(rc) : 0;
}

static int put_rec(MDB_txn *t, MDB_dbi db, const uint8_t *id, uint64_t seq, const void *d,
                   size_t n) {
    uint8_t kb[CAP_ID_BYTES + 8];
    mkkey(kb, id, seq);
    MDB_val k = {sizeof kb, kb}, v = {n, (void *)d};
    /* Appends arrive in key order, and MDB_APPEND then fills leaf pages instead of splitting
     * them in half: about 40% fewer pages written per record. It fails (MDB_KEYEXIST) when the
     * key is not past the last one of the table (another capsule sorts higher, or a repair
     * overwrites a record); the ordinary put handles those. */
    int rc = mdb_put(t, db, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(t, db, &k, &v, 0);
    return rc ? mdb_err(rc) : 0;
}

/* The hash the stored chain requires at @p seq, walking back from the signed head. ERR_CORRUPT
 * when the stored chain is itself broken above @p seq. */
static int chain_expected(stg *s, MDB_txn *t, const cap_head *h, uint64_t seq,
                          uint8_t out[CAP_HASH_BYTES]) {
    uint8_t e[CAP_HASH_BYTES];
    memcpy(e, h->hash, CAP_HASH_BYTES);
    for (uint64_t k = h->seqno; k > seq; k--) {
        MDB_val v;
        uint8_t hh[CAP_HASH_BYTES];
        cap_hdr hd;
        if (get_rec(s, t, h->capsule, k, &v) != 0)
            return ERR_CORRUPT;
        cap_record_hash(v.mv_data, v.mv_size, hh);
        if (memcmp(hh, e, CAP_HASH_BYTES) != 0 ||
            cap_record_parse(v.mv_data, v.mv_size, &hd, NULL, NULL) != 0)
            return ERR_CORRUPT;
        memcpy(e, hd.prev, CAP_HASH_BYTES);
    }
    memcpy(out, e, CAP_HASH_BYTES);
    return 0;
}

static void set_head_reply(Psl__CapReply *rep, const cap_head *h, uint8_t buf[CAP_HEAD_BYTES]) {
    cap_head_encode(h, buf);
    rep->has_head = true;
    rep->have = h->seqno;
    rep->head.data = buf;
    rep->head.len = CAP_HEAD_BYTES;
}

/* Check and store one append inside transaction @p t. Returns the reply status; @p why says why.
 * @p hb receives the head encoding the reply points to. */
static int do_append(stg *s, MDB_txn *t, const uint8_t *id, uint64_t first,
                     const ProtobufCBinaryData *recs, size_t n, const ProtobufCBinaryData *headb,
                     Psl__CapReply *rep, uint8_t hb[CAP_HEAD_BYTES], char *why, size_t wl) {
    cap_head cur, nh;
    cap_meta m;
    uint8_t mid[CAP_ID_BYTES];
    int rc;
    if (n == 0 || n > APPEND_MAX_RECORDS || first + n < first) {
        snprintf(why, wl, "record count %zu out of range", n);
        return ERR_LIMIT;
    }
    if (cap_head_decode(headb->data, headb->len, &nh) || memcmp(nh.capsule, id, CAP_ID_BYTES) ||
        nh.seqno != first + n - 1) {
        snprintf(why, wl, "head does not name the last record of the append");
        return ERR_MALFORMED;
    }
    rc = get_head(s, t, id, &cur);
    bool exists = rc == 0;
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    /* Records below the trim point are gone here: an append may start at the trim point (a
     * replica catching up across it holds record 0 and the trim, maybe no head yet), and its
     * first record then has no stored predecessor to link to; the signed head at its end still
     * covers it. */
    uint64_t kept = kept_from(s, t, id);
    bool at_trim = kept > 1 && first == kept && (!exists || cur.seqno < kept);
    if (!exists && first != 0 && !at_trim) {
        snprintf(why, wl, "unknown capsule (send record 0 first)");
        return ERR_NOTFOUND;
    }
    if (exists && first > cur.seqno + 1 && !at_trim) {
        set_head_reply(rep, &cur, hb);
        snprintf(why, wl, "append starts at %llu, replica holds up to %llu",
                 (unsigned long long)first, (unsigned long long)cur.seqno);
        return CAP_ERR_GAP;
    }
    /* The writer key comes from record 0: from this append or from the store. */
    if (first == 0) {
        if (cap_meta_parse(recs[0].data, recs[0].len, &m, mid) != 0 ||
            memcmp(mid, id, CAP_ID_BYTES) != 0) {
            snprintf(why, wl, "record 0 is not a metadata record of this capsule id");
            return ERR_INVALID;
        }
    } else {
        MDB_val v;
        if (get_rec(s, t, id, 0, &v) != 0 || cap_meta_parse(v.mv_data, v.mv_size, &m, mid) != 0) {
            snprintf(why, wl, "stored record 0 is damaged (scrub pending)");
            return ERR_CORRUPT;
        }
    }
    uint8_t prev[CAP_HASH_BYTES];
    uint64_t prev_hlc = 0;
    bool linked = true; /* the first record's link is checked against a stored predecessor */
    if (first > 0 && first - 1 >= 1 && first - 1 < kept) {
        cap_hdr hd;
        if (cap_record_parse(recs[0].data, recs[0].len, &hd, NULL, NULL) != 0) {
            snprintf(why, wl, "record %llu: malformed", (unsigned long long)first);
            return ERR_MALFORMED;
        }
        memcpy(prev, hd.prev, CAP_HASH_BYTES); /* trimmed predecessor: the head vouches for it */
        linked = false;
    } else if (first > 0) {
        MDB_val v;
        cap_hdr hd;
        if (get_rec(s, t, id, first - 1, &v) != 0 ||
            cap_record_parse(v.mv_data, v.mv_size, &hd, NULL, NULL) != 0) {
            snprintf(why, wl, "stored record %llu is damaged (scrub pending)",
                     (unsigned long long)(first - 1));
            return ERR_CORRUPT;
        }
        /* The usual append follows the stored head, whose signed hash is that record's: no need
         * to hash it again (records of megabytes made this a third of a replica's work). */
        if (exists && first - 1 == cur.seqno)
            memcpy(prev, cur.hash, CAP_HASH_BYTES);
        else
            cap_record_hash(v.mv_data, v.mv_size, prev);
        prev_hlc = hd.hlc;
    }
    /* Chain links; overlap with stored records must be byte-identical (or a repair). */
    uint8_t(*hashes)[CAP_HASH_BYTES] = xmalloc(n * CAP_HASH_BYTES);
    bool *repair = xcalloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        if (recs[i].len > CAP_RECORD_MAX) {
            snprintf(why, wl, "record %llu too large", (unsigned long long)seq);
            rc = ERR_LIMIT;
            goto out;
        }
        if (seq > 0) {
            rc = cap_record_check_link(recs[i].data, recs[i].len, id, m.version, seq, prev,
                                       i == 0 && !linked ? 0 : prev_hlc);
            if (rc) {
                snprintf(why, wl, "record %llu: %s", (unsigned long long)seq,
                         rc == ERR_MALFORMED ? "malformed" : "does not link to its predecessor");
                goto out;
            }
        }
        cap_hdr hd;
        CAP_IGNORE(cap_record_parse(recs[i].data, recs[i].len, &hd, NULL, NULL));
        prev_hlc = hd.hlc;
        cap_record_hash(recs[i].data, recs[i].len, hashes[i]);
        memcpy(prev, hashes[i], CAP_HASH_BYTES);
        if (seq >= 1 && seq < kept)
            continue; /* dropped by the trim: checked for the chain, not stored again */
        if (exists && seq <= cur.seqno) {
            MDB_val v;
            uint8_t want[CAP_HASH_BYTES];
            rc = get_rec(s, t, id, seq, &v);
            /* The same bytes (a resend, or a pull racing the writer): nothing to hash or store. */
            if (rc == 0 && v.mv_size == recs[i].len &&
                memcmp(v.mv_data, recs[i].data, v.mv_size) == 0)
                continue;
            /* Different from our copy: a repair if our copy is what breaks our signed chain. */
            rc = chain_expected(s, t, &cur, seq, want);
            if (rc) {
                snprintf(why, wl, "stored chain is damaged above %llu (scrub pending)",
                         (unsigned long long)seq);
                rc = ERR_CORRUPT;
                goto out;
            }
            if (memcmp(want, hashes[i], CAP_HASH_BYTES) == 0) {
                repair[i] = true;
                continue;
            }
            set_head_reply(rep, &cur, hb);
            rep->evidence.data = hb;
            rep->evidence.len = CAP_HEAD_BYTES;
            snprintf(why, wl, "a different signed record is stored at %llu",
                     (unsigned long long)seq);
            rc = CAP_ERR_CONFLICT;
            goto out;
        }
    }
    if (memcmp(nh.hash, hashes[n - 1], CAP_HASH_BYTES) != 0) {
        snprintf(why, wl, "head hash does not match the last record");
        rc = ERR_INVALID;
        goto out;
    }
    if (cap_head_verify(&nh, m.writer_pk) != 0) {
        snprintf(why, wl, "head signature does not verify with the writer key");
        rc = ERR_AUTH;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        if ((exists && seq <= cur.seqno && !repair[i]) || (seq >= 1 && seq < kept))
            continue;
        rc = put_rec(t, s->recs, id, seq, recs[i].data, recs[i].len);
        if (rc)
            goto out;
    }
    rc = put_rec(t, s->sigs, id, nh.seqno, nh.sig, sizeof nh.sig);
    if (rc)
        goto out;
    if (!exists || nh.seqno > cur.seqno) {
        uint8_t e[CAP_HEAD_BYTES];
        cap_head_encode(&nh, e);
        MDB_val k = {CAP_ID_BYTES, (void *)id}, v = {CAP_HEAD_BYTES, e};
        rc = mdb_put(t, s->heads, &k, &v, 0);
        if (rc) {
            rc = mdb_err(rc);
            goto out;
        }
        cur = nh;
    }
    set_head_reply(rep, &cur, hb);
    rc = 0;
out:
    free(hashes);
    free(repair);
    return rc;
}

/* Read: records from first, ending at a stored head signature when the range holds one (so the
 * reply can be stored by a peer as is). Reply fields point into LMDB: pack before the txn ends. */
static int do_read(stg *s, MDB_txn *t, const Psl__CapRead *r, Psl__CapReply *rep,
                   uint8_t hb[CAP_HEAD_BYTES], uint8_t rh[CAP_HEAD_BYTES]) {
    cap_head cur;
    if (r->capsule.len != CAP_ID_BYTES)
        return ERR_MALFORMED;
    int rc = get_head(s, t, r->capsule.data, &cur);
    if (rc)
        return rc;
    set_head_reply(rep, &cur, hb);
    cap_trim tr;
    MDB_val traw, r0;
    if (r->first >= 1 && get_trim(s, t, r->capsule.data, &tr, &traw) == 0 && r->first < tr.below) {
        /* Dropped: the statement that says so, and record 0 to check it with. */
        rep->trim.data = traw.mv_data;
        rep->trim.len = traw.mv_size;
        if (get_rec(s, t, r->capsule.data, 0, &r0) == 0) {
            rep->records = xmalloc(sizeof *rep->records);
            rep->records[0].data = r0.mv_data;
            rep->records[0].len = r0.mv_size;
            rep->n_records = 1;
        }
        return CAP_ERR_TRIMMED;
    }
    if (r->first > cur.seqno)
        return 0;
    uint64_t last = cur.seqno;
    if (r->count && r->count - 1 < last - r->first)
        last = r->first + r->count - 1;
    size_t maxb = r->max_bytes && r->max_bytes < READ_MAX_BYTES ? r->max_bytes : READ_MAX_BYTES;
    size_t cap = 64, bytes = 0;
    rep->records = xmalloc(cap * sizeof *rep->records);
    uint64_t sig_at = UINT64_MAX;
    MDB_val sig = {0, NULL};
    for (uint64_t seq = r->first; seq <= last; seq++) {
        MDB_val v;
        if (get_rec(s, t, r->capsule.data, seq, &v) != 0)
            break;
        if (rep->n_records > 0 && bytes + v.mv_size > maxb)
            break;
        if (rep->n_records == cap) {
            cap *= 2;
            rep->records = xrealloc(rep->records, cap * sizeof *rep->records);
        }
        rep->records[rep->n_records].data = v.mv_data;
        rep->records[rep->n_records].len = v.mv_size;
        rep->n_records++;
        bytes += v.mv_size;
        uint8_t kb[CAP_ID_BYTES + 8];
        mkkey(kb, r->capsule.data, seq);
        MDB_val k = {sizeof kb, kb}, sv;
        if (mdb_get(t, s->sigs, &k, &sv) == 0 && sv.mv_size == 64) {
            sig_at = seq;
            sig = sv;
        }
    }
    if (sig_at != UINT64_MAX) {
        rep->n_records = (size_t)(sig_at - r->first + 1); /* end at a signed batch end */
        cap_head h = {.seqno = sig_at};
        memcpy(h.capsule, r->capsule.data, CAP_ID_BYTES);
        ProtobufCBinaryData *lr = &rep->records[rep->n_records - 1];
        cap_record_hash(lr->data, lr->len, h.hash);
        memcpy(h.sig, sig.mv_data, 64);
        cap_head_encode(&h, rh);
        rep->records_head.data = rh;
        rep->records_head.len = CAP_HEAD_BYTES;
    }
    return 0;
}

static int do_head(stg *s, MDB_txn *t, const Psl__CapGetHead *g, Psl__CapReply *rep,
                   uint8_t hb[CAP_HEAD_BYTES]) {
    cap_head cur;
    if (g->capsule.len != CAP_ID_BYTES)
        return ERR_MALFORMED;
    int rc = get_head(s, t, g->capsule.data, &cur);
    if (rc)
        return rc;
    if (g->at && g->seqno != cur.seqno) {
        uint8_t kb[CAP_ID_BYTES + 8];
        mkkey(kb, g->capsule.data, g->seqno);
        MDB_val k = {sizeof kb, kb}, sv, v;
        if (mdb_get(t, s->sigs, &k, &sv) != 0 || sv.mv_size != 64 ||
            get_rec(s, t, g->capsule.data, g->seqno, &v) != 0)
            return ERR_NOTFOUND;
        cap_head h = {.seqno = g->seqno};
        memcpy(h.capsule, g->capsule.data, CAP_ID_BYTES);
        cap_record_hash(v.mv_data, v.mv_size, h.hash);
        memcpy(h.sig, sv.mv_data, 64);
        set_head_reply(rep, &h, hb);
        rep->have = cur.seqno;
        return 0;
    }
    set_head_reply(rep, &cur, hb);
    return 0;
}

static int do_list(stg *s, MDB_txn *t, Psl__CapReply *rep) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->heads, &c);
    if (rc)
        return mdb_err(rc);
    size_t cap = 16;
    rep->capsules = xmalloc(cap * sizeof *rep->capsules);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (rep->n_capsules == cap) {
            cap *= 2;
            rep->capsules = xrealloc(rep->capsules, cap * sizeof *rep->capsules);
        }
        rep->capsules[rep->n_capsules].data = k.mv_data;
        rep->capsules[rep->n_capsules].len = k.mv_size;
        rep->n_capsules++;
    }
    mdb_cursor_close(c);
    return 0;
}

static void queue_scrub(stg *s, const uint8_t *id) {
    pthread_mutex_lock(&s->mu);
    bool dup = false;
    for (size_t i = 0; i < s->nscrub; i++)
        dup |= memcmp(s->scrubq[i], id, CAP_ID_BYTES) == 0;
    if (!dup && s->nscrub < SCRUB_QUEUE)
        memcpy(s->scrubq[s->nscrub++], id, CAP_ID_BYTES);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the request loop ---------------------------------------------------------------------- */
typedef struct slot {
    zmq_msg_t ident;
    Psl__CapRequest *req;
    Psl__CapReply rep;
    char why[200];
    uint8_t hb[CAP_HEAD_BYTES], rh[CAP_HEAD_BYTES];
    uint8_t *out;
    size_t outlen;
    bool is_append;
} slot;

static void pack_reply(slot *sl) {
    sl->rep.error = sl->why;
    sl->outlen = psl__cap_reply__get_packed_size(&sl->rep);
    sl->out = xmalloc(sl->outlen + 1);
    psl__cap_reply__pack(&sl->rep, sl->out);
    free(sl->rep.records);
    free(sl->rep.capsules);
    sl->rep.records = NULL;
    sl->rep.capsules = NULL;
    sl->rep.n_records = sl->rep.n_capsules = 0;
}

static void handle(stg *s, MDB_txn *t, slot *sl, const uint8_t *data, size_t len) {
    psl__cap_reply__init(&sl->rep);
    sl->why[0] = 0;
    sl->req = psl__cap_request__unpack(NULL, len, data);
    int st;
    if (!sl->req) {
        snprintf(sl->why, sizeof sl->why, "request does not decode");
        st = ERR_MALFORMED;
        goto done;
    }
    sl->rep.id = sl->req->id;
    switch (sl->req->body_case) {
    case PSL__CAP_REQUEST__BODY_APPEND: {
        Psl__CapAppend *a = sl->req->append;
        if (a->capsule.len != CAP_ID_BYTES) {
            st = ERR_MALFORMED;
            break;
        }
        MDB_txn *child;
        st = mdb_txn_begin(s->env, t, 0, &child) ? ERR_IO : 0;
        if (st)
            break;
        st = do_append(s, child, a->capsule.data, a->first, a->records, a->n_records, &a->head,
                       &sl->rep, sl->hb, sl->why, sizeof sl->why);
        if (st == 0) {
            int crc = mdb_txn_commit(child); /* a full map can show here too */
            st = crc ? mdb_err(crc) : 0;
        } else
            mdb_txn_abort(child);
        if (st == ERR_LIMIT && !sl->why[0]) { /* MDB_MAP_FULL (do_append names its own limits) */
            size_t map = s->o->map_size ? s->o->map_size : STG_MAP_DEFAULT;
            snprintf(sl->why, sizeof sl->why,
                     "storage full: this replica's %zu MiB are used (restart it with a larger "
                     "--map-size)",
                     map >> 20);
            logf_(s, "%s", sl->why);
        }
        sl->is_append = true;
        break;
    }
    case PSL__CAP_REQUEST__BODY_READ:
        st = do_read(s, t, sl->req->read, &sl->rep, sl->hb, sl->rh);
        break;
    case PSL__CAP_REQUEST__BODY_HEAD: st = do_head(s, t, sl->req->head, &sl->rep, sl->hb); break;
    case PSL__CAP_REQUEST__BODY_LIST: st = do_list(s, t, &sl->rep); break;
    case PSL__CAP_REQUEST__BODY_SCRUB:
        if (sl->req->scrub->capsule.len == CAP_ID_BYTES)
            queue_scrub(s, sl->req->scrub->capsule.data);
        st = 0;
        break;
    case PSL__CAP_REQUEST__BODY_TRIM: {
        /* Only a trim the writer signed, and only below our head: what stays must still end at a
         * signed head. The records are dropped by the anti-entropy thread, in slices. */
        const ProtobufCBinaryData *b = &sl->req->trim->trim;
        cap_trim tr;
        cap_head cur;
        if (cap_trim_decode(b->data, b->len, &tr) != 0) {
            st = ERR_MALFORMED;
            break;
        }
        st = get_head(s, t, tr.capsule, &cur);
        if (st == 0 && tr.below > cur.seqno) {
            set_head_reply(&sl->rep, &cur, sl->hb);
            snprintf(sl->why, sizeof sl->why, "trim below %llu passes this replica's head %llu",
                     (unsigned long long)tr.below, (unsigned long long)cur.seqno);
            st = CAP_ERR_GAP;
            break;
        }
        if (st == 0)
            st = store_trim(s, t, b->data, b->len, NULL);
        if (st == ERR_AUTH)
            snprintf(sl->why, sizeof sl->why, "trim does not verify with the writer key");
        break;
    }
    default: snprintf(sl->why, sizeof sl->why, "unknown request"); st = ERR_MALFORMED;
    }
done:
    sl->rep.status = st;
    if (st && !sl->why[0])
        snprintf(sl->why, sizeof sl->why, "%s", cap_strerror(st));
    if (st && s->o->verbose)
        logf_(s, "request failed: %s", sl->why);
    pack_reply(sl);
}

static int serve_group(stg *s, slot *slots, zmq_msg_t *bodies, size_t n) {
    MDB_txn *t;
    int rc = mdb_txn_begin(s->env, NULL, 0, &t);
    if (rc) {
        logf_(s, "cannot begin a transaction: %s", mdb_strerror(rc));
        return ERR_IO;
    }
    for (size_t i = 0; i < n; i++)
        handle(s, t, &slots[i], zmq_msg_data(&bodies[i]), zmq_msg_size(&bodies[i]));
    rc = mdb_txn_commit(t); /* synchronous: the appends are durable when this returns */
    if (rc) {
        logf_(s, "commit failed: %s", mdb_strerror(rc));
        for (size_t i = 0; i < n; i++) {
            if (!slots[i].is_append)
                continue;
            free(slots[i].out);
            psl__cap_reply__init(&slots[i].rep);
            slots[i].rep.id = slots[i].req ? slots[i].req->id : 0;
            slots[i].rep.status = ERR_IO;
            snprintf(slots[i].why, sizeof slots[i].why, "commit failed: %s", mdb_strerror(rc));
            pack_reply(&slots[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        zmq_msg_send(&slots[i].ident, s->router, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(s->router, slots[i].out, slots[i].outlen, ZMQ_DONTWAIT);
        free(slots[i].out);
        if (slots[i].req)
            psl__cap_request__free_unpacked(slots[i].req, NULL);
        zmq_msg_close(&slots[i].ident);
    }
    return 0;
}

/* ---- anti-entropy and scrub ---------------------------------------------------------------- */
static int apply_append(stg *s, const uint8_t *id, uint64_t first, ProtobufCBinaryData *recs,
                        size_t n, const ProtobufCBinaryData *head, char *why, size_t wl) {
    MDB_txn *t;
    if (mdb_txn_begin(s->env, NULL, 0, &t) != 0)
        return ERR_IO;
    Psl__CapReply rep = PSL__CAP_REPLY__INIT;
    uint8_t hb[CAP_HEAD_BYTES];
    int rc = do_append(s, t, id, first, recs, n, head, &rep, hb, why, wl);
    if (rc == 0)
        rc = mdb_txn_commit(t) ? ERR_IO : 0;
    else
        mdb_txn_abort(t);
    return rc;
}

/* Pull what peer @p p has beyond our head. */
/* The peer dropped the records we asked for: take its trim statement (checked against record 0,
 * which we store first when we lack it) so that the next read starts at its trim point. Returns
 * the first seqno to pull from, or 0 when the statement is not acceptable. */
static uint64_t adopt_trim(stg *s, const uint8_t *id, const Psl__CapReply *rep) {
    cap_trim tr;
    if (!rep->trim.len || cap_trim_decode(rep->trim.data, rep->trim.len, &tr) != 0 ||
        memcmp(tr.capsule, id, CAP_ID_BYTES) != 0)
        return 0;
    MDB_txn *t;
    if (mdb_txn_begin(s->env, NULL, 0, &t) != 0)
        return 0;
    MDB_val v;
    int rc = 0;
    if (get_rec(s, t, id, 0, &v) != 0) {
        cap_meta m;
        uint8_t mid[CAP_ID_BYTES];
        if (rep->n_records < 1 ||
            cap_meta_parse(rep->records[0].data, rep->records[0].len, &m, mid) != 0 ||
            memcmp(mid, id, CAP_ID_BYTES) != 0)
            rc = ERR_MALFORMED;
        else
            rc = put_rec(t, s->recs, id, 0, rep->records[0].data, rep->records[0].len);
    }
    cap_trim got;
    if (rc == 0)
        rc = store_trim(s, t, rep->trim.data, rep->trim.len, &got);
    if (rc) {
        mdb_txn_abort(t);
        logf_(s, "anti-entropy: a peer's trim statement is not acceptable: %s", cap_strerror(rc));
        return 0;
    }
    int crc = mdb_txn_commit(t);
    if (crc == 0)
        return got.below;
    logf_(s, "anti-entropy: cannot store a peer's trim statement: %s", mdb_strerror(crc));
    return 0;
}

static void pull(stg *s, cap_client *c, size_t p, const uint8_t *id) {
    for (int round = 0; round < 10000 && !*s->stop; round++) {
        MDB_txn *t;
        cap_head cur;
        if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) != 0)
            return;
        int rc = get_head(s, t, id, &cur);
        uint64_t kept = kept_from(s, t, id);
        MDB_val r0;
        bool has0 = get_rec(s, t, id, 0, &r0) == 0;
        mdb_txn_abort(t);
        uint64_t from = rc == 0 ? cur.seqno + 1 : has0 ? 1 : 0;
        if (from >= 1 && from < kept)
            from = kept; /* what we lack was dropped by the writer's trim */
        Psl__CapReply *rep = NULL;
        rc = cap__read_reply(c, p, id, from, 0, &rep);
        if (rc == 0 && rep->status == CAP_ERR_TRIMMED) {
            uint64_t k = adopt_trim(s, id, rep);
            psl__cap_reply__free_unpacked(rep, NULL);
            if (k > from)
                continue;
            return;
        }
        if (rc == 0 && rep->status != 0) {
            psl__cap_reply__free_unpacked(rep, NULL);
            return;
        }
        if (rc != 0)
            return;
        if (from == 0 && rep->n_records == 1 && rep->records_head.len != CAP_HEAD_BYTES) {
            /* Record 0 alone, without a head of its own: the peer dropped what followed it in
             * its batch. Record 0 certifies itself (the id is its hash); the next read learns
             * the trim. */
            cap_meta m;
            uint8_t mid[CAP_ID_BYTES];
            bool ok = cap_meta_parse(rep->records[0].data, rep->records[0].len, &m, mid) == 0 &&
                      memcmp(mid, id, CAP_ID_BYTES) == 0;
            if (ok && mdb_txn_begin(s->env, NULL, 0, &t) == 0) {
                if (put_rec(t, s->recs, id, 0, rep->records[0].data, rep->records[0].len) != 0) {
                    mdb_txn_abort(t);
                    ok = false;
                } else if (mdb_txn_commit(t) != 0) {
                    ok = false;
                }
            } else {
                ok = false;
            }
            psl__cap_reply__free_unpacked(rep, NULL);
            if (!ok)
                return;
            continue;
        }
        if (rep->n_records == 0 || rep->records_head.len != CAP_HEAD_BYTES) {
            psl__cap_reply__free_unpacked(rep, NULL);
            return;
        }
        char why[200] = "";
        rc = apply_append(s, id, from, rep->records, rep->n_records, &rep->records_head, why,
                          sizeof why);
        size_t got = rep->n_records;
        psl__cap_reply__free_unpacked(rep, NULL);
        if (rc) {
            logf_(s, "anti-entropy from %s rejected: %s", cap_client_endpoint(c, p),
                  why[0] ? why : cap_strerror(rc));
            return;
        }
        if (s->o->verbose)
            logf_(s, "anti-entropy: pulled %zu records from %s", got, cap_client_endpoint(c, p));
    }
}

/* Scrub progress of one capsule: the chain is walked back from a signed head in slices, so that a
 * long capsule costs a bounded amount of hashing per interval instead of a full pass each time.
 * Records below the cursor never change except by repair, so resuming later is sound. */
typedef struct scrub_cur {
    uint8_t id[CAP_ID_BYTES];
    uint64_t seen;    /* our head at the previous anti-entropy round (+1; 0 = none) */
    uint64_t round;   /* the round that set seen */
    bool advanced;    /* our head moved between the last two rounds */
    uint64_t done_ns; /* when the last background pass ended (0 = never) */
    bool active;
    uint64_t next;                /* next seqno to check (walking down) */
    uint8_t want[CAP_HASH_BYTES]; /* the hash record `next` must have */
} scrub_cur;

/* Walk capsule @p sc->id's stored chain down from the cursor (or from the signed head when the
 * cursor is idle), hashing at most @p budget bytes, and replace records that do not match the
 * chain with a peer's copy that does. Returns the bytes hashed. */
static size_t scrub(stg *s, cap_client *c, scrub_cur *sc, size_t budget) {
    MDB_txn *t;
    size_t done = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) != 0)
        return 0;
    if (!sc->active) {
        cap_head cur;
        if (get_head(s, t, sc->id, &cur) != 0) {
            mdb_txn_abort(t);
            return 0;
        }
        sc->next = cur.seqno;
        memcpy(sc->want, cur.hash, CAP_HASH_BYTES);
        sc->active = true;
    }
    uint8_t *e = sc->want;
    size_t nfix = 0, capfix = 0;
    struct fix {
        uint64_t seq;
        uint8_t *rec;
        size_t len;
    } *fix = NULL;
    bool finished = false;
    uint64_t kept = kept_from(s, t, sc->id);
    for (;;) {
        if (done >= budget)
            break;
        uint64_t k = sc->next;
        if (k >= 1 && k < kept) { /* the cursor went below a trim stored since */
            finished = true;
            break;
        }
        MDB_val v;
        uint8_t hh[CAP_HASH_BYTES];
        cap_hdr hd;
        bool ok = get_rec(s, t, sc->id, k, &v) == 0;
        if (ok) {
            done += v.mv_size;
            cap_record_hash(v.mv_data, v.mv_size, hh);
            ok = memcmp(hh, e, CAP_HASH_BYTES) == 0 &&
                 cap_record_parse(v.mv_data, v.mv_size, &hd, NULL, NULL) == 0;
        }
        if (!ok) {
            logf_(s, "scrub: record %llu does not match the signed chain; repairing from peers",
                  (unsigned long long)k);
            bool found = false;
            for (size_t p = 0; c && p < cap_client_count(c) && !found; p++) {
                Psl__CapReply *rep = NULL;
                if (cap__read(c, p, sc->id, k, 1, &rep) != 0)
                    continue;
                if (rep->n_records >= 1) {
                    cap_record_hash(rep->records[0].data, rep->records[0].len, hh);
                    if (memcmp(hh, e, CAP_HASH_BYTES) == 0 &&
                        cap_record_parse(rep->records[0].data, rep->records[0].len, &hd, NULL,
                                         NULL) == 0) {
                        if (nfix == capfix) {
                            capfix = capfix ? 2 * capfix : 8;
                            fix = xrealloc(fix, capfix * sizeof *fix);
                        }
                        fix[nfix].seq = k;
                        fix[nfix].len = rep->records[0].len;
                        fix[nfix].rec = xmalloc(fix[nfix].len);
                        memcpy(fix[nfix].rec, rep->records[0].data, fix[nfix].len);
                        nfix++;
                        found = true;
                    }
                }
                psl__cap_reply__free_unpacked(rep, NULL);
            }
            if (!found) {
                logf_(s, "scrub: no peer holds a good copy of record %llu", (unsigned long long)k);
                finished = true; /* start over from the head next time */
                break;
            }
        }
        /* Down to record 0, or to the first record the writer's trim kept (its predecessor is
         * gone; record 0 certifies itself). */
        if (k == 0 || (k > 1 && k <= kept)) {
            finished = true;
            break;
        }
        memcpy(e, hd.prev, CAP_HASH_BYTES);
        sc->next = k - 1;
    }
    mdb_txn_abort(t);
    if (finished)
        sc->active = false;
    if (nfix) {
        if (mdb_txn_begin(s->env, NULL, 0, &t) == 0) {
            int rc = 0;
            for (size_t i = 0; i < nfix && !rc; i++)
                rc = put_rec(t, s->recs, sc->id, fix[i].seq, fix[i].rec, fix[i].len);
            if (rc == 0 && mdb_txn_commit(t) == 0)
                logf_(s, "scrub: repaired %zu record(s)", nfix);
            else if (rc)
                mdb_txn_abort(t);
        }
    }
    for (size_t i = 0; i < nfix; i++)
        free(fix[i].rec);
    free(fix);
    return done;
}

/* Drop up to TRIM_DELETE_MAX records (and batch-end signatures) that capsule @p id's stored trim
 * statement lets go, in one transaction. @return how many went (0: nothing left to drop). */
static size_t trim_delete(stg *s, const uint8_t *id) {
    MDB_txn *t;
    if (mdb_txn_begin(s->env, NULL, 0, &t) != 0)
        return 0;
    cap_trim tr;
    size_t n = 0;
    int rc = 0;
    if (get_trim(s, t, id, &tr, NULL) == 0) {
        MDB_dbi dbs[2] = {s->recs, s->sigs};
        for (int d = 0; d < 2 && rc == 0; d++) {
            MDB_cursor *cu;
            if ((rc = mdb_cursor_open(t, dbs[d], &cu)) != 0)
                break;
            uint8_t kb[CAP_ID_BYTES + 8], end[CAP_ID_BYTES + 8];
            mkkey(kb, id, 1);
            mkkey(end, id, tr.below);
            /* Seek afresh each time: keys sort by capsule id, then big-endian seqno. */
            while (n < TRIM_DELETE_MAX) {
                MDB_val k = {sizeof kb, kb}, v;
                if (mdb_cursor_get(cu, &k, &v, MDB_SET_RANGE) != 0 || k.mv_size != sizeof end ||
                    memcmp(k.mv_data, end, sizeof end) >= 0)
                    break;
                if ((rc = mdb_cursor_del(cu, 0)) != 0)
                    break;
                n++;
            }
            mdb_cursor_close(cu);
        }
    }
    if (rc == 0 && n) {
        rc = mdb_txn_commit(t); /* frees the transaction, failed or not */
        if (rc == 0)
            return n;
    } else {
        mdb_txn_abort(t);
    }
    if (rc)
        logf_(s, "dropping trimmed records: %s", mdb_strerror(rc));
    return 0;
}

/* The cursor of capsule @p id in @p *curs (added idle when new). */
static scrub_cur *scrub_find(scrub_cur **curs, size_t *n, size_t *cap, const uint8_t *id) {
    for (size_t i = 0; i < *n; i++)
        if (memcmp((*curs)[i].id, id, CAP_ID_BYTES) == 0)
            return &(*curs)[i];
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *curs = xrealloc(*curs, *cap * sizeof **curs);
    }
    scrub_cur *sc = &(*curs)[(*n)++];
    memset(sc, 0, sizeof *sc);
    memcpy(sc->id, id, CAP_ID_BYTES);
    return sc;
}

static void local_ids(stg *s, uint8_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    MDB_txn *t;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) != 0)
        return;
    Psl__CapReply rep = PSL__CAP_REPLY__INIT;
    if (do_list(s, t, &rep) == 0) {
        *ids = xmalloc(rep.n_capsules * CAP_ID_BYTES + 1);
        for (size_t i = 0; i < rep.n_capsules; i++)
            memcpy(*ids + CAP_ID_BYTES * i, rep.capsules[i].data, CAP_ID_BYTES);
        *n = rep.n_capsules;
    }
    free(rep.capsules);
    mdb_txn_abort(t);
}

static void *ae_main(void *arg) {
    plat_thread_name("anti-entropy");
    stg *s = arg;
    cap_client *c = NULL;
    if (s->o->npeers && cap_client_open(s->o->peers, s->o->npeers, 1000, &c) != 0)
        c = NULL;
    int interval = s->o->ae_interval_ms == 0 ? 500 : s->o->ae_interval_ms;
    size_t rate = s->o->scrub_bytes_per_s ? s->o->scrub_bytes_per_s : STG_SCRUB_RATE;
    scrub_cur *curs = NULL;
    size_t ncurs = 0, capcurs = 0;
    uint64_t next = 0, round = 0; /* run a round (pull + scrub slice) at start */
    while (!*s->stop) {
        uint8_t q[SCRUB_QUEUE][CAP_ID_BYTES];
        pthread_mutex_lock(&s->mu);
        size_t nq = s->nscrub;
        memcpy(q, s->scrubq, nq * CAP_ID_BYTES);
        s->nscrub = 0;
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < nq; i++) { /* a hint: one full pass from the head, now */
            scrub_cur *sc = scrub_find(&curs, &ncurs, &capcurs, q[i]);
            sc->active = false;
            (void)scrub(s, c, sc, SIZE_MAX);
        }
        if (interval > 0 && plat_now_ns() >= next) {
            next = plat_now_ns() + (uint64_t)interval * 1000000u;
            round++;
            for (size_t p = 0; c && p < cap_client_count(c) && !*s->stop; p++) {
                uint8_t *ids = NULL;
                size_t n = 0;
                if (cap_client_list(c, p, &ids, &n) != 0)
                    continue;
                for (size_t i = 0; i < n && !*s->stop; i++) {
                    cap_head ph, cur;
                    if (cap__get_head(c, p, ids + CAP_ID_BYTES * i, &ph) != 0)
                        continue;
                    MDB_txn *t;
                    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) != 0)
                        continue;
                    int rc = get_head(s, t, ids + CAP_ID_BYTES * i, &cur);
                    mdb_txn_abort(t);
                    /* A replica that is behind but advanced since the last round is being fed
                     * by the writer: pulling the same records as well would double its work and
                     * keep it behind. Pull when it is stuck (or knows nothing of the capsule). */
                    scrub_cur *sc = scrub_find(&curs, &ncurs, &capcurs, ids + CAP_ID_BYTES * i);
                    uint64_t now_seen = rc == 0 ? cur.seqno + 1 : 0;
                    if (sc->round != round) {
                        sc->round = round;
                        sc->advanced = now_seen > sc->seen && sc->seen != 0;
                        sc->seen = now_seen;
                    }
                    if ((rc != 0 || ph.seqno > cur.seqno) && !sc->advanced)
                        pull(s, c, p, ids + CAP_ID_BYTES * i);
                }
                free(ids);
            }
            /* Background scrub: a slice of every capsule's chain, within the byte budget of one
             * interval, shared by the capsules (each gets at least one record). */
            uint8_t *ids;
            size_t n;
            local_ids(s, &ids, &n);
            size_t budget = (size_t)((double)rate * interval / 1000.0);
            uint64_t now = plat_now_ns();
            for (size_t i = 0; i < n && !*s->stop; i++) {
                /* Records a stored trim lets go, a slice per capsule and round. */
                size_t dropped = trim_delete(s, ids + CAP_ID_BYTES * i);
                if (dropped && s->o->verbose)
                    logf_(s, "trim: dropped %zu records", dropped);
                scrub_cur *sc = scrub_find(&curs, &ncurs, &capcurs, ids + CAP_ID_BYTES * i);
                if (!sc->active && sc->done_ns && now - sc->done_ns < STG_SCRUB_PAUSE_NS)
                    continue; /* a full pass ended recently */
                scrub(s, c, sc, budget / n + 1);
                if (!sc->active)
                    sc->done_ns = plat_now_ns();
            }
            free(ids);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    free(curs);
    cap_client_close(c);
    return NULL;
}

/* ---- setup --------------------------------------------------------------------------------- */
static int env_open(const char *dir, size_t map, bool nosync, stg *s) {
    MDB_env **env = &s->env;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    int rc = mdb_env_create(env);
    if (rc)
        return ERR_IO;
    mdb_env_set_maxdbs(*env, 4);
    mdb_env_set_mapsize(*env, map ? map : STG_MAP_DEFAULT);
    rc = mdb_env_open(*env, dir, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0), 0600);
    if (rc)
        goto fail;
    MDB_txn *t;
    rc = mdb_txn_begin(*env, NULL, 0, &t);
    if (rc)
        goto fail;
    if ((rc = mdb_dbi_open(t, "recs", MDB_CREATE, &s->recs)) ||
        (rc = mdb_dbi_open(t, "sigs", MDB_CREATE, &s->sigs)) ||
        (rc = mdb_dbi_open(t, "heads", MDB_CREATE, &s->heads)) ||
        (rc = mdb_dbi_open(t, "trims", MDB_CREATE, &s->trims))) {
        mdb_txn_abort(t);
        goto fail;
    }
    rc = mdb_txn_commit(t);
    if (rc)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "psl storage: LMDB at %s: %s\n", dir, mdb_strerror(rc));
    mdb_env_close(*env);
    *env = NULL;
    return ERR_IO;
}

int stg_serve(const stg_opts *o, volatile sig_atomic_t *stop) {
    stg s = {.o = o, .stop = stop};
    pthread_mutex_init(&s.mu, NULL);
    pthread_t ae;
    bool ae_started = false;
    slot *slots = xcalloc(GROUP_MAX, sizeof *slots);
    zmq_msg_t *bodies = xcalloc(GROUP_MAX, sizeof *bodies);
    int rc = cr_init();
    if (rc)
        goto out;
    rc = env_open(o->data, o->map_size, o->nosync, &s);
    if (rc)
        goto out;
    s.zctx = zmq_ctx_new();
    s.router = zmq_socket(s.zctx, ZMQ_ROUTER);
    int zero = 0, hwm = 100000;
    int64_t maxmsg = CAP_MAX_MSG;
    zmq_setsockopt(s.router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s.router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s.router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s.router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(s.router, o->listen) != 0) {
        fprintf(stderr, "psl storage: cannot listen on %s: %s\n", o->listen, zmq_strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    if (pthread_create(&ae, NULL, ae_main, &s) == 0)
        ae_started = true;
    fprintf(stderr, "psl storage: serving %s from %s (%zu peers)\n", o->listen, o->data, o->npeers);
    while (!*stop) {
        zmq_pollitem_t it = {.socket = s.router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        size_t n = 0;
        while (n < GROUP_MAX) {
            zmq_msg_init(&slots[n].ident);
            if (zmq_msg_recv(&slots[n].ident, s.router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&slots[n].ident);
                break;
            }
            zmq_msg_init(&bodies[n]);
            if (!zmq_msg_more(&slots[n].ident) || zmq_msg_recv(&bodies[n], s.router, 0) < 0) {
                zmq_msg_close(&bodies[n]);
                zmq_msg_close(&slots[n].ident);
                continue;
            }
            while (zmq_msg_more(&bodies[n])) { /* extra frames: drop them, keep the first */
                zmq_msg_t x;
                zmq_msg_init(&x);
                zmq_msg_recv(&x, s.router, 0);
                int more = zmq_msg_more(&x);
                zmq_msg_close(&x);
                if (!more)
                    break;
            }
            slots[n].is_append = false;
            slots[n].req = NULL;
            n++;
        }
        if (n == 0)
            continue;
        rc = serve_group(&s, slots, bodies, n);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&bodies[i]);
        if (rc)
            break;
    }
    rc = 0;
out:
    *stop = 1;
    if (ae_started)
        pthread_join(ae, NULL);
    if (s.router)
        zmq_close(s.router);
    if (s.zctx)
        zmq_ctx_term(s.zctx);
    if (s.env)
        mdb_env_close(s.env);
    free(slots);
    free(bodies);
    pthread_mutex_destroy(&s.mu);
    return rc;
}

int stg_bench_lmdb(const char *dir, size_t n, size_t size, size_t batch, double *secs) {
    stg s = {0};
    int rc = env_open(dir, 0, false, &s);
    if (rc)
        return rc;
    MDB_env *env = s.env;
    MDB_dbi recs = s.recs;
    uint8_t id[CAP_ID_BYTES];
    memset(id, 0x5a, sizeof id);
    uint8_t *val = xcalloc(1, size);
    uint64_t t0 = plat_now_ns();
    for (size_t i = 0; i < n && rc == 0; i += batch) {
        MDB_txn *t;
        if (mdb_txn_begin(env, NULL, 0, &t) != 0) {
            rc = ERR_IO;
            break;
        }
        for (size_t k = i; k < i + batch && k < n && rc == 0; k++) {
            val[0] = (uint8_t)k;
            rc = put_rec(t, recs, id, k, val, size);
        }
        if (rc || mdb_txn_commit(t) != 0)
            rc = rc ? rc : ERR_IO;
    }
    *secs = (double)(plat_now_ns() - t0) / 1e9;
    free(val);
    mdb_env_close(env);
    return rc;
}

/* ---- one request without ZeroMQ (tests, fuzzing) ------------------------------------------- */
struct stg_db {
    stg s;
    stg_opts o;
};

int stg_db_open(const char *dir, size_t map_size, bool nosync, stg_db **out) {
    int rc = cr_init();
    if (rc)
        return rc;
    stg_db *d = xcalloc(1, sizeof *d);
    d->s.o = &d->o;
    rc = env_open(dir, map_size, nosync, &d->s);
    if (rc) {
        free(d);
        return rc;
    }
    pthread_mutex_init(&d->s.mu, NULL);
    *out = d;
    return 0;
}

void stg_db_close(stg_db *d) {
    if (!d)
        return;
    mdb_env_close(d->s.env);
    pthread_mutex_destroy(&d->s.mu);
    free(d);
}

int stg_db_clear(stg_db *d) {
    MDB_txn *t;
    if (mdb_txn_begin(d->s.env, NULL, 0, &t) != 0)
        return ERR_IO;
    if (mdb_drop(t, d->s.recs, 0) || mdb_drop(t, d->s.sigs, 0) || mdb_drop(t, d->s.heads, 0) ||
        mdb_drop(t, d->s.trims, 0)) {
        mdb_txn_abort(t);
        return ERR_IO;
    }
    d->s.nscrub = 0;
    return mdb_txn_commit(t) ? ERR_IO : 0;
}

size_t stg_db_records(stg_db *d, const uint8_t *id, bool drop) {
    while (drop && trim_delete(&d->s, id) > 0) {
    }
    MDB_txn *t;
    if (mdb_txn_begin(d->s.env, NULL, MDB_RDONLY, &t) != 0)
        return 0;
    MDB_cursor *cu;
    size_t n = 0;
    if (mdb_cursor_open(t, d->s.recs, &cu) == 0) {
        uint8_t kb[CAP_ID_BYTES + 8];
        mkkey(kb, id, 0);
        MDB_val k = {sizeof kb, kb}, v;
        int rc = mdb_cursor_get(cu, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && k.mv_size == sizeof kb && memcmp(k.mv_data, id, CAP_ID_BYTES) == 0) {
            n++;
            rc = mdb_cursor_get(cu, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cu);
    }
    mdb_txn_abort(t);
    return n;
}

int stg_db_request(stg_db *d, const uint8_t *req, size_t len, uint8_t **reply, size_t *rlen) {
    MDB_txn *t;
    if (mdb_txn_begin(d->s.env, NULL, 0, &t) != 0)
        return ERR_IO;
    slot sl;
    memset(&sl, 0, sizeof sl);
    handle(&d->s, t, &sl, req, len);
    int rc = mdb_txn_commit(t) ? ERR_IO : 0;
    if (sl.req)
        psl__cap_request__free_unpacked(sl.req, NULL);
    if (rc) {
        free(sl.out);
        return rc;
    }
    *reply = sl.out;
    *rlen = sl.outlen;
    return 0;
}
