/* merge: the merge rule. Per field, the last writer wins on (hlc, origin);
 * equal versions are broken by the value and author bytes so that even a
 * misbehaving peer cannot make two nodes disagree. The rule is
 * commutative, associative and idempotent. A write that did not see the
 * value it meets (its base is older than that value, or that value's base
 * is older than it) is a concurrent edit: reported for the conflict log,
 * whichever side wins. */
#ifndef LX_MERGE_H
#define LX_MERGE_H

#include <stdbool.h>

#include "record.h"

typedef enum {
    MERGE_SAME = 0,  /* the write is already there: nothing to do */
    MERGE_WON,       /* the write replaces the current value */
    MERGE_LOST,      /* the current value stays */
} merge_t;

/* Decides write w against the current field cur (NULL when absent).
 * *conflict is set when the two were concurrent. Pure: changes nothing. */
merge_t merge_decide(const field_t *cur, const field_t *w, bool *conflict);

#endif
