/* The C path's workloads: allocation work driven through the C API (malloc, free, calloc,
 * realloc, posix_memalign), built by `hugeheap bench cpath` and run under each allocator by
 * LD_PRELOAD. Usage: workloads NAME SCALE. Each prints one checksum line that depends only on
 * the work done (never on addresses or thread timing), so every allocator's output must be
 * identical to glibc's. Built with -fno-builtin-malloc and friends, so the compiler cannot
 * elide an allocation. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0;

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static long scaled(double n) {
    long v = (long)(n * scale);
    return v < 1 ? 1 : v;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* Writes a block's first and last byte and returns a value that depends on its size only. */
static uint64_t touch(unsigned char *p, size_t n, uint64_t tag) {
    p[0] = (unsigned char)tag;
    p[n - 1] = (unsigned char)(tag >> 8);
    return (uint64_t)p[0] + p[n - 1] + n;
}

/* Single thread, small objects of mixed lifetimes, as a bignum calculator or a compiler
 * allocates: most die young, some live long; blocks grow by realloc. */
static uint64_t churn(void) {
    enum { SLOTS = 1 << 14 };
    unsigned char **slot = calloc(SLOTS, sizeof *slot);
    size_t *len = calloc(SLOTS, sizeof *len);
    uint64_t s = 42, sum = 0;
    long n = scaled(24e6);
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift(&s);
        /* Young objects in the low 256 slots are replaced often; the rest rarely. */
        size_t k = (r & 7) ? (r >> 8) % 256 : (r >> 8) % SLOTS;
        if (slot[k] && (r >> 40) % 8 == 0) {
            size_t nl = len[k] * 2 > 4096 ? len[k] : len[k] * 2;
            unsigned char *q = realloc(slot[k], nl);
            if (!q) exit(2);
            slot[k] = q;
            len[k] = nl;
            sum += touch(q, nl, r);
            continue;
        }
        free(slot[k]);
        size_t sz = 8 + (r >> 24) % ((r >> 50) % 4 == 0 ? 512 : 96);
        slot[k] = xmalloc(sz);
        len[k] = sz;
        sum += touch(slot[k], sz, r);
    }
    for (size_t k = 0; k < SLOTS; k++) free(slot[k]);
    free(slot);
    free(len);
    return sum;
}

/* Same-size malloc/free pairs with a few blocks live around them (glibc's bench-malloc
 * kind), at four sizes. */
static uint64_t pairs(void) {
    static const size_t sizes[] = {16, 64, 256, 1024};
    uint64_t sum = 0;
    long n = scaled(32e6);
    for (int z = 0; z < 4; z++) {
        void *live[32];
        for (int i = 0; i < 32; i++) live[i] = xmalloc(sizes[z]);
        for (long i = 0; i < n; i++) {
            unsigned char *p = xmalloc(sizes[z]);
            sum += touch(p, sizes[z], (uint64_t)i);
            free(p);
        }
        for (int i = 0; i < 32; i++) free(live[i]);
    }
    return sum;
}

/* Threads each doing malloc/free of random small sizes in a tight loop over slots of their
 * own. */
struct tight_arg {
    uint64_t seed, sum;
};

static void *tight_thread(void *a) {
    struct tight_arg *t = a;
    enum { SLOTS = 1024 };
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    long n = scaled(12e6);
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift(&t->seed);
        size_t k = r % SLOTS, sz = 16 + (r >> 20) % 240;
        free(slot[k]);
        slot[k] = xmalloc(sz);
        len[k] = sz;
        t->sum += touch(slot[k], sz, r);
    }
    for (int k = 0; k < SLOTS; k++) free(slot[k]);
    (void)len;
    return 0;
}

static uint64_t run_threads(int nt, void *(*f)(void *), struct tight_arg *args) {
    pthread_t th[16];
    uint64_t sum = 0;
    for (int i = 0; i < nt; i++) {
        args[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
        args[i].sum = 0;
        pthread_create(&th[i], 0, f, &args[i]);
    }
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], 0);
        sum += args[i].sum;
    }
    return sum;
}

static uint64_t tight(void) {
    struct tight_arg a[4];
    return run_threads(4, tight_thread, a);
}

/* A server simulation: worker threads allocate requests and responses and hand them to
 * other workers through mailboxes; a receiver keeps a few and frees them in random order.
 * Every object handed over is freed by the worker it was handed to, however the threads are
 * scheduled (a sender facing a full box takes from its own until there is room), so that each
 * allocator does the same work: when a full box made the sender free the object itself, the
 * share of objects freed by another thread went from 31% (glibc, whose threads ran slowest)
 * to 90% (mimalloc), and the slower allocator did the cheaper work. */
#define WORKERS 4
/* A box holds little (256 objects), so that what waits in the boxes while a worker is off its
 * CPU is a few hundred KiB, not the tens of MiB of 4096-object boxes whose filling, which the
 * scheduler decides, moved `trace`'s peak by a fifth from run to run. */
#define BOX 256
struct mailbox {
    pthread_mutex_t lock;
    unsigned char *item[BOX];
    size_t len[BOX];
    int head, count;
};
static struct mailbox boxes[WORKERS];

/* Workers that have finished their own loop (they go on taking from their boxes until all
 * have, so that no sender waits on a box nobody empties). */
static atomic_int finished;

/* A worker's own, on cache lines of its own: its loop writes `sum`, `sent` and `taken`. */
struct __attribute__((aligned(64))) server_arg {
    int id;
    /* seed: what is sent (deterministic); pick: where received blocks are kept (how many
     * arrive when depends on timing, so it has a generator of its own). */
    uint64_t seed, pick, sum;
    /* Objects this worker handed over, and took from its box. */
    long sent, taken;
    /* Takes what the worker's box holds, as its loop does (the workload's own). */
    void (*take)(struct server_arg *);
    /* The workload's state for `take`. */
    void *state;
};

/* Puts `p` in worker `id`'s box if it has room; 1 if it did. */
static int try_send(int id, unsigned char *p) {
    struct mailbox *b = &boxes[id];
    pthread_mutex_lock(&b->lock);
    int room = b->count < BOX;
    if (room) {
        b->item[(b->head + b->count) % BOX] = p;
        b->count++;
    }
    pthread_mutex_unlock(&b->lock);
    return room;
}

/* Hands `p` from worker `t` to one of the other workers (picked by `r`). While that worker's
 * box is full, `t` takes from its own box, so a cycle of full boxes empties. */
static void send_to_other(struct server_arg *t, uint64_t r, unsigned char *p) {
    int to = (t->id + 1 + (int)((r >> 32) % (WORKERS - 1))) % WORKERS;
    while (!try_send(to, p)) {
        t->take(t);
        sched_yield();
    }
    t->sent++;
}

/* Ends worker `t`'s part, once it has freed its own objects: it takes from its box until every
 * worker has ended its loop. */
static void finish_worker(struct server_arg *t) {
    atomic_fetch_add(&finished, 1);
    while (atomic_load(&finished) < WORKERS) {
        t->take(t);
        sched_yield();
    }
}

/* Takes up to `max` items from worker `t`'s box into `got`; returns how many. */
static int receive(struct server_arg *t, unsigned char **got, int max) {
    struct mailbox *mine = &boxes[t->id];
    pthread_mutex_lock(&mine->lock);
    int take = mine->count < max ? mine->count : max;
    for (int j = 0; j < take; j++) {
        got[j] = mine->item[mine->head];
        mine->head = (mine->head + 1) % BOX;
    }
    mine->count -= take;
    pthread_mutex_unlock(&mine->lock);
    t->taken += take;
    return take;
}

/* Runs `f` in the workers (worker i's seed is `mul * (i + off)`), frees what is left in their
 * boxes, and returns the sum of their sums. */
static uint64_t run_workers(void *(*f)(void *), uint64_t mul, int off) {
    pthread_t th[WORKERS];
    struct server_arg a[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_mutex_init(&boxes[i].lock, 0);
    atomic_store(&finished, 0);
    for (int i = 0; i < WORKERS; i++) {
        a[i] = (struct server_arg){.id = i, .seed = mul * (uint64_t)(i + off), .pick = i + 1, .sum = 0};
        pthread_create(&th[i], 0, f, &a[i]);
    }
    uint64_t sum = 0;
    long sent = 0, taken = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], 0);
        sum += a[i].sum;
        sent += a[i].sent;
        taken += a[i].taken;
    }
    for (int i = 0; i < WORKERS; i++)
        while (boxes[i].count) {
            free(boxes[i].item[boxes[i].head]);
            boxes[i].head = (boxes[i].head + 1) % BOX;
            boxes[i].count--;
            taken++;
        }
    /* Every object handed over was taken by the worker it went to, or is left in a box. */
    if (taken != sent) {
        fprintf(stderr, "%ld objects handed over, %ld taken\n", sent, taken);
        exit(3);
    }
    return sum;
}

enum { KEEP = 512 };

/* A server worker's receiving: a batch from its box, each kept in a random slot, freeing what
 * was there. */
static void server_take(struct server_arg *t) {
    unsigned char **kept = t->state;
    unsigned char *got[8];
    int take = receive(t, got, 8);
    for (int j = 0; j < take; j++) {
        size_t k = xorshift(&t->pick) % KEEP;
        free(kept[k]);
        kept[k] = got[j];
    }
}

static void *server_thread(void *a) {
    struct server_arg *t = a;
    unsigned char *kept[KEEP] = {0};
    t->take = server_take;
    t->state = kept;
    long n = scaled(3e6);
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift(&t->seed);
        size_t sz = (r & 3) == 0 ? 64 + (r >> 8) % 4000 : 16 + (r >> 8) % 200;
        unsigned char *p = xmalloc(sz);
        t->sum += touch(p, sz, r);
        send_to_other(t, r, p);
        server_take(t);
    }
    for (int k = 0; k < KEEP; k++) free(kept[k]);
    memset(kept, 0, sizeof kept);
    finish_worker(t);
    for (int k = 0; k < KEEP; k++) free(kept[k]);
    return 0;
}

static uint64_t server(void) {
    return run_workers(server_thread, 0x2545f4914f6cdd1dull, 3);
}

/* A multi-thread allocation trace of the kind recorded from real programs: four threads, each
 * with young objects (replaced often) and old ones (replaced rarely), sizes from a skewed mix
 * (most 16-64 B, a tail to 64 KiB), calloc and realloc among them, and one object in sixteen
 * handed to another thread (through the server's mailboxes), which keeps it a while in a short
 * queue before freeing it. */
static size_t trace_size(uint64_t r) {
    unsigned k = (unsigned)(r % 100);
    uint64_t v = r >> 8;
    if (k < 60) return 16 + v % 49;
    if (k < 85) return 65 + v % 192;
    if (k < 95) return 257 + v % 1792;
    if (k < 99) return 2049 + v % 14336;
    return 16385 + v % 49152;
}

enum { YOUNG = 256, OLD = 8192, HOLD = 64 };

/* What a trace worker holds of what others handed it: a queue whose oldest is freed to make
 * room. */
struct held {
    unsigned char *held[HOLD];
    int at;
};

/* A trace worker's receiving: each object handed over waits in the queue. */
static void trace_take(struct server_arg *t) {
    struct held *h = t->state;
    unsigned char *got[16];
    int take = receive(t, got, 16);
    for (int j = 0; j < take; j++) {
        free(h->held[h->at]);
        h->held[h->at] = got[j];
        h->at = (h->at + 1) % HOLD;
    }
}

static void *trace_thread(void *a) {
    struct server_arg *t = a;
    unsigned char **young = calloc(YOUNG, sizeof *young), **old = calloc(OLD, sizeof *old);
    size_t *ylen = calloc(YOUNG, sizeof *ylen);
    struct held h = {{0}, 0};
    t->take = trace_take;
    t->state = &h;
    long n = scaled(4e6);
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift(&t->seed);
        size_t sz = trace_size(r);
        unsigned char *p;
        if ((r >> 40) % 20 == 0) {
            p = calloc(1, sz);
            if (!p) exit(2);
        } else {
            p = xmalloc(sz);
        }
        t->sum += touch(p, sz, r);
        unsigned what = (unsigned)((r >> 48) % 64);
        if (what < 4) {
            /* Handed to another thread. */
            send_to_other(t, r, p);
        } else if (what < 8) {
            size_t k = (r >> 20) % OLD;
            free(old[k]);
            old[k] = p;
        } else {
            size_t k = (r >> 20) % YOUNG;
            if (young[k] && what < 12 && ylen[k] < 4096) {
                /* Grown instead of replaced. */
                free(p);
                size_t nl = ylen[k] * 2;
                unsigned char *q = realloc(young[k], nl);
                if (!q) exit(2);
                young[k] = q;
                ylen[k] = nl;
                t->sum += touch(q, nl, r);
            } else {
                free(young[k]);
                young[k] = p;
                ylen[k] = sz;
            }
        }
        /* Take what others handed over. */
        if ((i & 7) == 0) trace_take(t);
    }
    for (int k = 0; k < YOUNG; k++) free(young[k]);
    for (int k = 0; k < OLD; k++) free(old[k]);
    free(young);
    free(old);
    free(ylen);
    finish_worker(t);
    for (int k = 0; k < HOLD; k++) free(h.held[k]);
    return 0;
}

static uint64_t trace(void) {
    return run_workers(trace_thread, 0x9e3779b97f4a7c15ull, 5);
}

/* Short-lived threads: each allocates a few thousand objects, frees most, leaves some to its
 * successor, and exits. */
static unsigned char *handed[256];

static void *short_thread(void *a) {
    struct tight_arg *t = a;
    unsigned char *mine[2000];
    for (int i = 0; i < 2000; i++) {
        uint64_t r = xorshift(&t->seed);
        size_t sz = 16 + (r >> 16) % 1000;
        mine[i] = xmalloc(sz);
        t->sum += touch(mine[i], sz, r);
    }
    for (int i = 0; i < 2000; i++) {
        if (i < 256) {
            free(handed[i]);
            handed[i] = mine[i];
        } else {
            free(mine[i]);
        }
    }
    return 0;
}

static uint64_t short_threads(void) {
    uint64_t sum = 0;
    long n = scaled(2000);
    for (long i = 0; i < n; i++) {
        pthread_t th;
        struct tight_arg a = {.seed = 0x9e3779b97f4a7c15ull * (i + 1), .sum = 0};
        pthread_create(&th, 0, short_thread, &a);
        pthread_join(th, 0);
        sum += a.sum;
    }
    for (int i = 0; i < 256; i++) free(handed[i]);
    return sum;
}

/* Large buffers, 64 KiB to 8 MiB: allocated, written through, grown by realloc, freed in
 * random order; some with posix_memalign. */
static uint64_t large(void) {
    enum { SLOTS = 32 };
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint64_t s = 7, sum = 0;
    long n = scaled(12000);
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift(&s);
        size_t k = r % SLOTS;
        size_t sz = (size_t)64 << 10 << ((r >> 8) % 8);
        sz += (r >> 16) % sz;
        if (slot[k] && (r >> 40) % 4 == 0 && len[k] < (8u << 20)) {
            size_t nl = len[k] + len[k] / 2;
            unsigned char *q = realloc(slot[k], nl);
            if (!q) exit(2);
            slot[k] = q;
            len[k] = nl;
        } else {
            free(slot[k]);
            if ((r >> 44) % 8 == 0) {
                void *p;
                if (posix_memalign(&p, 4096, sz)) exit(2);
                slot[k] = p;
            } else {
                slot[k] = xmalloc(sz);
            }
            len[k] = sz;
        }
        /* Write one byte per 4 KiB page, as a program filling a buffer would touch it. */
        for (size_t o = 0; o < len[k]; o += 4096) slot[k][o] = (unsigned char)o;
        sum += touch(slot[k], len[k], r);
    }
    for (int k = 0; k < SLOTS; k++) free(slot[k]);
    return sum;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s churn|pairs|tight|server|trace|threads|large [scale]\n", argv[0]);
        return 2;
    }
    if (argc > 2) scale = atof(argv[2]);
    const char *w = argv[1];
    uint64_t sum;
    if (!strcmp(w, "churn")) sum = churn();
    else if (!strcmp(w, "pairs")) sum = pairs();
    else if (!strcmp(w, "tight")) sum = tight();
    else if (!strcmp(w, "server")) sum = server();
    else if (!strcmp(w, "trace")) sum = trace();
    else if (!strcmp(w, "threads")) sum = short_threads();
    else if (!strcmp(w, "large")) sum = large();
    else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    printf("%s %llu\n", w, (unsigned long long)sum);
    return 0;
}
