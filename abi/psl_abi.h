/* The guest <-> host ABI of psl, version 1: declarations only, shared by the host (src/host) and
 * the guest SDKs (sdk/). Guests import these functions from the WebAssembly module "psl"; every
 * pointer is an offset into the guest's memory 0 and every length a byte count (i32 on wasm32).
 *
 *   import name  signature (wasm)                  meaning
 *   get          (key, klen, buf, cap) -> i32      value length (copies min(len, cap) bytes) or
 *                                                  PSL_ENOTFOUND
 *   put          (key, klen, val, vlen) -> i32     0 or an error
 *   delete       (key, klen) -> i32                0 or an error (deleting an absent key is 0)
 *   lock         (name, nlen) -> i32               acquire a named lock (release-consistent)
 *   unlock       (name, nlen) -> i32               release it
 *   invoke       (fn, fnlen, in, inlen, out, cap) -> i32
 *                                                  call another deployed function synchronously:
 *                                                  its response length (copies min(len, cap)), or
 *                                                  an error
 *   invoke_async (fn, fnlen, in, inlen) -> i32     fire-and-forget: 0 once queued, or an error
 *   log          (msg, len) -> ()                  one line to the function's log
 *   publish      () -> i32                         send this invocation's writes so far on their
 *                                                  way to the other workers now, without waiting
 *                                                  for them to be durable: 0 or an error
 *
 * Errors are small negative numbers, stable across versions: */
#ifndef PSL_ABI_PSL_ABI_H
#define PSL_ABI_PSL_ABI_H

#define PSL_ABI_VERSION 1

#define PSL_OK 0
#define PSL_ENOTFOUND (-1) /* get: no such key */
#define PSL_EFAULT (-2)    /* a pointer or length lies outside the guest's memory */
#define PSL_ETOOBIG (-3)   /* key, value, name or payload over its limit */
#define PSL_ELOCK (-4)     /* lock: not held (unlock), already held by this call, or lease lost */
#define PSL_ENOFUNC (-5)   /* invoke: no function of that name is deployed */
#define PSL_EFAILED (-6)   /* invoke: the callee trapped, timed out or exited non-zero */
#define PSL_EUNAVAIL (-7)  /* the service behind the call (lock server, storage) is unavailable */
#define PSL_EDEPTH (-8)    /* invoke: nesting too deep */

#define PSL_MAX_KEY 4096
#define PSL_MAX_VALUE (1 << 20)
#define PSL_MAX_LOCK_NAME 256

#endif
