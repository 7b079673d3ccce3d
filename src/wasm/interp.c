/* The interpreter: direct-threaded dispatch (computed goto) over the code lower.c produced.
 * Registers: ip (instruction), fp (frame slots), mem/memsz (memory 0 of the running instance),
 * inst. Wasm-to-wasm calls never recurse on the C stack: frames live in store->frames, values in
 * store->stack. Invariant: i32 and f32 values occupy the low 32 bits of a slot, upper bits zero.
 * Traps unwind by resetting store->depth and returning the trap code. */
#include "wasm/wasm_int.h"
#include "wasm/wasm_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Fuel counts lowered code cells, an upper bound of the work done between two polls of the time
 * budget: a backward branch charges the length of the loop body it closes, a function entry the
 * length of the callee's code. Counting branches instead let a loop with a 400 KB body run 20x
 * past its budget (16384 iterations between polls). */
#define FUEL_PERIOD (1 << 18)
/* Bulk memory and table operations of at least this many bytes check the time budget first:
 * each is one instruction with no back edge, so a straight run of them (memory.fill of 1 GiB,
 * twenty times) would otherwise outlast the budget by seconds. */
#define BULK_CHECK_BYTES (1u << 20)

static inline float f32v(wasm_val v) {
    uint32_t b = (uint32_t)v;
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static inline double f64v(wasm_val v) {
    double d;
    memcpy(&d, &v, 8);
    return d;
}
static inline wasm_val vf32(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}
static inline wasm_val vf64(double d) {
    wasm_val v;
    memcpy(&v, &d, 8);
    return v;
}

/* NaN-propagating min/max with -0 < +0, as the spec requires (C's fmin does neither). */
static inline float min32(float a, float b) {
    if (a != a || b != b)
        return a + b;
    if (a == b)
        return signbit(a) ? a : b;
    return a < b ? a : b;
}
static inline float max32(float a, float b) {
    if (a != a || b != b)
        return a + b;
    if (a == b)
        return signbit(a) ? b : a;
    return a > b ? a : b;
}
static inline double min64(double a, double b) {
    if (a != a || b != b)
        return a + b;
    if (a == b)
        return signbit(a) ? a : b;
    return a < b ? a : b;
}
static inline double max64(double a, double b) {
    if (a != a || b != b)
        return a + b;
    if (a == b)
        return signbit(a) ? b : a;
    return a > b ? a : b;
}

/* Rounding functions must quiet a signalling NaN input (libm's may return it unchanged). */
static inline float rnd32(float x, float (*fn)(float)) {
    return x != x ? x + x : fn(x);
}
static inline double rnd64(double x, double (*fn)(double)) {
    return x != x ? x + x : fn(x);
}

static inline uint32_t rotl32(uint32_t x, uint32_t n) {
    n &= 31;
    return (x << n) | (x >> ((32 - n) & 31));
}
static inline uint32_t rotr32(uint32_t x, uint32_t n) {
    n &= 31;
    return (x >> n) | (x << ((32 - n) & 31));
}
static inline uint64_t rotl64(uint64_t x, uint64_t n) {
    n &= 63;
    return (x << n) | (x >> ((64 - n) & 63));
}
static inline uint64_t rotr64(uint64_t x, uint64_t n) {
    n &= 63;
    return (x >> n) | (x << ((64 - n) & 63));
}

/* Saturating truncations (non-trapping float-to-int). */
static inline uint32_t sat_i32_s(double d) {
    if (d != d)
        return 0;
    if (d <= -2147483648.0)
        return 0x80000000u;
    if (d >= 2147483647.0)
        return 0x7fffffffu;
    return (uint32_t)(int32_t)d;
}
static inline uint32_t sat_i32_u(double d) {
    if (d != d || d <= 0)
        return 0;
    if (d >= 4294967295.0)
        return 0xffffffffu;
    return (uint32_t)d;
}
static inline uint64_t sat_i64_s(double d) {
    if (d != d)
        return 0;
    if (d < -9223372036854775808.0)
        return 0x8000000000000000ull;
    if (d >= 9223372036854775808.0)
        return 0x7fffffffffffffffull;
    return (uint64_t)(int64_t)d;
}
static inline uint64_t sat_i64_u(double d) {
    if (d != d || d <= 0)
        return 0;
    if (d >= 18446744073709551616.0)
        return 0xffffffffffffffffull;
    return (uint64_t)d;
}

static int budget_check(wasm_store *s) {
    if (atomic_load_explicit(&s->interrupt, memory_order_relaxed)) {
        atomic_store(&s->interrupt, 0);
        return WASM_TRAP_INTERRUPTED;
    }
    if (s->deadline_ns && wasm__now_ns() >= s->deadline_ns)
        return WASM_TRAP_TIMEOUT;
    return 0;
}

static inline wasm_val mask_val(wasm_val v, uint8_t t) {
    return (t == WASM_I32 || t == WASM_F32) ? (uint32_t)v : v;
}

/* Call a host function with args in place; results are written over them. */
static int call_host(wasm_store *s, wasm_instance *caller, const wasm_func *f, wasm_val *args) {
    const wasm_ftype *t = f->type;
    wasm_val small[16];
    wasm_val *res = t->nresults <= 16 ? small : xcalloc(t->nresults, sizeof *res);
    wasm_val *saved = s->sp;
    uint32_t span = t->nparams > t->nresults ? t->nparams : t->nresults;
    s->sp = args + span + 1;
    int rc = f->host(s, caller, f->host_ud, args, res);
    s->sp = saved;
    if (rc == 0)
        for (uint32_t i = 0; i < t->nresults; i++)
            args[i] = mask_val(res[i], t->types[t->nparams + i]);
    if (res != small)
        free(res);
    return rc;
}

static const void *const *g_handlers;
/* Every handler label of run() starts on a 32-byte boundary (gcc; clang has no such per-function
 * option). Without it the interpreter's speed depended on where the linker happened to place
 * run(): two builds whose interpreter sources were identical ran primes.wasm 3000000 in 97 and
 * 81 ms of CPU and sort 217 and 231 ms, each faster on some kernels. With it, both builds ran
 * within a few percent of each other and of the better of the two on every kernel measured
 * (primes 82, sha256 812-814, sort 202-210, matmul 29 ms; docs/jit.md, session 6). */
#if defined(__GNUC__) && !defined(__clang__)
#define WASM_ALIGN_HANDLERS __attribute__((optimize("align-labels=32")))
#else
#define WASM_ALIGN_HANDLERS
#endif
static int run(wasm_store *s, const wasm_func *f, wasm_val *sp) WASM_ALIGN_HANDLERS;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_handlers(void) {
    run(NULL, NULL, NULL);
}

const void *const *wasm__interp_handlers(void) {
    pthread_once(&g_once, init_handlers);
    return g_handlers;
}

int wasm__interp_call(wasm_store *s, const wasm_func *f, wasm_val *sp) {
    if (f->host)
        return call_host(s, NULL, f, sp);
    return run(s, f, sp);
}

const wasm_tier_ops *wasm__tier;

void wasm__tier_set(const wasm_tier_ops *ops) {
    wasm__tier = ops;
}

int wasm__call_func(wasm_store *s, wasm_instance *caller, const wasm_func *f, wasm_val *sp) {
    if (!f->host)
        return run(s, f, sp);
    if (UNLIKELY(s->depth >= s->cfg.max_call_depth))
        return WASM_TRAP_STACK;
    s->depth++;
    int rc = call_host(s, caller, f, sp);
    s->depth--;
    return rc;
}

#define A ip[1].s.a
#define B ip[1].s.b
#define C ip[1].s.c
#define D ip[1].s.d
#define OFF ip[1].w.hi
#define DISPATCH() goto *ip->h
#define NEXT(n)                                                                                    \
    do {                                                                                           \
        ip += (n);                                                                                 \
        goto *ip->h;                                                                               \
    } while (0)
#define TRAP(k)                                                                                    \
    do {                                                                                           \
        rc = (k);                                                                                  \
        goto trap;                                                                                 \
    } while (0)
/* Charge n cells; when the fuel runs out, poll the time budget and let a compiling tier sample
 * the running code (at: the branch target or the callee's first cell; back: a loop's back edge,
 * where the tier may finish the activation in compiled code: then return as L_ret does; or run
 * part of it and hand it back at another loop head: go on there). */
#define FUEL_AT(n, at, back)                                                                       \
    do {                                                                                           \
        fuel -= (int64_t)(n);                                                                      \
        if (UNLIKELY(fuel < 0)) {                                                                  \
            fuel = FUEL_PERIOD;                                                                    \
            int b_ = budget_check(s);                                                              \
            if (b_)                                                                                \
                TRAP(b_);                                                                          \
            if (wasm__tier && wasm__tier->sample) {                                                \
                const wasm_cell *rs_ = NULL;                                                       \
                b_ = wasm__tier->sample(s, inst, (at), (back), fp, &rs_);                          \
                if (b_ > 0)                                                                        \
                    TRAP(b_);                                                                      \
                if (b_ < 0)                                                                        \
                    goto L_ret;                                                                    \
                if (rs_) {                                                                         \
                    RELOAD_MEM();                                                                  \
                    ip = rs_;                                                                      \
                    DISPATCH();                                                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)
/* A taken branch to target t: a backward one closes a loop of (ip - t) cells. */
#define FUEL_BR(t) FUEL_AT((t) < ip ? ip - (t) : 1, (t), (t) < ip)
#define BULK_BUDGET(bytes)                                                                         \
    do {                                                                                           \
        if (UNLIKELY((bytes) >= BULK_CHECK_BYTES)) {                                               \
            int b_ = budget_check(s);                                                              \
            if (b_)                                                                                \
                TRAP(b_);                                                                          \
        }                                                                                          \
    } while (0)
#define RELOAD_MEM()                                                                               \
    do {                                                                                           \
        if (inst->mem) {                                                                           \
            mem = inst->mem->data;                                                                 \
            memsz = inst->mem->size;                                                               \
        } else {                                                                                   \
            mem = NULL;                                                                            \
            memsz = 0;                                                                             \
        }                                                                                          \
    } while (0)

/* Binary operators: register-register and register-immediate forms from one definition. */
#define BIN(name, T, CHECK, EXPR)                                                                  \
    L_##name : {                                                                                   \
        T x = (T)fp[B], y = (T)fp[C];                                                              \
        CHECK;                                                                                     \
        fp[A] = (EXPR);                                                                            \
        NEXT(2);                                                                                   \
    }                                                                                              \
    L_##name##_ri : {                                                                              \
        T x = (T)fp[B], y = (T)ip[2].u64;                                                          \
        CHECK;                                                                                     \
        fp[A] = (EXPR);                                                                            \
        NEXT(3);                                                                                   \
    }
#define BINF(name, CONV, EXPR)                                                                     \
    L_##name : {                                                                                   \
        __typeof__(CONV(0)) x = CONV(fp[B]), y = CONV(fp[C]);                                      \
        fp[A] = (EXPR);                                                                            \
        NEXT(2);                                                                                   \
    }                                                                                              \
    L_##name##_ri : {                                                                              \
        __typeof__(CONV(0)) x = CONV(fp[B]), y = CONV(ip[2].u64);                                  \
        fp[A] = (EXPR);                                                                            \
        NEXT(3);                                                                                   \
    }
#define UN(name, EXPR)                                                                             \
    L_##name : {                                                                                   \
        wasm_val x = fp[B];                                                                        \
        fp[A] = (EXPR);                                                                            \
        NEXT(2);                                                                                   \
    }
/* Trapping float-to-int: NaN is "invalid conversion", out of range (lo, hi exclusive) overflow. */
#define TRUNC(name, CONV, lo, hi, TO)                                                              \
    L_##name : {                                                                                   \
        double d = (double)CONV(fp[B]);                                                            \
        if (UNLIKELY(d != d))                                                                      \
            TRAP(WASM_TRAP_CONVERSION);                                                            \
        if (UNLIKELY(!(d > (lo) && d < (hi))))                                                     \
            TRAP(WASM_TRAP_INT_OVERFLOW);                                                          \
        fp[A] = (TO);                                                                              \
        NEXT(2);                                                                                   \
    }
#define LOAD(name, N, T, EXT)                                                                      \
    L_##name : {                                                                                   \
        uint64_t ea = (uint64_t)(uint32_t)fp[B] + OFF;                                             \
        if (UNLIKELY(ea + (N) > memsz))                                                            \
            TRAP(WASM_TRAP_MEM_OOB);                                                               \
        T v;                                                                                       \
        memcpy(&v, mem + ea, N);                                                                   \
        fp[A] = (EXT);                                                                             \
        NEXT(2);                                                                                   \
    }
#define STORE(name, N, T)                                                                          \
    L_##name : {                                                                                   \
        uint64_t ea = (uint64_t)(uint32_t)fp[A] + OFF;                                             \
        if (UNLIKELY(ea + (N) > memsz))                                                            \
            TRAP(WASM_TRAP_MEM_OOB);                                                               \
        T v = (T)fp[B];                                                                            \
        memcpy(mem + ea, &v, N);                                                                   \
        NEXT(2);                                                                                   \
    }

#define BRCMP(name, EXPR)                                                                          \
    L_brif_i32_##name : {                                                                          \
        uint32_t x = (uint32_t)fp[B], y = (uint32_t)fp[C];                                         \
        if (EXPR) {                                                                                \
            FUEL_BR(ip[2].target);                                                                 \
            ip = ip[2].target;                                                                     \
            DISPATCH();                                                                            \
        }                                                                                          \
        NEXT(3);                                                                                   \
    }                                                                                              \
    L_brif_i32_##name##_ri : {                                                                     \
        uint32_t x = (uint32_t)fp[B], y = (uint32_t)ip[2].u64;                                     \
        if (EXPR) {                                                                                \
            FUEL_BR(ip[3].target);                                                                 \
            ip = ip[3].target;                                                                     \
            DISPATCH();                                                                            \
        }                                                                                          \
        NEXT(4);                                                                                   \
    }

#define I32S(v) ((int32_t)(uint32_t)(v))
#define I64S(v) ((int64_t)(v))

static int run(wasm_store *s, const wasm_func *f, wasm_val *sp) {
#define HB(n) &&L_##n, &&L_##n##_ri,
#define H1(n) &&L_##n,
    static const void *const table[OP__COUNT] = {WASM_BINOPS(HB) WASM_BRCMPOPS(HB) WASM_UNOPS(H1) WASM_LOADOPS(H1)
                                                     WASM_STOREOPS(H1) WASM_MISCOPS(H1)};
#undef HB
#undef H1
    if (!s) {
        g_handlers = table;
        return 0;
    }

    const wasm_cell *ip;
    wasm_val *fp = sp;
    wasm_instance *inst = f->inst;
    uint8_t *mem;
    uint64_t memsz;
    int64_t fuel = FUEL_PERIOD;
    int rc = 0;
    const uint32_t entry_depth = s->depth;
    const uint32_t max_depth = s->cfg.max_call_depth;
    wasm_frame *const frames = s->frames;
    const wasm_code *callee = f->code;
    const wasm_cell *ret_ip = NULL;
    const wasm_func *fn = NULL; /* callee of call_import / call_indirect */

    ip = callee->code;
    RELOAD_MEM();
    goto enter;

    /* ---- numeric ---- */
    BIN(i32_add, uint32_t, (void)0, (uint32_t)(x + y))
    BIN(i32_sub, uint32_t, (void)0, (uint32_t)(x - y))
    BIN(i32_mul, uint32_t, (void)0, (uint32_t)(x * y))
    BIN(i32_div_s, uint32_t,
        if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO);
        if (UNLIKELY(x == 0x80000000u && y == 0xffffffffu)) TRAP(WASM_TRAP_INT_OVERFLOW),
        (uint32_t)(I32S(x) / I32S(y)))
    BIN(i32_div_u, uint32_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO), x / y)
    BIN(i32_rem_s, uint32_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO),
        y == 0xffffffffu ? 0 : (uint32_t)(I32S(x) % I32S(y)))
    BIN(i32_rem_u, uint32_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO), x % y)
    BIN(i32_and, uint32_t, (void)0, x & y)
    BIN(i32_or, uint32_t, (void)0, x | y)
    BIN(i32_xor, uint32_t, (void)0, x ^ y)
    BIN(i32_shl, uint32_t, (void)0, (uint32_t)(x << (y & 31)))
    BIN(i32_shr_s, uint32_t, (void)0, (uint32_t)(I32S(x) >> (y & 31)))
    BIN(i32_shr_u, uint32_t, (void)0, x >> (y & 31))
    BIN(i32_rotl, uint32_t, (void)0, rotl32(x, y))
    BIN(i32_rotr, uint32_t, (void)0, rotr32(x, y))
    BIN(i32_eq, uint32_t, (void)0, x == y)
    BIN(i32_ne, uint32_t, (void)0, x != y)
    BIN(i32_lt_s, uint32_t, (void)0, I32S(x) < I32S(y))
    BIN(i32_lt_u, uint32_t, (void)0, x < y)
    BIN(i32_gt_s, uint32_t, (void)0, I32S(x) > I32S(y))
    BIN(i32_gt_u, uint32_t, (void)0, x > y)
    BIN(i32_le_s, uint32_t, (void)0, I32S(x) <= I32S(y))
    BIN(i32_le_u, uint32_t, (void)0, x <= y)
    BIN(i32_ge_s, uint32_t, (void)0, I32S(x) >= I32S(y))
    BIN(i32_ge_u, uint32_t, (void)0, x >= y)

    BIN(i64_add, uint64_t, (void)0, x + y)
    BIN(i64_sub, uint64_t, (void)0, x - y)
    BIN(i64_mul, uint64_t, (void)0, x * y)
    BIN(i64_div_s, uint64_t,
        if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO);
        if (UNLIKELY(x == 0x8000000000000000ull && y == ~0ull)) TRAP(WASM_TRAP_INT_OVERFLOW),
        (uint64_t)(I64S(x) / I64S(y)))
    BIN(i64_div_u, uint64_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO), x / y)
    BIN(i64_rem_s, uint64_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO),
        y == ~0ull ? 0 : (uint64_t)(I64S(x) % I64S(y)))
    BIN(i64_rem_u, uint64_t, if (UNLIKELY(y == 0)) TRAP(WASM_TRAP_DIV_ZERO), x % y)
    BIN(i64_and, uint64_t, (void)0, x & y)
    BIN(i64_or, uint64_t, (void)0, x | y)
    BIN(i64_xor, uint64_t, (void)0, x ^ y)
    BIN(i64_shl, uint64_t, (void)0, x << (y & 63))
    BIN(i64_shr_s, uint64_t, (void)0, (uint64_t)(I64S(x) >> (y & 63)))
    BIN(i64_shr_u, uint64_t, (void)0, x >> (y & 63))
    BIN(i64_rotl, uint64_t, (void)0, rotl64(x, y))
    BIN(i64_rotr, uint64_t, (void)0, rotr64(x, y))
    BIN(i64_eq, uint64_t, (void)0, x == y)
    BIN(i64_ne, uint64_t, (void)0, x != y)
    BIN(i64_lt_s, uint64_t, (void)0, I64S(x) < I64S(y))
    BIN(i64_lt_u, uint64_t, (void)0, x < y)
    BIN(i64_gt_s, uint64_t, (void)0, I64S(x) > I64S(y))
    BIN(i64_gt_u, uint64_t, (void)0, x > y)
    BIN(i64_le_s, uint64_t, (void)0, I64S(x) <= I64S(y))
    BIN(i64_le_u, uint64_t, (void)0, x <= y)
    BIN(i64_ge_s, uint64_t, (void)0, I64S(x) >= I64S(y))
    BIN(i64_ge_u, uint64_t, (void)0, x >= y)

    BINF(f32_eq, f32v, x == y)
    BINF(f32_ne, f32v, x != y)
    BINF(f32_lt, f32v, x < y)
    BINF(f32_gt, f32v, x > y)
    BINF(f32_le, f32v, x <= y)
    BINF(f32_ge, f32v, x >= y)
    BINF(f64_eq, f64v, x == y)
    BINF(f64_ne, f64v, x != y)
    BINF(f64_lt, f64v, x < y)
    BINF(f64_gt, f64v, x > y)
    BINF(f64_le, f64v, x <= y)
    BINF(f64_ge, f64v, x >= y)
    BINF(f32_add, f32v, vf32(x + y))
    BINF(f32_sub, f32v, vf32(x - y))
    BINF(f32_mul, f32v, vf32(x * y))
    BINF(f32_div, f32v, vf32(x / y))
    BINF(f32_min, f32v, vf32(min32(x, y)))
    BINF(f32_max, f32v, vf32(max32(x, y)))
    BIN(f32_copysign, uint32_t, (void)0, (x & 0x7fffffffu) | (y & 0x80000000u))
    BINF(f64_add, f64v, vf64(x + y))
    BINF(f64_sub, f64v, vf64(x - y))
    BINF(f64_mul, f64v, vf64(x * y))
    BINF(f64_div, f64v, vf64(x / y))
    BINF(f64_min, f64v, vf64(min64(x, y)))
    BINF(f64_max, f64v, vf64(max64(x, y)))
    BIN(f64_copysign, uint64_t, (void)0,
        (x & 0x7fffffffffffffffull) | (y & 0x8000000000000000ull))

    UN(i32_eqz, (uint32_t)x == 0)
    UN(i64_eqz, x == 0)
    UN(i32_clz, (uint32_t)x ? (uint32_t)__builtin_clz((uint32_t)x) : 32u)
    UN(i32_ctz, (uint32_t)x ? (uint32_t)__builtin_ctz((uint32_t)x) : 32u)
    UN(i32_popcnt, (uint32_t)__builtin_popcount((uint32_t)x))
    UN(i64_clz, x ? (uint64_t)__builtin_clzll(x) : 64u)
    UN(i64_ctz, x ? (uint64_t)__builtin_ctzll(x) : 64u)
    UN(i64_popcnt, (uint64_t)__builtin_popcountll(x))
    UN(f32_abs, (uint32_t)x & 0x7fffffffu)
    UN(f32_neg, (uint32_t)x ^ 0x80000000u)
    UN(f32_ceil, vf32(rnd32(f32v(x), ceilf)))
    UN(f32_floor, vf32(rnd32(f32v(x), floorf)))
    UN(f32_trunc, vf32(rnd32(f32v(x), truncf)))
    UN(f32_nearest, vf32(rnd32(f32v(x), nearbyintf)))
    UN(f32_sqrt, vf32(sqrtf(f32v(x))))
    UN(f64_abs, x & 0x7fffffffffffffffull)
    UN(f64_neg, x ^ 0x8000000000000000ull)
    UN(f64_ceil, vf64(rnd64(f64v(x), ceil)))
    UN(f64_floor, vf64(rnd64(f64v(x), floor)))
    UN(f64_trunc, vf64(rnd64(f64v(x), trunc)))
    UN(f64_nearest, vf64(rnd64(f64v(x), nearbyint)))
    UN(f64_sqrt, vf64(sqrt(f64v(x))))
    UN(i32_wrap_i64, (uint32_t)x)
    TRUNC(i32_trunc_f32_s, f32v, -2147483904.0, 2147483648.0, (uint32_t)(int32_t)f32v(fp[B]))
    TRUNC(i32_trunc_f32_u, f32v, -1.0, 4294967296.0, (uint32_t)f32v(fp[B]))
    TRUNC(i32_trunc_f64_s, f64v, -2147483649.0, 2147483648.0, (uint32_t)(int32_t)f64v(fp[B]))
    TRUNC(i32_trunc_f64_u, f64v, -1.0, 4294967296.0, (uint32_t)f64v(fp[B]))
    UN(i64_extend_i32_s, (uint64_t)(int64_t)(int32_t)(uint32_t)x)
    TRUNC(i64_trunc_f32_s, f32v, -9223373136366403584.0, 9223372036854775808.0,
          (uint64_t)(int64_t)f32v(fp[B]))
    TRUNC(i64_trunc_f32_u, f32v, -1.0, 18446744073709551616.0, (uint64_t)f32v(fp[B]))
    TRUNC(i64_trunc_f64_s, f64v, -9223372036854777856.0, 9223372036854775808.0,
          (uint64_t)(int64_t)f64v(fp[B]))
    TRUNC(i64_trunc_f64_u, f64v, -1.0, 18446744073709551616.0, (uint64_t)f64v(fp[B]))
    UN(f32_convert_i32_s, vf32((float)(int32_t)(uint32_t)x))
    UN(f32_convert_i32_u, vf32((float)(uint32_t)x))
    UN(f32_convert_i64_s, vf32((float)(int64_t)x))
    UN(f32_convert_i64_u, vf32((float)x))
    UN(f32_demote_f64, vf32((float)f64v(x)))
    UN(f64_convert_i32_s, vf64((double)(int32_t)(uint32_t)x))
    UN(f64_convert_i32_u, vf64((double)(uint32_t)x))
    UN(f64_convert_i64_s, vf64((double)(int64_t)x))
    UN(f64_convert_i64_u, vf64((double)x))
    UN(f64_promote_f32, vf64((double)f32v(x)))
    UN(i32_extend8_s, (uint32_t)(int32_t)(int8_t)x)
    UN(i32_extend16_s, (uint32_t)(int32_t)(int16_t)x)
    UN(i64_extend8_s, (uint64_t)(int64_t)(int8_t)x)
    UN(i64_extend16_s, (uint64_t)(int64_t)(int16_t)x)
    UN(i64_extend32_s, (uint64_t)(int64_t)(int32_t)x)
    UN(i32_trunc_sat_f32_s, sat_i32_s((double)f32v(x)))
    UN(i32_trunc_sat_f32_u, sat_i32_u((double)f32v(x)))
    UN(i32_trunc_sat_f64_s, sat_i32_s(f64v(x)))
    UN(i32_trunc_sat_f64_u, sat_i32_u(f64v(x)))
    UN(i64_trunc_sat_f32_s, sat_i64_s((double)f32v(x)))
    UN(i64_trunc_sat_f32_u, sat_i64_u((double)f32v(x)))
    UN(i64_trunc_sat_f64_s, sat_i64_s(f64v(x)))
    UN(i64_trunc_sat_f64_u, sat_i64_u(f64v(x)))
    UN(ref_is_null, x == 0)

    BRCMP(eq, x == y)
    BRCMP(ne, x != y)
    BRCMP(lt_s, I32S(x) < I32S(y))
    BRCMP(lt_u, x < y)
    BRCMP(gt_s, I32S(x) > I32S(y))
    BRCMP(gt_u, x > y)
    BRCMP(le_s, I32S(x) <= I32S(y))
    BRCMP(le_u, x <= y)
    BRCMP(ge_s, I32S(x) >= I32S(y))
    BRCMP(ge_u, x >= y)
L_brif_eqz:
    if (!(uint32_t)fp[A]) {
        FUEL_BR(ip[2].target);
        ip = ip[2].target;
        DISPATCH();
    }
    NEXT(3);

    /* ---- memory ---- */
    LOAD(load32, 4, uint32_t, v)
    LOAD(load64, 8, uint64_t, v)
    LOAD(load8_s32, 1, int8_t, (uint32_t)(int32_t)v)
    LOAD(load8_u, 1, uint8_t, v)
    LOAD(load16_s32, 2, int16_t, (uint32_t)(int32_t)v)
    LOAD(load16_u, 2, uint16_t, v)
    LOAD(load8_s64, 1, int8_t, (uint64_t)(int64_t)v)
    LOAD(load16_s64, 2, int16_t, (uint64_t)(int64_t)v)
    LOAD(load32_s64, 4, int32_t, (uint64_t)(int64_t)v)
    STORE(store8, 1, uint8_t)
    STORE(store16, 2, uint16_t)
    STORE(store32, 4, uint32_t)
    STORE(store64, 8, uint64_t)

L_memory_size:
    fp[A] = (uint32_t)(memsz / WASM_PAGE);
    NEXT(2);
L_memory_grow: {
    int64_t r = wasm__memory_grow(s, inst->mem, (uint32_t)fp[B]);
    fp[A] = (uint32_t)r;
    RELOAD_MEM();
    NEXT(2);
}
L_memory_fill: {
    uint64_t d = (uint32_t)fp[A], n = (uint32_t)fp[C];
    if (UNLIKELY(d + n > memsz))
        TRAP(WASM_TRAP_MEM_OOB);
    BULK_BUDGET(n);
    memset(mem + d, (int)(uint8_t)fp[B], n);
    NEXT(2);
}
L_memory_copy: {
    uint64_t d = (uint32_t)fp[A], src = (uint32_t)fp[B], n = (uint32_t)fp[C];
    if (UNLIKELY(d + n > memsz || src + n > memsz))
        TRAP(WASM_TRAP_MEM_OOB);
    BULK_BUDGET(n);
    memmove(mem + d, mem + src, n);
    NEXT(2);
}
L_memory_init: {
    uint64_t d = (uint32_t)fp[A], src = (uint32_t)fp[B], n = (uint32_t)fp[C];
    uint64_t seg = ip[2].u64;
    const wasm_dataseg *ds = &inst->mod->datas[seg];
    uint64_t len = inst->data_dropped[seg] ? 0 : ds->len;
    if (UNLIKELY(src + n > len || d + n > memsz))
        TRAP(WASM_TRAP_MEM_OOB);
    BULK_BUDGET(n);
    if (n)
        memcpy(mem + d, ds->bytes + src, n);
    NEXT(3);
}
L_data_drop:
    inst->data_dropped[ip[1].u64] = true;
    NEXT(2);

    /* ---- tables ---- */
L_table_get: {
    wasm_table *t = inst->tables[C];
    uint32_t i = (uint32_t)fp[B];
    if (UNLIKELY(i >= t->lim.min))
        TRAP(WASM_TRAP_TABLE_OOB);
    fp[A] = t->elems[i];
    NEXT(2);
}
L_table_set: {
    wasm_table *t = inst->tables[C];
    uint32_t i = (uint32_t)fp[A];
    if (UNLIKELY(i >= t->lim.min))
        TRAP(WASM_TRAP_TABLE_OOB);
    t->elems[i] = fp[B];
    NEXT(2);
}
L_table_size:
    fp[A] = (uint32_t)inst->tables[B]->lim.min;
    NEXT(2);
L_table_grow:
    fp[A] = (uint32_t)wasm__table_grow(inst->tables[D], (uint32_t)fp[C], fp[B]);
    NEXT(2);
L_table_fill: {
    wasm_table *t = inst->tables[D];
    uint64_t i = (uint32_t)fp[A], n = (uint32_t)fp[C];
    if (UNLIKELY(i + n > t->lim.min))
        TRAP(WASM_TRAP_TABLE_OOB);
    BULK_BUDGET(n * sizeof(wasm_val));
    for (uint64_t k = 0; k < n; k++)
        t->elems[i + k] = fp[B];
    NEXT(2);
}
L_table_copy: {
    wasm_table *td = inst->tables[ip[2].w.lo], *ts = inst->tables[ip[2].w.hi];
    uint64_t d = (uint32_t)fp[A], src = (uint32_t)fp[B], n = (uint32_t)fp[C];
    if (UNLIKELY(d + n > td->lim.min || src + n > ts->lim.min))
        TRAP(WASM_TRAP_TABLE_OOB);
    BULK_BUDGET(n * sizeof(wasm_val));
    memmove(td->elems + d, ts->elems + src, n * sizeof(wasm_val));
    NEXT(3);
}
L_table_init: {
    wasm_table *t = inst->tables[D];
    uint64_t seg = ip[2].u64;
    uint64_t d = (uint32_t)fp[A], src = (uint32_t)fp[B], n = (uint32_t)fp[C];
    if (UNLIKELY(src + n > inst->elem_len[seg] || d + n > t->lim.min))
        TRAP(WASM_TRAP_TABLE_OOB);
    BULK_BUDGET(n * sizeof(wasm_val));
    if (n)
        memcpy(t->elems + d, inst->elem_vals[seg] + src, n * sizeof(wasm_val));
    NEXT(3);
}
L_elem_drop:
    inst->elem_len[ip[1].u64] = 0;
    NEXT(2);

    /* ---- variables and parametric ---- */
L_copy:
    fp[A] = fp[B];
    NEXT(2);
L_copy2:
    fp[A] = fp[B];
    fp[C] = fp[D];
    NEXT(2);
L_const:
    fp[A] = ip[2].u64;
    NEXT(3);
L_select:
    fp[A] = (uint32_t)fp[D] ? fp[B] : fp[C];
    NEXT(2);
L_global_get:
    fp[A] = inst->globals[ip[2].u64]->val;
    NEXT(3);
L_global_set:
    inst->globals[ip[2].u64]->val = fp[A];
    NEXT(3);
L_ref_func:
    fp[A] = (wasm_val)(uintptr_t)inst->funcs[ip[2].u64];
    NEXT(3);
L_nop:
    NEXT(1);

    /* ---- control ---- */
L_unreachable:
    TRAP(WASM_TRAP_UNREACHABLE);
L_br:
    ip = ip[1].target;
    DISPATCH();
L_br_back:
    FUEL_BR(ip[1].target);
    ip = ip[1].target;
    DISPATCH();
L_br_if:
    if ((uint32_t)fp[A]) {
        ip = ip[2].target;
        DISPATCH();
    }
    NEXT(3);
L_br_if_back:
    if ((uint32_t)fp[A]) {
        FUEL_BR(ip[2].target);
        ip = ip[2].target;
        DISPATCH();
    }
    NEXT(3);
L_br_unless:
    if (!(uint32_t)fp[A]) {
        ip = ip[2].target;
        DISPATCH();
    }
    NEXT(3);
L_br_table: {
    uint64_t i = (uint32_t)fp[A], n = ip[2].u64;
    const wasm_cell *t = ip[3 + (i < n ? i : n)].target;
    FUEL_BR(t);
    ip = t;
    DISPATCH();
}

L_call:
    callee = (const wasm_code *)ip[2].h;
    ret_ip = ip + 3;
    fp += A;
    goto push_frame;

L_call_import:
    fn = inst->funcs[ip[2].u64];
    goto call_func;

L_call_indirect: {
    const wasm_table *t = inst->tables[C];
    uint32_t i = (uint32_t)fp[B];
    if (UNLIKELY(i >= t->lim.min))
        TRAP(WASM_TRAP_UNDEF_ELEM);
    fn = (const wasm_func *)(uintptr_t)t->elems[i];
    if (UNLIKELY(!fn))
        TRAP(WASM_TRAP_UNINIT_ELEM);
    if (UNLIKELY(fn->type_id != inst->type_ids[ip[2].u64]))
        TRAP(WASM_TRAP_INDIRECT_TYPE);
}
    /* fall through */
call_func: {
    /* A call through a function object: a host function, or wasm code of any instance. */
    ret_ip = ip + 3;
    wasm_val *nfp = fp + A;
    if (fn->host) {
        if (UNLIKELY(s->depth >= max_depth))
            TRAP(WASM_TRAP_STACK);
        s->depth++;
        int hr = call_host(s, inst, fn, nfp);
        s->depth--;
        if (hr)
            TRAP(hr);
        RELOAD_MEM();
        ip = ret_ip;
        DISPATCH();
    }
    frames[s->depth].ret_ip = ret_ip;
    frames[s->depth].fp = fp;
    frames[s->depth].inst = inst;
    fp = nfp;
    inst = fn->inst;
    callee = fn->code;
    RELOAD_MEM();
    goto push_frame_saved;
}

enter:
    /* First frame of this activation: returning from it leaves run(). */
    frames[s->depth].ret_ip = NULL;
    frames[s->depth].fp = NULL;
    frames[s->depth].inst = NULL;
    goto push_frame_saved;

push_frame:
    frames[s->depth].ret_ip = ret_ip;
    frames[s->depth].fp = fp - A;
    frames[s->depth].inst = inst;
push_frame_saved:
    if (UNLIKELY(s->depth >= max_depth || fp + callee->nslots > s->stack_end)) {
        rc = WASM_TRAP_STACK;
        goto trap;
    }
    if (atomic_load_explicit(&callee->tier_entry, memory_order_acquire) &&
        (rc = wasm__tier->enter(s, inst, callee, fp)) >= 0) {
        /* Compiled by the JIT tier: run it natively, then return as L_ret does. */
        if (rc)
            goto trap;
        const wasm_frame *fr = &frames[s->depth];
        if (!fr->ret_ip)
            return 0;
        ip = fr->ret_ip;
        fp = fr->fp;
        inst = fr->inst;
        RELOAD_MEM();
        DISPATCH();
    }
    rc = 0; /* the tier may have declined (< 0): interpret */
    s->depth++;
    FUEL_AT(callee->ncode, callee->code, false);
    if (callee->nlocals)
        memset(fp + callee->nparams, 0, callee->nlocals * sizeof *fp);
    ip = callee->code;
    DISPATCH();

L_ret: {
    wasm_frame *fr = &frames[--s->depth];
    if (!fr->ret_ip)
        return 0;
    ip = fr->ret_ip;
    fp = fr->fp;
    inst = fr->inst;
    RELOAD_MEM();
    DISPATCH();
}

trap:
    s->trap_func = -1;
    if (inst)
        for (uint32_t i = 0; i < inst->mod->nfuncs - inst->mod->nimported_funcs; i++) {
            const wasm_code *cd = &inst->mod->codes[i];
            if (ip >= cd->code && ip < cd->code + cd->ncode) {
                s->trap_func = inst->mod->nimported_funcs + i;
                break;
            }
        }
    s->depth = entry_depth;
    return rc;
}
