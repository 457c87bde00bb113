/* The C allocation API's edge cases, with glibc's semantics. Exits 0 when all hold; prints the
   first failure otherwise. Checks that it really runs on hugeheap: usable sizes are hugeheap's
   size classes (100 bytes -> 112), not glibc's (104). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* C23's sized frees are not in glibc 2.36: found at run time in the preloaded library. */
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAILED line %d: %s (errno %d)\n", __LINE__, #c, errno); return 1; } } while (0)
#define ALIGNED(p, a) (((uintptr_t)(p) & ((a) - 1)) == 0)

int main(void) {
    /* interposed at all */
    void *p = malloc(100);
    CHECK(p && malloc_usable_size(p) == 112);
    free(p);
    /* malloc(0): unique, freeable */
    void *z1 = malloc(0), *z2 = malloc(0);
    CHECK(z1 && z2 && z1 != z2);
    free(z1); free(z2);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    /* every malloc is 16-aligned */
    for (size_t s = 1; s < 5000; s += 7) { void *q = malloc(s); CHECK(q && ALIGNED(q, 16) && malloc_usable_size(q) >= s); free(q); }
    /* impossible sizes: NULL + ENOMEM */
    errno = 0; CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    errno = 0; CHECK(calloc(SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    errno = 0; CHECK(reallocarray(NULL, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    /* calloc zeroes reused memory */
    for (int i = 0; i < 100; i++) { char *d = malloc(300); memset(d, 0xff, 300); free(d); }
    char *c = calloc(30, 10);
    CHECK(c);
    for (int i = 0; i < 300; i++) CHECK(c[i] == 0);
    free(c);
    char *big = calloc(1, 8 << 20);
    CHECK(big && big[0] == 0 && big[(8 << 20) - 1] == 0);
    free(big);
    /* realloc */
    char *r = realloc(NULL, 10);
    CHECK(r);
    strcpy(r, "hugeheap!");
    r = realloc(r, 100000);
    CHECK(r && strcmp(r, "hugeheap!") == 0);
    r = realloc(r, 5 << 20);
    CHECK(r && strcmp(r, "hugeheap!") == 0);
    r = realloc(r, 20);
    CHECK(r && strcmp(r, "hugeheap!") == 0);
    errno = 0;
    CHECK(realloc(r, SIZE_MAX / 2) == NULL && errno == ENOMEM && strcmp(r, "hugeheap!") == 0);
    CHECK(realloc(r, 0) == NULL); /* glibc: frees r */
    /* posix_memalign */
    void *a = NULL;
    CHECK(posix_memalign(&a, 3, 10) == EINVAL);
    CHECK(posix_memalign(&a, 4, 10) == EINVAL); /* not a multiple of sizeof(void *) */
    CHECK(posix_memalign(&a, 8, 10) == 0 && ALIGNED(a, 8)); free(a);
    CHECK(posix_memalign(&a, 4096, 10) == 0 && ALIGNED(a, 4096)); free(a);
    CHECK(posix_memalign(&a, 1 << 21, 100) == 0 && ALIGNED(a, 1 << 21)); free(a);
    CHECK(posix_memalign(&a, 1 << 30, 100) == 0 && ALIGNED(a, 1 << 30)); free(a);
    CHECK(posix_memalign(&a, 64, SIZE_MAX / 2) == ENOMEM);
    /* aligned_alloc, memalign, valloc, pvalloc */
    void *b = aligned_alloc(64, 100);
    CHECK(b && ALIGNED(b, 64)); free(b);
    errno = 0; CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    b = memalign(48, 10); /* rounded up to 64, as glibc does */
    CHECK(b && ALIGNED(b, 64)); free(b);
    b = valloc(10);
    CHECK(b && ALIGNED(b, 4096)); free(b);
    b = pvalloc(1);
    CHECK(b && ALIGNED(b, 4096) && malloc_usable_size(b) >= 4096); free(b);
    b = pvalloc(0);
    CHECK(b && malloc_usable_size(b) >= 4096); free(b);
    /* C23 sized frees */
    free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    CHECK(fs && fas);
    b = malloc(40); fs(b, 40);
    b = aligned_alloc(256, 512); fas(b, 256, 512);
    /* strdup and friends go through malloc too */
    char *s = strdup("x");
    CHECK(s && malloc_usable_size(s) == 16);
    free(s);
    puts("api ok");
    return 0;
}
