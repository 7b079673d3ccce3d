/* --tier / --no-cache for psl run and psl spectest: registers the JIT tier when it is built in. */
#include "cli/tier.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#ifdef PSL_HAVE_JIT
#include "jit/jit.h"
#endif

int cli_tier_setup(const char *cmd, const char *tier, bool cache) {
    if (!tier || !*tier)
        tier = getenv("PSL_TIER");
    if (!tier || !*tier)
        tier = "interp";
#ifdef PSL_HAVE_JIT
    jit_config cfg = {.tier = JIT_TIER_INTERP};
    if (jit_tier_parse(tier, &cfg.tier) != 0) {
        cli_err("%s: --tier wants interp, jit or auto, got '%s'", cmd, tier);
        return -1;
    }
    cfg.cache_dir = cache ? jit_default_cache_dir() : NULL;
    if (jit_init(&cfg) != 0) {
        cli_err("%s: the JIT tier cannot run on this host", cmd);
        return -1;
    }
    return 0;
#else
    (void)cache;
    if (strcmp(tier, "interp") != 0) {
        cli_err("%s: --tier %s is not available: psl was built without the JIT (-DPSL_JIT=OFF)",
                cmd, tier);
        return -1;
    }
    return 0;
#endif
}
