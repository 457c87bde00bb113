/* Runs a command and reports its peak RSS: `launch FILE CMD ARGS...` forks, execs CMD, waits,
 * writes "<ru_maxrss in KiB>\n" to FILE and exits with CMD's status. The kernel keeps
 * the larger of the peak RSS of the process before its exec and after; forking from this small
 * program, not from the benchmark (or with vfork, whose child shares the parent's memory),
 * keeps the "before" part at this program's size, about a MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE CMD [ARGS...]\n", argv[0]);
        return 2;
    }
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
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f)) {
        perror(argv[1]);
        return 2;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
