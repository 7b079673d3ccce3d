/* The CLI's side of invoking over the attested channel (src/client): find the workers' client
 * endpoints through the gateway (GET /endpoints), load the policy the client demands of them,
 * and connect. Used by `psl invoke --secure` and by `psl bench ycsb --target psl-client`.
 * Functions print their errors (cli_err) and return EXIT_* statuses. */
#ifndef PSL_CLI_CLI_SECURE_H
#define PSL_CLI_CLI_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "tee/tee.h"

typedef struct cli_secure {
    cl_endpoint *eps; /* live workers with a client channel */
    size_t n;
    tee_policy base; /* the deployment's worker policy (what the client holds) */
    bool have_meas;  /* --measurement given: demanded of every worker */
    uint8_t meas[32];
    char policy_path[4200];
    uint8_t *id_sk; /* --identity: the client's Ed25519 key (secure memory), or NULL: a fresh
                     * one per connection */
} cli_secure;

/** Fetch @p gateway/endpoints and load the policy: @p policy_file, else DIR/policy.txt (the
 * worker policy `psl up` writes). @p measurement_hex (64 hex digits) or NULL: demand the
 * measurement each worker published. @p identity: a seed file (psl identity) to connect as, or
 * NULL for a fresh identity. @return 0, EXIT_USAGE, EXIT_IO, EXIT_NOTFOUND (no worker serves
 * clients); after a failure nothing is left to free. */
int cli_secure_init(cli_secure *s, const char *gateway, const char *dir, const char *policy_file,
                    const char *measurement_hex, const char *identity);
/** Connect to worker @p i of the list. @return 0, EXIT_FAILED (refused: the reason is printed),
 * EXIT_IO. */
int cli_secure_connect(cli_secure *s, size_t i, void *zctx, cl_conn **out, bool quiet);
void cli_secure_fini(cli_secure *s);

#endif
