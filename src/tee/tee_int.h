/* Private to src/tee: the backend vtable and the tee object. */
#ifndef PSL_TEE_TEE_INT_H
#define PSL_TEE_TEE_INT_H

#include "tee/tee.h"

typedef struct tee_backend_ops {
    const char *name;
    /* Load or create the root of trust under t->home. */
    int (*open)(tee_enclave *t);
    void (*close)(tee_enclave *t);
    /* Sign the first TEE_REPORT_SIGNED_BYTES of the encoding; fill platform_key and sig. */
    int (*sign)(tee_enclave *t, tee_report *r);
    /* 32-byte sealing key for measurement @p m on this platform. */
    void (*seal_key)(tee_enclave *t, const uint8_t m[TEE_MEAS_BYTES], uint8_t key[32]);
    /* Public key that verifiers pin for this platform. */
    void (*platform_key)(const tee_enclave *t, uint8_t out[TEE_KEY_BYTES]);
    /* 32-byte key authenticating counter files. */
    void (*counter_key)(tee_enclave *t, uint8_t key[32]);
} tee_backend_ops;

struct tee_enclave {
    const tee_backend_ops *ops;
    char *home;
    uint8_t meas[TEE_MEAS_BYTES];
    void *backend; /* backend state, in guarded memory */
};

extern const tee_backend_ops tee__sim_ops;

#endif
