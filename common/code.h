/* code: 12-digit statistical division codes PPCCDDTTTVVV, the routing key,
 * authorisation scope and report breakdown key of Lianxin. A code is held
 * as its integer value; 0 is never a valid code. */
#ifndef LX_CODE_H
#define LX_CODE_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t code_t;

typedef enum {
    LEVEL_NONE = 0,
    LEVEL_PROVINCE = 1,
    LEVEL_CITY = 2,
    LEVEL_COUNTY = 3,
    LEVEL_TOWNSHIP = 4,
    LEVEL_VILLAGE = 5,
} level_t;

#define CODE_STRLEN 12

/* Parses exactly 12 ASCII digits forming a well-shaped code (province
 * digits non-zero, and no non-zero digits below the first all-zero part).
 * Returns 0 or LX_EINVAL. */
int code_parse(const char *s, code_t *out);

/* Parses the first n bytes (n must be 12). */
int code_parse_n(const char *s, int n, code_t *out);

/* Writes 12 digits and a NUL into buf (at least 13 bytes); returns buf. */
char *code_fmt(code_t c, char buf[CODE_STRLEN + 1]);

level_t code_level(code_t c);
const char *level_name(level_t l);         /* "village", "province", ... */
level_t level_parse(const char *name);     /* LEVEL_NONE when unknown */

/* The code of the unit one level up, 0 for a province. */
code_t code_parent(code_t c);

/* The ancestor of c at level l (l <= c's level), c itself at its level. */
code_t code_at_level(code_t c, level_t l);

/* True when x lies in the subtree of node (node itself included). */
bool code_contains(code_t node, code_t x);

/* The deepest code whose subtree holds both a and b. */
code_t code_lca(code_t a, code_t b);

/* The unit one level below node that holds x: the report breakdown key.
 * Returns 0 when x is not strictly below node. */
code_t code_child_under(code_t node, code_t x);

/* The half-open range [lo, hi) of codes in node's subtree, for range scans
 * over big-endian encoded codes. */
void code_range(code_t node, code_t *lo, code_t *hi);

/* Big-endian 8-byte encoding, so that LMDB key order is code order. */
void code_put_be(code_t c, unsigned char out[8]);
code_t code_get_be(const unsigned char in[8]);

#endif
