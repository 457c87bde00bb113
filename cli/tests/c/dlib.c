/* A shared library that allocates when loaded and frees when unloaded. */
#include <stdlib.h>
#include <string.h>

static char *table;

__attribute__((constructor)) static void load(void) { table = malloc(1 << 20); memset(table, 7, 1 << 20); }
__attribute__((destructor)) static void unload(void) { free(table); }

char *dup_word(const char *w) { return strdup(w); }
int table_sum(void) { int s = 0; for (int i = 0; i < (1 << 20); i += 4096) s += table[i]; return s; }
