/* psl worker and psl forwarder: the daemons of src/worker. */
#include "cli.h"
#include "cli/tier.h"

#include "base/err.h"
#include "tee/tee.h"
#include "worker/worker.h"

#include <stdlib.h>
#include <string.h>

void cmd_worker_help(FILE *out) {
    fprintf(out,
            "usage: psl worker --coordinator EP --id N --policy FILE [options]\n"
            "\n"
            "Run a worker enclave: connect to the coordinator over the attested channel, deploy\n"
            "the functions it sends, run invocations, hold a replica of the key-value state.\n"
            "\n"
            "  --coordinator EP  the coordinator's channel endpoint (tcp://HOST:PORT)\n"
            "  --id N            worker id (> 0), also its writer id in the key-value store\n"
            "  --policy FILE     attestation policy the coordinator must pass (psl policy)\n"
            "  --dir DIR         private data folder (default ./psl-data/worker-N)\n"
            "  --home DIR        enclave home holding the platform key (default $PSL_HOME or\n"
            "                    ./psl-data)\n"
            "  --threads T       invocation threads (default 2)\n"
            "  --name NAME       name used in logs (default worker-N)\n"
            "  --storage EPS     comma-separated storage replicas (2f+1): the worker fetches the\n"
            "                    deployment keys from the coordinator's key manager, keeps its\n"
            "                    writes in its own DataCapsule there, and recovers all state from\n"
            "                    the capsules at start. Without it, state lives in memory only.\n"
            "  --forwarder-pub EP  the forwarder's XSUB endpoint: multicast our updates there\n"
            "  --forwarder-sub EP  the forwarder's XPUB endpoint: receive peers' updates there\n"
            "  --deployment NAME   key manager deployment (default \"default\")\n"
            "  --tier T          interp (default, or $PSL_TIER) or jit: compile each deployed\n"
            "                    module with LLVM at deploy time (cached on disk, keyed by the\n"
            "                    module hash); auto is refused here, its background compiler\n"
            "                    forks, which the worker's sandbox forbids\n"
            "  --checkpoint-every N  write a checkpoint (a snapshot of the whole state) every N\n"
            "                    records of our capsule, or every 64 MiB of them if sooner, so\n"
            "                    recovery replays only what follows each capsule's newest\n"
            "                    checkpoint, and the replicas drop what precedes the one before\n"
            "                    (default 1000, or $PSL_CHECKPOINT_EVERY; 0 = never)\n"
            "  --big-checkpoint-ms MS  a state too large for one record (4 MiB) is checkpointed\n"
            "                    in several, at most every MS ms from the start or the last\n"
            "                    one (default 1800000, or $PSL_BIG_CHECKPOINT_MS), once the\n"
            "                    log since the last checkpoint holds half the state's size\n"
            "  --big-checkpoint-log SIZE  ... or sooner, once that log holds SIZE bytes (K, M, G\n"
            "                    suffixes) and twice the state's size, so that the replicas\n"
            "                    keep a bounded log whatever the write rate (default 4G, or\n"
            "                    $PSL_BIG_CHECKPOINT_LOG)\n"
            "  --journal-counter bind our capsule's journal to the enclave's monotonic counter\n"
            "                    capsule-journal-N (default: $PSL_JOURNAL_COUNTER=1 turns it\n"
            "                    on): a restart refuses a deleted or older journal instead of\n"
            "                    risking a fork; costs one counter increment per batch\n"
            "                    (docs/capsule.md)\n"
            "  --client-listen EP  serve clients over the attested channel there (ClientInvoke;\n"
            "                    docs/client.md): any client identity may invoke (as on the\n"
            "                    gateway's /function/ path) unless --client-keys lists them.\n"
            "                    stream://HOST:PORT: the channel on\n"
            "                    plain TCP (the default, stream://127.0.0.1:0: a free loopback\n"
            "                    port, announced to the coordinator); tcp://HOST:PORT: on\n"
            "                    ZeroMQ; none: off\n"
            "  --client-keys FILE  serve only the client identities FILE lists ('client_key:\n"
            "                    HEX' lines, as psl identity prints them); default: any\n"
            "                    identity\n"
            "  --no-sandbox      do not install the seccomp allow-list (debugging only; by\n"
            "                    default the worker may only use sockets, files and threads)\n"
            "Stops cleanly on SIGINT or SIGTERM.\n");
}

void cmd_forwarder_help(FILE *out) {
    fprintf(out, "usage: psl forwarder --xsub EP --xpub EP\n"
                 "\n"
                 "Relay multicast between workers: publishers connect to the XSUB endpoint,\n"
                 "subscribers to the XPUB endpoint. Untrusted: it only sees encrypted, signed\n"
                 "records. Stops on SIGINT or SIGTERM.\n");
}

static const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_err("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cmd_worker(int argc, char **argv) {
    worker_opts o = {0};
    char dir[512];
    const char *tier = NULL, *ckpt = getenv("PSL_CHECKPOINT_EVERY");
    const char *big = getenv("PSL_BIG_CHECKPOINT_MS"), *jc = getenv("PSL_JOURNAL_COUNTER");
    const char *biglog = getenv("PSL_BIG_CHECKPOINT_LOG");
    if (jc && *jc && strcmp(jc, "0") != 0 && strcmp(jc, "1") != 0) {
        cli_err("worker: PSL_JOURNAL_COUNTER must be 0 or 1, not '%s'", jc);
        return EXIT_USAGE;
    }
    o.journal_counter = jc && strcmp(jc, "1") == 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool bad = false;
        uint64_t n = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cmd_worker_help(stdout);
            return EXIT_OK;
        }
        if (!strcmp(a, "--no-sandbox")) {
            o.no_sandbox = true;
            continue;
        }
        if (!strcmp(a, "--journal-counter")) {
            o.journal_counter = true;
            continue;
        }
        if (!(v = arg_value(argc, argv, &i)))
            return EXIT_USAGE;
        if (!strcmp(a, "--coordinator"))
            o.coordinator = v;
        else if (!strcmp(a, "--id"))
            bad = cli_parse_u64(v, 1, UINT64_MAX, &o.id) != 0;
        else if (!strcmp(a, "--policy"))
            o.policy = v;
        else if (!strcmp(a, "--dir"))
            o.dir = v;
        else if (!strcmp(a, "--home"))
            o.home = v;
        else if (!strcmp(a, "--threads")) {
            bad = cli_parse_u64(v, 1, 1024, &n) != 0;
            o.threads = (unsigned)n;
        } else if (!strcmp(a, "--name"))
            o.name = v;
        else if (!strcmp(a, "--storage"))
            o.storage = v;
        else if (!strcmp(a, "--forwarder-pub"))
            o.fwd_pub = v;
        else if (!strcmp(a, "--forwarder-sub"))
            o.fwd_sub = v;
        else if (!strcmp(a, "--deployment"))
            o.deployment = v;
        else if (!strcmp(a, "--tier"))
            tier = v;
        else if (!strcmp(a, "--checkpoint-every"))
            ckpt = v;
        else if (!strcmp(a, "--big-checkpoint-ms"))
            big = v;
        else if (!strcmp(a, "--big-checkpoint-log"))
            biglog = v;
        else if (!strcmp(a, "--client-listen"))
            o.client_listen = v;
        else if (!strcmp(a, "--client-keys"))
            o.client_keys = v;
        else {
            cli_err("worker: unknown option %s (see psl worker --help)", a);
            return EXIT_USAGE;
        }
        if (bad) {
            cli_err("worker: bad value for %s: '%s'", a, v);
            return EXIT_USAGE;
        }
    }
    if (!o.coordinator || !o.policy || !o.id) {
        cli_err("worker: --coordinator, --policy and --id are required (see psl worker --help)");
        return EXIT_USAGE;
    }
    if (o.client_keys) { /* refuse a bad file now, not once the worker has joined */
        tee_policy cp;
        char why[300];
        if (tee_client_list_load(o.client_keys, &cp, why, sizeof why) != 0) {
            cli_err("worker: --client-keys %s: %s", o.client_keys, why);
            return EXIT_USAGE;
        }
        tee_policy_fini(&cp);
    }
    if (!o.dir) {
        snprintf(dir, sizeof dir, "psl-data/worker-%llu", (unsigned long long)o.id);
        o.dir = dir;
    }
    o.checkpoint_every = 1000;
    if (ckpt && *ckpt && cli_parse_u64(ckpt, 0, UINT64_MAX, &o.checkpoint_every) != 0) {
        cli_err("worker: bad checkpoint interval '%s' (--checkpoint-every or "
                "$PSL_CHECKPOINT_EVERY: a count of records, 0 = never)",
                ckpt);
        return EXIT_USAGE;
    }
    if (big && *big && cli_parse_u64(big, 1, UINT64_MAX, &o.big_checkpoint_ms) != 0) {
        cli_err("worker: bad interval '%s' (--big-checkpoint-ms or $PSL_BIG_CHECKPOINT_MS: "
                "milliseconds, at least 1)",
                big);
        return EXIT_USAGE;
    }
    if (biglog && *biglog && cli_parse_size(biglog, &o.big_checkpoint_log) != 0) {
        cli_err("worker: bad size '%s' (--big-checkpoint-log or $PSL_BIG_CHECKPOINT_LOG: bytes "
                "with an optional K, M, G or T suffix)",
                biglog);
        return EXIT_USAGE;
    }
    if (!tier)
        tier = getenv("PSL_TIER");
    if (tier && !strcmp(tier, "auto") && !o.no_sandbox) {
        cli_err("worker: --tier auto compiles in a forked child, which the sandbox forbids: use "
                "jit or interp");
        return EXIT_USAGE;
    }
    if (cli_tier_setup("worker", tier, true) != 0)
        return EXIT_USAGE;
    int rc = worker_run(&o);
    return rc == 0 ? EXIT_OK : rc == ERR_USAGE ? EXIT_USAGE : EXIT_FAILED;
}

int cmd_forwarder(int argc, char **argv) {
    const char *xsub = NULL, *xpub = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cmd_forwarder_help(stdout);
            return EXIT_OK;
        }
        if (!(v = arg_value(argc, argv, &i)))
            return EXIT_USAGE;
        if (!strcmp(a, "--xsub"))
            xsub = v;
        else if (!strcmp(a, "--xpub"))
            xpub = v;
        else {
            cli_err("forwarder: unknown option %s", a);
            return EXIT_USAGE;
        }
    }
    if (!xsub || !xpub) {
        cli_err("forwarder: --xsub and --xpub are required");
        return EXIT_USAGE;
    }
    return forwarder_run(xsub, xpub) == 0 ? EXIT_OK : EXIT_IO;
}
