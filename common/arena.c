#include "arena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN alignof(max_align_t)
#define MIN_BLOCK 4096
/* Blocks of destroyed arenas kept for the next ones: a node decodes every
 * frame into an arena of a megabyte or two, and fresh memory of that size
 * comes from mmap, so each frame paid a page fault per 4 KiB (most of a
 * relay's kernel time) and the zeroing of every page twice. At most this
 * many blocks and bytes are kept, shared by the threads (a frame is
 * decoded in the net thread and freed in the loop thread). */
#define POOL_BLOCKS 16
#define POOL_BYTES (32u << 20)

typedef struct block {
    struct block *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
} block_t;

struct arena {
    block_t *head;  /* the block being filled; older ones behind it */
    size_t next;    /* size of the next block */
};

static struct {
    pthread_mutex_t mu;
    block_t *b[POOL_BLOCKS];
    unsigned n;
    size_t bytes;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The smallest kept block of at least size bytes, or NULL. */
static block_t *pool_take(size_t size)
{
    block_t *b = NULL;
    pthread_mutex_lock(&pool.mu);
    unsigned best = pool.n;
    for (unsigned i = 0; i < pool.n; i++)
        if (pool.b[i]->size >= size && (best == pool.n || pool.b[i]->size < pool.b[best]->size))
            best = i;
    if (best < pool.n) {
        b = pool.b[best];
        pool.b[best] = pool.b[--pool.n];
        pool.bytes -= b->size;
    }
    pthread_mutex_unlock(&pool.mu);
    return b;
}

/* Keeps b for a later arena when there is room, else frees it. */
static void pool_give(block_t *b)
{
    pthread_mutex_lock(&pool.mu);
    bool kept = pool.n < POOL_BLOCKS && b->size <= POOL_BYTES - pool.bytes;
    if (kept) {
        pool.b[pool.n++] = b;
        pool.bytes += b->size;
    }
    pthread_mutex_unlock(&pool.mu);
    if (!kept)
        free(b);
}

void arena_pool_release(void)
{
    pthread_mutex_lock(&pool.mu);
    for (unsigned i = 0; i < pool.n; i++)
        free(pool.b[i]);
    pool.n = 0;
    pool.bytes = 0;
    pthread_mutex_unlock(&pool.mu);
}

static block_t *block_new(size_t size)
{
    block_t *b = pool_take(size);
    if (!b && size <= SIZE_MAX - sizeof *b && (b = malloc(sizeof *b + size)))
        b->size = size;
    if (b) {
        b->next = NULL;
        b->used = 0;
    }
    return b;
}

arena_t *arena_new(size_t hint)
{
    arena_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->next = hint < MIN_BLOCK ? MIN_BLOCK : hint;
    return a;
}

void arena_destroy(arena_t **self_p)
{
    arena_t *a = *self_p;
    if (!a)
        return;
    for (block_t *b = a->head, *n; b; b = n) {
        n = b->next;
        pool_give(b);
    }
    free(a);
    *self_p = NULL;
}

/* n bytes at the given alignment (a power of two, at most ALIGN). */
static void *take(arena_t *a, size_t n, size_t align)
{
    block_t *b = a->head;
    size_t at = b ? (b->used + align - 1) & ~(align - 1) : 0;
    if (!b || at > b->size || b->size - at < n) {
        /* Blocks grow, so a batch of any size takes a few of them. */
        size_t size = a->next > n ? a->next : n;
        if (!(b = block_new(size)))
            return NULL;
        b->next = a->head;
        a->head = b;
        a->next = size <= SIZE_MAX / 2 ? size * 2 : size;
        at = 0;
    }
    b->used = at + n;
    return b->data + at;
}

void *arena_alloc(arena_t *a, size_t n)
{
    void *p = take(a, n, ALIGN);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_bytes(arena_t *a, size_t n)
{
    return take(a, n, 1);
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *c = n + 1 > n ? take(a, n + 1, 1) : NULL;
    if (c) {
        if (n)
            memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}
