/* libFuzzer target for the record and change decoders (common/record
 * behind the common/mp guard): any bytes must decode or be refused with
 * LX_ECORRUPT, never crash, hang, leak or read outside the input. Besides
 * the sanitizers it checks what a caller relies on: a decoded record has
 * a valid id and strictly sorted field names, and its encoding decodes
 * back to bytes that encode the same (the encoding is canonical); and the
 * batch hot path (change_read) takes nothing the general decoder refuses,
 * and decodes what it takes alike. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes with a fresh buffer; the caller frees *out. */
static void pack_record(const record_t *r, char **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (record_pack(r, &pk) != 0)
        __builtin_trap();
    *out = sb.data;
    *len = sb.size;
}

static void pack_change(const change_t *c, char **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (change_pack(c, &pk) != 0)
        __builtin_trap();
    *out = sb.data;
    *len = sb.size;
}

static void check_record(const record_t *r)
{
    if (!record_id_valid(r->id))
        __builtin_trap();
    for (uint32_t i = 0; i < r->n; i++) {
        if (!r->f[i].name || !r->f[i].name[0] || !r->f[i].ver.author)
            __builtin_trap();
        if (i > 0 && strcmp(r->f[i - 1].name, r->f[i].name) >= 0)
            __builtin_trap();
        if (record_field(r, r->f[i].name) != &r->f[i])
            __builtin_trap();
    }
    char *a, *b;
    size_t alen, blen;
    pack_record(r, &a, &alen);
    record_t *d = NULL;
    if (record_decode(a, alen, &d, NULL) != LX_OK || d->n != r->n)
        __builtin_trap();
    pack_record(d, &b, &blen);
    if (alen != blen || memcmp(a, b, alen) != 0)
        __builtin_trap();
    record_destroy(&d);
    free(a);
    free(b);
}

static void check_change(const change_t *c)
{
    if (!record_id_valid(c->id))
        __builtin_trap();
    for (uint32_t i = 1; i < c->n; i++)
        if (strcmp(c->w[i - 1].name, c->w[i].name) >= 0)
            __builtin_trap();
    char *a, *b;
    size_t alen, blen;
    pack_change(c, &a, &alen);
    change_t d = {0};
    if (change_decode(a, alen, &d, NULL) != LX_OK || d.n != c->n)
        __builtin_trap();
    pack_change(&d, &b, &blen);
    if (alen != blen || memcmp(a, b, alen) != 0)
        __builtin_trap();
    change_free(&d);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    why_t why;

    /* What the guard passes, msgpack-c must decode whole. */
    if (mp_check(data, size, &why) == LX_OK) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (mp_unpack(data, size, &u, &why) != LX_OK)
            __builtin_trap();
        msgpack_unpacked_destroy(&u);
    }

    record_t *r = NULL;
    int rc = record_decode(data, size, &r, &why);
    if (rc == LX_OK) {
        check_record(r);
        record_destroy(&r);
    } else if (rc != LX_ECORRUPT || r != NULL || !why.msg[0]) {
        __builtin_trap();
    }

    change_t c = {0};
    rc = change_decode(data, size, &c, &why);
    if (rc == LX_OK) {
        check_change(&c);
    } else if (rc != LX_ECORRUPT || c.id != NULL || c.w != NULL) {
        __builtin_trap();
    }

    arena_t *a = arena_new(size);
    mp_rd_t rd = {data, data + size, false};
    change_t fast;
    if (a && change_read(&rd, a, &fast) && rd.p == data + size) {
        char *x, *y;
        size_t xl, yl;
        if (rc != LX_OK)
            __builtin_trap();
        pack_change(&c, &x, &xl);
        pack_change(&fast, &y, &yl);
        if (xl != yl || memcmp(x, y, xl) != 0)
            __builtin_trap();
        /* What it keeps as record_pack's bytes ends the encoding. */
        if (fast.packed && (fast.packedlen > yl
                            || memcmp(y + yl - fast.packedlen, fast.packed, fast.packedlen)))
            __builtin_trap();
        free(x);
        free(y);
    }
    arena_destroy(&a);
    change_free(&c);
    return 0;
}
