/* psl entry point: subcommand dispatch through one table, --help and --version.
 * New subcommands (daemons, deploy, invoke) are added as rows of cli_cmds. */
#include "cli/cli.h"
#include "cli/tier.h"

#include "base/base.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const cli_cmd cli_cmds[] = {
    {"run", cmd_run, "run a WebAssembly module (a WASI command, or one export with --invoke)",
     cmd_run_help},
    {"spectest", cmd_spectest, "run WebAssembly spec tests converted by wast2json",
     cmd_spectest_help},
    {"attest", cmd_attest, "print this node's measurement and a fresh attestation report",
     cmd_attest_help},
    {"verify", cmd_verify, "check an attestation report against a policy", cmd_verify_help},
    {"policy", cmd_policy, "print an attestation policy accepting this node", cmd_policy_help},
    {"identity", cmd_identity, "create or show a client identity (Ed25519 seed file)",
     cmd_identity_help},
    {"deployment", cmd_deployment,
     "create a deployment's sealed secrets, or fetch them as a worker", cmd_deployment_help},
    {"keymgr", cmd_keymgr, "serve deployment keys to attested workers (coordinator key manager)",
     cmd_keymgr_help},
    {"capsule", cmd_capsule, "DataCapsules: keygen, create, append, read, verify",
     cmd_capsule_help},
    {"storage", cmd_storage, "run an untrusted DataCapsule storage replica (LMDB)",
     cmd_storage_help},
    {"worker", cmd_worker, "run a worker enclave for a coordinator (daemon)", cmd_worker_help},
    {"forwarder", cmd_forwarder, "relay multicast between workers (untrusted daemon)",
     cmd_forwarder_help},
    {"coordinator", cmd_coordinator, "run the coordinator and its HTTP gateway (daemon)",
     cmd_coordinator_help},
    {"up", cmd_up, "start a local cluster on loopback in the background", cmd_up_help},
    {"down", cmd_down, "stop the local cluster", cmd_down_help},
    {"status", cmd_status, "show the local cluster's processes and workers", cmd_status_help},
    {"deploy", cmd_deploy, "deploy a function to the cluster", cmd_deploy_help},
    {"invoke", cmd_invoke, "invoke a deployed function", cmd_invoke_help},
    {"list", cmd_list, "list deployed functions", cmd_list_help},
    {"remove", cmd_remove, "remove a deployed function", cmd_remove_help},
    {"logs", cmd_logs, "print a function's recent log lines", cmd_logs_help},
    {"kv", cmd_kv, "get, put or delete a key (owner admin path)", cmd_kv_help},
    {"bench", cmd_bench, "benchmarks: channel, capsule, ycsb, dnn (psl help bench)",
     cmd_bench_help},
};

void cli_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("psl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *out) {
    fprintf(out, "usage: psl COMMAND [OPTIONS] [ARGS...]\n"
                 "       psl help COMMAND | psl --help | psl --version\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++)
        fprintf(out, "  %-10s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    fprintf(out, "\nexit status (all commands):\n"
                 "  0..119  success, or the guest's own exit status (psl run)\n"
                 "  1       psl spectest: at least one assertion failed\n"
                 "  120     usage error (bad option or argument, missing export)\n"
                 "  121     I/O error (a file could not be read)\n"
                 "  122     malformed or invalid module\n"
                 "  123     unlinkable module (missing import or wrong import type)\n"
                 "  124     timeout (--timeout budget exceeded)\n"
                 "  125     trap (the guest trapped)\n"
                 "  126     limit hit (--max-memory, --max-stack, implementation limit)\n"
                 "  127     module file not found\n"
                 "  130     interrupted (SIGINT)\n"
                 "See docs/cli.md.\n");
}

static const cli_cmd *find_cmd(const char *name) {
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++)
        if (strcmp(cli_cmds[i].name, name) == 0)
            return &cli_cmds[i];
    return NULL;
}

int main(int argc, char **argv) {
    /* A closed stdout must surface as a write error (EPIPE), never kill psl. */
    signal(SIGPIPE, SIG_IGN);
    cli_tier_compiler_main(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        printf("psl %s\n", PSL_VERSION);
        return EXIT_OK;
    }
    if (strcmp(a, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return EXIT_OK;
        }
        const cli_cmd *c = find_cmd(argv[2]);
        if (!c) {
            cli_err("unknown command '%s' (see psl --help)", argv[2]);
            return EXIT_USAGE;
        }
        c->help(stdout);
        return EXIT_OK;
    }
    const cli_cmd *c = find_cmd(a);
    if (!c) {
        cli_err("unknown command '%s' (see psl --help)", a);
        return EXIT_USAGE;
    }
    /* psl COMMAND --help, for every command (their option parsers would take --help for an
     * option that needs a value). */
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        c->help(stdout);
        return EXIT_OK;
    }
    return c->fn(argc - 1, argv + 1);
}
