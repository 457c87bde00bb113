/* Runs the heap out of memory and carries on: 1 MiB blocks, each written, until malloc returns
 * NULL (at most argv[1] MiB); then the failure codes of the other entry points; then frees half
 * and allocates again. Prints "@blocks=N errno_ok=1 again=M other_ok=1 data_ok=1". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1 << 20)

int main(int argc, char **argv) {
    long max = argc > 1 ? atol(argv[1]) : 4096;
    static char *blocks[1 << 16];
    long n = 0;
    int errno_ok = 0;
    while (n < max) {
        errno = 0;
        char *p = malloc(MIB);
        if (!p) {
            errno_ok = errno == ENOMEM;
            break;
        }
        memset(p, (int)(n & 0xff), MIB);
        blocks[n++] = p;
    }
    /* Out of memory now: every entry point says so cleanly. */
    int other_ok = 1;
    if (n < max) {
        void *q = NULL;
        errno = 0;
        other_ok &= calloc(MIB, 1) == NULL && errno == ENOMEM;
        other_ok &= posix_memalign(&q, 4096, MIB) == ENOMEM;
        errno = 0;
        char *r = realloc(blocks[0], 64 * MIB);
        other_ok &= r == NULL && errno == ENOMEM; /* and blocks[0] untouched */
    }
    /* Nothing lost: every block still holds what was written. */
    int data_ok = 1;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < MIB; j += 4096) data_ok &= blocks[i][j] == (char)(i & 0xff);
    for (long i = 0; i < n; i += 2) free(blocks[i]);
    long again = 0;
    for (long i = 0; i < n; i += 2) {
        char *p = malloc(MIB);
        if (!p) break;
        memset(p, 7, MIB);
        blocks[i] = p;
        again++;
    }
    printf("@blocks=%ld errno_ok=%d again=%ld other_ok=%d data_ok=%d\n", n, errno_ok, again, other_ok, data_ok);
    return 0;
}
