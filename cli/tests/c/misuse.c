/* Heap misuse, one kind per run (argv[1]); each should be caught by hugeheap and abort with
 * a message naming it. "ok" does nothing wrong, and "late" is a double free hugeheap cannot see
 * (the block was handed out again in between), to show what is not detected. */
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
    static char not_heap[64];
    char *p = malloc(48);
    char *q = malloc(48);
    memset(p, 1, 48);
    memset(q, 2, 48);
    if (!strcmp(m, "double")) {
        free(p);
        free(p);
    } else if (!strcmp(m, "double-later")) {
        /* Another free in between: the block is no longer at the head of its list, and the
         * free does not see it (other blocks of the slab are out); the allocation that would
         * hand it out a second time does. */
        char *volatile keep1 = malloc(48), *volatile keep2 = malloc(48);
        keep1[0] = keep2[0] = 6;
        free(p);
        free(q);
        free(p);
        for (int i = 0; i < 3; i++) {
            char *volatile r = malloc(48);
            r[0] = 4;
        }
    } else if (!strcmp(m, "write-after-free")) {
        /* The freed block's first bytes (the allocator's, while it is free) overwritten: caught
         * before the overwritten link is followed. */
        free(p);
        memset(p, 5, 16);
        char *volatile r = malloc(48);
        r[0] = 4;
    } else if (!strcmp(m, "double-remote")) {
        /* Freed here, then again by another thread: caught when this thread takes the block
         * back (its next slow path; a first request of a new size is one). */
        pthread_t t;
        free(p);
        pthread_create(&t, NULL, freer, p);
        pthread_join(t, NULL);
        q = malloc(5000);
    } else if (!strcmp(m, "shared-double")) {
        /* A block past 4 KiB: a shared class's, freed into this thread's cache of it. */
        char *volatile s = malloc(8000);
        s[0] = 1;
        free(s);
        free(s);
    } else if (!strcmp(m, "shared-double-later")) {
        char *volatile s = malloc(8000), *volatile t = malloc(8000);
        s[0] = t[0] = 1;
        free(s);
        free(t);
        free(s);
        for (int i = 0; i < 4; i++) {
            char *volatile r = malloc(8000);
            r[0] = 4;
        }
    } else if (!strcmp(m, "shared-write-after-free")) {
        char *volatile s = malloc(8000);
        s[0] = 1;
        free(s);
        memset(s, 5, 16);
        char *volatile r = malloc(8000);
        r[0] = 4;
    } else if (!strcmp(m, "shared-write-after-free-flush")) {
        /* Written after its free, then pushed deep into the cache by other frees: caught when
         * the full cache gives it back, before its overwritten link is followed. */
        char *volatile s = malloc(8000);
        char *t[8];
        for (int i = 0; i < 8; i++) { t[i] = malloc(8000); t[i][0] = 1; }
        s[0] = 1;
        free(s);
        memset(s, 5, 16);
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
