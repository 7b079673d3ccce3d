/* The psl command: one binary, one subcommand per job (run, spectest; daemons later).
 * Each subcommand is a function taking its own argv (argv[0] is the subcommand name) and
 * returning the process exit status. Exit statuses are shared by all subcommands and documented
 * in docs/cli.md: psl's own failures use 120..127, so that a guest's exit status (0..119 in
 * practice) passes through unchanged. */
#ifndef PSL_CLI_CLI_H
#define PSL_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PSL_VERSION "0.1.0"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,        /* a check failed (spectest: at least one assertion failed) */
    EXIT_USAGE = 120,       /* bad arguments or options, missing export */
    EXIT_IO = 121,          /* a file could not be read or written */
    EXIT_MALFORMED = 122,   /* the module is malformed or invalid */
    EXIT_UNLINKABLE = 123,  /* an import is missing or has the wrong type */
    EXIT_TIMEOUT = 124,     /* the --timeout budget ran out (as timeout(1)) */
    EXIT_TRAP = 125,        /* the guest trapped */
    EXIT_LIMIT = 126,       /* a limit was hit: --max-memory, --max-stack, implementation limits */
    EXIT_NOTFOUND = 127,    /* the module file does not exist */
    EXIT_INTERRUPTED = 130, /* SIGINT stopped the guest */
};

typedef struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;     /* one line for `psl --help` */
    void (*help)(FILE *out); /* full help for `psl help NAME` and `psl NAME --help` */
} cli_cmd;

int cmd_run(int argc, char **argv);
void cmd_run_help(FILE *out);
int cmd_spectest(int argc, char **argv);
void cmd_spectest_help(FILE *out);
/* Trust layer (cmd_trust.c, cmd_bench_channel.c) */
int cmd_attest(int argc, char **argv);
void cmd_attest_help(FILE *out);
int cmd_verify(int argc, char **argv);
void cmd_verify_help(FILE *out);
int cmd_policy(int argc, char **argv);
void cmd_policy_help(FILE *out);
int cmd_deployment(int argc, char **argv);
void cmd_deployment_help(FILE *out);
int cmd_keymgr(int argc, char **argv);
void cmd_keymgr_help(FILE *out);
int cmd_bench(int argc, char **argv);
void cmd_bench_help(FILE *out);
/* DataCapsules (cmd_capsule.c, cmd_storage.c) */
int cmd_capsule(int argc, char **argv);
void cmd_capsule_help(FILE *out);
int cmd_storage(int argc, char **argv);
void cmd_storage_help(FILE *out);
int cmd_bench_capsule(int argc, char **argv);
/* YCSB against psl and Redis (cmd_ycsb.c, bench/ycsb/) */
int cmd_bench_ycsb(int argc, char **argv);
/* Distributed MLP training on Fashion-MNIST (cmd_dnn.c, examples/dnn/) */
int cmd_bench_dnn(int argc, char **argv);
/* Split a comma-separated list in place into @p out (at most @p max entries). */
size_t cli_split_list(char *s, const char **out, size_t max);
/* A byte count: digits with an optional K, M, G or T suffix (powers of 1024). @return 0, or -1
 * when @p s is not one (empty, junk, a zero count, overflow). */
int cli_parse_size(const char *s, uint64_t *out);
/* A decimal count in [@p min, @p max]. @return 0, or -1 when @p s is not one (empty, a sign,
 * junk after the digits, overflow, out of range); *out is left alone then. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Option @p opt of command @p cmd with value @p v: a decimal integer in [@p min, @p max] (min >=
 * 0) into *out. @return 0, or -1 after saying on stderr what was wrong. */
int cli_opt_int(const char *cmd, const char *opt, const char *v, int min, int max, int *out);

/* Daemons of src/worker (cmd_worker.c) */
int cmd_worker(int argc, char **argv);
void cmd_worker_help(FILE *out);
int cmd_forwarder(int argc, char **argv);
void cmd_forwarder_help(FILE *out);

/* Cluster (cmd_cluster.c): the coordinator daemon, psl up/down/status, gateway clients */
int cmd_coordinator(int argc, char **argv);
void cmd_coordinator_help(FILE *out);
int cmd_up(int argc, char **argv);
void cmd_up_help(FILE *out);
int cmd_down(int argc, char **argv);
void cmd_down_help(FILE *out);
int cmd_status(int argc, char **argv);
void cmd_status_help(FILE *out);
int cmd_deploy(int argc, char **argv);
void cmd_deploy_help(FILE *out);
int cmd_invoke(int argc, char **argv);
void cmd_invoke_help(FILE *out);
int cmd_list(int argc, char **argv);
void cmd_list_help(FILE *out);
int cmd_remove(int argc, char **argv);
void cmd_remove_help(FILE *out);
int cmd_logs(int argc, char **argv);
void cmd_logs_help(FILE *out);
int cmd_kv(int argc, char **argv);
void cmd_kv_help(FILE *out);

/* cli_util.c: run argv (argv[0] a path) and wait; its stdout goes to /dev/null when quiet.
 * Returns its exit status, 128 when it died from a signal, or -errno when it could not start. */
int cli_run_wait(char *const argv[], bool quiet);
/* Run gnuplot on @p script, remove it and @p data, report @p png as written (as @p who).
 * Returns 0 or EXIT_FAILED (printed). */
int cli_gnuplot(const char *script, const char *data, const char *png, const char *who);
/* A loopback TCP port that is free now, for a daemon to bind soon after: one of 10000-19999,
 * below the kernel's ephemeral range (32768+), so that no outgoing connection or port-0
 * listener of another process takes it in between (the kernel's own pick, from that range,
 * did: "Address already in use" at start-up), and below 20000-31999, where the shell tests
 * bind fixed ports. 0 when none is found. */
unsigned cli_free_port(void);
/* The gateway URL of the cluster in DIR (from DIR/cluster.json), malloc'd, or NULL. */
char *cli_cluster_gateway(const char *dir);
/* One process of a cluster that psl up started: its role ("coordinator", "worker-1",
 * "storage-0", "forwarder", ...) and pid, as DIR/cluster.json lists them. */
typedef struct cli_proc {
    char role[32];
    int pid;
} cli_proc;
/* CPU seconds (user + system, all threads) process @p pid (0 = this one) has used so far, from
 * /proc/PID/stat (clock ticks); -1 when it cannot be read. */
double cli_proc_cpu_s(int pid);
/* Fill @p ps with up to @p max processes of the cluster in DIR. Returns how many, or -1 when
 * DIR/cluster.json is missing or unreadable. */
int cli_cluster_procs(const char *dir, cli_proc *ps, int max);
/* A growing byte buffer, kept NUL-terminated, that libcurl fills: CURLOPT_WRITEFUNCTION
 * cli_buf_write with CURLOPT_WRITEDATA a cli_buf (zeroed to start). p is malloc'd (NULL while
 * nothing arrived); the caller frees it. */
typedef struct cli_buf {
    char *p;
    size_t n, cap;
} cli_buf;
size_t cli_buf_write(char *data, size_t sz, size_t nm, void *ud);

/* An Ed25519 identity kept as a 32-byte seed file (psl identity). cli_identity_load fills @p sk
 * (CR_SIGN_SK bytes; the caller wipes it) and @p pk (may be NULL); it prints its error.
 * Returns 0, EXIT_USAGE (missing or not a seed file) or EXIT_IO. */
int cli_identity_load(const char *path, uint8_t *sk, uint8_t *pk);
int cmd_identity(int argc, char **argv);
void cmd_identity_help(FILE *out);

/* Print "psl: " + message + newline to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
