/* The smallest psl function: prints a greeting, then one line per argument it was given.
 * Build: clang-19 --target=wasm32-wasi -O2 hello.c -o hello.wasm; run: psl run hello.wasm */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("Hello from WebAssembly, running in psl!\n");
    for (int i = 1; i < argc; i++)
        printf("arg %d: %s\n", i, argv[i]);
    return 0;
}
