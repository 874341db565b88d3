/* bloom: a set of 64-bit hashes that answers "surely absent" or "maybe
 * present". A writing store keeps one over the ID numbers it holds, so a
 * new number (nearly every new child) is known to be unique without a
 * search of the ID-number index, a random B-tree descent per record.
 *
 * It grows as it fills, without being built again (a scalable Bloom
 * filter, Almeida et al. 2007): when the newest stage holds what it was
 * sized for, a stage twice as large takes the hashes that follow, and a
 * question asks every stage. Building it again means reading the whole
 * index, which a busy writer cannot stop for; a growing one keeps
 * answering through a long burst of new children. */
#ifndef LX_BLOOM_H
#define LX_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOOM_STAGES 8

typedef struct {
    uint64_t *bits;
    uint64_t mask;   /* bits in the stage - 1 (a power of two) */
    size_t n, cap;   /* hashes added; how many it was sized for */
} bloom_stage_t;

typedef struct {
    bloom_stage_t st[BLOOM_STAGES];
    unsigned nst;    /* stages in use; hashes go to the last */
    bool full;       /* a stage could not be added: answers grow worse */
} bloom_t;

/* An empty set of one stage sized for cap hashes (16 bits each, at least
 * 64 Kib), the old one freed; false on allocation failure (b is left
 * empty). */
bool bloom_init(bloom_t *b, size_t cap);
void bloom_free(bloom_t *b);
/* Adds h; a new stage is added when the last is full. When none can be
 * (BLOOM_STAGES reached, or no memory) the last stage takes it beyond
 * its size and b->full is set: the caller should build the set again. */
void bloom_add(bloom_t *b, uint64_t h);
/* False: h was never added. True: it may have been (about 1 in 400 per
 * full stage), or the set has no stage (never built, or built without
 * memory), which cannot tell. */
bool bloom_maybe(const bloom_t *b, uint64_t h);
/* Hashes added. */
size_t bloom_count(const bloom_t *b);

#endif
