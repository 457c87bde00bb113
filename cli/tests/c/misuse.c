/* Heap misuse, one kind per run (argv[1]); each should be caught by hugeheap and abort with
 * a message naming it. "ok" does nothing wrong, and "late" is a double free hugeheap cannot see
 * (the block was handed out again in between), to show what is not detected. A mode prefixed
 * "shared-" does the same with blocks past 4 KiB, whose classes the threads share: a free
 * puts such a block in the freeing thread's cache of its class, not on its slab. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *freer(void *p) {
    void *mine = malloc(16); /* so this thread has a heap, and frees go by message */
    free(p);
    free(mine);
    return NULL;
}

int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "ok";
    size_t size = 48;
    if (!strncmp(m, "shared-", 7)) {
        m += 7;
        size = 8000;
    }
    static char not_heap[64];
    char *p = malloc(size);
    char *q = malloc(size);
    memset(p, 1, size);
    memset(q, 2, size);
    if (!strcmp(m, "double")) {
        free(p);
        free(p);
    } else if (!strcmp(m, "double-later")) {
        /* Another free in between: the block is no longer at the head of its list (its slab's,
         * or the cache's), and the free does not see it (other blocks of the slab are out);
         * the allocation that would hand it out a second time does. */
        char *volatile keep1 = malloc(size), *volatile keep2 = malloc(size);
        keep1[0] = keep2[0] = 6;
        free(p);
        free(q);
        free(p);
        for (int i = 0; i < 3; i++) {
            char *volatile r = malloc(size);
            r[0] = 4;
        }
    } else if (!strcmp(m, "write-after-free")) {
        /* The freed block's first bytes (the allocator's, while it is free) overwritten: caught
         * before the overwritten link is followed. */
        free(p);
        memset(p, 5, 16);
        char *volatile r = malloc(size);
        r[0] = 4;
    } else if (!strcmp(m, "double-remote")) {
        /* Freed here, then again by another thread: caught when this thread takes the block
         * back (its next slow path; a first request of a new size is one). */
        pthread_t t;
        free(p);
        pthread_create(&t, NULL, freer, p);
        pthread_join(t, NULL);
        q = malloc(5000);
    } else if (!strcmp(m, "write-after-free-flush")) {
        /* Shared blocks only ("shared-" prefix; a slab's block is not caught this way).
         * Written after its free, then pushed deep into the cache by other frees: caught when
         * the full cache gives it back, before its overwritten link is followed. */
        char *t[8];
        for (int i = 0; i < 8; i++) { t[i] = malloc(size); t[i][0] = 1; }
        free(p);
        memset(p, 5, 16);
        for (int i = 0; i < 8; i++) free(t[i]);
    } else if (!strcmp(m, "interior")) {
        free(p + 16);
    } else if (!strcmp(m, "foreign")) {
        free(not_heap);
    } else if (!strcmp(m, "stack")) {
        char local[32];
        free(local);
    } else if (!strcmp(m, "large-interior")) {
        char *volatile big = malloc(1 << 20);
        big[0] = 1;
        free(big + 4096);
    } else if (!strcmp(m, "large-double")) {
        char *volatile big = malloc(1 << 20);
        big[0] = 1;
        free(big);
        free(big);
    } else if (!strcmp(m, "realloc-foreign")) {
        p = realloc(not_heap, 100);
    } else if (!strcmp(m, "late")) {
        free(p);
        char *volatile again = malloc(48); /* the same block, handed out again */
        again[0] = 3;
        free(p); /* frees `again`: not detectable */
    } else if (strcmp(m, "ok")) {
        fprintf(stderr, "unknown mode %s\n", m);
        return 2;
    }
    printf("survived %s\n", m);
    return 0;
}
