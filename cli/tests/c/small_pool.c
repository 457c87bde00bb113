// A heap that outgrows the small phase (HUGEHEAP_HUGE_FROM) while a 2 MiB pool serves it:
// builds MiB of small objects (argv[1]), with a second thread alive meanwhile if argv[2] is
// "thread"; then reports what the kernel says the process holds and how many of its descriptors
// are hugetlb pool counters, checks every object, and has a forked child check them too. Prints
// "hugetlb_kib=N thp_kib=N pool_fds=N intact=1 child_ok=1".
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fds.h"

static long kib(const char *file, const char *key) {
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = atol(line + n);
    fclose(f);
    return v;
}

static int pipefd[2];

static void *idle(void *arg) {
    (void)arg;
    char b;
    (void)!read(pipefd[0], &b, 1);
    return NULL;
}

static int intact(unsigned char **objs, size_t *sizes, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            if (objs[i][j] != (unsigned char)(i * 7 + j)) return 0;
    return 1;
}

int main(int argc, char **argv) {
    size_t total = (size_t)atol(argv[1]) << 20;
    int thread = argc > 2 && !strcmp(argv[2], "thread");
    pthread_t t;
    if (pipe(pipefd) != 0) return 2;
    if (thread && pthread_create(&t, NULL, idle, NULL) != 0) return 2;
    size_t cap = total / 64 + 16, n = 0, got = 0;
    unsigned char **objs = malloc(cap * sizeof *objs);
    size_t *sizes = malloc(cap * sizeof *sizes);
    while (got < total && n < cap) {
        size_t s = 64 + (n * 131) % 900;
        unsigned char *p = malloc(s);
        if (!p) return 3;
        for (size_t j = 0; j < s; j++) p[j] = (unsigned char)(n * 7 + j);
        objs[n] = p;
        sizes[n++] = s;
        got += s;
    }
    long hugetlb = kib("/proc/self/status", "HugetlbPages:");
    long thp = kib("/proc/self/smaps_rollup", "AnonHugePages:");
    int ok = intact(objs, sizes, n);
    pid_t pid = fork();
    if (pid == 0) _exit(intact(objs, sizes, n) ? 0 : 1);
    int status = 0;
    waitpid(pid, &status, 0);
    if (thread) {
        (void)!write(pipefd[1], "x", 1);
        pthread_join(t, NULL);
    }
    printf("hugetlb_kib=%ld thp_kib=%ld pool_fds=%d intact=%d child_ok=%d\n", hugetlb, thp, fds_naming("/hugepages/"), ok,
           WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return ok ? 0 : 1;
}
