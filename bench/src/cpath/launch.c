/* Runs a command and reports what it cost: `launch FILE CMD ARGS...` forks, execs CMD, waits,
 * writes "<ru_maxrss in KiB> <user us> <system us> <minor faults> <THP faults> <THP collapses>\n"
 * to FILE and exits with CMD's status.
 *
 * The kernel keeps the larger of the peak RSS of the process before its exec and after;
 * forking from this small program, not from the benchmark (or with vfork, whose child shares
 * the parent's memory), keeps the "before" part at this program's size, about a MiB.
 *
 * Minor faults count a huge page faulted in as one fault. The kernel counts THP faults and
 * collapses (huge pages filled by copying 4 KiB ones, `MADV_COLLAPSE` or khugepaged) only for
 * the whole machine (`thp_fault_alloc`, `thp_collapse_alloc` in /proc/vmstat), so the last two
 * figures are those counters' growth while the command ran: the command's own when nothing
 * else takes huge pages meanwhile (the benchmark runs one command at a time), -1 when they
 * cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The machine's count `name` in /proc/vmstat, or -1. */
static long long vmstat(const char *name) {
    FILE *f = fopen("/proc/vmstat", "r");
    if (!f) return -1;
    char key[64];
    long long v, found = -1;
    while (fscanf(f, "%63s %lld", key, &v) == 2) {
        if (!strcmp(key, name)) {
            found = v;
            break;
        }
    }
    fclose(f);
    return found;
}

/* How much `name` grew from `before`, or -1. */
static long long grown(const char *name, long long before) {
    long long after = vmstat(name);
    return before < 0 || after < before ? -1 : after - before;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE CMD [ARGS...]\n", argv[0]);
        return 2;
    }
    long long faults_before = vmstat("thp_fault_alloc");
    long long collapses_before = vmstat("thp_collapse_alloc");
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
    }
    long long thp = grown("thp_fault_alloc", faults_before);
    long long collapses = grown("thp_collapse_alloc", collapses_before);
    long long user = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
    long long sys = (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld %lld %lld %ld %lld %lld\n", ru.ru_maxrss, user, sys, ru.ru_minflt, thp, collapses) < 0 || fclose(f)) {
        perror(argv[1]);
        return 2;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
