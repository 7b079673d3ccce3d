/* The worker daemon (`psl worker`): an enclave that runs functions for a coordinator.
 *
 * It connects to the coordinator over the attested secure channel (src/net) as a client, says
 * Hello, and from then on deploys what it is sent (Welcome, Deploy, Remove), runs Invoke requests
 * on a pool of invocation threads (src/worker/exec.h), answers key-value admin operations, sends a
 * Heartbeat every 200 ms, and forwards guest lock calls (LockAcquire/LockRelease) and log lines.
 *
 * Threads: one I/O thread owns the channel (a net_chan is single-threaded); invocation threads
 * hand it their outgoing messages through a ZeroMQ inproc PUSH/PULL pair, so no lock is held
 * across network I/O. A broken channel is reconnected with a fresh handshake; invocations in
 * flight then finish and their results are dropped (the coordinator has failed them already).
 *
 * Clients. Besides the coordinator's path, the worker serves clients directly on its own
 * net_server (--client-listen; docs/client.md): it proves itself with its
 * attestation report, accepts any Ed25519 client identity (as the gateway's invoke path accepts
 * anyone), and answers each ClientInvoke with a ClientResult. It tells the coordinator the
 * endpoint in Hello; the gateway publishes it with the measurement (GET /endpoints). One thread
 * owns that server. It runs a function inline when the function's recent runs were short (under
 * 200 us on average), else hands it to the invocation threads. The writes of inline runs are
 * appended to the capsule in groups (every 2 ms or 256 requests) by a second thread, which also
 * holds a sync function's replies until their group is durable (group commit).
 * Replies from other threads reach the server thread through a queue and a doorbell: an empty
 * message on an in-process channel to the same server, under an ephemeral identity.
 *
 * State: the deployment's memtable (src/kvs) with this worker's id as writer id. With --storage,
 * the worker first fetches the deployment's keys from the coordinator's key manager (released
 * only to an attested worker), then replicates through its DataCapsule and the forwarder
 * (src/worker/repl.h): writes become durable before a sync function replies and before a lock is
 * released, and a lock acquire applies the release vector before the guest continues. */
#ifndef PSL_WORKER_WORKER_H
#define PSL_WORKER_WORKER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct worker_opts {
    const char *coordinator; /* endpoint of the coordinator's channel, e.g. tcp://127.0.0.1:7100 */
    uint64_t id;             /* > 0; the kvs writer id */
    const char *name;        /* for logs; NULL = "worker-ID" */
    const char *dir;         /* private data folder */
    const char *home;        /* tee home (platform key); NULL = tee default */
    const char *policy;      /* policy file the coordinator's report must pass */
    unsigned threads;        /* invocation threads; 0 = 2 */
    const char *storage;    /* comma-separated storage replicas; NULL: state lives in memory only */
    const char *fwd_pub;    /* forwarder XSUB endpoint (publish updates there) */
    const char *fwd_sub;    /* forwarder XPUB endpoint (receive peers' updates there) */
    const char *deployment; /* key manager deployment (NULL = "default") */
    bool no_sandbox;        /* skip the seccomp allow-list (debugging only) */
    uint64_t checkpoint_every;  /* own capsule records between checkpoints (0 = never) */
    uint64_t big_checkpoint_ms; /* least time between multi-record checkpoints (0 = 1800000) */
    uint64_t big_checkpoint_log; /* log bytes that make one due sooner (0 = 4 GiB; repl_opts) */
    bool journal_counter;       /* bind the capsule journal to the tee's counter (repl_opts.tee) */
    const char *client_listen;  /* client-facing channel endpoint (NULL = stream://127.0.0.1:0,
                                 * an ephemeral loopback port on the stream transport; "tcp://..."
                                 * = ZeroMQ; "none" = no client channel) */
    const char *client_keys;    /* client list file (tee_client_list_load): the only identities
                                 * the client channel serves (NULL = any identity) */
} worker_opts;

/* The largest message of the client-facing channel (a ClientInvoke or ClientResult): an 8 MiB
 * body, the default max_request / max_response of a function, plus room for the envelope. */
#define WORKER_CLIENT_MAX_MSG ((8u << 20) + 4096u)

/** Run until SIGINT/SIGTERM. @return 0 on a clean stop, or an ERR_* code (printed) when it could
 * not start (bad policy, enclave). */
int worker_run(const worker_opts *o);

/** `psl forwarder --xsub EP --xpub EP`: the untrusted multicast relay (a ZeroMQ XSUB/XPUB proxy)
 * that carries encrypted update records between workers. Runs until SIGINT/SIGTERM. */
int forwarder_run(const char *xsub, const char *xpub);

#endif
