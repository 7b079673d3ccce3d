/* See cli_secure.h. */
#include "cli/cli_secure.h"

#include "cli/cli.h"

#include <curl/curl.h>
#include "cli/http_lazy.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "base/err.h"
#include "crypto/crypto.h"

static int get_endpoints(const char *gateway, cli_buf *out) {
    char url[1024];
    snprintf(url, sizeof url, "%s/endpoints", gateway);
    CURL *h = curl_easy_init();
    if (!h)
        return EXIT_IO;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(h);
    long st = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK) {
        cli_err("cannot reach the gateway at %s: %s", url, curl_easy_strerror(cc));
        return EXIT_IO;
    }
    if (st != 200) {
        cli_err("%s: HTTP %ld (a coordinator without GET /endpoints?)", url, st);
        return EXIT_IO;
    }
    return 0;
}

int cli_secure_init(cli_secure *s, const char *gateway, const char *dir, const char *policy_file,
                    const char *measurement_hex, const char *identity) {
    memset(s, 0, sizeof *s);
    char why[300];
    if (identity) {
        if (cr_init() != 0) {
            cli_err("the crypto library failed to start");
            return EXIT_IO;
        }
        s->id_sk = cr_secure_alloc(CR_SIGN_SK);
        int rc = cli_identity_load(identity, s->id_sk, NULL);
        if (rc) {
            cr_secure_free(s->id_sk);
            s->id_sk = NULL;
            return rc;
        }
    }
    if (measurement_hex) {
        bool ok = strlen(measurement_hex) == 64;
        for (int i = 0; ok && i < 32; i++) {
            unsigned v;
            ok = sscanf(measurement_hex + 2 * i, "%2x", &v) == 1;
            s->meas[i] = (uint8_t)v;
        }
        if (!ok) {
            cli_err("--measurement needs 64 hex digits (psl attest prints a node's)");
            cli_secure_fini(s);
            return EXIT_USAGE;
        }
        s->have_meas = true;
    }
    if (policy_file)
        snprintf(s->policy_path, sizeof s->policy_path, "%s", policy_file);
    else
        snprintf(s->policy_path, sizeof s->policy_path, "%s/policy.txt", dir ? dir : "psl-data");
    if (tee_policy_load(s->policy_path, &s->base, why, sizeof why) != 0) {
        cli_err("cannot load the policy the workers must pass, %s: %s (give --policy FILE: the "
                "deployment's worker policy)",
                s->policy_path, why);
        cli_secure_fini(s);
        return EXIT_USAGE;
    }
    cli_buf g = {0};
    int rc = get_endpoints(gateway, &g);
    if (rc == 0 && cl_endpoints_parse(g.p ? g.p : "", g.n, &s->eps, &s->n, why, sizeof why) != 0) {
        cli_err("%s/endpoints: %s", gateway, why);
        rc = EXIT_IO;
    }
    free(g.p);
    if (rc == 0 && s->n == 0) {
        cli_err("no live worker serves clients over the attested channel (GET %s/endpoints is "
                "empty)",
                gateway);
        rc = EXIT_NOTFOUND;
    }
    if (rc)
        cli_secure_fini(s);
    return rc;
}

int cli_secure_connect(cli_secure *s, size_t i, void *zctx, cl_conn **out, bool quiet) {
    *out = NULL;
    const cl_endpoint *e = &s->eps[i % s->n];
    char why[400];
    tee_policy pol;
    const uint8_t *meas = s->have_meas ? s->meas : e->measurement;
    if (cl_policy_make(&s->base, meas, &pol, why, sizeof why) != 0) {
        cli_err("worker %llu (%s): %s %s", (unsigned long long)e->id, e->endpoint, why,
                s->policy_path);
        return EXIT_FAILED;
    }
    int rc = cl_connect(zctx, e->endpoint, &pol, s->id_sk, out, why, sizeof why);
    tee_policy_fini(&pol);
    if (rc) {
        char hex[65];
        cr_hex(hex, meas, 32);
        if (!quiet)
            cli_err("worker %llu at %s refused: %s (this client demands measurement %s, %s, "
                    "under the policy %s)",
                    (unsigned long long)e->id, e->endpoint, rc == ERR_AUTH ? why : err_str(rc), hex,
                    s->have_meas ? "given with --measurement" : "as published", s->policy_path);
        return rc == ERR_AUTH ? EXIT_FAILED : EXIT_IO;
    }
    return 0;
}

void cli_secure_fini(cli_secure *s) {
    if (s->id_sk)
        cr_secure_free(s->id_sk);
    free(s->eps);
    tee_policy_fini(&s->base);
    memset(s, 0, sizeof *s);
}
