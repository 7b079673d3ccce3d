/* A WASI command that exercises what psl's WASI layer offers a C program through wasi-libc:
 * argv, environ, stdin, stdout/stderr, clocks, sleep (poll_oneoff), random bytes, the absence of
 * a file system, non-seekable std streams and the exit status. Prints one fact per line. */
#define _DEFAULT_SOURCE /* clock_gettime, nanosleep, getentropy under -std=c17 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        printf("arg %d: %s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        printf("env: %s\n", *e);
    struct timespec t0, t1, pause = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("slept 20 ms: %s\n", ms >= 20 ? "yes" : "no");
    printf("wall clock after 2020: %s\n", time(NULL) > 1577836800 ? "yes" : "no");
    unsigned char r[32] = {0};
    int nz = 0;
    if (getentropy(r, sizeof r) == 0)
        for (size_t i = 0; i < sizeof r; i++)
            nz += r[i] != 0;
    printf("random: %s\n", nz > 16 ? "yes" : "no");
    printf("open /etc/passwd: %s\n", open("/etc/passwd", O_RDONLY) < 0 ? "refused" : "opened");
    errno = 0;
    printf("lseek stdin: %s\n", lseek(0, 0, SEEK_CUR) < 0 && errno == ESPIPE ? "ESPIPE" : "?");
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    printf("stdin: %zu bytes: %.*s\n", n, (int)n, buf);
    fprintf(stderr, "stderr works\n");
    fflush(stdout);
    return argc > 1 ? atoi(argv[argc - 1]) : 0;
}
