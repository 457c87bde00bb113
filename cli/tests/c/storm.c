/* Threads allocate and free while the main thread forks in a loop; every child allocates,
   frees and exits 0. A child that hangs is killed by its alarm, which fails the run. A quarter
   of the workers' blocks, and some of each child's, are of the classes past 4 KiB, whose
   slabs the threads share under per-class locks: a fork while a worker holds one must leave
   the child able to take it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *worker(void *arg) {
    void *keep[512] = {0};
    unsigned x = (unsigned)(size_t)arg * 2654435761u + 1;
    while (!atomic_load(&stop)) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int i = x % 512;
        free(keep[i]);
        size_t n = (x >> 10) % 100 == 0 ? (x % (4 << 20)) + 1
                 : (x >> 10) % 4 == 0   ? 4097 + (x >> 9) % 60000
                                        : (x >> 9) % 2000 + 1;
        keep[i] = malloc(n);
        memset(keep[i], i, n < 64 ? n : 64);
    }
    for (int i = 0; i < 512; i++) free(keep[i]);
    return NULL;
}

int main(void) {
    /* The heap passes hugeheap's quiet size here, before any fork, so that the start-up line
     * (`--verbose`) is this process's: a child whose heap passed it first would say it with
     * its own pid, which happened when a loaded machine ran the fork loop before the workers. */
    char *volatile warm = malloc(16 << 20); /* volatile: the compiler may not drop the pair */
    memset((char *)warm, 1, 16 << 20);
    free((char *)warm);
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    int bad = 0;
    for (int round = 0; round < 200; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            char *v[1000];
            for (int i = 0; i < 1000; i++) { v[i] = malloc(i + 1); memset(v[i], 1, i + 1); }
            for (int i = 0; i < 1000; i++) free(v[i]);
            for (int i = 0; i < 200; i++) { v[i] = malloc(4097 + i * 300); memset(v[i], 3, 4097); }
            for (int i = 0; i < 200; i++) free(v[i]);
            void *big = malloc(8 << 20);
            memset(big, 2, 8 << 20);
            free(big);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "round %d: child status %d\n", round, st); bad++; }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    if (bad) return 1;
    puts("storm ok");
    return 0;
}
