/* A heap written all over by a thread while the main thread forks: `keepup MIB loop` forks and
 * execs /bin/true back to back until SIGTERM (a job runner under writes); `keepup MIB spaced N
 * SECS` forks N times, SECS apart, the child living 100 ms (a snapshot now and then). Prints
 * "cycles=N" at the end. While each child still shares the heap, the main thread itself writes
 * into objects all over it, so that pages split whether or not the writer thread gets a CPU
 * then (a busy machine). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char **objs;
static size_t nobjs;
static volatile sig_atomic_t stop;
static volatile int writer_stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static void *writer(void *arg) {
    (void)arg;
    unsigned long long x = 88172645463325252ULL;
    while (!writer_stop) {
        for (int i = 0; i < 256; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            objs[x % nobjs][(x >> 40) % 64] += 1;
        }
    }
    return NULL;
}

/* Writes one byte in `n` objects spread over the heap. */
static void write_spread(size_t n) {
    size_t step = nobjs / n ? nobjs / n : 1;
    for (size_t i = 0; i < nobjs; i += step) objs[i][0] += 1;
}

/* Forks a child that waits `child_us` and then execs /bin/true (or exits, with `exec_it` 0),
 * writing over the heap while it waits. */
static void fork_child(unsigned child_us, int exec_it) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(child_us);
        if (exec_it) execl("/bin/true", "true", (char *)NULL);
        _exit(exec_it ? 127 : 0);
    }
    write_spread(4096);
    int st;
    waitpid(pid, &st, 0);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    size_t mib = strtoul(argv[1], NULL, 10);
    nobjs = (mib << 20) / 128;
    objs = malloc(nobjs * sizeof *objs);
    for (size_t i = 0; i < nobjs; i++) {
        objs[i] = malloc(64 + i % 128);
        memset(objs[i], 1, 64);
    }
    signal(SIGTERM, on_term);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    long cycles = 0;
    if (strcmp(argv[2], "loop") == 0) {
        while (!stop) { fork_child(2000, 1); cycles++; }
    } else {
        int n = argc > 3 ? atoi(argv[3]) : 5, secs = argc > 4 ? atoi(argv[4]) : 3;
        for (int i = 0; i < n; i++) { sleep(secs); fork_child(100000, 0); cycles++; }
        sleep(secs);
    }
    writer_stop = 1;
    pthread_join(t, NULL);
    printf("cycles=%ld\n", cycles);
    return 0;
}
