#include "hlc.h"
#include "err.h"

#include <stdio.h>
#include <time.h>

void hlc_init(hlc_clock_t *c, hlc_t last, uint64_t max_skew_ms)
{
    c->last = last;
    c->max_skew_ms = max_skew_ms;
}

hlc_t hlc_now(hlc_clock_t *c, uint64_t wall_ms)
{
    hlc_t wall = hlc_make(wall_ms, 0);
    /* Either the wall clock moved past everything seen, or we tick the
     * logical counter; a full counter carries into the milliseconds,
     * which only happens under more than 65536 events in one ms. */
    c->last = wall > c->last ? wall : c->last + 1;
    return c->last;
}

int hlc_recv(hlc_clock_t *c, hlc_t remote, uint64_t wall_ms)
{
    if (hlc_ms(remote) > wall_ms + c->max_skew_ms)
        return LX_ESKEW;
    if (remote > c->last)
        c->last = remote;
    return LX_OK;
}

uint64_t hlc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *hlc_fmt(hlc_t h, char *buf, unsigned len)
{
    uint64_t ms = hlc_ms(h);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ+%u",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000), hlc_logical(h));
    return buf;
}
