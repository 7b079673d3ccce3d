/* keymgr: the coordinator's key manager. It holds each deployment's secrets and hands them only
 * to workers whose attestation report passes that deployment's policy, over the attested secure
 * channel.
 *
 * A deployment's secrets: the capsule encryption key (32 bytes) and a signing root from which
 * each worker's Ed25519 record-signing seed is derived: seed(w) = KDF(root, "psl-worker-sign-v1",
 * worker id), so every worker writes its own capsule with its own key and the coordinator can
 * recompute any worker's public key.
 * At rest: HOME/deployments/NAME.sealed = tee_seal(label "psl-deployment:NAME", version ||
 * capsule key || signing root || worker policy text). Sealing binds the coordinator's measurement
 * and platform, so the host can neither read the secrets nor swap the policy. The version equals
 * the tee monotonic counter "deploy.NAME" at creation; an older file is reported as a rollback.
 *
 * Refusals name the reason: unknown deployment, peer not attested (identity only), report
 * rejected by the deployment policy (with the policy's reason), damaged or rolled-back state.
 * Errors: 0 or negative codes from base/err.h. Not thread safe: one key manager per thread. */
#ifndef PSL_COORD_KEYMGR_H
#define PSL_COORD_KEYMGR_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "net/net.h"
#include "tee/tee.h"

#define KM_NAME_MAX 64

typedef struct km km;

/** A key manager over enclave @p t (borrowed; must outlive the key manager). */
km *km_new(tee_enclave *t);
void km_free(km *k);

/** Create deployment @p name ([A-Za-z0-9._-], up to 64 chars) with fresh secrets, accepting
 * workers that pass @p worker_policy, and seal it under HOME/deployments.
 * @return 0, ERR_USAGE (bad name), ERR_INVALID (it exists already), ERR_IO. */
int km_deployment_create(km *k, const char *name, const tee_policy *worker_policy, char *why,
                         size_t whylen) WARN_UNUSED;

/** Answer one KeyRequest received on @p s from @p peer (net_server_recv). Always replies (secrets
 * or a refusal with its reason) and logs refusals on stderr.
 * @return 0 when secrets were released, ERR_AUTH when refused, another code on bad input. */
int km_handle(km *k, net_server *s, uint64_t peer, const uint8_t *req, size_t len);

/** Worker side: secrets released to this worker. Lives in guarded memory (km_secrets_free). */
typedef struct km_secrets {
    uint8_t capsule_key[32];
    uint8_t sign_seed[32];
    uint8_t sign_pk[32];
    uint64_t version;
} km_secrets;

/** Ask the coordinator at the other end of @p c for deployment @p name's secrets as @p worker.
 * @param[out] out guarded memory on success.
 * @return 0, ERR_AUTH (refused: the reason is in @p why), -ETIMEDOUT, or a channel error. */
int km_fetch(net_chan *c, const char *name, const char *worker, km_secrets **out, char *why,
             size_t whylen) WARN_UNUSED;
void km_secrets_free(km_secrets *s);

#endif
