/* Small always-available helpers: branch hints, always-on assertions, the misuse hook.
 * ASSERT stays on in release builds: it guards invariants whose violation would break memory
 * safety or integrity. Never ASSERT on untrusted input; return an ERR_* code instead. */
#ifndef PSL_BASE_BASE_H
#define PSL_BASE_BASE_H

#include <stddef.h>
#include <stdint.h>

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WARN_UNUSED __attribute__((warn_unused_result))
#define NORETURN __attribute__((noreturn))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

NORETURN void base_panic(const char *file, int line, const char *what);

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (UNLIKELY(!(c)))                                                                        \
            base_panic(__FILE__, __LINE__, #c);                                                    \
    } while (0)

#ifdef NDEBUG
#define DASSERT(c) ((void)0)
#else
#define DASSERT(c) ASSERT(c)
#endif

/* Allocation that aborts on out-of-memory (as Redis does): callers never see NULL. Use for
 * bookkeeping whose size the host controls. Sizes that untrusted input controls must be bounded
 * by a limit before they get here. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
