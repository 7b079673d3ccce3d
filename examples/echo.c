/* Request in, response out: copies stdin (the request body) to stdout (the response) unchanged.
 * Exercises WASI fd_read on stdin and fd_write on stdout with buffers of any size. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    static char buf[16384];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0) {
            perror("echo: read");
            return 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w <= 0) {
                perror("echo: write");
                return 1;
            }
            off += w;
        }
    }
}
