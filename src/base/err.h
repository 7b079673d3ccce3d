/* Project-wide error space.
 * 0 means success. A negative errno passes through unchanged. Project codes sit below ERR_BASE
 * and never collide with errno values. err_str() never returns NULL. */
#ifndef PSL_BASE_ERR_H
#define PSL_BASE_ERR_H

#define ERR_BASE (-20000)
#define ERR_NOTFOUND (ERR_BASE - 1)  /* a normal lookup outcome */
#define ERR_CORRUPT (ERR_BASE - 2)   /* integrity failure: stop using the object */
#define ERR_AUTH (ERR_BASE - 3)      /* MAC, signature or attestation rejected */
#define ERR_TRAP (ERR_BASE - 4)      /* guest trapped; details from the wasm store */
#define ERR_MALFORMED (ERR_BASE - 5) /* input cannot be decoded */
#define ERR_INVALID (ERR_BASE - 6)   /* input decodes but breaks a validation rule */
#define ERR_UNLINKABLE (ERR_BASE - 7) /* imports missing or of the wrong type */
#define ERR_LIMIT (ERR_BASE - 8)     /* a configured limit (memory, size, depth) was hit */
#define ERR_NOMEM (ERR_BASE - 9)     /* allocation failed */
#define ERR_IO (ERR_BASE - 10)       /* file or stream failure; details were logged */
#define ERR_USAGE (ERR_BASE - 11)    /* bad arguments from the caller (CLI, config) */
#define ERR_EXIT (ERR_BASE - 12)     /* guest called proc_exit; status in the store */

const char *err_str(int err);

#endif
