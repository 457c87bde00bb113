// Shared by the test programs that look at their own descriptors.
#ifndef HUGEHEAP_TEST_FDS_H
#define HUGEHEAP_TEST_FDS_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// How many of this process's descriptors name a path containing `part`; -1 if /proc/self/fd
// cannot be read.
static int fds_naming(const char *part) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = 0;
            if (strstr(target, part)) n++;
        }
    }
    closedir(d);
    return n;
}

#endif
