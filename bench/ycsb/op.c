/* The YCSB client-mode function: one operation per invocation, as a YCSB client's request.
 *   "r KEY"          answers the record stored under KEY (nothing when it is absent);
 *   "w KEY\nRECORD"  stores RECORD under KEY and answers nothing.
 * Any other request, or a failing host call, exits with status 2 (malformed) or 1.
 * One source, two builds (sdk/c/psl_native.h): build/bench/ycsb_op.wasm, a WebAssembly guest,
 * and build/bench/ycsb_op.so, a native function (trusted code the worker dlopen()s, for the
 * "statically compiled" case; docs/guests.md). `psl bench ycsb --target psl-client` deploys the
 * native build and psl-client-wasm the WebAssembly one. No global state: a native function may
 * run on several worker threads at once. */
#include <psl_native.h>

#define OP_VALUE_MAX 4096 /* records are 1000 bytes (bench/ycsb/ycsb.h) */

static int handle(const uint8_t *in, size_t inlen) {
    if (inlen < 3 || in[1] != ' ')
        return 2;
    const uint8_t *key = in + 2;
    if (in[0] == 'r') {
        uint8_t buf[OP_VALUE_MAX];
        int n = psl_get(key, inlen - 2, buf, sizeof buf);
        if (n == PSL_ENOTFOUND)
            return 0;
        if (n < 0 || n > (int)sizeof buf)
            return 1;
        return psl_write(buf, (size_t)n) == 0 ? 0 : 1;
    }
    if (in[0] == 'w') {
        const uint8_t *nl = memchr(key, '\n', inlen - 2);
        if (!nl || nl == key)
            return 2;
        size_t klen = (size_t)(nl - key);
        return psl_put(key, klen, nl + 1, inlen - 2 - klen - 1) == 0 ? 0 : 1;
    }
    return 2;
}

PSL_HANDLER(handle)
