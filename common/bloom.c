#include "bloom.h"

#include <stdlib.h>

#define PROBES 4
#define MIN_BITS (1u << 16)

static bool stage_init(bloom_stage_t *s, size_t cap)
{
    uint64_t nbits = MIN_BITS;
    while (nbits < (uint64_t)cap * 16 && nbits < (1ULL << 40))
        nbits <<= 1;
    if (!(s->bits = calloc(nbits / 64, sizeof *s->bits)))
        return false;
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

/* Double hashing: probe i at h + i * h', h' the hash turned half-way and
 * made odd. */
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
    uint64_t step = ((h << 32) | (h >> 32)) | 1;
    for (int i = 0; i < PROBES; i++, h += step)
        s->bits[(h & s->mask) >> 6] |= 1ULL << (h & 63);
    s->n++;
}

bool bloom_maybe(const bloom_t *b, uint64_t h)
{
    if (!b->nst)
        return true; /* never built (or its memory was refused): it cannot say "absent" */
    uint64_t step = ((h << 32) | (h >> 32)) | 1;
    for (unsigned k = 0; k < b->nst; k++) {
        const bloom_stage_t *s = &b->st[k];
        uint64_t x = h;
        int i;
        for (i = 0; i < PROBES; i++, x += step)
            if (!(s->bits[(x & s->mask) >> 6] & (1ULL << (x & 63))))
                break;
        if (i == PROBES)
            return true;
    }
    return false;
}
