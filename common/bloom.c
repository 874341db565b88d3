#include "bloom.h"

#include <stdlib.h>
#include <string.h>

#define PROBES 4
#define MIN_BITS (1u << 16)
/* A hash sets its PROBES bits in one block of 512 (a blocked Bloom
 * filter, Putze et al. 2007): one cache line to read per stage where
 * probes over the whole stage took one each. The bits within the block
 * are 9-bit pieces of the hash, the block its bits from 36 up. */
#define BLOCK_BYTES 64
#define BLOCK_WORDS (BLOCK_BYTES / 8)

static uint64_t *block_of(const bloom_stage_t *s, uint64_t h)
{
    uint64_t blocks = (s->mask + 1) / (BLOCK_BYTES * 8);
    return s->bits + ((h >> 36) & (blocks - 1)) * BLOCK_WORDS;
}

static bool stage_init(bloom_stage_t *s, size_t cap)
{
    uint64_t nbits = MIN_BITS;
    while (nbits < (uint64_t)cap * 16 && nbits < (1ULL << 40))
        nbits <<= 1;
    /* Blocks start on cache lines. */
    if (!(s->bits = aligned_alloc(BLOCK_BYTES, nbits / 8)))
        return false;
    memset(s->bits, 0, nbits / 8);
    s->mask = nbits - 1;
    s->cap = cap;
    s->n = 0;
    return true;
}

bool bloom_init(bloom_t *b, size_t cap)
{
    bloom_free(b);
    if (cap == 0)
        cap = 1; /* each stage twice the last: never 0 */
    if (!stage_init(&b->st[0], cap))
        return false;
    b->nst = 1;
    return true;
}

void bloom_free(bloom_t *b)
{
    for (unsigned i = 0; i < b->nst; i++)
        free(b->st[i].bits);
    *b = (bloom_t){0};
}

size_t bloom_count(const bloom_t *b)
{
    size_t n = 0;
    for (unsigned i = 0; i < b->nst; i++)
        n += b->st[i].n;
    return n;
}

void bloom_add(bloom_t *b, uint64_t h)
{
    if (!b->nst)
        return;
    bloom_stage_t *s = &b->st[b->nst - 1];
    if (s->n >= s->cap && !b->full) {
        if (b->nst < BLOOM_STAGES && stage_init(&b->st[b->nst], 2 * s->cap))
            s = &b->st[b->nst++];
        else
            b->full = true;
    }
    uint64_t *blk = block_of(s, h);
    for (int i = 0; i < PROBES; i++) {
        unsigned bit = (unsigned)(h >> (9 * i)) & 511;
        blk[bit >> 6] |= 1ULL << (bit & 63);
    }
    s->n++;
}

bool bloom_maybe(const bloom_t *b, uint64_t h)
{
    if (!b->nst)
        return true; /* never built (or its memory was refused): it cannot say "absent" */
    for (unsigned k = 0; k < b->nst; k++) {
        const uint64_t *blk = block_of(&b->st[k], h);
        int i;
        for (i = 0; i < PROBES; i++) {
            unsigned bit = (unsigned)(h >> (9 * i)) & 511;
            if (!(blk[bit >> 6] & (1ULL << (bit & 63))))
                break;
        }
        if (i == PROBES)
            return true;
    }
    return false;
}
