/* Page faults the parent takes inside fork(): builds a heap of small blocks (argv[1] MiB),
 * optionally starts an idle thread (argv[3] = 1: glibc's fork then takes its multi-threaded
 * path), forks argv[2] times (each child leaves at once) and prints the median of the minor
 * faults counted inside fork(). Every page that fork's handlers write costs one such fault:
 * fork() write-protects the parent's memory. Then one more child starts a thread that
 * allocates (a thread heap of its own: the allocator's registry, whose lock the handlers of a
 * single-threaded parent leave alone, must be free in the child) and prints "child threads ok"
 * once it is back; an alarm ends a child that hangs. */
#include <alloca.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static long faults(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

static void *idle(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

static void *allocate(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) free(malloc(16 + i));
    return malloc(100);
}

static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Forks n times, each child leaving at once; f[i]: the faults inside the i-th fork(). */
static __attribute__((noinline)) int fork_all(long *f, int n) {
    for (int i = 0; i < n; i++) {
        long before = faults();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        f[i] = faults() - before;
        if (pid < 0 || waitpid(pid, NULL, 0) != pid) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    size_t bytes = (size_t)atol(argv[1]) << 20;
    int n = atoi(argv[2]);
    if (atoi(argv[3])) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0) return 3;
    }
    size_t total = 0, count = 0, cap = bytes / 16 + 1;
    char **keep = malloc(cap * sizeof *keep);
    unsigned long long x = 88172645463325252ULL;
    while (total < bytes && count < cap) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t s = 16 + x % 240;
        char *p = malloc(s);
        if (!p) return 4;
        p[0] = 1; p[s - 1] = 2;
        keep[count++] = p;
        total += s;
    }
    long *f = malloc(n * sizeof *f);
    /* The stack page fork() runs on faults too; where the stack pointer sits in its page
     * depends on the environment's size, so the forks run from near the top of a page, with
     * almost 4 KiB below: fork() and its handlers then touch one stack page, whatever the
     * environment (else a deeper handler would sometimes reach into the next page). */
    char here;
    size_t off = (size_t)&here % 4096;
    volatile char *pad = alloca(off >= 4032 ? off - 4032 + 1 : off + 64 + 1);
    pad[0] = 0;
    if (fork_all(f, n) != 0) return 5;
    qsort(f, n, sizeof *f, cmp);
    printf("@ faults=%ld max=%ld\n", f[n / 2], f[n - 1]);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60); /* a guard against hanging for ever, not a timing check */
        pthread_t t;
        void *r = NULL;
        _exit(pthread_create(&t, NULL, allocate, NULL) || pthread_join(t, &r) || !r ? 7 : 0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("child threads failed: %d\n", st);
        return 6;
    }
    printf("child threads ok\n");
    for (size_t i = 0; i < count; i++) free(keep[i]);
    return 0;
}
