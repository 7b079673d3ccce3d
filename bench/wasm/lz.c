/* Benchmark kernel: an LZ77-style compressor with hash chains (greedy parse, 64 KiB window) and
 * its decompressor. Generates SIZE bytes of word-salad text, compresses, decompresses, checks the
 * round trip and prints the compressed size and a checksum. Usage: lz [SIZE] [REPS]
 *
 * Format: a token byte; top bit 0: literal run of (t + 1) bytes follows; top bit 1: match of
 * length (t & 0x7f) + MIN_MATCH, then a 16-bit little-endian distance. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MATCH 4
#define MAX_MATCH (127 + MIN_MATCH)
#define WINDOW 65535
#define HASH_BITS 15
#define MAX_CHAIN 48

static uint32_t rng = 2463534242u;

static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t make_text(uint8_t *out, size_t n) {
    static const char *words[] = {"the",        "enclave",     "function", "state",     "replica",
                                  "capsule",    "record",      "worker",   "lock",      "release",
                                  "acquire",    "hash",        "chain",    "signature", "quorum",
                                  "of",         "and",         "a",        "to",        "in",
                                  "serverless", "consistency", "eventual", "storage",   "key"};
    size_t pos = 0;
    while (pos < n) {
        const char *w = words[next() % (sizeof words / sizeof words[0])];
        size_t l = strlen(w);
        for (size_t i = 0; i < l && pos < n; i++)
            out[pos++] = (uint8_t)w[i];
        if (pos < n)
            out[pos++] = (next() % 11 == 0) ? '\n' : ' ';
        if (pos < n && next() % 97 == 0)
            out[pos++] = (uint8_t)('0' + next() % 10);
    }
    return pos;
}

static uint32_t hash4(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

static void flush_literals(const uint8_t *src, size_t from, size_t to, uint8_t *out, size_t *o) {
    while (from < to) {
        size_t run = to - from > 128 ? 128 : to - from;
        out[(*o)++] = (uint8_t)(run - 1);
        memcpy(out + *o, src + from, run);
        *o += run;
        from += run;
    }
}

/* Returns the compressed size. out must hold n + n / 128 + 16 bytes. */
static size_t compress(const uint8_t *src, size_t n, uint8_t *out, int32_t *head, int32_t *prev) {
    for (size_t i = 0; i < ((size_t)1 << HASH_BITS); i++)
        head[i] = -1;
    size_t o = 0, lit = 0, i = 0;
    while (i + MIN_MATCH <= n) {
        uint32_t h = hash4(src + i);
        size_t best_len = 0, best_dist = 0;
        int32_t cand = head[h];
        for (int chain = 0; cand >= 0 && chain < MAX_CHAIN; chain++) {
            size_t dist = i - (size_t)cand;
            if (dist > WINDOW)
                break;
            size_t maxl = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            size_t l = 0;
            while (l < maxl && src[(size_t)cand + l] == src[i + l])
                l++;
            if (l > best_len) {
                best_len = l;
                best_dist = dist;
                if (l == maxl)
                    break;
            }
            cand = prev[cand];
        }
        if (best_len >= MIN_MATCH) {
            flush_literals(src, lit, i, out, &o);
            out[o++] = (uint8_t)(0x80 | (best_len - MIN_MATCH));
            out[o++] = (uint8_t)best_dist;
            out[o++] = (uint8_t)(best_dist >> 8);
            for (size_t k = 0; k < best_len; k++, i++) {
                if (i + MIN_MATCH <= n) {
                    uint32_t hk = hash4(src + i);
                    prev[i] = head[hk];
                    head[hk] = (int32_t)i;
                }
            }
            lit = i;
        } else {
            prev[i] = head[h];
            head[h] = (int32_t)i;
            i++;
        }
    }
    flush_literals(src, lit, n, out, &o);
    return o;
}

/* Returns the decompressed size, or (size_t)-1 on a malformed stream. */
static size_t decompress(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t t = in[i++];
        if (t & 0x80) {
            if (i + 2 > n)
                return (size_t)-1;
            size_t len = (size_t)(t & 0x7f) + MIN_MATCH;
            size_t dist = (size_t)in[i] | (size_t)in[i + 1] << 8;
            i += 2;
            if (dist == 0 || dist > o || o + len > cap)
                return (size_t)-1;
            for (size_t k = 0; k < len; k++, o++)
                out[o] = out[o - dist];
        } else {
            size_t run = (size_t)t + 1;
            if (i + run > n || o + run > cap)
                return (size_t)-1;
            memcpy(out + o, in + i, run);
            i += run;
            o += run;
        }
    }
    return o;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : ((size_t)8 << 20);
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 16 || reps < 1)
        return 2;
    uint8_t *src = malloc(n), *comp = malloc(n + n / 128 + 16), *back = malloc(n);
    int32_t *head = malloc(((size_t)1 << HASH_BITS) * sizeof *head);
    int32_t *prev = malloc(n * sizeof *prev);
    if (!src || !comp || !back || !head || !prev)
        return 1;
    make_text(src, n);
    size_t clen = 0;
    uint32_t check = 0;
    for (int r = 0; r < reps; r++) {
        clen = compress(src, n, comp, head, prev);
        size_t dlen = decompress(comp, clen, back, n);
        if (dlen != n || memcmp(src, back, n) != 0) {
            printf("lz: round trip failed\n");
            return 1;
        }
        for (size_t i = 0; i < clen; i++)
            check = check * 16777619u ^ comp[i];
    }
    printf("lz size=%zu: compressed to %zu bytes, checksum %08x\n", n, clen, check);
    free(src);
    free(comp);
    free(back);
    free(head);
    free(prev);
    return 0;
}
