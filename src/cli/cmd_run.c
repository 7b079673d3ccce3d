/* psl run: load a module, link WASI, and run it as a command (_start) or call one export
 * (--invoke). Every failure ends in one line on stderr and a distinct exit status (cli.h); a
 * guest's proc_exit status passes through. */
#include "cli/cli.h"
#include "cli/tier.h"

#include "base/base.h"
#include "base/err.h"
#include "platform/platform.h"
#include "wasm/wasi.h"
#include "wasm/wasm.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void cmd_run_help(FILE *out) {
    fprintf(out,
            "usage: psl run [OPTIONS] FILE.wasm [ARGS...]\n"
            "       psl run [OPTIONS] --invoke NAME FILE.wasm [VALUES...]\n"
            "\n"
            "Runs a WebAssembly module. Without --invoke the module is a WASI command: its _start\n"
            "export runs with ARGS as argv[1..], stdin, stdout and stderr pass through, and psl\n"
            "exits with the guest's exit status. With --invoke, the module's _initialize export\n"
            "(if any) runs first, then export NAME is called with VALUES parsed by its parameter\n"
            "types, and its results are printed one per line (integers in decimal, floats as\n"
            "%%g and their bit pattern, references as null or ref).\n"
            "Options must come before FILE; everything after FILE belongs to the guest.\n"
            "\n"
            "options:\n"
            "  --invoke NAME       call export NAME instead of _start\n"
            "  --timeout SECONDS   wall-time budget per call (fractions allowed; default none)\n"
            "  --max-memory MIB    cap on linear memory size (default 4096)\n"
            "  --max-stack N       maximum nested wasm calls (default 10000)\n"
            "  --env NAME=VALUE    add a variable to the guest's environment (repeatable)\n"
            CLI_TIER_HELP
            "  -h, --help          this help\n"
            "\n"
            "exit status:\n"
            "  guest's status  _start returned (0) or the guest called proc_exit(status)\n"
            "  0               --invoke: the call returned\n"
            "  120 usage, 121 I/O error, 122 malformed or invalid module, 123 unlinkable,\n"
            "  124 timeout, 125 trap, 126 limit (memory, stack), 127 file not found,\n"
            "  130 interrupted by SIGINT\n");
}

typedef struct run_opts {
    const char *invoke;
    const char *file;
    int nargs;
    char **args;
    wasm_config cfg;
    int nenv;
    const char **env;
    const char *tier;
    bool no_cache;
} run_opts;

static wasm_store *volatile g_running; /* for the SIGINT handler */

static void on_sigint(int sig) {
    (void)sig;
    signal(SIGINT, SIG_DFL); /* a second ^C kills psl the usual way */
    wasm_store *s = g_running;
    if (s)
        wasm_store_interrupt(s);
}

static int parse_opts(int argc, char **argv, run_opts *o) {
    wasm_config_default(&o->cfg);
    o->env = xcalloc((size_t)argc, sizeof *o->env);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_run_help(stdout);
            return 1;
        }
        if (strcmp(a, "--no-cache") == 0) {
            o->no_cache = true;
            continue;
        }
        /* Every other option takes a value. */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            cli_err("run: option %s needs a value (see psl help run)", a);
            return -1;
        }
        i++;
        uint64_t n;
        if (strcmp(a, "--invoke") == 0) {
            o->invoke = v;
        } else if (strcmp(a, "--timeout") == 0) {
            char *end;
            errno = 0;
            double sec = strtod(v, &end);
            if (errno || *end || !(sec > 0) || sec > 1e6) {
                cli_err("run: --timeout wants seconds > 0, got '%s'", v);
                return -1;
            }
            o->cfg.timeout_ns = (uint64_t)(sec * 1e9);
            if (!o->cfg.timeout_ns)
                o->cfg.timeout_ns = 1;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (cli_parse_u64(v, 1, 4096, &n)) {
                cli_err("run: --max-memory wants MiB in 1..4096, got '%s'", v);
                return -1;
            }
            o->cfg.max_memory_bytes = n << 20;
        } else if (strcmp(a, "--max-stack") == 0) {
            if (cli_parse_u64(v, 1, 1000000, &n)) {
                cli_err("run: --max-stack wants a depth in 1..1000000, got '%s'", v);
                return -1;
            }
            o->cfg.max_call_depth = (uint32_t)n;
        } else if (strcmp(a, "--tier") == 0) {
            o->tier = v;
        } else if (strcmp(a, "--env") == 0) {
            if (!strchr(v, '=') || v[0] == '=') {
                cli_err("run: --env wants NAME=VALUE, got '%s'", v);
                return -1;
            }
            o->env[o->nenv++] = v;
        } else {
            cli_err("run: unknown option %s (see psl help run)", a);
            return -1;
        }
    }
    if (i >= argc) {
        cli_err("run: no module file given (see psl help run)");
        return -1;
    }
    o->file = argv[i];
    o->args = argv + i + 1;
    o->nargs = argc - i - 1;
    return 0;
}

static const char *type_name(uint8_t t) {
    switch (t) {
    case WASM_I32: return "i32";
    case WASM_I64: return "i64";
    case WASM_F32: return "f32";
    case WASM_F64: return "f64";
    case WASM_V128: return "v128";
    case WASM_FUNCREF: return "funcref";
    case WASM_EXTERNREF: return "externref";
    default: return "?";
    }
}

static int parse_value(uint8_t type, const char *s, wasm_val *out) {
    char *end;
    errno = 0;
    switch (type) {
    case WASM_I32: {
        long long v = strtoll(s, &end, 0);
        if (errno || *end || !*s || v < INT32_MIN || v > (long long)UINT32_MAX)
            return -1;
        *out = (uint32_t)v;
        return 0;
    }
    case WASM_I64: {
        if (*s != '-') {
            unsigned long long u = strtoull(s, &end, 0);
            if (errno || *end || !*s)
                return -1;
            *out = u;
            return 0;
        }
        long long v = strtoll(s, &end, 0);
        if (errno || *end)
            return -1;
        *out = (uint64_t)v;
        return 0;
    }
    case WASM_F32: {
        float f = strtof(s, &end);
        if (*end || !*s)
            return -1;
        uint32_t b;
        memcpy(&b, &f, 4);
        *out = b;
        return 0;
    }
    case WASM_F64: {
        double d = strtod(s, &end);
        if (*end || !*s)
            return -1;
        memcpy(out, &d, 8);
        return 0;
    }
    case WASM_FUNCREF:
        if (strcmp(s, "null") != 0)
            return -1;
        *out = 0;
        return 0;
    case WASM_EXTERNREF: {
        if (strcmp(s, "null") == 0) {
            *out = 0;
            return 0;
        }
        unsigned long long u = strtoull(s, &end, 0);
        if (errno || *end || !*s || *s == '-' || u == UINT64_MAX)
            return -1;
        *out = u + 1; /* host reference N is the cell N+1, so that 0 stays null */
        return 0;
    }
    default: return -1;
    }
}

/* Print a float with the fewest digits that read back to the same value, then its bits. */
static void print_value(uint8_t type, wasm_val v) {
    char buf[64];
    switch (type) {
    case WASM_I32: printf("%" PRId32 "\n", (int32_t)(uint32_t)v); break;
    case WASM_I64: printf("%" PRId64 "\n", (int64_t)v); break;
    case WASM_F32: {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
            if (strtof(buf, NULL) == f || isnan(f))
                break;
        }
        printf("%s (0x%08" PRIx32 ")\n", buf, b);
        break;
    }
    case WASM_F64: {
        double d;
        memcpy(&d, &v, 8);
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d || isnan(d))
                break;
        }
        printf("%s (0x%016" PRIx64 ")\n", buf, (uint64_t)v);
        break;
    }
    case WASM_EXTERNREF:
        if (v)
            printf("ref.extern %" PRIu64 "\n", (uint64_t)v - 1);
        else
            printf("null\n");
        break;
    default: printf(v ? "ref\n" : "null\n"); break;
    }
}

/* Map a failed load / instantiation to one line and an exit status. */
static int load_failure(const char *what, int rc, const wasm_error *err) {
    const char *kind = rc == ERR_MALFORMED    ? "malformed module"
                       : rc == ERR_INVALID    ? "invalid module"
                       : rc == ERR_UNLINKABLE ? "unlinkable module"
                       : rc == ERR_LIMIT      ? "limit"
                                              : err_str(rc);
    const char *msg = err->msg[0] ? err->msg : err_str(rc);
    if (err->offset != SIZE_MAX)
        cli_err("%s: %s at offset 0x%zx (%s)", kind, msg, err->offset, what);
    else
        cli_err("%s: %s (%s)", kind, msg, what);
    switch (rc) {
    case ERR_MALFORMED:
    case ERR_INVALID: return EXIT_MALFORMED;
    case ERR_UNLINKABLE: return EXIT_UNLINKABLE;
    case ERR_LIMIT: return EXIT_LIMIT;
    case ERR_NOMEM: return EXIT_LIMIT;
    default: return EXIT_IO;
    }
}

/* Map the outcome of a call (or of a start function) to an exit status. */
static int call_outcome(wasm_store *s, const run_opts *o, int rc) {
    if (rc == 0)
        return EXIT_OK;
    if (rc == ERR_EXIT)
        return wasm_store_exit_code(s) & 0xff;
    if (rc != ERR_TRAP) {
        cli_err("error: %s", err_str(rc));
        return EXIT_TRAP;
    }
    wasm_trap t = wasm_store_trap(s);
    const char *msg = wasm_store_trap_msg(s);
    if (!msg || !msg[0])
        msg = wasm_trap_str(t);
    switch (t) {
    case WASM_TRAP_EXIT: return wasm_store_exit_code(s) & 0xff;
    case WASM_TRAP_TIMEOUT:
        cli_err("timeout: execution exceeded the %.3g s budget (--timeout)",
                (double)o->cfg.timeout_ns / 1e9);
        return EXIT_TIMEOUT;
    case WASM_TRAP_STACK:
        cli_err("limit: %s (depth %" PRIu32 ", --max-stack)", msg, o->cfg.max_call_depth);
        return EXIT_LIMIT;
    case WASM_TRAP_INTERRUPTED: cli_err("interrupted"); return EXIT_INTERRUPTED;
    default: cli_err("trap: %s", msg); return EXIT_TRAP;
    }
}

static int call_export(wasm_store *s, wasm_instance *inst, wasi_ctx *w, const run_opts *o,
                       wasm_func *f, const wasm_val *args, wasm_val *results) {
    if (o->cfg.timeout_ns)
        wasi_set_deadline(w, plat_now_ns() + o->cfg.timeout_ns);
    (void)inst;
    g_running = s;
    int rc = wasm_call(s, f, args, results);
    g_running = NULL;
    return rc;
}

static int find_func(wasm_instance *inst, const char *name, wasm_func **f) {
    wasm_extern e;
    if (wasm_instance_export(inst, name, &e) != 0 || e.kind != WASM_EXTERN_FUNC)
        return ERR_NOTFOUND;
    *f = e.u.func;
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_opts o = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    wasm_module *m = NULL;
    wasm_store *s = NULL;
    wasi_ctx *w = NULL;
    wasm_extern *imports = NULL;
    wasm_val *args = NULL, *results = NULL;
    const char **gargv = NULL;
    int status;

    int prc = parse_opts(argc, argv, &o);
    if (prc) {
        status = prc > 0 ? EXIT_OK : EXIT_USAGE;
        goto done;
    }
    if (cli_tier_setup("run", o.tier, !o.no_cache) != 0) {
        status = EXIT_USAGE;
        goto done;
    }
    int rc = plat_read_file(o.file, &bytes, &len);
    if (rc) {
        cli_err("cannot read %s: %s", o.file, err_str(rc));
        status = rc == -ENOENT ? EXIT_NOTFOUND : EXIT_IO;
        goto done;
    }
    wasm_error err = {.offset = SIZE_MAX};
    rc = wasm_module_load(bytes, len, &m, &err);
    if (rc) {
        status = load_failure(o.file, rc, &err);
        goto done;
    }

    /* The guest sees argv = [FILE, ARGS...] as a command, [FILE] when invoking an export. */
    int gargc = o.invoke ? 1 : 1 + o.nargs;
    gargv = xcalloc((size_t)gargc, sizeof *gargv);
    gargv[0] = o.file;
    for (int i = 1; i < gargc; i++)
        gargv[i] = o.args[i - 1];
    wasi_config wc = {
        .argc = gargc,
        .argv = gargv,
        .envc = o.nenv,
        .envp = o.env,
        .in = {.kind = WASI_IO_FD, .fd = 0},
        .out = {.kind = WASI_IO_FD, .fd = 1},
        .err = {.kind = WASI_IO_FD, .fd = 2},
    };
    w = wasi_new(&wc);
    s = wasm_store_new(&o.cfg);
    uint32_t nimp = wasm_module_num_imports(m);
    imports = xcalloc(nimp ? nimp : 1, sizeof *imports);
    err = (wasm_error){.offset = SIZE_MAX};
    rc = wasi_resolve(w, s, m, imports, &err);
    if (rc) {
        status = load_failure(o.file, rc, &err);
        goto done;
    }

    signal(SIGINT, on_sigint);
    wasm_instance *inst = NULL;
    err = (wasm_error){.offset = SIZE_MAX};
    if (o.cfg.timeout_ns)
        wasi_set_deadline(w, plat_now_ns() + o.cfg.timeout_ns);
    g_running = s;
    rc = wasm_instance_new(s, m, imports, nimp, &inst, &err);
    g_running = NULL;
    if (rc == ERR_TRAP || rc == ERR_EXIT) {
        status = call_outcome(s, &o, rc); /* the start function trapped or exited */
        goto done;
    }
    if (rc) {
        status = load_failure(o.file, rc, &err);
        goto done;
    }

    wasm_func *f;
    if (!o.invoke) {
        if (find_func(inst, "_start", &f)) {
            cli_err("%s has no _start function: not a WASI command (use --invoke NAME)", o.file);
            status = EXIT_USAGE;
            goto done;
        }
        wasm_functype ft = wasm_func_type(f);
        if (ft.nparams || ft.nresults) {
            cli_err("%s: _start must take and return nothing", o.file);
            status = EXIT_USAGE;
            goto done;
        }
        status = call_outcome(s, &o, call_export(s, inst, w, &o, f, NULL, NULL));
        goto done;
    }

    if (find_func(inst, o.invoke, &f)) {
        cli_err("%s has no exported function '%s'", o.file, o.invoke);
        status = EXIT_USAGE;
        goto done;
    }
    wasm_functype ft = wasm_func_type(f);
    if ((uint32_t)o.nargs != ft.nparams) {
        char sig[256] = "";
        for (uint32_t i = 0; i < ft.nparams && strlen(sig) < sizeof sig - 12; i++)
            snprintf(sig + strlen(sig), sizeof sig - strlen(sig), "%s%s", i ? " " : "",
                     type_name(ft.types[i]));
        cli_err("'%s' takes %" PRIu32 " argument%s (%s), got %d", o.invoke, ft.nparams,
                ft.nparams == 1 ? "" : "s", sig, o.nargs);
        status = EXIT_USAGE;
        goto done;
    }
    args = xcalloc(ft.nparams + 1, sizeof *args);
    results = xcalloc(ft.nresults + 1, sizeof *results);
    for (uint32_t i = 0; i < ft.nparams; i++) {
        if (parse_value(ft.types[i], o.args[i], &args[i])) {
            cli_err("argument %" PRIu32 " of '%s': '%s' is not a valid %s", i + 1, o.invoke,
                    o.args[i], type_name(ft.types[i]));
            status = EXIT_USAGE;
            goto done;
        }
    }
    wasm_func *init;
    if (find_func(inst, "_initialize", &init) == 0) {
        wasm_functype it = wasm_func_type(init);
        if (!it.nparams && !it.nresults) {
            rc = call_export(s, inst, w, &o, init, NULL, NULL);
            if (rc) {
                status = call_outcome(s, &o, rc);
                goto done;
            }
        }
    }
    rc = call_export(s, inst, w, &o, f, args, results);
    if (rc) {
        status = call_outcome(s, &o, rc);
        goto done;
    }
    for (uint32_t i = 0; i < ft.nresults; i++)
        print_value(ft.types[ft.nparams + i], results[i]);
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_IO;

done:
    fflush(stdout);
    signal(SIGINT, SIG_DFL);
    if (s)
        wasm_store_free(s); /* the store first: the module must outlive it */
    if (m)
        wasm_module_free(m);
    wasi_free(w);
    free(imports);
    free(args);
    free(results);
    free(gargv);
    free(o.env);
    free(bytes);
    return cli_tier_finish(status);
}
