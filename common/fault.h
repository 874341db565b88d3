/* fault: failures the tests inject at named places. The environment
 * variable LIANXIN_FAULT="place:n" makes the n-th time `place` is reached
 * fail, once, and "place:*" every time; unset (as it always is outside
 * the tests), every place passes at the cost of one comparison. Paths
 * that only a broken disk takes, or a busy node, are tested this way. */
#ifndef LX_FAULT_H
#define LX_FAULT_H

#include <stdbool.h>

/* True when this visit to `place` is the one to fail. Not thread-safe:
 * each place is reached from one thread. */
bool fault_hit(const char *place);

#endif
