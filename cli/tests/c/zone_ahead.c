/* A program that grows its own small mappings as Ruby grows its heap (32 KiB at a time, each
 * written whole) to 96 MiB, then looks whether the 2 MiB after the chunk its last mapping lies
 * in is in memory already (populated ahead, where the mappings are in hugeheap's zone), for at
 * most WAIT_MS milliseconds (argv[1]); with argv[2] = "fork", it forks a child that exits
 * first (after a malloc, which starts an allocator loaded before it). Then it maps 4 MiB more,
 * checks each new mapping reads as zero before writing it, and that every earlier mapping
 * still holds what it wrote. Prints "ahead=0|1 own=0|1 zero=0|1 intact=0|1" (own: the 2 MiB
 * looked at meets one of the program's mappings, as where the kernel places them, top
 * down). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { PIECE = 32 << 10, FIRST = (96 << 20) / PIECE, MORE = (4 << 20) / PIECE, CHUNK = 2 << 20 };
static unsigned char *pieces[FIRST + MORE];

static unsigned char mark(int i) { return (unsigned char)(i % 251 + 1); }

static unsigned char *map_piece(void) {
    void *p = mmap(NULL, PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* Whether the CHUNK at `at` is wholly in memory. */
static int resident(unsigned long at) {
    unsigned char vec[CHUNK / 4096];
    if (mincore((void *)at, CHUNK, vec) != 0) return 0;
    for (int i = 0; i < CHUNK / 4096; i++)
        if (!(vec[i] & 1)) return 0;
    return 1;
}

int main(int argc, char **argv) {
    long wait_ms = argc > 1 ? atol(argv[1]) : 0;
    void *volatile started = malloc(64);
    free(started);
    if (argc > 2 && !strcmp(argv[2], "fork")) {
        pid_t c = fork();
        if (c == 0) _exit(0);
        waitpid(c, NULL, 0);
    }
    for (int i = 0; i < FIRST; i++) {
        pieces[i] = map_piece();
        memset(pieces[i], mark(i), PIECE);
    }
    unsigned long next = ((unsigned long)pieces[FIRST - 1] & ~(unsigned long)(CHUNK - 1)) + CHUNK;
    int ahead = 0;
    for (long waited = 0; !(ahead = resident(next)) && waited < wait_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int own = 0;
    for (int i = 0; i < FIRST; i++)
        own |= (unsigned long)pieces[i] + PIECE > next && (unsigned long)pieces[i] < next + CHUNK;
    int zero = 1;
    for (int i = FIRST; i < FIRST + MORE; i++) {
        pieces[i] = map_piece();
        for (int b = 0; b < PIECE; b++) zero &= pieces[i][b] == 0;
        memset(pieces[i], mark(i), PIECE);
    }
    int intact = 1;
    for (int i = 0; i < FIRST + MORE; i++)
        for (int b = 0; b < PIECE; b += 512) intact &= pieces[i][b] == mark(i);
    printf("ahead=%d own=%d zero=%d intact=%d\n", ahead, own, zero, intact);
    return 0;
}
