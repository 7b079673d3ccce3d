/* A long job that reports its progress through the key-value store. Request: "JOB STEPS MS
 * [quiet]": the job runs STEPS steps of about MS milliseconds each and after every step stores
 * "I/STEPS" under progress/JOB. With psl_publish after each step, the other workers see the
 * progress while the job runs (eventual consistency, no lock); with "quiet" it does not publish,
 * and its writes leave the worker only when the invocation ends. Prints "JOB done STEPS". */
#define _POSIX_C_SOURCE 200809L
#include <psl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(void) {
    char req[256] = {0}, job[128] = {0}, mode[16] = {0};
    size_t n = fread(req, 1, sizeof req - 1, stdin);
    req[n] = 0;
    long steps = 0, ms = 0;
    if (sscanf(req, "%127s %ld %ld %15s", job, &steps, &ms, mode) < 3 || steps < 1 || ms < 0) {
        fprintf(stderr, "usage: JOB STEPS MS [quiet]\n");
        return 64;
    }
    int publish = strcmp(mode, "quiet") != 0;
    char key[160], val[64];
    snprintf(key, sizeof key, "progress/%s", job);
    for (long i = 1; i <= steps; i++) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* the step's work */
        snprintf(val, sizeof val, "%ld/%ld", i, steps);
        if (psl_put(key, strlen(key), val, strlen(val)) != 0) {
            fprintf(stderr, "put failed\n");
            return 1;
        }
        if (publish && psl_publish() != 0) {
            fprintf(stderr, "publish failed\n");
            return 1;
        }
    }
    printf("%s done %ld\n", job, steps);
    return 0;
}
