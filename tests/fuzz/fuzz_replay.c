/* Replay driver for fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once over every
 * file named on the command line and every regular file directly inside a named directory (in
 * name order, so a failure is reproducible; *.md files are skipped). CTest runs it over
 * tests/regress and the seed corpus, in the normal and the ASan+UBSan trees, so every crash the
 * fuzzer ever found stays fixed. An input that runs longer than REPLAY_MAX_MS is reported too:
 * the target bounds every call by a 20 ms budget, so a slow input means a limit was bypassed.
 * Exit status 0 when every input ran in time; 1 when one was slow; 2 when an argument cannot be
 * read. A crash shows as an abort or a sanitizer report, never as a quiet pass. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The target makes at most 17 bounded calls (start + 16 exports) of 20 ms: 2 s is generous even
 * for a sanitizer build on a busy machine. */
#define REPLAY_MAX_MS 2000

static int g_slow;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so ASan catches a read one past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    double t0 = now_ms();
    LLVMFuzzerTestOneInput(exact, len);
    double dt = now_ms() - t0;
    if (dt > REPLAY_MAX_MS) {
        fprintf(stderr, "%s: SLOW, %.0f ms (limit %d ms): a time limit was bypassed\n", path, dt,
                REPLAY_MAX_MS);
        g_slow++;
    }
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of dir; returns how many ran, or -1. */
static long replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || (len > 3 && strcmp(e->d_name + len - 3, ".md") == 0))
            continue; /* hidden files and the folder's README.md */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                abort();
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n])
            abort();
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    long ran = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay_file(path) == 0)
            ran++;
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv) {
    long total = 0;
    int status = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            status = 2;
            continue;
        }
        long ran = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) ? -1 : 1);
        if (ran < 0) {
            status = 2;
            continue;
        }
        printf("%s: %ld inputs replayed\n", argv[i], ran);
        total += ran;
    }
    printf("%ld inputs replayed without a crash, %d too slow\n", total, g_slow);
    if (status == 0 && g_slow)
        status = 1;
    return status;
}
