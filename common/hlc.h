/* hlc: hybrid logical clocks. A timestamp is 48 bits of physical
 * milliseconds since the Unix epoch and 16 bits of logical counter, packed
 * in a uint64_t so that integer order is causal order. */
#ifndef LX_HLC_H
#define LX_HLC_H

#include <stdint.h>

typedef uint64_t hlc_t;

#define HLC_LOGICAL_BITS 16
#define HLC_DEFAULT_SKEW_MS (5u * 60u * 1000u)

static inline hlc_t hlc_make(uint64_t ms, uint32_t logical)
{
    return (ms << HLC_LOGICAL_BITS) | (logical & 0xffffu);
}
static inline uint64_t hlc_ms(hlc_t h) { return h >> HLC_LOGICAL_BITS; }
static inline uint32_t hlc_logical(hlc_t h) { return (uint32_t)(h & 0xffffu); }

typedef struct {
    hlc_t last;            /* the highest timestamp issued or seen */
    uint64_t max_skew_ms;  /* remote timestamps further ahead are refused */
} hlc_clock_t;

/* Starts a clock that will never issue a timestamp <= last. */
void hlc_init(hlc_clock_t *c, hlc_t last, uint64_t max_skew_ms);

/* A timestamp for a local event at wall time wall_ms; strictly greater
 * than every timestamp issued or received before. */
hlc_t hlc_now(hlc_clock_t *c, uint64_t wall_ms);

/* Folds in a remote timestamp. Returns LX_ESKEW, leaving the clock as it
 * was, when remote lies more than max_skew_ms ahead of wall_ms. */
int hlc_recv(hlc_clock_t *c, hlc_t remote, uint64_t wall_ms);

/* The system's wall clock in milliseconds. */
uint64_t hlc_wall_ms(void);

/* Formats as "2026-11-23T03:23:27.123Z+5" into buf (at least 40 bytes). */
char *hlc_fmt(hlc_t h, char *buf, unsigned len);

#endif
