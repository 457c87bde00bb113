/* A program that switches THP off for itself, as Ruby 3.1 and Redis do, then builds a heap
 * and touches a mapping of its own. Prints what the kernel says and where THP went:
 *   except_advised=<this kernel takes PR_THP_DISABLE_EXCEPT_ADVISED: 0|1> get=<PR_GET_THP_DISABLE>
 *   heap_thp_kib=<AnonHugePages outside its own mapping> own_thp_kib=<AnonHugePages of it>
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

/* AnonHugePages (KiB) of the mapping starting at `start`, or of all mappings when 0. */
static long anon_huge_kib(unsigned long start) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long sum = 0;
    int in = start == 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        long kib;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = start == 0 || lo == start;
        } else if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) {
            sum += kib;
        }
    }
    if (f) fclose(f);
    return sum;
}

int main(void) {
    /* Whether the kernel knows the flag, asked in a child so that this process's state stays
     * as it is, and by the system call itself (the preload only wraps the libc function). */
    pid_t c = fork();
    if (c == 0) _exit(syscall(SYS_prctl, PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) == 0 ? 0 : 1);
    int st = 0;
    waitpid(c, &st, 0);
    int except_advised = WIFEXITED(st) && WEXITSTATUS(st) == 0;

    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
        perror("prctl");
        return 1;
    }
    int get = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);

    /* 96 MiB of heap, touched. */
    enum { N = 1536 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(64 << 10);
        if (!blocks[i]) return 2;
        memset(blocks[i], i, 64 << 10);
    }
    /* 16 MiB of the program's own, 2 MiB-aligned, not advised, touched. */
    size_t len = 16 << 20;
    char *raw = mmap(NULL, len + (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 3;
    char *own = (char *)(((unsigned long)raw + (2 << 20) - 1) & ~((2UL << 20) - 1));
    if (own > raw) munmap(raw, own - raw);
    munmap(own + len, raw + len + (2 << 20) - (own + len));
    memset(own, 1, len);

    long own_kib = anon_huge_kib((unsigned long)own);
    long all_kib = anon_huge_kib(0);
    printf("except_advised=%d get=%d heap_thp_kib=%ld own_thp_kib=%ld\n", except_advised, get, all_kib - own_kib,
           own_kib);
    for (int i = 0; i < N; i++) free(blocks[i]);
    return 0;
}
