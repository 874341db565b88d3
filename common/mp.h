/* mp: a guard in front of msgpack-c for untrusted bytes. msgpack-c's
 * unpacker allocates count x 24 bytes for an array or map header before it
 * reads any element, so a 5-byte frame can ask for gigabytes. mp_check
 * walks the bytes first and refuses truncation, trailing bytes, counts
 * larger than the bytes left, and deep nesting; only then is the buffer
 * handed to msgpack_unpack. */
#ifndef LX_MP_H
#define LX_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MP_MAX_DEPTH 16

/* Checks that buf holds exactly one well-formed msgpack object within the
 * limits above. Returns 0 or LX_ECORRUPT with why naming the offset. */
int mp_check(const void *buf, size_t len, why_t *why);

/* mp_check, then unpacks into *res (msgpack_unpacked_init'ed by caller,
 * destroyed by caller). */
int mp_unpack(const void *buf, size_t len, msgpack_unpacked *res, why_t *why);

/* Typed readers over a decoded object; each names the field on failure. */
int mp_str(const msgpack_object *o, const char *what, char **out, why_t *why);
int mp_u64(const msgpack_object *o, const char *what, uint64_t *out, why_t *why);
int mp_array(const msgpack_object *o, const char *what, uint32_t min,
             uint32_t max, why_t *why);
bool mp_str_eq(const msgpack_object *o, const char *s);

/* A reader over bytes of a known shape, for hot paths that would rather
 * not unpack (the stored records a report walks). Each call takes the next
 * item; anything but the expected kind, or running past the end, sets bad
 * (and later calls return zeros), so a caller checks once at the end and
 * falls back to the ordinary decoder. */
typedef struct {
    const unsigned char *p, *end;
    bool bad;
} mp_rd_t;

/* A string inside the bytes, not NUL-terminated; p NULL when absent. */
typedef struct {
    const char *p;
    uint32_t n;
} mp_sv_t;

uint64_t mp_rd_be(mp_rd_t *r, int n);   /* n raw big-endian bytes */
unsigned mp_rd_byte(mp_rd_t *r);
uint32_t mp_rd_array(mp_rd_t *r);       /* an array header: its count */
uint64_t mp_rd_uint(mp_rd_t *r);
mp_sv_t mp_rd_str_body(mp_rd_t *r, unsigned b);  /* after its header byte b */
mp_sv_t mp_rd_str(mp_rd_t *r);

#endif
