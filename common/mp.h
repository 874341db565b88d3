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

/* The readers are inline: a report calls them some fifty times a record,
 * and as calls into another file they were a quarter of its time. After a
 * failure p is left at end, so every later read fails (and gives zero)
 * without checking bad first. */
static inline unsigned mp_rd_fail_(mp_rd_t *r)
{
    r->bad = true;
    r->p = r->end;
    return 0;
}

/* n (1 to 8) raw big-endian bytes. */
static inline uint64_t mp_rd_be(mp_rd_t *r, int n)
{
    if (r->end - r->p < n)
        return mp_rd_fail_(r);
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = (x << 8) | r->p[i];
    r->p += n;
    return x;
}

static inline unsigned mp_rd_byte(mp_rd_t *r)
{
    return r->p < r->end ? *r->p++ : mp_rd_fail_(r);
}

/* An array header: its count. */
static inline uint32_t mp_rd_array(mp_rd_t *r)
{
    unsigned b = mp_rd_byte(r);
    if (b >= 0x90 && b <= 0x9f)
        return b & 0x0f;
    if (b == 0xdc)
        return (uint32_t)mp_rd_be(r, 2);
    if (b == 0xdd)
        return (uint32_t)mp_rd_be(r, 4);
    return mp_rd_fail_(r);
}

static inline uint64_t mp_rd_uint(mp_rd_t *r)
{
    unsigned b = mp_rd_byte(r);
    if (b <= 0x7f)
        return b;
    if (b >= 0xcc && b <= 0xcf)
        return mp_rd_be(r, 1 << (b - 0xcc));
    return mp_rd_fail_(r);
}

/* A string's bytes, after its header byte b (already read). */
static inline mp_sv_t mp_rd_str_body(mp_rd_t *r, unsigned b)
{
    uint64_t n;
    if (b >= 0xa0 && b <= 0xbf)
        n = b & 0x1f;
    else if (b >= 0xd9 && b <= 0xdb)
        n = mp_rd_be(r, 1 << (b - 0xd9));
    else
        n = mp_rd_fail_(r);
    if (r->bad || (uint64_t)(r->end - r->p) < n) {
        mp_rd_fail_(r);
        return (mp_sv_t){NULL, 0};
    }
    mp_sv_t s = {(const char *)r->p, (uint32_t)n};
    r->p += n;
    return s;
}

static inline mp_sv_t mp_rd_str(mp_rd_t *r) { return mp_rd_str_body(r, mp_rd_byte(r)); }

#endif
