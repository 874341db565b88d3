/* mp: a guard in front of msgpack-c for untrusted bytes. msgpack-c's
 * unpacker allocates count x 24 bytes for an array or map header before it
 * reads any element, so a 5-byte frame can ask for gigabytes. mp_check
 * walks the bytes first and refuses truncation, trailing bytes, counts
 * larger than the bytes left, and deep nesting; only then is the buffer
 * handed to msgpack_unpack. */
#ifndef LX_MP_H
#define LX_MP_H

#include <msgpack.h>
#include <stddef.h>

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

#endif
