/* malloc before main: from a constructor, as the loader and many libraries do. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *early;
static void *early_block;

__attribute__((constructor)) static void before_main(void) {
    early = strdup("allocated in a constructor");
    early_block = calloc(1000, 8);
}

int main(void) {
    if (!early || strcmp(early, "allocated in a constructor") != 0) return 1;
    if (!early_block || malloc_usable_size(early_block) < 8000) return 2;
    if (malloc_usable_size(early) != 32) { fprintf(stderr, "constructor malloc not on hugeheap\n"); return 3; }
    free(early);
    free(early_block);
    puts("ctor ok");
    return 0;
}
