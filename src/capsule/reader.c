/* capsule reader: verifies the chain from the newest signed head before releasing plaintext.
 * It keeps the hash of every verified record, so each later read is checked against the chain
 * (one hash comparison) before its AEAD tag is checked and its plaintext released. */
#include "capsule/capsule_int.h"

#include "crypto/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cap_reader {
    cap_client *c;
    uint8_t id[CAP_ID_BYTES];
    uint8_t dkey[32];
    bool has_key;
    cap_meta meta;
    bool has_meta;
    uint8_t h0[CAP_HASH_BYTES];        /* hash of record 0 (the metadata) */
    uint8_t (*hashes)[CAP_HASH_BYTES]; /* verified hashes of seqnos hlo .. hlo+hcap-1 */
    uint64_t hlo;                      /* >= 1; records below it are forgotten (trim) */
    uint64_t nverified;                /* records base..nverified-1 (and 0) are verified */
    uint64_t base;                     /* first verified data record (a checkpoint), 0 = all */
    bool from_ckpt;                    /* the first sync may start at the newest checkpoint */
    uint64_t trim_below;               /* a verified trim statement's point (0: none seen) */
    size_t hcap;
    cap_head head;
    uint64_t head_hlc;
    bool has_head;
    cap_head known;
    bool has_known;
    size_t quorum; /* 0 = f+1 */
    size_t pref;   /* replica tried first */
    cap_evidence *ev;
    size_t nev, evcap;
};

static cap_evidence *ev_add(cap_reader *r, int kind, int replica, uint64_t seq, const char *what) {
    if (r->nev == r->evcap) {
        r->evcap = r->evcap ? 2 * r->evcap : 8;
        r->ev = xrealloc(r->ev, r->evcap * sizeof *r->ev);
    }
    cap_evidence *e = &r->ev[r->nev++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->replica = replica;
    e->seqno = seq;
    snprintf(e->what, sizeof e->what, "%s", what);
    return e;
}

const cap_evidence *cap_reader_evidence(const cap_reader *r, size_t *n) {
    *n = r->nev;
    return r->ev;
}

int cap_reader_open(cap_client *c, const uint8_t id[CAP_ID_BYTES], const uint8_t *data_root,
                    cap_reader **out) {
    int rc = cr_init();
    if (rc)
        return rc;
    cap_reader *r = xcalloc(1, sizeof *r);
    r->c = c;
    r->hlo = 1;
    memcpy(r->id, id, CAP_ID_BYTES);
    if (data_root) {
        cap_data_key(data_root, id, r->dkey);
        r->has_key = true;
    }
    *out = r;
    return 0;
}

void cap_reader_close(cap_reader *r) {
    if (!r)
        return;
    cr_memzero(r->dkey, sizeof r->dkey);
    free(r->hashes);
    free(r->ev);
    free(r);
}

void cap_reader_set_known(cap_reader *r, const cap_head *known) {
    r->known = *known;
    r->has_known = true;
}

int cap_reader_sync_from_checkpoint(cap_reader *r, uint64_t *checkpoint) {
    if (!r->has_head)
        r->from_ckpt = true;
    int rc = cap_reader_sync(r);
    r->from_ckpt = false;
    if (checkpoint)
        *checkpoint = r->base;
    return rc;
}

uint64_t cap_reader_first(const cap_reader *r) {
    return r->base ? r->base : 1;
}

void cap_reader_set_quorum(cap_reader *r, size_t q) {
    r->quorum = q;
}

void cap_reader_head(const cap_reader *r, cap_head *h) {
    *h = r->head;
}
const cap_meta *cap_reader_meta(const cap_reader *r) {
    return r->has_meta ? &r->meta : NULL;
}

/* The verified hash of record @p seq (0, or hlo <= seq < nverified). */
static uint8_t *hat(cap_reader *r, uint64_t seq) {
    if (seq == 0)
        return r->h0;
    ASSERT(seq >= r->hlo && seq - r->hlo < r->hcap);
    return r->hashes[seq - r->hlo];
}

/* Room for the hashes of seqnos up to @p n - 1. */
static void hashes_reserve(cap_reader *r, uint64_t n) {
    if (n <= r->hlo || n - r->hlo <= r->hcap)
        return;
    size_t nc = r->hcap ? r->hcap : 1024;
    while (nc < n - r->hlo)
        nc *= 2;
    r->hashes = xrealloc(r->hashes, nc * CAP_HASH_BYTES);
    r->hcap = nc;
}

static int load_meta(cap_reader *r) {
    uint8_t *rec = NULL;
    size_t len = 0;
    int rc = cap__fetch_meta(r->c, r->id, &r->meta, &rec, &len);
    if (rc)
        return rc;
    cap_record_hash(rec, len, r->h0);
    cap_hdr h;
    CAP_IGNORE(cap_record_parse(rec, len, &h, NULL, NULL));
    r->head_hlc = h.hlc;
    free(rec);
    r->nverified = 1;
    r->has_meta = true;
    return 0;
}

/* Find a copy of record @p seq whose hash is @p want on any replica but @p skip.
 * @param[out] rec malloc'd. */
static int fetch_good(cap_reader *r, uint64_t seq, const uint8_t want[CAP_HASH_BYTES], size_t skip,
                      uint8_t **rec, size_t *len, size_t *from) {
    for (size_t k = 0; k < r->c->n; k++) {
        size_t i = (r->pref + k) % r->c->n;
        if (i == skip)
            continue;
        Psl__CapReply *rep = NULL;
        if (cap__read(r->c, i, r->id, seq, 1, &rep) != 0)
            continue;
        uint8_t h[CAP_HASH_BYTES];
        bool ok = false;
        if (rep->n_records >= 1) {
            cap_record_hash(rep->records[0].data, rep->records[0].len, h);
            ok = memcmp(h, want, CAP_HASH_BYTES) == 0;
        }
        if (ok) {
            *len = rep->records[0].len;
            *rec = xmalloc(*len);
            memcpy(*rec, rep->records[0].data, *len);
            *from = i;
        } else if (rep->n_records >= 1) {
            cap_evidence *e =
                ev_add(r, CAP_EV_TAMPER, (int)i, seq, "record does not match the signed chain");
            memcpy(e->expected, want, CAP_HASH_BYTES);
            memcpy(e->got, h, CAP_HASH_BYTES);
            cap__scrub_hint(r->c, i, r->id);
        }
        psl__cap_reply__free_unpacked(rep, NULL);
        if (ok)
            return 0;
    }
    return CAP_ERR_TAMPER;
}

typedef struct tmp_rec {
    uint8_t hash[CAP_HASH_BYTES];
    uint8_t prev[CAP_HASH_BYTES];
    uint64_t hlc;
    int from; /* replica that served it */
    int kind;
} tmp_rec;

/* Fetch records [lo, lo+cnt) into tmp (hash, prev, clock, kind of each), from replica r->pref
 * first. CAP_ERR_TRUNCATED (with evidence) when no replica serves one of them. */
static int fetch_range(cap_reader *r, uint64_t lo, uint64_t cnt, tmp_rec *tmp, const cap_head *H) {
    size_t n = r->c->n, tries = 0;
    uint64_t got = 0;
    while (got < cnt) {
        size_t i = (r->pref + tries) % n;
        Psl__CapReply *rep = NULL;
        uint64_t before = got;
        if (cap__read_reply(r->c, i, r->id, lo + got, cnt - got, &rep) == 0 &&
            rep->status == CAP_ERR_TRIMMED) {
            /* The writer let the replicas drop these records: believe it only when it signed so
             * (a replica that merely lost them is a truncation, reported below). */
            cap_trim tr;
            bool ok = cap_trim_decode(rep->trim.data, rep->trim.len, &tr) == 0 &&
                      memcmp(tr.capsule, r->id, CAP_ID_BYTES) == 0 &&
                      cap_trim_verify(&tr, r->meta.writer_pk) == 0;
            psl__cap_reply__free_unpacked(rep, NULL);
            rep = NULL;
            if (ok && tr.below > r->trim_below)
                r->trim_below = tr.below;
            if (ok && lo + got < tr.below)
                return CAP_ERR_TRIMMED;
        } else if (rep && rep->status != 0) {
            psl__cap_reply__free_unpacked(rep, NULL);
            rep = NULL;
        }
        if (rep) {
            for (size_t k = 0; k < rep->n_records && got < cnt; k++) {
                cap_hdr h;
                const uint8_t *rec = rep->records[k].data;
                size_t len = rep->records[k].len;
                tmp_rec *t = &tmp[got];
                cap_record_hash(rec, len, t->hash);
                if (cap_record_parse(rec, len, &h, NULL, NULL) != 0 || h.seqno != lo + got ||
                    memcmp(h.capsule, r->id, CAP_ID_BYTES) != 0) {
                    memset(t->prev, 0, sizeof t->prev); /* fails the chain walk: refetched */
                    t->hlc = 0;
                    t->kind = -1;
                } else {
                    memcpy(t->prev, h.prev, CAP_HASH_BYTES);
                    t->hlc = h.hlc;
                    t->kind = h.kind;
                }
                t->from = (int)i;
                got++;
            }
            psl__cap_reply__free_unpacked(rep, NULL);
        }
        if (got == before && ++tries >= n) {
            cap_evidence *e =
                ev_add(r, CAP_EV_TRUNCATION, -1, lo + got,
                       "no replica serves this record although a signed head covers it");
            e->b = *H;
            return CAP_ERR_TRUNCATED;
        }
        if (got > before)
            tries = 0;
    }
    return 0;
}

/* Check tmp[k] against the hash its successor names (@p expect), repairing it from another
 * replica when the copy served is bad; then set @p expect to its prev. */
static int walk_one(cap_reader *r, tmp_rec *t, uint64_t seq, uint8_t expect[CAP_HASH_BYTES]) {
    if (memcmp(t->hash, expect, CAP_HASH_BYTES) != 0) {
        cap_evidence *e =
            ev_add(r, CAP_EV_TAMPER, t->from, seq, "record does not match the signed chain");
        memcpy(e->expected, expect, CAP_HASH_BYTES);
        memcpy(e->got, t->hash, CAP_HASH_BYTES);
        cap__scrub_hint(r->c, (size_t)t->from, r->id);
        uint8_t *rec = NULL;
        size_t len = 0, from = 0;
        int rc = fetch_good(r, seq, expect, (size_t)t->from, &rec, &len, &from);
        if (rc)
            return rc;
        cap_hdr h;
        CAP_IGNORE(cap_record_parse(rec, len, &h, NULL, NULL)); /* hash matched: it parses */
        memcpy(t->hash, expect, CAP_HASH_BYTES);
        memcpy(t->prev, h.prev, CAP_HASH_BYTES);
        t->hlc = h.hlc;
        t->kind = h.kind;
        t->from = (int)from;
        free(rec);
    }
    memcpy(expect, t->prev, CAP_HASH_BYTES);
    return 0;
}

/* First sync of a checkpoint reader (@p at_ckpt), or of any reader of a trimmed capsule: walk
 * back from the signed head @p H in chunks until a checkpoint record (at_ckpt only), the first
 * record the writer's trim kept, or record 1, verifying every record on the way. The records at
 * and after where it stopped become the verified range; nothing before is fetched. */
/* The lowest seqno a walk back may reach: record 1, or the first one a verified trim kept. */
static uint64_t walk_floor(const cap_reader *r) {
    return r->trim_below > 1 ? r->trim_below : 1;
}

static int sync_tail(cap_reader *r, const cap_head *H, bool at_ckpt) {
    enum { CHUNK = 4096 };
    uint64_t hi = H->seqno, base = 1;
    uint8_t expect[CAP_HASH_BYTES];
    memcpy(expect, H->hash, CAP_HASH_BYTES);
    tmp_rec *chunk = xcalloc(CHUNK, sizeof *chunk);
    tmp_rec *rev = NULL; /* rev[i] is record H->seqno - i */
    size_t nrev = 0, caprev = 0;
    int rc = 0;
    bool found = false, done = false;
    while (hi >= walk_floor(r) && !done) {
        /* Past the checkpoint only its parts are left to find: fetch a few records at a time. */
        uint64_t floor = walk_floor(r);
        uint64_t want = found ? 64 : CHUNK;
        uint64_t lo = hi >= want && hi - want + 1 > floor ? hi - want + 1 : floor;
        rc = fetch_range(r, lo, hi - lo + 1, chunk, H);
        if (rc == CAP_ERR_TRIMMED)
            continue; /* trim_below moved up: fetch from there */
        if (rc)
            goto out;
        for (uint64_t k = hi + 1; k-- > lo;) {
            tmp_rec *t = &chunk[k - lo];
            rc = walk_one(r, t, k, expect);
            if (rc)
                goto out;
            if (nrev == caprev) {
                caprev = caprev ? 2 * caprev : CHUNK;
                rev = xrealloc(rev, caprev * sizeof *rev);
            }
            rev[nrev++] = *t;
            if (!at_ckpt)
                continue; /* walking down to the trim point */
            /* The newest CHECKPOINT, then the parts of it just before it. */
            if (!found && t->kind == CAP_KIND_CHECKPOINT) {
                base = k;
                found = true;
            } else if (found && t->kind == CAP_KIND_CKPT_PART) {
                base = k;
            } else if (found) {
                done = true;
                break;
            }
        }
        hi = lo - 1;
    }
    /* Stopped at the trim point: the writer signed that nothing before it is kept, and the
     * signed head vouches for everything from it. */
    if (!found && walk_floor(r) > 1 && nrev > 0) {
        found = true;
        base = walk_floor(r);
    }
    if (!found && memcmp(expect, hat(r, 0), CAP_HASH_BYTES) != 0) {
        cap_evidence *e =
            ev_add(r, CAP_EV_FORK, -1, 0, "the signed chain does not lead back to record 0");
        e->b = *H;
        memcpy(e->expected, hat(r, 0), CAP_HASH_BYTES);
        memcpy(e->got, expect, CAP_HASH_BYTES);
        rc = CAP_ERR_FORK;
        goto out;
    }
    /* The clock increases along the verified part (from the checkpoint, or from record 0). */
    uint64_t ph = found ? rev[nrev - 1].hlc : r->head_hlc;
    for (size_t i = found ? nrev - 1 : nrev; i-- > 0;) {
        if (rev[i].hlc <= ph) {
            ev_add(r, CAP_EV_TAMPER, -1, H->seqno - i,
                   "clock does not increase along the signed chain");
            rc = ERR_INVALID;
            goto out;
        }
        ph = rev[i].hlc;
    }
    if (nrev > 0 && r->nverified == 1) /* nothing verified past record 0 yet: start there */
        r->hlo = H->seqno - (nrev - 1);
    hashes_reserve(r, H->seqno + 1);
    for (size_t i = 0; i < nrev; i++)
        memcpy(hat(r, H->seqno - i), rev[i].hash, CAP_HASH_BYTES);
    r->base = found ? base : 0;
    r->nverified = H->seqno + 1;
    r->head = *H;
    r->head_hlc = ph;
    r->has_head = true;
out:
    free(chunk);
    free(rev);
    return rc;
}

int cap_reader_sync(cap_reader *r) {
    int rc;
    if (!r->has_meta && (rc = load_meta(r)) != 0)
        return rc;
    size_t n = r->c->n;
    size_t need = r->quorum ? r->quorum : (size_t)r->meta.f + 1;
    if (need > n)
        need = n;
    /* 1. Heads from every replica. */
    cap_head *heads = xcalloc(n, sizeof *heads);
    bool *valid = xcalloc(n, sizeof *valid);
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        rc = cap__get_head(r->c, i, r->id, &heads[i]);
        if (rc == ERR_NOTFOUND) {
            answered++;
            continue;
        }
        if (rc)
            continue;
        answered++;
        if (cap_head_verify(&heads[i], r->meta.writer_pk) != 0) {
            cap_evidence *e = ev_add(r, CAP_EV_BADSIG, (int)i, heads[i].seqno,
                                     "head signature does not verify with the writer key");
            e->b = heads[i];
            continue;
        }
        valid[i] = true;
    }
    tmp_rec *tmp = NULL;
    if (answered < need) {
        rc = CAP_ERR_QUORUM;
        goto out;
    }
    /* 2. Forks among heads, or against what is already verified; pick the newest. */
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!valid[i])
            continue;
        for (size_t j = 0; j < i; j++)
            if (valid[j] && heads[j].seqno == heads[i].seqno &&
                memcmp(heads[j].hash, heads[i].hash, CAP_HASH_BYTES) != 0) {
                cap_evidence *e = ev_add(r, CAP_EV_FORK, (int)i, heads[i].seqno,
                                         "two replicas hold different signed heads at one seqno");
                e->a = heads[j];
                e->b = heads[i];
                rc = CAP_ERR_FORK;
                goto out;
            }
        if (heads[i].seqno < r->nverified && (heads[i].seqno >= r->base || heads[i].seqno == 0) &&
            memcmp(heads[i].hash, hat(r, heads[i].seqno), CAP_HASH_BYTES) != 0) {
            cap_evidence *e = ev_add(r, CAP_EV_FORK, (int)i, heads[i].seqno,
                                     "signed head differs from the verified chain");
            e->a = r->head;
            e->b = heads[i];
            rc = CAP_ERR_FORK;
            goto out;
        }
        if (best < 0 || heads[i].seqno > heads[best].seqno)
            best = (int)i;
    }
    if (best < 0) {
        rc = r->has_head ? CAP_ERR_ROLLBACK : CAP_ERR_TRUNCATED;
        cap_evidence *e = ev_add(r, rc == CAP_ERR_ROLLBACK ? CAP_EV_ROLLBACK : CAP_EV_TRUNCATION,
                                 -1, 0, "no replica serves a valid signed head");
        e->a = r->head;
        goto out;
    }
    cap_head H = heads[best];
    /* 3. Rollback: the newest head offered is older than one seen before. */
    const cap_head *seen = NULL;
    if (r->has_known && (!r->has_head || r->known.seqno > r->head.seqno))
        seen = &r->known;
    else if (r->has_head)
        seen = &r->head;
    if (seen && H.seqno < seen->seqno) {
        cap_evidence *e =
            ev_add(r, CAP_EV_ROLLBACK, best, H.seqno,
                   "newest head served by the replicas is older than one seen before");
        e->a = *seen;
        e->b = H;
        rc = CAP_ERR_ROLLBACK;
        goto out;
    }
    static const uint8_t nosig[64];
    if (seen == &r->known && H.seqno == r->known.seqno && memcmp(r->known.sig, nosig, 64) != 0 &&
        memcmp(H.hash, r->known.hash, CAP_HASH_BYTES) != 0) {
        cap_evidence *e = ev_add(r, CAP_EV_FORK, best, H.seqno, "head differs from the known head");
        e->a = r->known;
        e->b = H;
        rc = CAP_ERR_FORK;
        goto out;
    }
    if (H.seqno + 1 <= r->nverified) {
        r->head = H;
        r->has_head = true;
        rc = 0;
        goto out;
    }
    r->pref = (size_t)best;
    if (r->from_ckpt && !r->has_head && r->nverified == 1) {
        rc = sync_tail(r, &H, true);
        goto out;
    }
    /* 4. Fetch [nverified, H.seqno], hashing each record, from the freshest replica first. */
    uint64_t lo = r->nverified, cnt = H.seqno + 1 - lo;
    tmp = xcalloc(cnt, sizeof *tmp);
    rc = fetch_range(r, lo, cnt, tmp, &H);
    if (rc == CAP_ERR_TRIMMED && !r->has_head && r->nverified == 1) {
        /* A first sync of a trimmed capsule verifies from the trim point up. A later one whose
         * next record is gone stays CAP_ERR_TRIMMED: the caller syncs a new reader. */
        rc = sync_tail(r, &H, false);
        goto out;
    }
    if (rc)
        goto out;
    /* 5. Walk back from the signed head: each record must hash to what its successor names. */
    uint8_t expect[CAP_HASH_BYTES];
    memcpy(expect, H.hash, CAP_HASH_BYTES);
    for (uint64_t k = cnt; k-- > 0;) {
        rc = walk_one(r, &tmp[k], lo + k, expect);
        if (rc)
            goto out;
    }
    if (memcmp(expect, hat(r, lo - 1), CAP_HASH_BYTES) != 0) {
        cap_evidence *e = ev_add(r, CAP_EV_FORK, best, lo - 1,
                                 "the newest signed chain does not extend the verified one");
        e->a = r->head;
        e->b = H;
        memcpy(e->expected, hat(r, lo - 1), CAP_HASH_BYTES);
        memcpy(e->got, expect, CAP_HASH_BYTES);
        rc = CAP_ERR_FORK;
        goto out;
    }
    /* 6. The writer's clock must increase along the chain (it is signed through the hashes). */
    uint64_t ph = r->head_hlc;
    for (uint64_t k = 0; k < cnt; k++) {
        if (tmp[k].hlc <= ph) {
            ev_add(r, CAP_EV_TAMPER, -1, lo + k, "clock does not increase along the signed chain");
            rc = ERR_INVALID;
            goto out;
        }
        ph = tmp[k].hlc;
    }
    hashes_reserve(r, H.seqno + 1);
    for (uint64_t k = 0; k < cnt; k++)
        memcpy(hat(r, lo + k), tmp[k].hash, CAP_HASH_BYTES);
    r->nverified = H.seqno + 1;
    r->head = H;
    r->head_hlc = ph;
    r->has_head = true;
    rc = 0;
out:
    free(tmp);
    free(heads);
    free(valid);
    return rc;
}

int cap_reader_extend(cap_reader *r, const uint8_t *const *recs, const size_t *lens, size_t n,
                      const cap_head *head) {
    if (!r->has_meta || !r->has_head)
        return ERR_USAGE;
    if (n == 0)
        return ERR_MALFORMED;
    cap_hdr h0;
    if (cap_record_parse(recs[0], lens[0], &h0, NULL, NULL) != 0)
        return ERR_MALFORMED;
    uint64_t first = h0.seqno;
    if (first > r->nverified)
        return CAP_ERR_GAP;
    if (first == 0 || (r->base && first < r->base) || first + n < first)
        return ERR_INVALID; /* before the verified range: nothing to link to */
    if (head->seqno != first + n - 1 || memcmp(head->capsule, r->id, CAP_ID_BYTES) != 0)
        return ERR_AUTH;
    uint8_t(*hs)[CAP_HASH_BYTES] = xmalloc(n * CAP_HASH_BYTES);
    uint8_t prev[CAP_HASH_BYTES] = {0};
    if (first == r->nverified) /* record first - 1 is the newest verified one */
        memcpy(prev, hat(r, first - 1), CAP_HASH_BYTES);
    uint64_t ph = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t seq = first + i;
        cap_hdr h;
        if (cap_record_parse(recs[i], lens[i], &h, NULL, NULL) != 0) {
            rc = ERR_MALFORMED;
            break;
        }
        cap_record_hash(recs[i], lens[i], hs[i]);
        if (seq < r->nverified) { /* verified before: must be the very same record */
            if (memcmp(hs[i], hat(r, seq), CAP_HASH_BYTES) != 0)
                rc = ERR_INVALID;
            ph = h.hlc;
        } else {
            if (seq == r->nverified)
                ph = r->head_hlc;
            if (cap_record_check_link(recs[i], lens[i], r->id, r->meta.version, seq, prev, ph) != 0)
                rc = ERR_INVALID;
            ph = h.hlc;
        }
        memcpy(prev, hs[i], CAP_HASH_BYTES);
    }
    if (!rc && (memcmp(head->hash, prev, CAP_HASH_BYTES) != 0 ||
                cap_head_verify(head, r->meta.writer_pk) != 0))
        rc = ERR_AUTH;
    if (!rc && head->seqno + 1 > r->nverified) {
        hashes_reserve(r, head->seqno + 1);
        for (uint64_t s = r->nverified; s <= head->seqno; s++)
            memcpy(hat(r, s), hs[s - first], CAP_HASH_BYTES);
        r->nverified = head->seqno + 1;
        r->head = *head;
        r->head_hlc = ph;
    }
    free(hs);
    return rc;
}

#define TRIM_MIN 4096u /* hashes dropped at once: trimming costs one move of what is kept */

void cap_reader_trim(cap_reader *r, uint64_t below) {
    if (below > r->nverified)
        below = r->nverified;
    if (below < 2)
        return;
    uint64_t keep = below - 1; /* the next record links to it */
    if (keep <= r->hlo || keep - r->hlo < TRIM_MIN)
        return;
    size_t n = (size_t)(r->nverified - keep);
    memmove(r->hashes, r->hashes[keep - r->hlo], n * CAP_HASH_BYTES);
    r->hlo = keep;
    if (r->base < keep)
        r->base = keep;
    if (r->hcap > 16 * (size_t)TRIM_MIN && 4 * n < r->hcap) { /* a long first sync: give back */
        size_t nc = 2 * (size_t)TRIM_MIN;
        while (nc < 2 * n)
            nc *= 2;
        r->hashes = xrealloc(r->hashes, nc * CAP_HASH_BYTES);
        r->hcap = nc;
    }
}

/* Deliver one fetched record: check it against the chain, decrypt, call fn. */
static int deliver(cap_reader *r, uint64_t seq, const uint8_t *rec, size_t len, size_t from,
                   int (*fn)(void *, uint64_t, int, const uint8_t *, size_t), void *arg) {
    uint8_t h[CAP_HASH_BYTES];
    cap_record_hash(rec, len, h);
    uint8_t *good = NULL;
    if (memcmp(h, hat(r, seq), CAP_HASH_BYTES) != 0) {
        cap_evidence *e =
            ev_add(r, CAP_EV_TAMPER, (int)from, seq, "record does not match the signed chain");
        memcpy(e->expected, hat(r, seq), CAP_HASH_BYTES);
        memcpy(e->got, h, CAP_HASH_BYTES);
        cap__scrub_hint(r->c, from, r->id);
        size_t f2;
        int rc = fetch_good(r, seq, hat(r, seq), from, &good, &len, &f2);
        if (rc)
            return rc;
        rec = good;
        r->pref = f2;
    }
    cap_hdr hd;
    int rc = cap_record_parse(rec, len, &hd, NULL, NULL);
    if (rc)
        goto out;
    uint8_t *pt = xmalloc(hd.payload_len + 1);
    rc = cap_record_open(r->dkey, rec, len, pt);
    if (rc == 0)
        rc = fn(arg, seq, hd.kind, pt, hd.payload_len);
    else
        ev_add(r, CAP_EV_TAMPER, (int)from, seq,
               "AEAD tag of a chained record is wrong (writer bug?)");
    cr_memzero(pt, hd.payload_len);
    free(pt);
out:
    free(good);
    return rc;
}

int cap_read_range(cap_reader *r, uint64_t first, uint64_t last,
                   int (*fn)(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len),
                   void *arg) {
    if (!r->has_key)
        return ERR_USAGE;
    if (first == 0 || first < r->base || last < first || last >= r->nverified)
        return ERR_NOTFOUND;
    uint64_t seq = first;
    size_t tries = 0;
    while (seq <= last) {
        size_t i = (r->pref + tries) % r->c->n;
        Psl__CapReply *rep = NULL;
        int rc = cap__read(r->c, i, r->id, seq, last - seq + 1, &rep);
        if (rc || rep->n_records == 0) {
            if (rep)
                psl__cap_reply__free_unpacked(rep, NULL);
            if (++tries >= r->c->n)
                return CAP_ERR_TRUNCATED;
            continue;
        }
        tries = 0;
        for (size_t k = 0; k < rep->n_records && seq <= last; k++, seq++) {
            rc = deliver(r, seq, rep->records[k].data, rep->records[k].len, i, fn, arg);
            if (rc) {
                psl__cap_reply__free_unpacked(rep, NULL);
                return rc;
            }
        }
        psl__cap_reply__free_unpacked(rep, NULL);
    }
    return 0;
}

typedef struct one_ctx {
    uint8_t *out;
    size_t len;
    int kind;
} one_ctx;

static int one_cb(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len) {
    (void)seq;
    one_ctx *c = arg;
    c->out = xmalloc(len + 1);
    memcpy(c->out, p, len);
    c->len = len;
    c->kind = kind;
    return 0;
}

int cap_read(cap_reader *r, uint64_t seq, uint8_t **out, size_t *len, int *kind) {
    one_ctx c = {0};
    int rc = cap_read_range(r, seq, seq, one_cb, &c);
    if (rc)
        return rc;
    *out = c.out;
    *len = c.len;
    if (kind)
        *kind = c.kind;
    return 0;
}
