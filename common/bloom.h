/* bloom: a set of 64-bit hashes that answers "surely absent" or "maybe
 * present". A writing store keeps one over the ID numbers it holds, so a
 * new number (nearly every new child) is known to be unique without a
 * search of the ID-number index, a random B-tree descent per record. */
#ifndef LX_BLOOM_H
#define LX_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *bits;
    uint64_t mask;   /* bits in the set - 1 (a power of two) */
    size_t n, cap;   /* hashes added; how many it was sized for */
} bloom_t;

/* An empty set sized for cap hashes (16 bits each, at least 64 Kib), the
 * old one freed; false on allocation failure (b is left empty). */
bool bloom_init(bloom_t *b, size_t cap);
void bloom_free(bloom_t *b);
void bloom_add(bloom_t *b, uint64_t h);
/* False: h was never added. True: it may have been (about 1 in 400 when
 * full to cap). */
bool bloom_maybe(const bloom_t *b, uint64_t h);

#endif
