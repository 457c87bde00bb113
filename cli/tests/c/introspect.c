/* What programs ask their malloc: glibc's mallinfo2/mallinfo/malloc_trim/malloc_stats/mallopt
 * and jemalloc's mallctl/nallocx/sallocx/malloc_stats_print (declared weak: a plain run has
 * none of jemalloc's, and says so). Prints key=value lines the test checks. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mallctl(const char *, void *, size_t *, void *, size_t) __attribute__((weak));
size_t nallocx(size_t, int) __attribute__((weak));
size_t sallocx(const void *, int) __attribute__((weak));
void malloc_stats_print(void (*)(void *, const char *), void *, const char *) __attribute__((weak));

static size_t stat(const char *name) {
    size_t v = 0, len = sizeof v;
    uint64_t epoch = 1;
    size_t elen = sizeof epoch;
    mallctl("epoch", &epoch, &elen, &epoch, elen);
    if (mallctl(name, &v, &len, NULL, 0) != 0) return (size_t)-1;
    return v;
}

static size_t printed;
static void cb(void *opaque, const char *s) { (void)opaque; printed += strlen(s); }

int main(void) {
    struct mallinfo2 before = mallinfo2();
    enum { N = 20000 };
    static void *p[N];
    for (int i = 0; i < N; i++) p[i] = malloc(1000);
    struct mallinfo2 during = mallinfo2();
    printf("mi2_uord_before=%zu mi2_uord_during=%zu mi2_arena=%zu\n", before.uordblks, during.uordblks, during.arena);
    struct mallinfo old = mallinfo();
    printf("mi_uord=%d\n", old.uordblks);
    if (mallctl) {
        printf("je_allocated=%zu je_active=%zu je_resident=%zu je_mapped=%zu\n", stat("stats.allocated"),
               stat("stats.active"), stat("stats.resident"), stat("stats.mapped"));
        unsigned n = 0;
        size_t len = sizeof n;
        int rc = mallctl("arenas.narenas", &n, &len, NULL, 0);
        int unknown = mallctl("no.such.thing", NULL, NULL, NULL, 0);
        printf("je_narenas_rc=%d je_narenas=%u je_unknown_rc=%d\n", rc, n, unknown);
        printf("je_nallocx100=%zu je_sallocx=%zu\n", nallocx(100, 0), sallocx(p[0], 0));
        malloc_stats_print(cb, NULL, NULL);
        printf("je_printed=%zu\n", printed);
    } else {
        printf("je=absent\n");
    }
    for (int i = 0; i < N; i++) free(p[i]);
    void *big = malloc(64 << 20);
    memset(big, 1, 64 << 20);
    free(big);
    printf("trim=%d\n", malloc_trim(0));
    printf("mallopt=%d\n", mallopt(M_ARENA_MAX, 2));
    malloc_stats();
    return 0;
}
