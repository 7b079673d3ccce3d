/* Process hardening for trusted roles: prctl/rlimit at start-up, and the seccomp-bpf allow-list
 * (libseccomp) that a worker installs once it has opened its files and sockets.
 * Invariant: the allow-list only grows through the documented TEE_SB_* flags; anything that
 * starts programs, debugs processes or changes the system is never on it. */
#include "tee/tee.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "base/err.h"

int tee_harden_process(void) {
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        return -errno;
    /* Not dumpable: no core files, /proc/PID/mem and ptrace denied to same-uid processes. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    return 0;
}

/* Always allowed: computing, memory, time, signals for our own process, polling, exiting, and
 * I/O on descriptors that are already open. */
static const char *const base_calls[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "fstat", "newfstatat",
    "lseek", "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "mlock", "munlock",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "futex", "nanosleep",
    "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "getpid", "gettid",
    "getuid", "geteuid", "getgid", "getegid", "getrandom", "exit", "exit_group", "sched_yield",
    "sched_getaffinity", "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "eventfd2", "pipe2", "fcntl", "dup", "dup3", "restart_syscall",
    "set_robust_list", "rseq", "tgkill", "getrusage", "ioctl", "uname", "prlimit64",
};
static const char *const net_calls[] = {
    "socket", "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "getsockname", "getpeername", "setsockopt", "getsockopt", "shutdown",
    "socketpair",
};
static const char *const file_calls[] = {
    "openat", "open", "unlink", "unlinkat", "rename", "renameat", "renameat2", "fsync",
    "fdatasync", "mkdir", "mkdirat", "rmdir", "ftruncate", "statx", "getdents64", "readlink", "access",
    "faccessat", "faccessat2", "flock", "fallocate", "link", "linkat",
};

static int allow_all(scmp_filter_ctx ctx, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int tee_sandbox_install(unsigned flags) {
    uint32_t deny = (flags & TEE_SB_ERRNO) ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (!ctx)
        return -ENOMEM;
    int rc = allow_all(ctx, base_calls, ARRAY_LEN(base_calls));
    if (!rc && (flags & TEE_SB_NET))
        rc = allow_all(ctx, net_calls, ARRAY_LEN(net_calls));
    if (!rc && (flags & TEE_SB_FILES))
        rc = allow_all(ctx, file_calls, ARRAY_LEN(file_calls));
    if (!rc && (flags & TEE_SB_THREADS)) {
        /* Threads only: clone must carry CLONE_THREAD (so no fork). clone3 passes its flags in
         * memory the filter cannot read: make it fail with ENOSYS so glibc falls back to clone. */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_setaffinity), 0);
        /* Thread libraries (ZeroMQ's I/O threads) read their scheduling parameters and name
         * their threads: allow exactly that, not the rest of prctl. */
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_getparam), 0);
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_getscheduler), 0);
        if (!rc) /* ZeroMQ re-applies the default policy to its threads: only that one */
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_setscheduler), 1,
                                  SCMP_A1(SCMP_CMP_EQ, SCHED_OTHER));
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                  SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                  SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    }
    if (!rc)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (!rc)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (!rc)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}
