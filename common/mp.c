#include "mp.h"

#include <string.h>

/* Reads a big-endian unsigned integer of n bytes. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks the msgpack objects in [*pos, len). `pending` counts the objects
 * still to read; containers add their element counts. Depth is tracked
 * with a small stack of remaining counts per level. */
int mp_check(const void *buf, size_t len, why_t *why)
{
    const unsigned char *p = buf;
    size_t pos = 0;
    uint64_t left[MP_MAX_DEPTH + 1];
    int depth = 0;
    left[0] = 1;

    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (pos >= len)
            return why_set(why, LX_ECORRUPT, "msgpack: truncated at byte %zu", pos);
        unsigned char t = p[pos++];
        uint64_t skip = 0;     /* payload bytes to skip */
        uint64_t children = 0; /* elements a container holds */
        int hdr = 0;           /* length field width */
        bool container = false;

        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool */
        } else if (t >= 0x80 && t <= 0x8f) {
            container = true, children = 2u * (t & 0x0f);
        } else if (t >= 0x90 && t <= 0x9f) {
            container = true, children = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4: case 0xd9: hdr = 1; break;           /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1; skip = 1; break;            /* ext8 + type */
            case 0xc8: hdr = 2; skip = 1; break;
            case 0xc9: hdr = 4; skip = 1; break;
            case 0xca: skip = 4; break;                     /* float32 */
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                     /* fixext */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: hdr = 2; container = true; break;    /* array16 */
            case 0xdd: hdr = 4; container = true; break;
            case 0xde: hdr = 2; container = true; break;    /* map16 */
            case 0xdf: hdr = 4; container = true; break;
            default:
                return why_set(why, LX_ECORRUPT,
                               "msgpack: invalid type byte 0x%02x at byte %zu",
                               t, pos - 1);
            }
        }
        if (hdr) {
            if (len - pos < (size_t)hdr)
                return why_set(why, LX_ECORRUPT, "msgpack: truncated length at byte %zu", pos);
            uint64_t n = be(p + pos, hdr);
            pos += (size_t)hdr;
            if (container)
                children = (t == 0xde || t == 0xdf) ? 2 * n : n;
            else
                skip += n;
        }
        if (skip > len - pos)
            return why_set(why, LX_ECORRUPT,
                           "msgpack: value at byte %zu runs past the end", pos);
        pos += (size_t)skip;
        if (container && children > 0) {
            /* Every element takes at least one byte: a count larger than
             * the bytes left is a lie, and would make msgpack-c allocate
             * count x 24 bytes up front. */
            if (children > len - pos)
                return why_set(why, LX_ECORRUPT,
                               "msgpack: container at byte %zu claims %llu "
                               "elements, only %zu bytes left",
                               pos, (unsigned long long)children, len - pos);
            if (depth + 1 > MP_MAX_DEPTH)
                return why_set(why, LX_ECORRUPT,
                               "msgpack: nested deeper than %d", MP_MAX_DEPTH);
            left[++depth] = children;
        }
    }
    if (pos != len)
        return why_set(why, LX_ECORRUPT, "msgpack: %zu trailing bytes", len - pos);
    return LX_OK;
}

int mp_unpack(const void *buf, size_t len, msgpack_unpacked *res, why_t *why)
{
    int rc = mp_check(buf, len, why);
    if (rc)
        return rc;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(res, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return why_set(why, LX_ECORRUPT, "msgpack: does not decode");
    return LX_OK;
}

int mp_str(const msgpack_object *o, const char *what, char **out, why_t *why)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return why_set(why, LX_ECORRUPT, "%s: expected a string", what);
    /* msgpack-c may give an empty string a NULL ptr, which memchr and
     * memcpy must not see even with a zero length. */
    if (o->via.str.size && memchr(o->via.str.ptr, '\0', o->via.str.size))
        return why_set(why, LX_ECORRUPT, "%s: string holds a NUL byte", what);
    char *s = malloc(o->via.str.size + 1);
    if (!s)
        return LX_ENOMEM;
    if (o->via.str.size)
        memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    *out = s;
    return LX_OK;
}

int mp_u64(const msgpack_object *o, const char *what, uint64_t *out, why_t *why)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return why_set(why, LX_ECORRUPT, "%s: expected an unsigned integer", what);
    *out = o->via.u64;
    return LX_OK;
}

int mp_array(const msgpack_object *o, const char *what, uint32_t min,
             uint32_t max, why_t *why)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return why_set(why, LX_ECORRUPT, "%s: expected an array", what);
    if (o->via.array.size < min || o->via.array.size > max)
        return why_set(why, LX_ECORRUPT, "%s: %u elements, expected %u..%u",
                       what, o->via.array.size, min, max);
    return LX_OK;
}

bool mp_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
        && (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}
