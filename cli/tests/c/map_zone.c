/* A program's own small anonymous mappings, as interpreters make them: Ruby-style 32 KiB
 * mappings cut down to an aligned 16 KiB, CPython-style 1 MiB arenas; checked for what the
 * kernel promises (zeroed, independent, unmapped in part, moved, protected), with threads
 * mapping while the main thread forks. Prints "huge_kib=N freed_kib=N reused=0|1" (the
 * AnonHugePages of the arenas' mappings, the RSS their unmapping gave back, whether a mapping
 * was placed where one advised MADV_DONTFORK had been) and "ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } while (0)
enum { PIECES = 600, PIECE = 16 << 10, ARENAS = 64, ARENA = 1 << 20 };
static char *pieces[PIECES];

/* The number of a `Field: N kB` line of /proc/self/<file>, or -1. */
static long field_kib(const char *file, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

/* AnonHugePages (KiB) of the mappings that hold any of `ptrs`: the program's own, not the
 * heap's, whose huge pages come and go meanwhile. */
static long huge_kib_of(char **ptrs, int n) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long sum = 0;
    int in = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        long kib;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = 0;
            for (int i = 0; i < n; i++)
                if ((unsigned long)ptrs[i] >= lo && (unsigned long)ptrs[i] < hi) in = 1;
        } else if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) {
            sum += kib;
        }
    }
    if (f) fclose(f);
    return sum;
}

static int zero(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Ruby 3.1's heap page: map twice the size, keep the aligned part, unmap the rest. */
static char *ruby_page(void) {
    char *p = mmap(NULL, 2 * PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) FAIL("mmap 32 KiB");
    if (!zero(p, 2 * PIECE)) FAIL("a new mapping is not zeroed");
    char *aligned = (char *)(((unsigned long)p + PIECE) & ~(unsigned long)(PIECE - 1));
    size_t head = aligned - p, tail = PIECE - head;
    if (head && munmap(p, head)) FAIL("munmap head");
    if (tail && munmap(aligned + PIECE, tail)) FAIL("munmap tail");
    return aligned;
}

static volatile int stop;
static void *mapper(void *arg) {
    (void)arg;
    while (!stop) {
        char *p = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) FAIL("mmap in a thread");
        if (!zero(p, 64 << 10)) FAIL("a thread's new mapping is not zeroed");
        memset(p, 7, 64 << 10);
        munmap(p, 64 << 10);
    }
    return NULL;
}

int main(void) {
    for (int i = 0; i < PIECES; i++) {
        pieces[i] = ruby_page();
        memset(pieces[i], i % 251 + 1, PIECE);
    }
    for (int i = 0; i < PIECES; i++)
        for (int j = 0; j < PIECE; j += 512)
            if ((unsigned char)pieces[i][j] != i % 251 + 1) FAIL("piece %d overwritten", i);
    /* Half of them unmapped; new ones read as zeroes where old ones were written. */
    for (int i = 0; i < PIECES; i += 2) munmap(pieces[i], PIECE);
    for (int i = 0; i < PIECES; i += 2) {
        pieces[i] = ruby_page();
        memset(pieces[i], i % 251 + 1, PIECE);
    }
    for (int i = 1; i < PIECES; i += 2)
        if ((unsigned char)pieces[i][PIECE - 1] != i % 251 + 1) FAIL("piece %d changed by its neighbours' reuse", i);
    /* Unmapping twice is allowed and must not hand the pages out twice. */
    munmap(pieces[0], PIECE);
    if (munmap(pieces[0], PIECE)) FAIL("a second munmap failed");
    char *a = ruby_page(), *b = ruby_page();
    memset(a, 1, PIECE);
    if (!zero(b, PIECE)) FAIL("a page was handed out twice");
    /* mremap: grow (moving), shrink. */
    char *g = mremap(pieces[1], PIECE, 3 * PIECE, MREMAP_MAYMOVE);
    if (g == MAP_FAILED) FAIL("mremap grow");
    if (g[0] != 2 || g[PIECE - 1] != 2 || !zero(g + PIECE, 2 * PIECE)) FAIL("mremap lost contents");
    if (mremap(g, 3 * PIECE, PIECE, 0) != g || g[100] != 2) FAIL("mremap shrink");
    /* mprotect, then unmap: the pages come back writable. */
    if (mprotect(pieces[3], PIECE, PROT_READ)) FAIL("mprotect");
    munmap(pieces[3], PIECE);
    for (int i = 0; i < 8; i++) memset(ruby_page(), 9, PIECE);
    /* Advice that outlives the contents, then unmap: a new mapping in the same place is
     * copied by fork like any other. */
    char *dontfork = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dontfork == MAP_FAILED || madvise(dontfork, 64 << 10, MADV_DONTFORK)) FAIL("madvise");
    munmap(dontfork, 64 << 10);
    char *again[64];
    int reused = 0, n_again = 0;
    while (n_again < 64 && !reused) {
        again[n_again] = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (again[n_again] == MAP_FAILED) FAIL("mmap 64 KiB");
        memset(again[n_again], 5, 64 << 10);
        reused = again[n_again++] == dontfork;
    }
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < n_again; i++)
            if (again[i][100] != 5) _exit(4);
        _exit(0);
    }
    int cst;
    waitpid(c, &cst, 0);
    if (!WIFEXITED(cst) || WEXITSTATUS(cst)) FAIL("a new mapping was not copied by fork (status %d)", cst);

    /* CPython-style arenas: touched whole, then unmapped: their memory goes back. */
    char *arenas[ARENAS];
    for (int i = 0; i < ARENAS; i++) {
        arenas[i] = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arenas[i] == MAP_FAILED) FAIL("mmap 1 MiB");
        memset(arenas[i], 3, ARENA);
    }
    long huge = huge_kib_of(arenas, ARENAS);
    long rss_full = field_kib("status", "VmRSS:");
    for (int i = 0; i < ARENAS; i++) munmap(arenas[i], ARENA);
    long freed = rss_full - field_kib("status", "VmRSS:");

    /* Threads map and unmap while the main thread forks: no child hangs. */
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, mapper, NULL);
    for (int i = 0; i < 40; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED || !zero(p, 64 << 10)) _exit(3);
            munmap(p, 64 << 10);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) FAIL("child %d", i);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("huge_kib=%ld freed_kib=%ld reused=%d\nok\n", huge, freed, reused);
    return 0;
}
