/* Forked children that write: the parent builds a heap of small objects, forks N children
 * (fork without exec, as multiprocessing and prefork servers do); each child checks its copy,
 * writes every object (as Python's reference counts do) and checks it again; the parent
 * rewrites its own meanwhile. A child that dies (SIGBUS when a hugetlb pool runs dry) or finds
 * its copy changed fails the run. Usage: children N MIB. Prints the parent's hugetlb KiB
 * before the forks, then "children ok" or why not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OBJ 1000

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 128;
    size_t count = (mib << 20) / OBJ;
    unsigned char **objs = malloc(count * sizeof *objs);
    for (size_t i = 0; i < count; i++) {
        objs[i] = malloc(OBJ);
        memset(objs[i], (int)(i % 251), OBJ);
    }
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "HugetlbPages:", 13)) printf("hugetlb_kib %ld\n", atol(line + 13));
    if (st) fclose(st);
    fflush(stdout);
    int go[2];
    if (pipe(go)) return 2;
    pid_t pids[64];
    for (int c = 0; c < n; c++) {
        pid_t pid = fork();
        if (pid < 0) return 2;
        if (pid == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) < 0) _exit(4);
            for (size_t i = 0; i < count; i++)
                if (objs[i][0] != i % 251 || objs[i][OBJ - 1] != i % 251) _exit(3);
            for (size_t i = 0; i < count; i++) objs[i][0] = (unsigned char)(objs[i][0] + 1 + c);
            for (size_t i = 0; i < count; i++)
                if (objs[i][0] != (unsigned char)(i % 251 + 1 + c)) _exit(3);
            /* A child allocates too. */
            void *mine = malloc(1 << 20);
            memset(mine, c, 1 << 20);
            free(mine);
            _exit(0);
        }
        pids[c] = pid;
    }
    close(go[0]);
    /* Everyone starts writing at once. */
    for (int c = 0; c < n; c++) (void)!write(go[1], "x", 1);
    for (size_t i = 0; i < count; i++) objs[i][OBJ / 2] = 0xEE;
    int failed = 0;
    for (int c = 0; c < n; c++) {
        int st = 0;
        waitpid(pids[c], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d: %s %d\n", c, WIFSIGNALED(st) ? "killed by signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            failed++;
        }
    }
    for (size_t i = 0; i < count; i++)
        if (objs[i][0] != i % 251 || objs[i][OBJ / 2] != 0xEE) { printf("parent's heap changed\n"); return 1; }
    if (failed) return 1;
    printf("children ok\n");
    return 0;
}
