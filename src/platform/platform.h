/* The only place for OS-specific code: clocks, virtual memory with W^X, files.
 * Functions return 0 or a negative errno unless documented otherwise. */
#ifndef PSL_PLATFORM_PLATFORM_H
#define PSL_PLATFORM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in nanoseconds. */
uint64_t plat_now_ns(void);
/* Wall clock (realtime) in nanoseconds since the epoch. */
uint64_t plat_realtime_ns(void);
/** Name the calling thread (at most 15 bytes shown) for ps, top, perf and gdb. */
void plat_thread_name(const char *name);
size_t plat_page_size(void);
/** Give the allocator's free memory back to the system (glibc keeps what threads freed in their
 * arenas). Takes the allocator's locks for a moment: call it now and then, not per request. */
void plat_memory_trim(void);
/** Serve blocks of up to 32 MiB from the heap and keep up to 64 MiB of free heap instead of
 * returning them to the kernel (glibc's mmap and trim thresholds; no-op elsewhere). For daemons
 * that allocate and free megabyte buffers per request, which otherwise map, fault in and zero
 * every page of every such buffer: a storage replica (LMDB's overflow pages, ZeroMQ's message
 * buffers) took 1,000-32,000 page faults per 4 s under in-function YCSB A, 200-1,800 with it. */
void plat_memory_keep_large(void);

/* Reserve @p len bytes of address space with no access. Returns NULL on failure. */
void *plat_vm_reserve(size_t len);
/* Make [p, p+len) readable and writable (zero-filled the first time). 0 or -errno. */
int plat_vm_commit(void *p, size_t len);
/* Make [p, p+len) read+execute and never writable again (W^X). 0 or -errno. */
int plat_vm_protect_exec(void *p, size_t len);
/* Make [p, p+len) read-only (constants of generated code once relocated). 0 or -errno. */
int plat_vm_protect_read(void *p, size_t len);
/* Return [p, p+len) to no-access and drop its contents. 0 or -errno. */
int plat_vm_decommit(void *p, size_t len);
void plat_vm_release(void *p, size_t len);
/* Leave [p, p+len) out of the address space of children forked from now on (madvise
 * MADV_DONTFORK; the mapping keeps the mark until it is replaced, e.g. by plat_vm_decommit):
 * their pages are then neither copied on write in this process nor mapped in the child, which
 * must not touch them. 0 or -errno. */
int plat_vm_no_fork(void *p, size_t len);

/** Read a whole file. @param[out] data malloc'd, caller frees. 0 or -errno. */
int plat_read_file(const char *path, uint8_t **data, size_t *len);
/** Read all of a file descriptor (e.g. stdin) up to max bytes. -EFBIG when larger. */
int plat_read_fd(int fd, size_t max, uint8_t **data, size_t *len);
/** The folder holding the running executable, into @p buf (NUL-terminated).
 * @return 0 or -errno (-ENAMETOOLONG when it does not fit). */
int plat_exe_dir(char *buf, size_t len);
/** Load a shared object by path (dlopen, symbols local, bound now) and look symbols up in it.
 * @return the handle, or NULL with the loader's message in @p why. */
void *plat_module_open(const char *path, char *why, size_t whylen);
void *plat_module_sym(void *module, const char *name);
/** Look a symbol up in the process's global scope (the executable and the libraries it loaded
 * at start, as the dynamic linker would resolve it). @return its address or NULL. */
void *plat_process_sym(const char *name);

/* Memory faults (SIGSEGV, SIGBUS) claimed by a callback, for guard-region bounds checks.
 * The callback runs in the signal handler, on the thread's alternate stack when it has one: it
 * must be async-signal-safe and either leave by siglongjmp (claiming the fault) or return 0.
 * @p addr is the faulting data address, @p pc the faulting instruction (0 when unknown). */
typedef int (*plat_fault_fn)(void *addr, uintptr_t pc);
/** Install fn as the process's SIGSEGV/SIGBUS handler (SA_SIGINFO | SA_ONSTACK | SA_NODEFER).
 * Faults fn does not claim go to the handler installed before (for instance a sanitizer's), or
 * get the default action (the fault repeats and kills the process with the usual signal).
 * Idempotent for the same fn, except that a handler someone installed over it since is then
 * chained in turn. @return 0 or -errno; -EBUSY when another fn is installed. */
int plat_fault_handler_install(plat_fault_fn fn);
/** Give the calling thread an alternate signal stack if it has none, so a fault handler can run
 * when the thread's own stack is exhausted; freed when the thread exits. @return 0 or -errno. */
int plat_fault_altstack(void);

/* Asynchronous interruption of a thread running generated code (the JIT's time budget): a
 * signal (SIGURG, ignored by default) delivered to one thread; the callback runs in its handler
 * (alternate stack, async-signal-safe only) with the interrupted instruction's address and may
 * leave by siglongjmp. */
typedef void (*plat_interrupt_fn)(uintptr_t pc);
/** Install fn as the interrupt signal's handler (SA_RESTART, so interrupted system calls
 * resume). Idempotent for the same fn. @return 0 or -errno; -EBUSY for another fn. */
int plat_interrupt_install(plat_interrupt_fn fn);
/* The calling thread's id for plat_interrupt_send. */
uintptr_t plat_thread_self(void);
/** Deliver the interrupt signal to thread t. @return 0 or -errno (-ESRCH: it has exited). */
int plat_interrupt_send(uintptr_t t);

/* The CPU's identification words (x86-64: vendor, family/model/stepping and the feature leaves
 * of CPUID, with the per-core APIC id masked out, and XCR0): the same words on every core of
 * every machine whose CPU a code generator would treat alike. */
#define PLAT_CPU_ID_WORDS 64
/** Fill words with the CPU's identification. @return how many were written (0 on other
 * architectures). */
size_t plat_cpu_identity(uint32_t *words, size_t max);

/* True in AddressSanitizer builds: their leak checker forks a tracer at exit, which a seccomp
 * allow-list without fork would kill, so sandboxes stay off there. */
int plat_sanitizer_build(void);
/* Fill buf with cryptographically secure random bytes (getrandom). 0 or -errno. */
int plat_random(void *buf, size_t len);

#endif
