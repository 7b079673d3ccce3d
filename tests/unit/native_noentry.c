/* A shared object that loads but exports no psl_native_main: test_guests checks that deploying it
 * is refused with ERR_UNLINKABLE and a message naming the missing entry point. */
int psl_native_other(int x);
__attribute__((visibility("default"))) int psl_native_other(int x) {
    return x + 1;
}
