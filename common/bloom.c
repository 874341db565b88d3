#include "bloom.h"

#include <stdlib.h>

#define PROBES 4
#define MIN_BITS (1u << 16)

bool bloom_init(bloom_t *b, size_t cap)
{
    bloom_free(b);
    uint64_t nbits = MIN_BITS;
    while (nbits < (uint64_t)cap * 16 && nbits < (1ULL << 40))
        nbits <<= 1;
    if (!(b->bits = calloc(nbits / 64, sizeof *b->bits)))
        return false;
    b->mask = nbits - 1;
    b->cap = cap;
    return true;
}

void bloom_free(bloom_t *b)
{
    free(b->bits);
    *b = (bloom_t){0};
}

/* Double hashing: probe i at h + i * h', h' the hash turned half-way and
 * made odd. */
void bloom_add(bloom_t *b, uint64_t h)
{
    uint64_t step = ((h << 32) | (h >> 32)) | 1;
    for (int i = 0; i < PROBES; i++, h += step)
        b->bits[(h & b->mask) >> 6] |= 1ULL << (h & 63);
    b->n++;
}

bool bloom_maybe(const bloom_t *b, uint64_t h)
{
    uint64_t step = ((h << 32) | (h >> 32)) | 1;
    for (int i = 0; i < PROBES; i++, h += step)
        if (!(b->bits[(h & b->mask) >> 6] & (1ULL << (h & 63))))
            return false;
    return true;
}
