/* Unit tests of the WebAssembly binary decoder (src/wasm/decode.c): the LEB128 readers, a module
 * using every section decoded field by field, and tables of malformed and invalid binaries with
 * the spec suite's error kinds and texts. Modules are written as hex strings; a leading '!'
 * means "no automatic 8-byte header". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wasm/wasm_int.h"

/* ---- helpers ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex (spaces ignored) to a malloc'ed binary, with the wasm header unless hex starts with '!'. */
static uint8_t *unhex(const char *hex, size_t *len) {
    size_t cap = strlen(hex) / 2 + 16, n = 0;
    uint8_t *b = xmalloc(cap);
    if (*hex == '!') {
        hex++;
    } else {
        static const uint8_t hdr[8] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};
        memcpy(b, hdr, 8);
        n = 8;
    }
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        int hi = hexval(p[0]), lo = hexval(p[1]);
        assert_true(hi >= 0 && lo >= 0);
        b[n++] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    *len = n;
    return b;
}

/* Decode hex into *m (which then owns the bytes; clear it with wasm__module_clear). */
static int decode_hex(const char *hex, wasm_module *m, wasm_error *err) {
    memset(m, 0, sizeof *m);
    m->bytes = unhex(hex, &m->len);
    return wasm__decode(m, err);
}

static wasm_reader reader(const uint8_t *b, size_t n) {
    wasm_reader r = {b, b, b + n, NULL};
    return r;
}

/* ---- LEB128 readers ---- */

static void test_leb_u32(void **state) {
    (void)state;
    static const struct {
        uint8_t b[8];
        size_t n;
        uint32_t v;
        const char *bad;
    } cases[] = {
        {{0x00}, 1, 0, NULL},
        {{0x7f}, 1, 127, NULL},
        {{0x80, 0x01}, 2, 128, NULL},
        {{0x80, 0x00}, 2, 0, NULL}, /* a padded zero is fine within 5 bytes */
        {{0xff, 0xff, 0xff, 0xff, 0x0f}, 5, UINT32_MAX, NULL},
        {{0x80, 0x80, 0x80, 0x80, 0x00}, 5, 0, NULL},
        {{0xff, 0xff, 0xff, 0xff, 0x1f}, 5, 0, "integer too large"},
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 6, 0, "integer representation too long"},
        {{0x80, 0x80}, 2, 0, "unexpected end"},
        {{0}, 0, 0, "unexpected end"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wasm_reader r = reader(cases[i].b, cases[i].n);
        uint32_t v = wasm__rd_u32(&r);
        if (cases[i].bad) {
            assert_non_null(r.bad);
            assert_memory_equal(r.bad, cases[i].bad, strlen(cases[i].bad));
            assert_true(r.p <= r.end);
        } else {
            assert_null(r.bad);
            assert_int_equal(v, cases[i].v);
            assert_ptr_equal(r.p, r.end);
        }
    }
}

static void test_leb_signed(void **state) {
    (void)state;
    static const struct {
        uint8_t b[12];
        size_t n;
        int64_t v;
        const char *bad;
    } s32[] =
        {
            {{0x00}, 1, 0, NULL},
            {{0x7f}, 1, -1, NULL},
            {{0x3f}, 1, 63, NULL},
            {{0x40}, 1, -64, NULL},
            {{0xff, 0x00}, 2, 127, NULL},
            {{0x80, 0x7f}, 2, -128, NULL},
            {{0xff, 0xff, 0xff, 0xff, 0x07}, 5, INT32_MAX, NULL},
            {{0x80, 0x80, 0x80, 0x80, 0x78}, 5, INT32_MIN, NULL},
            {{0xff, 0xff, 0xff, 0xff, 0x0f}, 5, 0, "integer too large"},
            {{0x80, 0x80, 0x80, 0x80, 0x70}, 5, 0, "integer too large"},
            {{0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 6, 0, "integer representation too long"},
        },
      s64[] = {
          {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, 10, INT64_MAX, NULL},
          {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, 10, INT64_MIN, NULL},
          {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
           10,
           0,
           "integer too large"},
          {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x41},
           10,
           0,
           "integer too large"},
          {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
           11,
           0,
           "integer representation too long"},
          {{0x7f}, 1, -1, NULL},
          {{0x80, 0x80, 0x80, 0x80, 0x78}, 5, -(INT64_C(1) << 31), NULL},
      };
    for (size_t i = 0; i < ARRAY_LEN(s32); i++) {
        wasm_reader r = reader(s32[i].b, s32[i].n);
        int32_t v = wasm__rd_s32(&r);
        if (s32[i].bad) {
            assert_string_equal(r.bad, s32[i].bad);
        } else {
            assert_null(r.bad);
            assert_int_equal(v, s32[i].v);
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(s64); i++) {
        wasm_reader r = reader(s64[i].b, s64[i].n);
        int64_t v = wasm__rd_s64(&r);
        if (s64[i].bad) {
            assert_string_equal(r.bad, s64[i].bad);
        } else {
            assert_null(r.bad);
            assert_true(v == s64[i].v);
        }
    }
    /* The first failure sticks; later reads stay in bounds. */
    uint8_t b[1] = {0x80};
    wasm_reader r = reader(b, 1);
    (void)wasm__rd_u32(&r);
    const char *first = r.bad;
    assert_non_null(first);
    (void)wasm__rd_u8(&r);
    (void)wasm__rd_s64(&r);
    assert_ptr_equal(r.bad, first);
    assert_true(r.p <= r.end);
}

/* ---- a module using every section ---- */

static const char FULL[] =
    /* type: 0 = (i32 i32) -> i32, 1 = () -> () */
    "01 0a 02 60 02 7f 7f 01 7f 60 00 00"
    /* import: env.f func type 1; env.g global i32 const; env.t table funcref 1..10 */
    "02 1d 03"
    "  03 65 6e 76 01 66 00 01"
    "  03 65 6e 76 01 67 03 7f 00"
    "  03 65 6e 76 01 74 01 70 01 01 0a"
    /* function: func 1 has type 0 */
    "03 02 01 00"
    /* memory: 1..2 pages */
    "05 04 01 01 01 02"
    /* global: mutable i32 = global.get 0 */
    "06 06 01 7f 01 23 00 0b"
    /* export: "add" func 1, "mem" memory 0 */
    "07 0d 02 03 61 64 64 00 01 03 6d 65 6d 02 00"
    /* start: func 0 */
    "08 01 00"
    /* elem: active table 0 at 0 = [func 1]; passive funcref exprs [ref.func 0, ref.null func] */
    "09 10 02 00 41 00 0b 01 01  05 70 02 d2 00 0b d0 70 0b"
    /* datacount 2 */
    "0c 01 02"
    /* custom section between sections */
    "00 03 02 68 69"
    /* code: func 1: locals 2 x i64, 1 x f32; local.get 0 local.get 1 i32.add end */
    "0a 0d 01 0b 02 02 7e 01 7d 20 00 20 01 6a 0b"
    /* data: active memory 0 at 1 = "hi"; passive "x" */
    "0b 0b 02 00 41 01 0b 02 68 69 01 01 78";

static void test_full_module(void **state) {
    (void)state;
    wasm_module m;
    wasm_error err;
    int rc = decode_hex(FULL, &m, &err);
    if (rc)
        fail_msg("decode: %d %s @%zu", rc, err.msg, err.offset);

    assert_int_equal(m.ntypes, 2);
    assert_int_equal(m.types[0].nparams, 2);
    assert_int_equal(m.types[0].nresults, 1);
    assert_int_equal(m.types[0].types[0], WASM_I32);
    assert_int_equal(m.types[0].types[2], WASM_I32);
    assert_int_equal(m.types[1].nparams + m.types[1].nresults, 0);

    assert_int_equal(wasm_module_num_imports(&m), 3);
    const char *mod, *nm;
    uint8_t kind;
    wasm_module_import(&m, 0, &mod, &nm, &kind);
    assert_string_equal(mod, "env");
    assert_string_equal(nm, "f");
    assert_int_equal(kind, WASM_EXTERN_FUNC);
    wasm_functype ft = wasm_module_import_functype(&m, 0);
    assert_int_equal(ft.nparams + ft.nresults, 0);
    wasm_module_import(&m, 2, &mod, &nm, &kind);
    assert_string_equal(nm, "t");
    assert_int_equal(kind, WASM_EXTERN_TABLE);
    assert_int_equal(m.imports[2].u.table.lim.min, 1);
    assert_int_equal(m.imports[2].u.table.lim.max, 10);
    assert_int_equal(m.imports[1].u.global.type, WASM_I32);
    assert_false(m.imports[1].u.global.mut);

    assert_int_equal(m.nfuncs, 2);
    assert_int_equal(m.nimported_funcs, 1);
    assert_int_equal(m.func_types[0], 1);
    assert_int_equal(m.func_types[1], 0);
    assert_int_equal(m.ntables, 1);
    assert_int_equal(m.nimported_tables, 1);
    assert_int_equal(m.tables[0].elemtype, WASM_FUNCREF);
    assert_int_equal(m.nmems, 1);
    assert_int_equal(m.nimported_mems, 0);
    assert_int_equal(m.mems[0].min, 1);
    assert_int_equal(m.mems[0].max, 2);
    assert_int_equal(m.nglobals, 2);
    assert_int_equal(m.nimported_globals, 1);
    assert_true(m.globals[1].mut);
    assert_int_equal(m.global_init[0].op, 0x23);
    assert_int_equal(m.global_init[0].type, WASM_I32);
    assert_int_equal(m.global_init[0].value, 0);

    assert_int_equal(wasm_module_num_exports(&m), 2);
    wasm_module_export(&m, 0, &nm, &kind);
    assert_string_equal(nm, "add");
    assert_int_equal(kind, WASM_EXTERN_FUNC);
    assert_int_equal(m.exports[0].index, 1);
    wasm_module_export(&m, 1, &nm, &kind);
    assert_string_equal(nm, "mem");
    assert_int_equal(kind, WASM_EXTERN_MEMORY);
    assert_int_equal(m.start, 0);

    assert_int_equal(m.nelems, 2);
    assert_int_equal(m.elems[0].mode, WASM_SEG_ACTIVE);
    assert_int_equal(m.elems[0].table, 0);
    assert_int_equal(m.elems[0].offset.op, 0x41);
    assert_int_equal(m.elems[0].n, 1);
    assert_int_equal(m.elems[0].init[0].op, 0xd2);
    assert_int_equal(m.elems[0].init[0].value, 1);
    assert_int_equal(m.elems[1].mode, WASM_SEG_PASSIVE);
    assert_int_equal(m.elems[1].n, 2);
    assert_int_equal(m.elems[1].init[1].op, 0xd0);
    assert_int_equal(m.elems[1].init[1].type, WASM_FUNCREF);
    assert_true(m.declared_funcs[0] && m.declared_funcs[1]);

    assert_true(m.has_datacount);
    assert_int_equal(m.datacount, 2);
    assert_int_equal(m.ndatas, 2);
    assert_int_equal(m.datas[0].mode, WASM_SEG_ACTIVE);
    assert_int_equal(m.datas[0].offset.value, 1);
    assert_int_equal(m.datas[0].len, 2);
    assert_memory_equal(m.datas[0].bytes, "hi", 2);
    assert_int_equal(m.datas[1].mode, WASM_SEG_PASSIVE);
    assert_memory_equal(m.datas[1].bytes, "x", 1);

    const wasm_code *c = &m.codes[0];
    assert_int_equal(c->nlocals, 3);
    assert_int_equal(c->local_types[0], WASM_I64);
    assert_int_equal(c->local_types[1], WASM_I64);
    assert_int_equal(c->local_types[2], WASM_F32);
    assert_int_equal(c->body_len, 6);
    assert_int_equal(m.bytes[c->body_off], 0x20);
    assert_int_equal(m.bytes[c->body_off + c->body_len - 1], 0x0b);

    wasm__module_clear(&m);
    assert_null(m.bytes);
    wasm__module_clear(&m); /* idempotent */
}

static void test_small_valid(void **state) {
    (void)state;
    static const char *const ok[] = {
        "",                                 /* empty module */
        "00 05 04 6e 61 6d 65",             /* custom section only */
        "00 01 00",                         /* custom section with an empty name */
        "03 01 00 0a 01 00",                /* empty function and code sections */
        "0c 01 00",                         /* data count 0 without a data section */
        "05 06 01 01 00 80 80 04",          /* memory 0..65536 pages */
        "04 09 01 6f 01 00 ff ff ff ff 0f", /* externref table with max 2^32-1 */
        "01 04 01 60 00 00 03 02 01 00 0a 05 01 03 00 01 0b", /* nop body */
        /* nested blocks, if/else, br_table, memory.size, f64.const, 0xfc ops in a body */
        "01 04 01 60 00 00 03 02 01 00 05 03 01 00 01"
        "0a 2e 01 2c 00 02 40 03 40 41 00 04 40 01 05 01 0b 0b 0b"
        "41 00 0e 01 00 00 3f 00 1a 44 00 00 00 00 00 00 f0 3f 1a 41 00 41 00 41 00 fc 0b 00 0b",
        /* a valid UTF-8 name with 2, 3 and 4 byte sequences */
        "00 0a 09 c3 a9 e2 82 ac f0 9f 98 80",
        /* global.get of an immutable imported global in an elem offset and a data offset */
        "02 0e 02 00 01 67 03 7f 00 00 01 74 01 70 00 00 05 03 01 00 01"
        "09 06 01 00 23 00 0b 00 0b 07 01 00 23 00 0b 01 61",
        /* declarative element segment of funcref expressions */
        "01 04 01 60 00 00 03 02 01 00 09 07 01 07 70 01 d2 00 0b 0a 04 01 02 00 0b",
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        wasm_module m;
        wasm_error err;
        int rc = decode_hex(ok[i], &m, &err);
        if (rc)
            fail_msg("case %zu: %d %s @%zu", i, rc, err.msg, err.offset);
        wasm__module_clear(&m);
    }
}

static void test_declared_funcs(void **state) {
    (void)state;
    /* Three functions: 0 exported, 1 in a global's ref.func, 2 not referenced. */
    wasm_module m;
    wasm_error err;
    int rc = decode_hex("01 04 01 60 00 00 03 04 03 00 00 00"
                        "06 06 01 70 00 d2 01 0b 07 05 01 01 65 00 00"
                        "0a 0a 03 02 00 0b 02 00 0b 02 00 0b",
                        &m, &err);
    if (rc)
        fail_msg("%d %s", rc, err.msg);
    assert_int_equal(m.declared_funcs[0], 1);
    assert_int_equal(m.declared_funcs[1], 1);
    assert_int_equal(m.declared_funcs[2], 0);
    assert_int_equal(m.global_init[0].type, WASM_FUNCREF);
    wasm__module_clear(&m);
}

/* ---- rejected modules ---- */

typedef struct bad_case {
    const char *hex;
    int code;
    const char *msg; /* expected prefix */
} bad_case;

#define TYPE0 "01 04 01 60 00 00 "      /* () -> () */
#define FUNC1 "03 02 01 00 "            /* one function of type 0 */
#define CODE_EMPTY "0a 04 01 02 00 0b " /* one empty body */
#define MEM1 "05 03 01 00 01 "

static const bad_case malformed_cases[] = {
    {"!", ERR_MALFORMED, "unexpected end"},
    {"!0061", ERR_MALFORMED, "unexpected end"},
    {"!0061736d", ERR_MALFORMED, "unexpected end"},
    {"!0061736d010000", ERR_MALFORMED, "unexpected end"},
    {"!6d736100 01000000", ERR_MALFORMED, "magic header not detected"},
    {"!0061736d 02000000", ERR_MALFORMED, "unknown binary version"},
    {"0d 01 00", ERR_MALFORMED, "malformed section id"},
    {"80 01 00", ERR_MALFORMED, "malformed section id"},
    {"03 01 00 01 01 00", ERR_MALFORMED, "unexpected content after last section"},
    {"01 01 00 01 01 00", ERR_MALFORMED, "unexpected content after last section"},
    {"0a 01 00 0c 01 00", ERR_MALFORMED, "unexpected content after last section"},
    {"01 05 01 60 00 00 00", ERR_MALFORMED, "section size mismatch"},
    {"01 10 00", ERR_MALFORMED, "length out of bounds"},
    {"01 04 02 60 00 00", ERR_MALFORMED, "unexpected end"},
    {"01 06 80 80 80 80 80 00", ERR_MALFORMED, "integer representation too long"},
    {"01 05 80 80 80 80 10", ERR_MALFORMED, "integer too large"},
    {"01 04 01 61 00 00", ERR_MALFORMED, "malformed function type"},
    {"01 05 01 60 01 40 00", ERR_MALFORMED, "malformed value type"},
    {"01 05 01 60 01 7b 00", ERR_MALFORMED, "malformed value type"}, /* v128: no SIMD */
    {"02 04 01 00 00 04", ERR_MALFORMED, "malformed import kind"},
    {"02 06 01 00 00 03 7f 02", ERR_MALFORMED, "malformed mutability"},
    {"06 06 01 7f 02 41 00 0b", ERR_MALFORMED, "malformed mutability"},
    {"04 04 01 7f 00 00", ERR_MALFORMED, "malformed reference type"},
    {"05 03 01 02 00", ERR_MALFORMED, "integer too large"}, /* limits flag 2 */
    {"05 04 01 81 00 00", ERR_MALFORMED, "integer representation too long"},
    {"00 02 01 ff", ERR_MALFORMED, "malformed UTF-8 encoding"},
    {"00 03 02 c0 80", ERR_MALFORMED, "malformed UTF-8 encoding"},       /* overlong */
    {"00 04 03 ed a0 80", ERR_MALFORMED, "malformed UTF-8 encoding"},    /* surrogate */
    {"00 05 04 f4 90 80 80", ERR_MALFORMED, "malformed UTF-8 encoding"}, /* > U+10FFFF */
    {"00 03 02 e2 82", ERR_MALFORMED, "malformed UTF-8 encoding"},       /* truncated */
    {"00 01 05 61", ERR_MALFORMED, "length out of bounds"},
    {"00 00 00", ERR_MALFORMED, "unexpected end"}, /* name beyond the section */
    {"07 06 01 05 61 62 00 00", ERR_MALFORMED, "unexpected end"},
    {"07 05 01 01 65 04 00", ERR_MALFORMED, "malformed export kind"},
    {TYPE0 FUNC1, ERR_MALFORMED, "function and code section have inconsistent lengths"},
    {CODE_EMPTY, ERR_MALFORMED, "function and code section have inconsistent lengths"},
    {"0c 01 01", ERR_MALFORMED, "data count and data section have inconsistent lengths"},
    {MEM1 "0c 01 02 0b 06 01 00 41 00 0b 00", ERR_MALFORMED,
     "data count and data section have inconsistent lengths"},
    {TYPE0 FUNC1 MEM1 "0a 07 01 05 00 fc 09 00 0b 0b 03 01 01 00", ERR_MALFORMED,
     "data count section required"},
    {TYPE0 FUNC1 "0a 0c 01 0a 02 ff ff ff ff 0f 7f 02 7e 0b", ERR_MALFORMED, "too many locals"},
    {TYPE0 FUNC1 "0a 05 01 03 00 41 01", ERR_MALFORMED, "unexpected end"},
    {TYPE0 FUNC1 "0a 04 01 02 00 06", ERR_MALFORMED, "illegal opcode"},
    {TYPE0 FUNC1 "0a 06 01 04 00 fc 12 0b", ERR_MALFORMED, "illegal opcode"},
    {TYPE0 FUNC1 "0a 05 01 03 00 05 0b", ERR_MALFORMED, "END opcode expected"},
    {TYPE0 FUNC1 MEM1 "0a 07 01 05 00 3f 01 1a 0b", ERR_MALFORMED, "zero byte expected"},
    {TYPE0 FUNC1 MEM1 "0a 0a 01 08 00 41 00 28 20 00 1a 0b", ERR_MALFORMED,
     "malformed memop flags"},
    {TYPE0 FUNC1 "0a 05 01 02 00 0b 0b", ERR_MALFORMED, "section size mismatch"},
    {"06 05 01 7f 00 41 00", ERR_MALFORMED, "unexpected end"}, /* const expr without end */
    {"06 06 01 7f 00 41 00 0a", ERR_MALFORMED, "illegal opcode"},
    {"06 06 01 7f 00 41 00 05", ERR_MALFORMED, "END opcode expected"},
    {"09 02 01 08", ERR_MALFORMED, "malformed elements segment kind"},
    {"09 04 01 01 01 00", ERR_MALFORMED, "malformed element kind"},
    {"09 04 01 05 7f 00", ERR_MALFORMED, "malformed reference type"},
    {"0b 02 01 03", ERR_MALFORMED, "malformed data segment kind"},
    {MEM1 "0b 07 01 00 41 00 0b 02 61", ERR_MALFORMED, "unexpected end"},
    /* A malformed body beats a validation error found earlier (unknown type 5). */
    {"01 01 00 03 02 01 05 0a 04 01 02 00 06", ERR_MALFORMED, "illegal opcode"},
};

static const bad_case invalid_cases[] = {
    {"03 02 01 00 " CODE_EMPTY, ERR_INVALID, "unknown type"},
    {"02 05 01 00 00 00 00", ERR_INVALID, "unknown type"},
    {"05 05 01 00 81 80 04", ERR_INVALID, "memory size must be at most 65536 pages (4GiB)"},
    {"05 08 01 01 00 80 80 80 80 08", ERR_INVALID, "memory size must be at most 65536 pages"},
    {"05 04 01 01 02 01", ERR_INVALID, "size minimum must not be greater than maximum"},
    {"04 05 01 70 01 02 01", ERR_INVALID, "size minimum must not be greater than maximum"},
    {"02 07 01 00 00 02 01 03 02", ERR_INVALID, "size minimum must not be greater than maximum"},
    {"05 05 02 00 00 00 00", ERR_INVALID, "multiple memories"},
    {"02 06 01 00 00 02 00 00 05 03 01 00 00", ERR_INVALID, "multiple memories"},
    {MEM1 "07 09 02 01 6d 02 00 01 6d 02 00", ERR_INVALID, "duplicate export name"},
    {"07 05 01 01 66 00 00", ERR_INVALID, "unknown function"},
    {"07 05 01 01 74 01 00", ERR_INVALID, "unknown table"},
    {"07 05 01 01 6d 02 00", ERR_INVALID, "unknown memory"},
    {"07 05 01 01 67 03 00", ERR_INVALID, "unknown global"},
    {"01 05 01 60 01 7f 00" FUNC1 "08 01 00 0a 04 01 02 00 0b", ERR_INVALID, "start function"},
    {TYPE0 FUNC1 "08 01 05" CODE_EMPTY, ERR_INVALID, "unknown function"},
    {"06 06 01 7f 00 42 00 0b", ERR_INVALID, "type mismatch"},
    {"06 04 01 7f 00 0b", ERR_INVALID, "type mismatch"},
    {"06 08 01 7f 00 41 00 41 00 0b", ERR_INVALID, "type mismatch"},
    {"06 09 01 7f 00 41 00 41 00 6a 0b", ERR_INVALID, "constant expression required"},
    {"06 05 01 7f 00 01 0b", ERR_INVALID, "constant expression required"},
    {"06 0b 02 7f 00 41 00 0b 7f 00 23 00 0b", ERR_INVALID, "unknown global"},
    {"02 06 01 00 00 03 7f 01 06 06 01 7f 00 23 00 0b", ERR_INVALID,
     "constant expression required"},
    {"06 06 01 70 00 d2 00 0b", ERR_INVALID, "unknown function"},
    {"06 06 01 70 00 d0 6f 0b", ERR_INVALID, "type mismatch"},
    {"09 06 01 00 41 00 0b 00", ERR_INVALID, "unknown table"},
    {"04 04 01 6f 00 00 09 06 01 00 41 00 0b 00", ERR_INVALID, "type mismatch"},
    {"04 04 01 70 00 00 09 06 01 00 42 00 0b 00", ERR_INVALID, "type mismatch"},
    {"09 05 01 01 00 01 05", ERR_INVALID, "unknown function"},
    {"09 07 01 05 70 01 d0 6f 0b", ERR_INVALID, "type mismatch"},
    {"0b 06 01 00 41 00 0b 00", ERR_INVALID, "unknown memory"},
    {MEM1 "0b 09 01 00 43 00 00 00 00 0b 00", ERR_INVALID, "type mismatch"},
    /* Validation errors are reported after the whole binary has been decoded. */
    {"05 04 01 01 02 01 0b 01 00", ERR_INVALID, "size minimum must not be greater than maximum"},
};

static void run_bad(const bad_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        wasm_module m;
        wasm_error err;
        int rc = decode_hex(cases[i].hex, &m, &err);
        if (rc != cases[i].code || strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
            fail_msg("case %zu (%s): want %d '%s', got %d '%s'", i, cases[i].hex, cases[i].code,
                     cases[i].msg, rc, rc ? err.msg : "");
        assert_true(err.offset <= m.len);
        wasm__module_clear(&m); /* half-built modules must clear cleanly (ASan checks leaks) */
    }
}

static void test_malformed(void **state) {
    (void)state;
    run_bad(malformed_cases, ARRAY_LEN(malformed_cases));
}

static void test_invalid(void **state) {
    (void)state;
    run_bad(invalid_cases, ARRAY_LEN(invalid_cases));
}

static void test_limits(void **state) {
    (void)state;
    /* 50001 locals: decodes as a binary but exceeds WASM_MAX_LOCALS. */
    wasm_module m;
    wasm_error err;
    int rc = decode_hex(TYPE0 FUNC1 "0a 08 01 06 01 d1 86 03 7f 0b", &m, &err);
    assert_int_equal(rc, ERR_LIMIT);
    wasm__module_clear(&m);
    /* Exactly at the limit is fine. */
    rc = decode_hex(TYPE0 FUNC1 "0a 08 01 06 01 d0 86 03 7f 0b", &m, &err);
    if (rc)
        fail_msg("%d %s", rc, err.msg);
    assert_int_equal(m.codes[0].nlocals, WASM_MAX_LOCALS);
    wasm__module_clear(&m);
}

/* Every truncation of a valid module is rejected as malformed, never read out of bounds. */
static void test_truncations(void **state) {
    (void)state;
    size_t len;
    uint8_t *full = unhex(FULL, &len);
    for (size_t n = 0; n < len; n++) {
        wasm_module m = {0};
        m.bytes = xmalloc(n ? n : 1);
        memcpy(m.bytes, full, n);
        m.len = n;
        wasm_error err;
        int rc = wasm__decode(&m, &err);
        if (rc != ERR_MALFORMED && rc != 0) /* 0: cut at a section boundary */
            fail_msg("truncated at %zu: rc %d %s", n, rc, err.msg);
        wasm__module_clear(&m);
    }
    /* And no single-byte corruption crashes or leaks. */
    for (size_t i = 8; i < len; i++) {
        for (int v = 0; v < 256; v += 17) {
            wasm_module m = {0};
            m.bytes = xmalloc(len);
            memcpy(m.bytes, full, len);
            m.bytes[i] = (uint8_t)v;
            m.len = len;
            wasm_error err;
            int rc = wasm__decode(&m, &err);
            assert_true(rc == 0 || rc == ERR_MALFORMED || rc == ERR_INVALID || rc == ERR_LIMIT);
            wasm__module_clear(&m);
        }
    }
    free(full);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leb_u32),        cmocka_unit_test(test_leb_signed),
        cmocka_unit_test(test_full_module),    cmocka_unit_test(test_small_valid),
        cmocka_unit_test(test_declared_funcs), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_invalid),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
