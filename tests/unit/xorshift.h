/* The unit tests' seeded generator (Marsaglia's xorshift64): the same
 * seed gives the same sequence on every machine, so a failing iteration
 * can be run again. */
#ifndef LX_TEST_XORSHIFT_H
#define LX_TEST_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#endif
