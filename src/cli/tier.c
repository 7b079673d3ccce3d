/* --tier / --no-cache for psl run and psl spectest: registers the JIT tier when it is built in. */
#include "cli/tier.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#ifdef PSL_HAVE_JIT
#include "jit/jit.h"
#include "platform/platform.h"

#include <stdio.h>

/* The JIT lives in psljit.so beside the psl executable (or $PSL_JIT_MODULE) and is loaded only
 * here: libLLVM's start-up cost is paid only by runs that compile. */
typedef struct jit_api {
    int (*tier_parse)(const char *, jit_tier *);
    int (*init)(const jit_config *);
    const char *(*default_cache_dir)(void);
} jit_api;

static int load_jit(const char *cmd, jit_api *api) {
    char path[4096], why[512];
    const char *env = getenv("PSL_JIT_MODULE");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        if (plat_exe_dir(path, sizeof path - 16) != 0) {
            cli_err("%s: cannot find the folder of the psl executable", cmd);
            return -1;
        }
        strcat(path, "/psljit.so");
    }
    void *h = plat_module_open(path, why, sizeof why);
    if (!h) {
        cli_err("%s: cannot load the JIT module %s: %s", cmd, path, why);
        return -1;
    }
    *(void **)&api->tier_parse = plat_module_sym(h, "jit_tier_parse");
    *(void **)&api->init = plat_module_sym(h, "jit_init");
    *(void **)&api->default_cache_dir = plat_module_sym(h, "jit_default_cache_dir");
    if (!api->tier_parse || !api->init || !api->default_cache_dir) {
        cli_err("%s: %s is not a psl JIT module", cmd, path);
        return -1;
    }
    return 0;
}
#endif

int cli_tier_setup(const char *cmd, const char *tier, bool cache) {
    if (!tier || !*tier)
        tier = getenv("PSL_TIER");
    if (!tier || !*tier)
        tier = "interp";
#ifdef PSL_HAVE_JIT
    if (strcmp(tier, "interp") == 0)
        return 0; /* the interpreter needs no module */
    if (strcmp(tier, "jit") != 0 && strcmp(tier, "auto") != 0) {
        cli_err("%s: --tier wants interp, jit or auto, got '%s'", cmd, tier);
        return -1;
    }
    jit_api api;
    if (load_jit(cmd, &api) != 0)
        return -1;
    jit_config cfg = {.tier = JIT_TIER_INTERP};
    if (api.tier_parse(tier, &cfg.tier) != 0) {
        cli_err("%s: --tier wants interp, jit or auto, got '%s'", cmd, tier);
        return -1;
    }
    cfg.cache_dir = cache ? api.default_cache_dir() : NULL;
    if (api.init(&cfg) != 0) {
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
