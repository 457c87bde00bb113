// What a program under hugeheap must be able to trust (cli/tests/trust.rs): run as
// `trust MODE`, it builds a heap past HUGEHEAP_HUGE_FROM (so THP, and the re-collapse helper
// at the first fork), then:
//   sigwait   blocks SIGUSR1 after that fork, sends it to itself and collects it with sigwait
//             (200 times);
//   signalfd  the same, collected from a signalfd;
//   pagemap   forks children, one after the other, while the helper sweeps; each looks for a
//             descriptor to a pagemap among those it inherited;
//   family    (a heap in hugetlb pages: run with a pool) a child rewrites the family's shared
//             page as an attacker would (its own thread id in every word while it lives on;
//             all ones; random bytes), then the parent forks again and again: it must not
//             hang (alarm) and its children must live and write;
//   threads   prints whether glibc counts the process as single-threaded after that fork
//             (`single_threaded 1`: the helper is a thread glibc does not know) and the
//             helper's credentials, then forks children that live while the parent writes,
//             and prints how much is THP before, while they live, and after the helper swept;
//   setuid    (as root) drops to user and group 65534 after that fork, as a daemon does, and
//             prints each thread's user ids: none may keep root's.
// Prints "helper N" (threads named hugeheap-thp after the first fork) and the mode's result.
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <grp.h>
#include <sys/signalfd.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fds.h"

static char **objs;
static size_t nobjs;

// About `mib` MiB in 4 KiB objects, each filled.
static void build_heap(size_t mib) {
    nobjs = mib * 256;
    objs = malloc(nobjs * sizeof *objs);
    if (!objs) exit(2);
    for (size_t i = 0; i < nobjs; i++) {
        objs[i] = malloc(4000);
        if (!objs[i]) exit(2);
        memset(objs[i], (int)(i & 0xff), 4000);
    }
}

// Threads of this process named hugeheap-thp.
static int helpers(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, "hugeheap-thp", 12) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

// A child that writes nothing and exits; the parent waits for it. Starts the helper.
static void fork_and_reap(void) {
    pid_t pid = fork();
    if (pid < 0) exit(2);
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
}

// Whether this process holds a descriptor to a pagemap file.
static int holds_pagemap(void) {
    return fds_naming("pagemap") > 0;
}


// The one shared page of 4 KiB in the process (the family's table), or NULL.
static uint32_t *shared_page(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return NULL;
    char line[512];
    uint32_t *found = NULL;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && b - a == 4096 && !strcmp(perms, "rw-s"))
            found = (uint32_t *)a;
    }
    fclose(f);
    return found;
}

// The first line of `path` that `format` (one %lu) reads a number from: that number, or 0.
static unsigned long kib_field(const char *path, const char *format) {
    FILE *f = fopen(path, "r");
    char line[256];
    unsigned long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, format, &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

static unsigned long hugetlb_kib(void) { return kib_field("/proc/self/status", "HugetlbPages: %lu"); }

static unsigned long anon_huge_kib(void) { return kib_field("/proc/self/smaps_rollup", "AnonHugePages: %lu"); }

// Forks `n` children that write a page of every 64th object and exit; 0 if all exited 0.
static int fork_writers(int n) {
    for (int k = 0; k < n; k++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            for (size_t i = k % 64; i < nobjs; i += 64) objs[i][1]++;
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d: status %d\n", k, st);
            return 1;
        }
    }
    return 0;
}

static int family(void) {
    // A guard against hanging for ever, not a timing check: the forks take milliseconds.
    alarm(120);
    printf("hugetlb_kib %lu\n", hugetlb_kib());
    if (fork_writers(2)) return 1;
    uint32_t *page = shared_page();
    printf("table %s\n", page ? "found" : "missing");
    if (!page) return 1;
    const char *attacks[] = {"own-tid", "ones", "random"};
    for (int a = 0; a < 3; a++) {
        int ready[2];
        if (pipe(ready)) return 2;
        pid_t attacker = fork();
        if (attacker < 0) return 2;
        if (attacker == 0) {
            uint32_t tid = (uint32_t)syscall(SYS_gettid), x = 0x9e3779b9u ^ tid;
            for (int i = 0; i < 1024; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                page[i] = a == 0 ? tid : a == 1 ? 0xffffffffu : x;
            }
            if (write(ready[1], "x", 1) != 1) _exit(2);
            // The first attacker lives on while its parent forks.
            if (a == 0) sleep(3);
            _exit(0);
        }
        char c;
        if (read(ready[0], &c, 1) != 1) return 2;
        close(ready[0]);
        close(ready[1]);
        if (fork_writers(20)) {
            printf("after attack %s: a child failed\n", attacks[a]);
            return 1;
        }
        waitpid(attacker, NULL, 0);
        printf("after attack %s: 20 forks ok\n", attacks[a]);
    }
    printf("family ok\n");
    return 0;
}

// The effective user id of every thread, as "uids A B ...".
static void thread_uids(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    printf("uids");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        unsigned r, eu, su, fs;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "Uid: %u %u %u %u", &r, &eu, &su, &fs) == 4) printf(" %u/%u/%u", r, eu, su);
        if (f) fclose(f);
    }
    closedir(d);
    printf("\n");
}

// The helper thread's credentials, as "helper_creds UID/EUID/SUID GID/EGID/SGID CAPEFF".
static void helper_creds(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        int is_helper = f && fgets(comm, sizeof comm, f) && !strncmp(comm, "hugeheap-thp", 12);
        if (f) fclose(f);
        if (!is_helper) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        unsigned a, b, c, x;
        char cap[32] = "?";
        printf("helper_creds");
        while (f && fgets(line, sizeof line, f)) {
            if (sscanf(line, "Uid: %u %u %u %u", &a, &b, &c, &x) == 4) printf(" %u/%u/%u", a, b, c);
            if (sscanf(line, "Gid: %u %u %u %u", &a, &b, &c, &x) == 4) printf(" %u/%u/%u", a, b, c);
            if (sscanf(line, "CapEff: %31s", cap) == 1) printf(" %s", cap);
        }
        printf("\n");
        if (f) fclose(f);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    build_heap(strcmp(mode, "family") ? 160 : 64);
    fork_and_reap();
    printf("helper %d\n", helpers());

    if (!strcmp(mode, "sigwait") || !strcmp(mode, "signalfd")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &set, NULL)) return 2;
        int fd = -1;
        if (!strcmp(mode, "signalfd")) fd = signalfd(-1, &set, SFD_CLOEXEC);
        // Many times: the kernel may pick either thread that does not block the signal.
        for (int k = 0; k < 200; k++) {
            kill(getpid(), SIGUSR1);
            if (fd >= 0) {
                struct signalfd_siginfo si;
                if (read(fd, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR1) return 3;
            } else {
                int sig = 0;
                if (sigwait(&set, &sig) || sig != SIGUSR1) return 3;
            }
        }
        printf("%s ok\n", mode);
        return 0;
    }
    if (!strcmp(mode, "pagemap")) {
        // Each fork starts a sweep; the parent writes a page of every object meanwhile, so that
        // the sweeps find split pages to look at and collapse.
        int leaks = 0, forks = 400;
        for (int k = 0; k < forks; k++) {
            pid_t pid = fork();
            if (pid < 0) return 2;
            if (pid == 0) _exit(holds_pagemap() ? 42 : 0);
            for (size_t i = k % 64; i < nobjs; i += 64) objs[i][0]++;
            int st = 0;
            waitpid(pid, &st, 0);
            if (WIFEXITED(st) && WEXITSTATUS(st) == 42) leaks++;
        }
        printf("pagemap forks %d leaks %d\n", forks, leaks);
        return 0;
    }
    if (!strcmp(mode, "family")) return family();
    if (!strcmp(mode, "threads")) {
        printf("single_threaded %d\n", __libc_single_threaded);
        usleep(500000);
        helper_creds();
        unsigned long start = anon_huge_kib(), split = start;
        // Children that live while the parent writes a page of every 64th object: the
        // parent's writes split its huge pages; the helper puts them together again once the
        // children are gone.
        for (int k = 0; k < 5; k++) {
            int p[2];
            if (pipe(p)) return 2;
            pid_t pid = fork();
            if (pid < 0) return 2;
            if (pid == 0) {
                char c;
                close(p[1]);
                _exit(read(p[0], &c, 1) < 0);
            }
            close(p[0]);
            for (size_t i = k % 64; i < nobjs; i += 64) objs[i][0]++;
            unsigned long now = anon_huge_kib();
            if (now < split) split = now;
            close(p[1]);
            waitpid(pid, NULL, 0);
        }
        // A guard against waiting for ever, not a timing check: the helper sweeps within a
        // second or two of the last fork, at its CPU budget.
        for (int t = 0; t < 600 && anon_huge_kib() < start; t++) usleep(100000);
        printf("threads huge_kib %lu split %lu after %lu\n", start, split, anon_huge_kib());
        return 0;
    }
    if (!strcmp(mode, "setuid")) {
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) return 2;
        thread_uids();
        fork_and_reap();
        printf("setuid ok\n");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
