/* psl spectest: runs WebAssembly spec tests converted by wabt's wast2json (JSON command list plus
 * module files; format in wasm-spectest/README.md). One store per .json file; the `spectest` host
 * module and registered instances are the only import sources, and the runner checks import
 * kinds and function types itself before the engine checks the rest. By default each file runs in
 * a child process so that an engine crash or hang is reported as that file's failure. */
#include "cli/cli.h"
#include "cli/tier.h"

#include "base/base.h"
#include "base/err.h"
#include "platform/platform.h"
#include "wasm/wasm.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void cmd_spectest_help(FILE *out) {
    fprintf(out,
            "usage: psl spectest [OPTIONS] PATH...\n"
            "\n"
            "Runs WebAssembly spec tests converted by wast2json. PATH is a .json file or a folder\n"
            "holding NAME/NAME.json subfolders (e.g. wasm-spectest/core) or .json files.\n"
            "Prints one line per file (NAME: N passed, N failed, N skipped) and a total line.\n"
            "Text-format assert_malformed modules (.wat) are skipped.\n"
            "\n"
            "options:\n"
            "  -v, --verbose      print each failure as FILE.wast:LINE: reason\n"
            "  --no-fork          run every file in this process (faster to debug; a crash in\n"
            "                     the engine then stops the whole run)\n"
            "  --timeout SECONDS  budget per wasm call (default 10) and, times 10, per file\n"
            "  --tier T           interp, jit or auto (default $PSL_TIER, else interp)\n"
            "  --no-cache         do not use the JIT code cache\n"
            "  -h, --help         this help\n"
            "\n"
            "exit status: 0 all passed, 1 a check failed, 120 usage, 121 I/O error\n");
}

/* ---- per-file state ---- */

typedef struct st_named {
    char *name; /* "$id" (named modules) or the register name */
    wasm_instance *inst;
} st_named;

typedef struct st_spec {
    const char *name;
    wasm_extern ext;
} st_spec;

typedef struct st_file {
    char *dir;       /* folder of the .json, for module file names */
    const char *src; /* source_filename, for messages */
    bool verbose;
    uint64_t timeout_ns;
    wasm_store *s;
    wasm_module **mods; /* freed after the store */
    size_t nmods, capmods;
    st_named *named, *regs;
    size_t nnamed, nregs, capnamed, capregs;
    wasm_instance *cur;
    st_spec spec[13];
    size_t nspec;
    /* Export names as raw bytes: cJSON cannot carry the NUL bytes some names hold, so every
     * "field" string is also decoded from the text, in document order (one per action). */
    char **fields;
    uint32_t *field_lens;
    size_t nfields, next_field;
    const char *cur_field;
    size_t cur_field_len;
    long passed, failed, skipped;
} st_file;

static void fail_at(st_file *f, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(st_file *f, int line, const char *fmt, ...) {
    f->failed++;
    if (!f->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("  %s:%d: ", f->src, line);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* snprintf that may truncate (messages only). */
static void msgf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static void add_named(st_named **v, size_t *n, size_t *cap, const char *name, wasm_instance *inst) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[*n].name = xstrdup(name);
    (*v)[*n].inst = inst;
    (*n)++;
}

/* The latest binding of name wins (scripts may reuse names). */
static wasm_instance *find_named(const st_named *v, size_t n, const char *name) {
    for (size_t i = n; i-- > 0;)
        if (strcmp(v[i].name, name) == 0)
            return v[i].inst;
    return NULL;
}

/* ---- the spectest host module ---- */

static int spectest_print(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                          wasm_val *results) {
    (void)s, (void)caller, (void)ud, (void)args, (void)results;
    return 0; /* output is not checked; stay quiet */
}

static void spectest_init(st_file *f) {
    static const uint8_t t_i32[] = {WASM_I32}, t_i64[] = {WASM_I64}, t_f32[] = {WASM_F32},
                         t_f64[] = {WASM_F64}, t_i32_f32[] = {WASM_I32, WASM_F32},
                         t_f64_f64[] = {WASM_F64, WASM_F64};
    static const struct {
        const char *name;
        uint32_t np;
        const uint8_t *types;
    } fns[] = {
        {"print", 0, t_i32},
        {"print_i32", 1, t_i32},
        {"print_i64", 1, t_i64},
        {"print_f32", 1, t_f32},
        {"print_f64", 1, t_f64},
        {"print_i32_f32", 2, t_i32_f32},
        {"print_f64_f64", 2, t_f64_f64},
    };
    f->nspec = 0;
    for (size_t i = 0; i < ARRAY_LEN(fns); i++) {
        wasm_functype t = {fns[i].np, 0, fns[i].types};
        st_spec *e = &f->spec[f->nspec++];
        e->name = fns[i].name;
        e->ext.kind = WASM_EXTERN_FUNC;
        e->ext.u.func = wasm_func_new_host(f->s, t, spectest_print, NULL);
    }
    static const struct {
        const char *name;
        uint8_t type;
        wasm_val v;
    } globals[] = {
        {"global_i32", WASM_I32, 666},
        {"global_i64", WASM_I64, 666},
        {"global_f32", WASM_F32, 0x4426A666u},
        {"global_f64", WASM_F64, 0x4084D4CCCCCCCCCDull},
    };
    for (size_t i = 0; i < ARRAY_LEN(globals); i++) {
        st_spec *e = &f->spec[f->nspec++];
        e->name = globals[i].name;
        e->ext.kind = WASM_EXTERN_GLOBAL;
        e->ext.u.global = wasm_global_new(f->s, globals[i].type, false, globals[i].v);
    }
    st_spec *e = &f->spec[f->nspec++];
    e->name = "table";
    e->ext.kind = WASM_EXTERN_TABLE;
    e->ext.u.table = wasm_table_new(f->s, WASM_FUNCREF, (wasm_limits){10, 20});
    e = &f->spec[f->nspec++];
    e->name = "memory";
    e->ext.kind = WASM_EXTERN_MEMORY;
    e->ext.u.memory = wasm_memory_new(f->s, (wasm_limits){1, 2});
    ASSERT(f->nspec <= ARRAY_LEN(f->spec));
}

/* ---- modules ---- */

static int load_module(st_file *f, const char *filename, wasm_module **out, wasm_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", f->dir, filename);
    uint8_t *bytes;
    size_t len;
    int rc = plat_read_file(path, &bytes, &len);
    if (rc) {
        msgf(err->msg, sizeof err->msg, "cannot read %s: %s", path, err_str(rc));
        err->offset = SIZE_MAX;
        return ERR_IO;
    }
    rc = wasm_module_load(bytes, len, out, err);
    free(bytes);
    if (rc == 0) {
        if (f->nmods == f->capmods) {
            f->capmods = f->capmods ? f->capmods * 2 : 16;
            f->mods = xrealloc(f->mods, f->capmods * sizeof *f->mods);
        }
        f->mods[f->nmods++] = *out;
    }
    return rc;
}

static bool functype_eq(wasm_functype a, wasm_functype b) {
    return a.nparams == b.nparams && a.nresults == b.nresults &&
           memcmp(a.types, b.types, a.nparams + a.nresults) == 0;
}

/* Resolve every import by (module, name) from spectest and registered instances. Checks what the
 * public API exposes (kind, function type, global value type, table element type); the engine's
 * wasm_instance_new checks limits and mutability. */
static int resolve(st_file *f, const wasm_module *m, wasm_extern *imps, wasm_error *err) {
    uint32_t n = wasm_module_num_imports(m);
    for (uint32_t i = 0; i < n; i++) {
        const char *mod, *name;
        uint8_t kind;
        wasm_module_import(m, i, &mod, &name, &kind);
        bool found = false;
        if (strcmp(mod, "spectest") == 0) {
            for (size_t k = 0; k < f->nspec && !found; k++)
                if (strcmp(f->spec[k].name, name) == 0) {
                    imps[i] = f->spec[k].ext;
                    found = true;
                }
        } else {
            wasm_instance *inst = find_named(f->regs, f->nregs, mod);
            found = inst && wasm_instance_export(inst, name, &imps[i]) == 0;
        }
        err->offset = SIZE_MAX;
        if (!found) {
            msgf(err->msg, sizeof err->msg, "unknown import %s.%s", mod, name);
            return ERR_UNLINKABLE;
        }
        bool ok = imps[i].kind == kind;
        if (ok && kind == WASM_EXTERN_FUNC)
            ok = functype_eq(wasm_module_import_functype(m, i), wasm_func_type(imps[i].u.func));
        if (!ok) {
            msgf(err->msg, sizeof err->msg, "incompatible import type %s.%s", mod, name);
            return ERR_UNLINKABLE;
        }
    }
    return 0;
}

/* Load, resolve and instantiate. Returns the first failing step's code. */
static int instantiate(st_file *f, const char *filename, wasm_instance **out, wasm_error *err) {
    wasm_module *m;
    *out = NULL;
    int rc = load_module(f, filename, &m, err);
    if (rc)
        return rc;
    uint32_t n = wasm_module_num_imports(m);
    wasm_extern *imps = xcalloc(n ? n : 1, sizeof *imps);
    rc = resolve(f, m, imps, err);
    if (rc == 0)
        rc = wasm_instance_new(f->s, m, imps, n, out, err);
    free(imps);
    return rc;
}

/* ---- values ---- */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint8_t type_code(const char *t) {
    if (!t)
        return 0;
    if (!strcmp(t, "i32"))
        return WASM_I32;
    if (!strcmp(t, "i64"))
        return WASM_I64;
    if (!strcmp(t, "f32"))
        return WASM_F32;
    if (!strcmp(t, "f64"))
        return WASM_F64;
    if (!strcmp(t, "funcref"))
        return WASM_FUNCREF;
    if (!strcmp(t, "externref"))
        return WASM_EXTERNREF;
    if (!strcmp(t, "v128"))
        return WASM_V128;
    return 0;
}

/* An argument value: {"type": T, "value": V}. 0 or -1 (unsupported). */
static int parse_arg(const cJSON *j, wasm_val *out) {
    uint8_t t = type_code(jstr(j, "type"));
    const char *v = jstr(j, "value");
    if (!t || t == WASM_V128 || !v)
        return -1;
    if (t == WASM_FUNCREF || t == WASM_EXTERNREF) {
        if (!strcmp(v, "null")) {
            *out = 0;
            return 0;
        }
        if (t == WASM_FUNCREF)
            return -1;
        *out = strtoull(v, NULL, 10) + 1; /* host reference N is the cell N+1 */
        return 0;
    }
    *out = strtoull(v, NULL, 10);
    return 0;
}

static void fmt_val(char *buf, size_t n, uint8_t t, wasm_val v) {
    switch (t) {
    case WASM_I32: msgf(buf, n, "i32:%" PRIu32, (uint32_t)v); break;
    case WASM_I64: msgf(buf, n, "i64:%" PRIu64, (uint64_t)v); break;
    case WASM_F32: msgf(buf, n, "f32:0x%08" PRIx32, (uint32_t)v); break;
    case WASM_F64: msgf(buf, n, "f64:0x%016" PRIx64, (uint64_t)v); break;
    case WASM_EXTERNREF:
        if (v)
            msgf(buf, n, "ref.extern %" PRIu64, (uint64_t)v - 1);
        else
            msgf(buf, n, "ref.null extern");
        break;
    case WASM_FUNCREF: msgf(buf, n, v ? "ref.func" : "ref.null func"); break;
    default: msgf(buf, n, "?0x%" PRIx64, (uint64_t)v); break;
    }
}

/* Does result v (of declared type t) match expectation j? */
static bool val_matches(const cJSON *j, uint8_t t, wasm_val v) {
    uint8_t et = type_code(jstr(j, "type"));
    const char *ev = jstr(j, "value");
    if (et != t)
        return false;
    if (!ev)
        return t == WASM_FUNCREF || t == WASM_EXTERNREF ? v != 0 : true;
    switch (t) {
    case WASM_I32: return (uint32_t)v == (uint32_t)strtoull(ev, NULL, 10);
    case WASM_F32: {
        uint32_t b = (uint32_t)v;
        if (!strcmp(ev, "nan:canonical"))
            return (b & 0x7fffffffu) == 0x7fc00000u;
        if (!strcmp(ev, "nan:arithmetic"))
            return (b & 0x7fc00000u) == 0x7fc00000u;
        return b == (uint32_t)strtoull(ev, NULL, 10);
    }
    case WASM_F64: {
        if (!strcmp(ev, "nan:canonical"))
            return (v & 0x7fffffffffffffffull) == 0x7ff8000000000000ull;
        if (!strcmp(ev, "nan:arithmetic"))
            return (v & 0x7ff8000000000000ull) == 0x7ff8000000000000ull;
        return v == strtoull(ev, NULL, 10);
    }
    case WASM_I64: return v == strtoull(ev, NULL, 10);
    case WASM_FUNCREF:
    case WASM_EXTERNREF:
        if (!strcmp(ev, "null"))
            return v == 0;
        return t == WASM_EXTERNREF && v == strtoull(ev, NULL, 10) + 1;
    default: return false;
    }
}

/* ---- actions ---- */

#define MAX_VALS 64

typedef struct st_result {
    uint32_t n;
    uint8_t types[MAX_VALS];
    wasm_val vals[MAX_VALS];
} st_result;

/* Perform an action. Returns 0, ERR_TRAP or ERR_EXIT (from the call), or ERR_USAGE when the
 * action cannot be performed (why says why). */
static int do_action(st_file *f, const cJSON *act, st_result *r, char *why, size_t nwhy) {
    const char *type = jstr(act, "type"), *modname = jstr(act, "module"),
               *field = jstr(act, "field");
    wasm_instance *inst = modname ? find_named(f->named, f->nnamed, modname) : f->cur;
    if (!inst) {
        msgf(why, nwhy, "no module %s", modname ? modname : "(current module failed)");
        return ERR_USAGE;
    }
    wasm_extern e;
    if (!field || wasm_instance_export_n(inst, f->cur_field ? f->cur_field : field,
                                         f->cur_field ? f->cur_field_len : strlen(field),
                                         &e) != 0) {
        msgf(why, nwhy, "unknown export \"%s\"", field ? field : "");
        return ERR_USAGE;
    }
    if (type && !strcmp(type, "get")) {
        if (e.kind != WASM_EXTERN_GLOBAL) {
            msgf(why, nwhy, "export \"%s\" is not a global", field);
            return ERR_USAGE;
        }
        r->n = 1;
        r->types[0] = wasm_global_type(e.u.global);
        r->vals[0] = wasm_global_get(e.u.global);
        return 0;
    }
    if (!type || strcmp(type, "invoke") != 0 || e.kind != WASM_EXTERN_FUNC) {
        msgf(why, nwhy, "cannot %s export \"%s\"", type ? type : "?", field);
        return ERR_USAGE;
    }
    wasm_functype ft = wasm_func_type(e.u.func);
    const cJSON *jargs = cJSON_GetObjectItemCaseSensitive(act, "args");
    wasm_val args[MAX_VALS];
    uint32_t nargs = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, jargs) {
        if (nargs == MAX_VALS || parse_arg(a, &args[nargs]) != 0) {
            msgf(why, nwhy, "unsupported argument %u", nargs);
            return ERR_USAGE;
        }
        nargs++;
    }
    if (nargs != ft.nparams || ft.nresults > MAX_VALS) {
        msgf(why, nwhy, "\"%s\" takes %u arguments, the script gives %u", field, ft.nparams, nargs);
        return ERR_USAGE;
    }
    r->n = ft.nresults;
    memcpy(r->types, ft.types + ft.nparams, ft.nresults);
    return wasm_call(f->s, e.u.func, args, r->vals);
}

/* The trap kind a spec message names, or WASM_TRAP_NONE when it names none we know. */
static wasm_trap trap_of_text(const char *text) {
    if (!text)
        return WASM_TRAP_NONE;
    for (int k = 1; k < WASM_TRAP_COUNT; k++) {
        const char *s = wasm_trap_str((wasm_trap)k);
        size_t n = strlen(s);
        if (n && strncmp(text, s, n) == 0)
            return (wasm_trap)k;
    }
    return WASM_TRAP_NONE;
}

static const char *trap_desc(const st_file *f) {
    const char *m = wasm_store_trap_msg(f->s);
    return m && m[0] ? m : wasm_trap_str(wasm_store_trap(f->s));
}

/* ---- commands ---- */

static void cmd_module(st_file *f, const cJSON *c, int line) {
    const char *file = jstr(c, "filename"), *name = jstr(c, "name");
    wasm_error err = {.offset = SIZE_MAX};
    wasm_instance *inst;
    int rc = instantiate(f, file ? file : "", &inst, &err);
    f->cur = rc == 0 ? inst : NULL;
    if (rc) {
        fail_at(f, line, "module %s: %s: %s", file ? file : "?", err_str(rc), err.msg);
        return;
    }
    if (name)
        add_named(&f->named, &f->nnamed, &f->capnamed, name, inst);
    f->passed++;
}

static void cmd_register(st_file *f, const cJSON *c, int line) {
    const char *as = jstr(c, "as"), *name = jstr(c, "name");
    wasm_instance *inst = name ? find_named(f->named, f->nnamed, name) : f->cur;
    if (!inst || !as) {
        fail_at(f, line, "register: no module %s", name ? name : "(current)");
        return;
    }
    add_named(&f->regs, &f->nregs, &f->capregs, as, inst); /* not counted, as in spectest-interp */
}

static void cmd_assert_return(st_file *f, const cJSON *c, int line, bool check) {
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "action");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expected");
    const char *field = jstr(act, "field");
    st_result r;
    char why[200];
    int rc = do_action(f, act, &r, why, sizeof why);
    if (rc == ERR_USAGE) {
        fail_at(f, line, "%s", why);
        return;
    }
    if (rc) {
        fail_at(f, line, "\"%s\": unexpected %s: %s", field, rc == ERR_EXIT ? "exit" : "trap",
                trap_desc(f));
        return;
    }
    if (!check) {
        f->passed++;
        return;
    }
    int nexp = cJSON_GetArraySize(exp);
    if ((uint32_t)nexp != r.n) {
        fail_at(f, line, "\"%s\": %u results, expected %d", field, r.n, nexp);
        return;
    }
    for (uint32_t i = 0; i < r.n; i++) {
        const cJSON *e = cJSON_GetArrayItem(exp, (int)i);
        if (!val_matches(e, r.types[i], r.vals[i])) {
            char got[64];
            fmt_val(got, sizeof got, r.types[i], r.vals[i]);
            const char *ev = jstr(e, "value");
            fail_at(f, line, "\"%s\": result %u is %s, expected %s:%s", field, i, got,
                    jstr(e, "type") ? jstr(e, "type") : "?", ev ? ev : "any");
            return;
        }
    }
    f->passed++;
}

static void cmd_assert_trap(st_file *f, const cJSON *c, int line, bool exhaustion) {
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "action");
    const char *text = jstr(c, "text"), *field = jstr(act, "field");
    st_result r;
    char why[200];
    int rc = do_action(f, act, &r, why, sizeof why);
    if (rc == ERR_USAGE) {
        fail_at(f, line, "%s", why);
        return;
    }
    if (rc != ERR_TRAP) {
        fail_at(f, line, "\"%s\": expected trap \"%s\", got %s", field, text ? text : "",
                rc == 0 ? "a return" : "an exit");
        return;
    }
    wasm_trap want = exhaustion ? WASM_TRAP_STACK : trap_of_text(text);
    wasm_trap got = wasm_store_trap(f->s);
    if (want != WASM_TRAP_NONE && got != want) {
        fail_at(f, line, "\"%s\": expected trap \"%s\", got \"%s\"", field, text ? text : "",
                trap_desc(f));
        return;
    }
    f->passed++;
}

/* assert_invalid / assert_malformed: loading must fail with @p want. */
static void cmd_assert_load(st_file *f, const cJSON *c, int line, int want) {
    const char *file = jstr(c, "filename"), *mt = jstr(c, "module_type");
    if (mt && strcmp(mt, "binary") != 0) {
        f->skipped++;
        return;
    }
    wasm_error err = {.offset = SIZE_MAX};
    wasm_module *m = NULL;
    int rc = load_module(f, file ? file : "", &m, &err);
    if (rc == want) {
        f->passed++;
        return;
    }
    if (rc == 0)
        fail_at(f, line, "%s: loaded, expected %s (\"%s\")", file, err_str(want), jstr(c, "text"));
    else
        fail_at(f, line, "%s: %s (%s), expected %s (\"%s\")", file, err_str(rc), err.msg,
                err_str(want), jstr(c, "text"));
}

/* assert_unlinkable / assert_uninstantiable: instantiation must fail with @p want. */
static void cmd_assert_inst(st_file *f, const cJSON *c, int line, int want) {
    const char *file = jstr(c, "filename");
    wasm_error err = {.offset = SIZE_MAX};
    wasm_instance *inst;
    int rc = instantiate(f, file ? file : "", &inst, &err);
    if (rc == want) {
        f->passed++;
        return;
    }
    fail_at(f, line, "%s: %s%s%s, expected %s (\"%s\")", file, rc ? err_str(rc) : "instantiated",
            rc ? ": " : "", rc ? err.msg : "", err_str(want), jstr(c, "text"));
}

static void run_command(st_file *f, const cJSON *c) {
    const char *type = jstr(c, "type");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "action");
    f->cur_field = NULL;
    if (act && cJSON_GetObjectItemCaseSensitive(act, "field") && f->next_field < f->nfields) {
        f->cur_field = f->fields[f->next_field];
        f->cur_field_len = f->field_lens[f->next_field++];
    }
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(c, "line");
    int line = cJSON_IsNumber(jl) ? jl->valueint : 0;
    if (!type) {
        fail_at(f, line, "command without a type");
    } else if (!strcmp(type, "module")) {
        cmd_module(f, c, line);
    } else if (!strcmp(type, "register")) {
        cmd_register(f, c, line);
    } else if (!strcmp(type, "action")) {
        cmd_assert_return(f, c, line, false);
    } else if (!strcmp(type, "assert_return")) {
        cmd_assert_return(f, c, line, true);
    } else if (!strcmp(type, "assert_trap")) {
        cmd_assert_trap(f, c, line, false);
    } else if (!strcmp(type, "assert_exhaustion")) {
        cmd_assert_trap(f, c, line, true);
    } else if (!strcmp(type, "assert_invalid")) {
        cmd_assert_load(f, c, line, ERR_INVALID);
    } else if (!strcmp(type, "assert_malformed")) {
        cmd_assert_load(f, c, line, ERR_MALFORMED);
    } else if (!strcmp(type, "assert_unlinkable")) {
        cmd_assert_inst(f, c, line, ERR_UNLINKABLE);
    } else if (!strcmp(type, "assert_uninstantiable")) {
        cmd_assert_inst(f, c, line, ERR_TRAP);
    } else {
        fail_at(f, line, "unknown command type \"%s\"", type);
    }
}

/* ---- files ---- */

typedef struct st_counts {
    long passed, failed, skipped;
} st_counts;

static char *file_stem(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *s = xstrdup(b);
    char *dot = strrchr(s, '.');
    if (dot && !strcmp(dot, ".json"))
        *dot = '\0';
    return s;
}

/* Decode the JSON string starting after its opening quote at p into UTF-8 bytes (NULs kept). */
static char *json_raw_string(const char *p, const char *end, uint32_t *len) {
    char *out = xmalloc((size_t)(end - p) + 1);
    size_t n = 0;
    while (p < end && *p != '"') {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        if (++p >= end)
            break;
        char e = *p++;
        uint32_t cp;
        switch (e) {
        case 'b': out[n++] = '\b'; continue;
        case 'f': out[n++] = '\f'; continue;
        case 'n': out[n++] = '\n'; continue;
        case 'r': out[n++] = '\r'; continue;
        case 't': out[n++] = '\t'; continue;
        case 'u':
            if (end - p < 4)
                goto done;
            cp = (uint32_t)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp < 0x80) {
                out[n++] = (char)cp;
            } else if (cp < 0x800) {
                out[n++] = (char)(0xc0 | (cp >> 6));
                out[n++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                out[n++] = (char)(0xe0 | (cp >> 12));
                out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[n++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[n++] = (char)(0xf0 | (cp >> 18));
                out[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[n++] = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        default: out[n++] = e; continue;
        }
    }
done:
    out[n] = 0;
    *len = (uint32_t)n;
    return out;
}

static void collect_fields(st_file *f, const char *text, size_t len) {
    static const char key[] = "\"field\": \"";
    const char *end = text + len, *p = text;
    size_t cap = 0;
    while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL) {
        p += sizeof key - 1;
        if (f->nfields == cap) {
            cap = cap ? cap * 2 : 64;
            f->fields = xrealloc(f->fields, cap * sizeof *f->fields);
            f->field_lens = xrealloc(f->field_lens, cap * sizeof *f->field_lens);
        }
        f->fields[f->nfields] = json_raw_string(p, end, &f->field_lens[f->nfields]);
        f->nfields++;
    }
}

/* Run one .json file in this process; prints failures (-v) but not the summary line. */
static int run_file(const char *path, bool verbose, uint64_t timeout_ns, st_counts *out) {
    uint8_t *text = NULL;
    size_t len;
    int rc = plat_read_file(path, &text, &len);
    if (rc) {
        cli_err("spectest: cannot read %s: %s", path, err_str(rc));
        return ERR_IO;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)text, len);
    st_file f = {.verbose = verbose, .timeout_ns = timeout_ns};
    collect_fields(&f, (const char *)text, len);
    free(text);
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
    if (!root || !cJSON_IsArray(cmds)) {
        cli_err("spectest: %s is not a wast2json command list", path);
        cJSON_Delete(root);
        for (size_t i = 0; i < f.nfields; i++)
            free(f.fields[i]);
        free(f.fields);
        free(f.field_lens);
        return ERR_IO;
    }
    const char *slash = strrchr(path, '/');
    f.dir = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
    f.src = jstr(root, "source_filename");
    if (!f.src)
        f.src = path;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.timeout_ns = timeout_ns;
    f.s = wasm_store_new(&cfg);
    spectest_init(&f);
    const cJSON *c;
    cJSON_ArrayForEach(c, cmds) run_command(&f, c);
    wasm_store_free(f.s);
    for (size_t i = 0; i < f.nmods; i++)
        wasm_module_free(f.mods[i]);
    for (size_t i = 0; i < f.nnamed; i++)
        free(f.named[i].name);
    for (size_t i = 0; i < f.nfields; i++)
        free(f.fields[i]);
    free(f.fields);
    free(f.field_lens);
    for (size_t i = 0; i < f.nregs; i++)
        free(f.regs[i].name);
    free(f.named);
    free(f.regs);
    free(f.mods);
    free(f.dir);
    cJSON_Delete(root);
    out->passed = f.passed;
    out->failed = f.failed;
    out->skipped = f.skipped;
    return 0;
}

/* Run one file in a child process: a crash or hang of the engine fails that file only. */
static int run_file_forked(const char *path, bool verbose, uint64_t timeout_ns, st_counts *out) {
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0)
        return run_file(path, verbose, timeout_ns, out);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return run_file(path, verbose, timeout_ns, out);
    }
    if (pid == 0) {
        close(fds[0]);
        /* A hung engine is killed by SIGALRM: ten call budgets per file. */
        alarm((unsigned)(timeout_ns / 1000000000u * 10 + 10));
        st_counts c = {0};
        int rc = run_file(path, verbose, timeout_ns, &c);
        fflush(stdout);
        if (rc == 0 && write(fds[1], &c, sizeof c) != (ssize_t)sizeof c)
            rc = ERR_IO;
        _exit(rc == 0 ? 0 : 2);
    }
    close(fds[1]);
    st_counts c;
    ssize_t n;
    do
        n = read(fds[0], &c, sizeof c);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof c) {
        *out = c;
        return 0;
    }
    if (WIFSIGNALED(st)) {
        printf("  %s: the runner died from signal %d (%s)\n", path, WTERMSIG(st),
               WTERMSIG(st) == SIGALRM ? "hang" : "crash");
        out->passed = 0;
        out->failed = 1;
        out->skipped = 0;
        return 0;
    }
    return ERR_IO;
}

typedef struct path_list {
    char **v;
    size_t n, cap;
} path_list;

static void path_add(path_list *l, char *p) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* PATH -> .json files: the file itself, or DIR/X/X.json and DIR/NAME.json, sorted. */
static int collect(const char *path, path_list *l) {
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_err("spectest: %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        path_add(l, xstrdup(path));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        cli_err("spectest: %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    size_t first = l->n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(path) + 2 * strlen(e->d_name) + 8;
        char *p = xmalloc(n);
        size_t nl = strlen(e->d_name);
        if (nl > 5 && !strcmp(e->d_name + nl - 5, ".json")) {
            snprintf(p, n, "%s/%s", path, e->d_name);
        } else {
            snprintf(p, n, "%s/%s/%s.json", path, e->d_name, e->d_name);
        }
        if (is_file(p))
            path_add(l, p);
        else
            free(p);
    }
    closedir(d);
    qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
    if (l->n == first) {
        cli_err("spectest: no .json test files under %s", path);
        return ERR_IO;
    }
    return 0;
}

int cmd_spectest(int argc, char **argv) {
    bool verbose = false, fork_files = true, cache = true;
    const char *tier = NULL;
    double timeout_s = 10;
    path_list files = {0};
    int status = EXIT_OK, i;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "--no-fork")) {
            fork_files = false;
        } else if (!strcmp(a, "--tier") && i + 1 < argc) {
            tier = argv[++i];
        } else if (!strcmp(a, "--no-cache")) {
            cache = false;
        } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            char *end;
            timeout_s = strtod(argv[++i], &end);
            if (*end || !(timeout_s > 0) || timeout_s > 1e5) {
                cli_err("spectest: --timeout wants seconds > 0");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_spectest_help(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else {
            cli_err("spectest: unknown option %s (see psl help spectest)", a);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        cli_err("spectest: no PATH given (see psl help spectest)");
        return EXIT_USAGE;
    }
    if (cli_tier_setup("spectest", tier, cache) != 0)
        return EXIT_USAGE;
    for (; i < argc; i++)
        if (collect(argv[i], &files) != 0) {
            status = EXIT_IO;
            goto done;
        }
    uint64_t timeout_ns = (uint64_t)(timeout_s * 1e9);
    st_counts total = {0};
    for (size_t k = 0; k < files.n; k++) {
        st_counts c = {0};
        int rc = fork_files ? run_file_forked(files.v[k], verbose, timeout_ns, &c)
                            : run_file(files.v[k], verbose, timeout_ns, &c);
        if (rc) {
            status = EXIT_IO;
            total.failed++;
            continue;
        }
        char *stem = file_stem(files.v[k]);
        printf("%s: %ld passed, %ld failed, %ld skipped\n", stem, c.passed, c.failed, c.skipped);
        free(stem);
        total.passed += c.passed;
        total.failed += c.failed;
        total.skipped += c.skipped;
    }
    printf("%ld passed, %ld failed, %ld skipped\n", total.passed, total.failed, total.skipped);
    if (status == EXIT_OK && total.failed)
        status = EXIT_FAILED;
done:
    for (size_t k = 0; k < files.n; k++)
        free(files.v[k]);
    free(files.v);
    return cli_tier_finish(status);
}
