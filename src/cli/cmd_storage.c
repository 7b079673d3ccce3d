/* psl storage: run one untrusted DataCapsule replica (src/storage) until SIGINT/SIGTERM. */
#include "cli/cli.h"

#include "base/base.h"
#include "platform/platform.h"
#include "storage/storage.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

void cmd_storage_help(FILE *out) {
    fprintf(
        out,
        "usage: psl storage --listen ENDPOINT --data DIR [--peers EP,EP...] [--anti-entropy-ms N]\n"
        "                   [--map-size SIZE] [--verbose]\n"
        "Run an untrusted DataCapsule replica on LMDB. It holds no key: it checks chain links\n"
        "and head signatures against each capsule's metadata record, acknowledges appends after\n"
        "a durable commit, and pulls missing or damaged records from its peers.\n"
        "  --listen ENDPOINT     ZeroMQ endpoint, e.g. tcp://127.0.0.1:7101\n"
        "  --data DIR            LMDB directory (created 0700)\n"
        "  --peers LIST          comma-separated endpoints of the other replicas\n"
        "  --anti-entropy-ms N   pull/scrub interval in ms (default 500; -1: only on scrub hints)\n"
        "  --map-size SIZE       most the replica may hold, e.g. 512M, 64G (default 256G; only\n"
        "                        what is written takes disk). Capsules are append-only logs: a\n"
        "                        full replica refuses appends with 'storage full'\n"
        "See docs/capsule.md.\n");
}

/* Split a comma-separated list in place into @p out (at most @p max entries). */
size_t cli_split_list(char *s, const char **out, size_t max) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

int cmd_storage(int argc, char **argv) {
    stg_opts o = {0};
    const char *peers[16];
    char *plist = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cmd_storage_help(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--verbose")) {
            o.verbose = true;
        } else if (i + 1 < argc && !strcmp(a, "--listen")) {
            o.listen = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--data")) {
            o.data = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--peers")) {
            plist = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--map-size")) {
            uint64_t v;
            if (cli_parse_size(argv[++i], &v) != 0 || v < ((uint64_t)1 << 20) || v > SIZE_MAX) {
                cli_err("storage: --map-size wants a size of at least 1M, e.g. 64G (got '%s')",
                        argv[i]);
                return EXIT_USAGE;
            }
            o.map_size = (size_t)v;
        } else if (i + 1 < argc && !strcmp(a, "--anti-entropy-ms")) {
            const char *v = argv[++i];
            if (!strcmp(v, "-1")) /* only on scrub hints */
                o.ae_interval_ms = -1;
            else if (cli_opt_int("storage", a, v, 1, INT_MAX, &o.ae_interval_ms) != 0)
                return EXIT_USAGE;
        } else {
            cli_err("storage: unknown or incomplete option '%s' (see psl help storage)", a);
            return EXIT_USAGE;
        }
    }
    if (!o.listen || !o.data) {
        cli_err("storage: --listen and --data are required");
        return EXIT_USAGE;
    }
    char *pcopy = NULL; /* split a copy: the command line (ps, /proc) keeps its commas */
    if (plist && plist[0]) {
        pcopy = xstrdup(plist);
        o.npeers = cli_split_list(pcopy, peers, 16);
        o.peers = peers;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    plat_memory_keep_large(); /* a replica allocates and frees megabyte buffers per append */
    int rc = stg_serve(&o, &g_stop);
    free(pcopy);
    return rc ? EXIT_IO : EXIT_OK;
}
