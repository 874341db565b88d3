/* LD_PRELOAD shim for the integration tests: the wall clock (CLOCK_REALTIME)
 * moved by LX_CLOCK_SHIFT_MS milliseconds, so that a test can make a node
 * or a command whose clock runs ahead, as a village PC's may. */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

typedef int (*gettime_fn)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static gettime_fn real;
    if (!real)
        real = (gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    const char *s = getenv("LX_CLOCK_SHIFT_MS");
    if (rc == 0 && id == CLOCK_REALTIME && s) {
        long long ns = ts->tv_nsec + atoll(s) % 1000 * 1000000LL;
        ts->tv_sec += atoll(s) / 1000 + ns / 1000000000LL;
        ts->tv_nsec = ns % 1000000000LL;
        if (ts->tv_nsec < 0) {
            ts->tv_nsec += 1000000000LL;
            ts->tv_sec--;
        }
    }
    return rc;
}
