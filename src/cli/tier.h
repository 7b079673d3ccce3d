/* Execution tier selection shared by psl run and psl spectest (--tier, --no-cache). Without the
 * JIT in the build (-DPSL_JIT=OFF) only "interp" is accepted. */
#ifndef PSL_CLI_TIER_H
#define PSL_CLI_TIER_H

#include <stdbool.h>
#include <stddef.h>

/* Help text lines for the two options (each ends in a newline). */
#define CLI_TIER_HELP                                                                              \
    "  --tier T            interp, jit (compile each module with LLVM before running, or link\n"   \
    "                      it from the code cache without LLVM) or auto (start interpreted,\n"     \
    "                      compile hot functions in the background);\n"                            \
    "                      default $PSL_TIER, else interp\n"                                       \
    "  --no-cache          do not use the JIT code cache ($PSL_CACHE_DIR, else "                   \
    "~/.cache/psl/jit)\n"

/** Select the tier before any module is loaded. @p tier may be NULL (then $PSL_TIER or interp).
 * Prints a one-line error and returns -1 on an unknown or unavailable tier; 0 otherwise. */
int cli_tier_setup(const char *cmd, const char *tier, bool cache);

/** Where the JIT module is looked for: $PSL_JIT_MODULE, else psljit.so beside the psl executable.
 * @return 0, or -1 when the executable's folder cannot be found or the path does not fit. */
int cli_jit_module_path(char *path, size_t len);
/** Whether the JIT module is there to load (a build with -DPSL_JIT=OFF has none). */
bool cli_jit_available(void);

/** Call first in main: when psl was started as the JIT's compiler process (argv[1] is
 * JIT_COMPILER_ARG, by jit_compiler_start under --tier auto), serves as that and never returns;
 * otherwise returns at once. */
void cli_tier_compiler_main(int argc, char **argv);

/** Call with a command's exit status when it is done (every module freed). If the JIT module is
 * still being loaded in the background (--tier auto), flushes stdout and stderr and ends the
 * process at once with _exit(status): no atexit handler or library destructor runs, and the run
 * does not wait for LLVM. Otherwise returns @p status. */
int cli_tier_finish(int status);

#endif
