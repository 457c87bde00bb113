/* dlopen/dlclose of a library that allocates, in a loop, and threads that start, allocate,
   hand memory to the main thread and exit, in a loop. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *thread_main(void *arg) {
    size_t n = (size_t)arg;
    char **v = malloc(100 * sizeof(char *));
    for (int i = 0; i < 100; i++) { v[i] = malloc(n + i); memset(v[i], i, n + i); }
    return v; /* freed by the main thread after this thread has exited */
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    for (int round = 0; round < 50; round++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
        char *(*dup_word)(const char *) = (char *(*)(const char *))dlsym(h, "dup_word");
        int (*table_sum)(void) = (int (*)(void))dlsym(h, "table_sum");
        char *w = dup_word("hugeheap");
        if (strcmp(w, "hugeheap") != 0 || table_sum() != 256 * 7) return 1;
        free(w);
        dlclose(h);
    }
    for (int round = 0; round < 200; round++) {
        pthread_t t[4];
        for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, thread_main, (void *)(16 + i * 100));
        for (int i = 0; i < 4; i++) {
            char **v;
            pthread_join(t[i], (void **)&v);
            for (int j = 0; j < 100; j++) { if (v[j][0] != 0 && j == 0) return 3; free(v[j]); }
            free(v);
        }
    }
    puts("dl ok");
    return 0;
}
