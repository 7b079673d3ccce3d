/* Bank transfers under a lock. Requests:
 *   "open ACCOUNT AMOUNT"      set a balance
 *   "move FROM TO AMOUNT"      transfer under the lock "bank" (refused when funds are short)
 *   "total ACCOUNT..."         sum of balances, read under the lock
 * Balances live in the key-value store as decimal strings under "bank/ACCOUNT". */
#include <psl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long balance(const char *acct) {
    char key[128], val[32] = {0};
    snprintf(key, sizeof key, "bank/%s", acct);
    int n = psl_get(key, strlen(key), val, sizeof val - 1);
    return n >= 0 ? strtol(val, NULL, 10) : 0;
}

static int set_balance(const char *acct, long v) {
    char key[128], val[32];
    snprintf(key, sizeof key, "bank/%s", acct);
    snprintf(val, sizeof val, "%ld", v);
    return psl_put(key, strlen(key), val, strlen(val));
}

int main(void) {
    char req[1024] = {0};
    size_t n = fread(req, 1, sizeof req - 1, stdin);
    req[n] = 0;
    char *argv[16];
    int argc = 0;
    for (char *t = strtok(req, " \n"); t && argc < 16; t = strtok(NULL, " \n"))
        argv[argc++] = t;
    if (argc == 3 && !strcmp(argv[0], "open")) {
        if (psl_lock("bank") != 0)
            return 2;
        int rc = set_balance(argv[1], strtol(argv[2], NULL, 10));
        psl_unlock("bank");
        printf("opened %s\n", argv[1]);
        return rc ? 1 : 0;
    }
    if (argc == 4 && !strcmp(argv[0], "move")) {
        long amount = strtol(argv[3], NULL, 10);
        if (psl_lock("bank") != 0) {
            fprintf(stderr, "lock failed\n");
            return 2;
        }
        long from = balance(argv[1]), to = balance(argv[2]);
        int ok = amount > 0 && from >= amount;
        if (ok) {
            set_balance(argv[1], from - amount);
            set_balance(argv[2], to + amount);
        }
        psl_unlock("bank");
        printf("%s %ld from %s to %s\n", ok ? "moved" : "refused", amount, argv[1], argv[2]);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[0], "total")) {
        if (psl_lock("bank") != 0)
            return 2;
        long sum = 0;
        for (int i = 1; i < argc; i++)
            sum += balance(argv[i]);
        psl_unlock("bank");
        printf("total %ld\n", sum);
        return 0;
    }
    fprintf(stderr, "usage: open ACCOUNT AMOUNT | move FROM TO AMOUNT | total ACCOUNT...\n");
    return 64;
}
