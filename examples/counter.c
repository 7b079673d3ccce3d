/* A stateful counter. The request body names a counter (default "hits") and optionally an amount
 * after a space ("hits 5"); the function adds the amount (default 1) to the counter stored in the
 * key-value store and prints the new value. A guest global counts runs of this instance: it must
 * always print 1, because every invocation starts from a fresh instance state. */
#include <psl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int runs;

int main(void) {
    char req[256] = {0};
    size_t n = fread(req, 1, sizeof req - 1, stdin);
    req[n] = 0;
    char *nl = strchr(req, '\n');
    if (nl)
        *nl = 0;
    long amount = 1;
    char *sp = strchr(req, ' ');
    if (sp) {
        *sp = 0;
        amount = strtol(sp + 1, NULL, 10);
    }
    const char *name = req[0] ? req : "hits";
    char key[300];
    snprintf(key, sizeof key, "counter/%s", name);

    char val[32] = {0};
    int len = psl_get(key, strlen(key), val, sizeof val - 1);
    long cur = len >= 0 ? strtol(val, NULL, 10) : 0;
    cur += amount;
    snprintf(val, sizeof val, "%ld", cur);
    if (psl_put(key, strlen(key), val, strlen(val)) != 0) {
        fprintf(stderr, "put failed\n");
        return 1;
    }
    runs++;
    printf("%s=%ld (instance run %d)\n", name, cur, runs);
    return 0;
}
