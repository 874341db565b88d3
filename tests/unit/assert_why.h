/* For the unit tests (after cmocka.h): checks a failure's code and that
 * its message names the culprit; a macro so that a failure reports the
 * caller's line. */
#ifndef LX_TEST_ASSERT_WHY_H
#define LX_TEST_ASSERT_WHY_H

#include <string.h>

#define assert_why(call, want, why, needle)                                  \
    do {                                                                     \
        int rc_ = (call);                                                    \
        if (rc_ != (want) || !strstr((why)->msg, (needle)))                  \
            fail_msg("line %d: rc %d (want %d), why \"%s\" (want \"%s\")",    \
                     __LINE__, rc_, (int)(want), (why)->msg, (needle));      \
    } while (0)

#endif
