/* Unit tests for common/record and common/mp: values, versions and
 * records in memory; the canonical msgpack encoding of records and change
 * log entries; and the decoders on hostile bytes: truncations, lying
 * length headers, deep nesting, wrong types, non-canonical field order,
 * and a seeded random mutation loop that must never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/record.h"
#include "common/schema.h"
#include "xorshift.h"

#define N(a) (sizeof(a) / sizeof *(a))

#define V1 510104001001ULL
#define V2 510104001002ULL
#define C1 510100000000ULL
#define ID "510104001001-0000019a1b2c3d4e"

/* ---- helpers ---- */

/* A heap copy of exactly n bytes, so that AddressSanitizer catches any
 * read past the end of a frame. */
static unsigned char *dup_exact(const void *p, size_t n)
{
    unsigned char *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} enc_t;

static void enc_init(enc_t *e)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
}

/* Ends the encoder and returns its bytes as an exact heap copy. */
static unsigned char *enc_done(enc_t *e, size_t *len)
{
    unsigned char *b = dup_exact(e->sb.data, e->sb.size);
    *len = e->sb.size;
    msgpack_sbuffer_destroy(&e->sb);
    return b;
}

static unsigned char *encode_record(const record_t *r, size_t *len)
{
    enc_t e;
    enc_init(&e);
    assert_int_equal(record_pack(r, &e.pk), 0);
    return enc_done(&e, len);
}

static unsigned char *encode_change(const change_t *c, size_t *len)
{
    enc_t e;
    enc_init(&e);
    assert_int_equal(change_pack(c, &e.pk), 0);
    return enc_done(&e, len);
}

/* The batch hot path (change_read) against the general decoder: it takes
 * nothing that `slow` (change_decode's result, NULL when refused) did not
 * take, and what it takes encodes to the same bytes. Returns whether it
 * took the bytes. */
static bool fast_agrees(const void *buf, size_t len, const change_t *slow)
{
    arena_t *a = arena_new(len);
    assert_non_null(a);
    mp_rd_t rd = {buf, (const unsigned char *)buf + len, false};
    change_t f;
    bool took = change_read(&rd, a, &f) && rd.p == rd.end;
    if (took) {
        if (!slow)
            fail_msg("change_read took bytes that change_decode refuses");
        size_t x, y;
        unsigned char *bx = encode_change(slow, &x), *by = encode_change(&f, &y);
        assert_int_equal(x, y);
        assert_memory_equal(bx, by, x);
        /* The bytes it keeps as record_pack's are those (they end the
         * change's encoding). */
        if (f.packed) {
            assert_true(f.packedlen <= y);
            assert_memory_equal(by + y - f.packedlen, f.packed, f.packedlen);
        }
        free(bx);
        free(by);
    }
    arena_destroy(&a);
    arena_destroy(&a);  /* twice is safe */
    return took;
}

static ver_t mkver(hlc_t hlc, code_t origin, hlc_t base, const char *author)
{
    ver_t v = {.hlc = hlc, .origin = origin, .base = base, .author = (char *)author};
    return v;
}

static void put(record_t *r, const char *name, const val_t *val, const ver_t *ver)
{
    field_t f;
    assert_int_equal(field_init(&f, name, val, ver), LX_OK);
    assert_int_equal(record_put(r, &f), LX_OK);
    field_free(&f);
}

static void put_str(record_t *r, const char *name, const char *s, hlc_t hlc)
{
    val_t v = {0};
    assert_int_equal(val_set_str(&v, s), LX_OK);
    ver_t ver = mkver(hlc, V1, 0, "510104001001/civil/li");
    put(r, name, &v, &ver);
    val_free(&v);
}

/* A record with every kind of value and distinct versions; its fields
 * are put in an order other than the sorted one. */
static record_t *sample_record(void)
{
    record_t *r = record_new(ID);
    assert_non_null(r);
    val_t v = {0};
    ver_t ver;

    assert_int_equal(val_set_str(&v, "张小明"), LX_OK);
    ver = mkver(hlc_make(1795404207123ULL, 0), V1, 0, "510104001001/civil/li");
    put(r, "name", &v, &ver);
    val_free(&v);

    assert_int_equal(val_list_add(&v, "留守"), LX_OK);
    assert_int_equal(val_list_add(&v, "boarding"), LX_OK);
    assert_int_equal(val_list_add(&v, ""), LX_OK);
    ver = mkver(hlc_make(1795404207200ULL, 3), V2, hlc_make(1795404207100ULL, 1),
                "510104001002/edu/wang");
    put(r, "tags", &v, &ver);
    val_free(&v);

    v.kind = VAL_BOOL;
    v.b = true;
    ver = mkver(hlc_make(1795404207300ULL, 65535), C1, UINT64_MAX, "510100000000/civil/zhao");
    put(r, "active", &v, &ver);
    v.b = false;
    ver = mkver(1, 1, 1, "x");
    put(r, "closed", &v, &ver);

    v = (val_t){0};
    ver = mkver(hlc_make(1795404207400ULL, 2), V1, hlc_make(1795404207123ULL, 0), "");
    put(r, "removed", &v, &ver);

    v = (val_t){.kind = VAL_LIST};
    ver = mkver(UINT64_MAX, UINT64_MAX, 0, "a/b/c");
    put(r, "empty_list", &v, &ver);

    assert_int_equal(val_set_str(&v, ""), LX_OK);
    ver = mkver(hlc_make(5, 5), V2, 0, "510104001002/health/chen");
    put(r, "note", &v, &ver);
    val_free(&v);

    assert_int_equal(val_set_str(&v, "女"), LX_OK);
    ver = mkver(hlc_make(1795404207123ULL, 1), V1, 0, "510104001001/civil/li");
    put(r, "gender", &v, &ver);
    val_free(&v);

    /* Versions that share an hlc with "name" but not its origin, or its
     * hlc and origin but not its author, must stay apart. */
    assert_int_equal(val_set_str(&v, "第一小学"), LX_OK);
    ver = mkver(hlc_make(1795404207123ULL, 0), V2, 0, "510104001001/civil/li");
    put(r, "school", &v, &ver);
    val_free(&v);
    assert_int_equal(val_set_str(&v, "4"), LX_OK);
    ver = mkver(hlc_make(1795404207123ULL, 0), V1, 0, "510104001001/edu/wang");
    put(r, "grade", &v, &ver);
    val_free(&v);
    return r;
}

static void assert_field_equal(const field_t *a, const field_t *b)
{
    assert_string_equal(a->name, b->name);
    if (!val_eq(&a->val, &b->val))
        fail_msg("field %s: values differ", a->name);
    assert_int_equal(a->val.kind, b->val.kind);
    assert_int_equal(a->ver.hlc, b->ver.hlc);
    assert_int_equal(a->ver.origin, b->ver.origin);
    assert_int_equal(a->ver.base, b->ver.base);
    assert_non_null(b->ver.author);
    assert_string_equal(a->ver.author ? a->ver.author : "", b->ver.author);
}

static void assert_record_equal(const record_t *a, const record_t *b)
{
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->n, b->n);
    for (uint32_t i = 0; i < a->n; i++)
        assert_field_equal(&a->f[i], &b->f[i]);
}

/* ---- values and versions ---- */

static void test_val_eq_copy(void **state)
{
    (void)state;
    val_t nil = {0}, t = {.kind = VAL_BOOL, .b = true}, f = {.kind = VAL_BOOL};
    val_t a = {0}, b = {0}, l1 = {0}, l2 = {0}, l3 = {0}, empty = {.kind = VAL_LIST};
    assert_int_equal(val_set_str(&a, "a"), LX_OK);
    assert_int_equal(val_set_str(&b, "b"), LX_OK);
    assert_int_equal(val_list_add(&l1, "x"), LX_OK);
    assert_int_equal(val_list_add(&l1, "y"), LX_OK);
    assert_int_equal(val_list_add(&l2, "x"), LX_OK);
    assert_int_equal(val_list_add(&l3, "x"), LX_OK);
    assert_int_equal(val_list_add(&l3, "z"), LX_OK);
    assert_int_equal(l1.kind, VAL_LIST);
    assert_int_equal(l1.n, 2);

    const val_t *all[] = {&nil, &t, &f, &a, &b, &l1, &l2, &l3, &empty};
    for (size_t i = 0; i < N(all); i++)
        for (size_t j = 0; j < N(all); j++)
            if (val_eq(all[i], all[j]) != (i == j))
                fail_msg("val_eq(%zu, %zu) gave %d", i, j, i != j);

    /* Copies are equal and deep. */
    for (size_t i = 0; i < N(all); i++) {
        val_t c;
        assert_int_equal(val_copy(&c, all[i]), LX_OK);
        assert_true(val_eq(&c, all[i]));
        if (c.kind == VAL_STR)
            assert_ptr_not_equal(c.s, all[i]->s);
        if (c.kind == VAL_LIST && c.n)
            assert_ptr_not_equal(c.items[0], all[i]->items[0]);
        val_free(&c);
        assert_int_equal(c.kind, VAL_NIL);
    }
    assert_true(val_list_has(&l1, "y"));
    assert_false(val_list_has(&l1, "z"));
    assert_false(val_list_has(&a, "a"));
    /* Adding to a string is refused. */
    assert_int_equal(val_list_add(&a, "q"), LX_EINVAL);
    assert_string_equal(a.s, "a");
    /* val_set_strn takes n bytes. */
    assert_int_equal(val_set_strn(&b, "hello", 3), LX_OK);
    assert_string_equal(b.s, "hel");
    val_free(&a);
    val_free(&b);
    val_free(&l1);
    val_free(&l2);
    val_free(&l3);
}

static void test_ver_cmp(void **state)
{
    (void)state;
    ver_t a = mkver(5, 10, 0, "a");
    ver_t b = mkver(5, 20, 0, "b");
    ver_t c = mkver(6, 1, 0, "c");
    ver_t a2 = mkver(5, 10, 99, "someone else");
    assert_true(ver_cmp(&a, &b) < 0);
    assert_true(ver_cmp(&b, &a) > 0);
    /* The hlc decides before the origin. */
    assert_true(ver_cmp(&b, &c) < 0);
    assert_true(ver_cmp(&c, &b) > 0);
    assert_true(ver_cmp(&a, &c) < 0);
    /* Base and author do not take part. */
    assert_int_equal(ver_cmp(&a, &a2), 0);
    assert_int_equal(ver_cmp(&a, &a), 0);
    /* Large values do not overflow a subtraction. */
    ver_t big = mkver(UINT64_MAX, 0, 0, NULL), zero = mkver(0, UINT64_MAX, 0, NULL);
    assert_true(ver_cmp(&big, &zero) > 0);
    assert_true(ver_cmp(&zero, &big) < 0);
    ver_t o1 = mkver(7, UINT64_MAX, 0, NULL), o2 = mkver(7, 0, 0, NULL);
    assert_true(ver_cmp(&o1, &o2) > 0);
    assert_true(ver_cmp(&o2, &o1) < 0);

    /* Antisymmetric and consistent with (hlc, origin) order on a grid. */
    for (int i = 0; i < 27; i++)
        for (int j = 0; j < 27; j++) {
            ver_t x = mkver((hlc_t)(i / 3), (code_t)(i % 3), 0, NULL);
            ver_t y = mkver((hlc_t)(j / 3), (code_t)(j % 3), 0, NULL);
            int want = (i < j) ? -1 : (i > j);
            int got = ver_cmp(&x, &y);
            assert_int_equal(got < 0 ? -1 : got > 0, want);
        }
}

/* ---- records in memory ---- */

static void assert_sorted(const record_t *r)
{
    for (uint32_t i = 1; i < r->n; i++)
        if (strcmp(r->f[i - 1].name, r->f[i].name) >= 0)
            fail_msg("fields %u and %u out of order: %s, %s", i - 1, i,
                     r->f[i - 1].name, r->f[i].name);
}

static void test_record_put(void **state)
{
    (void)state;
    record_t *r = record_new("r1");
    assert_non_null(r);
    assert_null(record_field(r, "a"));

    put_str(r, "m", "m1", 1);
    put_str(r, "z", "z1", 2);
    put_str(r, "a", "a1", 3);
    put_str(r, "b", "b1", 4);
    assert_int_equal(r->n, 4);
    static const char *order[] = {"a", "b", "m", "z"};
    for (uint32_t i = 0; i < 4; i++)
        assert_string_equal(r->f[i].name, order[i]);

    /* Replacing by name keeps the count and takes value and version. */
    val_t v = {.kind = VAL_BOOL, .b = true};
    ver_t ver = mkver(99, V2, 1, "510104001002/x/y");
    put(r, "m", &v, &ver);
    assert_int_equal(r->n, 4);
    const field_t *f = record_field(r, "m");
    assert_non_null(f);
    assert_int_equal(f->val.kind, VAL_BOOL);
    assert_true(f->val.b);
    assert_int_equal(f->ver.hlc, 99);
    assert_int_equal(f->ver.origin, V2);
    assert_int_equal(f->ver.base, 1);
    assert_string_equal(f->ver.author, "510104001002/x/y");
    assert_null(record_str(r, "m"));
    assert_sorted(r);

    /* record_put copies: changing the source afterwards does nothing. */
    field_t src;
    val_t sv = {0};
    assert_int_equal(val_set_str(&sv, "before"), LX_OK);
    ver = mkver(5, V1, 0, "me");
    assert_int_equal(field_init(&src, "c", &sv, &ver), LX_OK);
    val_free(&sv);
    assert_int_equal(record_put(r, &src), LX_OK);
    src.val.s[0] = 'X';
    src.name[0] = 'q';
    src.ver.author[0] = 'M';
    field_free(&src);
    assert_string_equal(record_str(r, "c"), "before");
    assert_string_equal(record_field(r, "c")->ver.author, "me");
    assert_null(record_field(r, "q"));

    /* Many fields in a scrambled order: sorted, each found, none lost. */
    char name[16];
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t k = (i * 37u) % 100u;
        snprintf(name, sizeof name, "f%03u", k);
        put_str(r, name, name, k);
    }
    assert_int_equal(r->n, 105);
    assert_sorted(r);
    for (uint32_t k = 0; k < 100; k++) {
        snprintf(name, sizeof name, "f%03u", k);
        assert_string_equal(record_str(r, name), name);
        assert_int_equal(record_field(r, name)->ver.hlc, k);
    }
    /* Replacing each again changes nothing in the count. */
    for (uint32_t k = 0; k < 100; k += 7) {
        snprintf(name, sizeof name, "f%03u", k);
        put_str(r, name, "again", 1000 + k);
    }
    assert_int_equal(r->n, 105);
    assert_sorted(r);
    assert_string_equal(record_str(r, "f014"), "again");
    assert_string_equal(record_str(r, "f015"), "f015");

    record_destroy(&r);
    assert_null(r);
    record_destroy(&r); /* safe twice */
}

static void test_record_accessors(void **state)
{
    (void)state;
    record_t *r = sample_record();
    assert_int_equal(r->n, 10);
    assert_sorted(r);
    assert_string_equal(r->f[0].name, "active");
    assert_string_equal(r->f[9].name, "tags");

    assert_string_equal(record_str(r, "name"), "张小明");
    assert_string_equal(record_str(r, "note"), "");
    /* A nil field is present but has no value. */
    assert_non_null(record_field(r, "removed"));
    assert_null(record_val(r, "removed"));
    assert_null(record_str(r, "removed"));
    /* Non-string values: a value, but no string. */
    const val_t *v = record_val(r, "active");
    assert_non_null(v);
    assert_int_equal(v->kind, VAL_BOOL);
    assert_true(v->b);
    assert_null(record_str(r, "active"));
    v = record_val(r, "closed");
    assert_non_null(v);
    assert_false(v->b);
    v = record_val(r, "tags");
    assert_non_null(v);
    assert_int_equal(v->kind, VAL_LIST);
    assert_int_equal(v->n, 3);
    assert_string_equal(v->items[0], "留守");
    assert_null(record_str(r, "tags"));
    /* Missing fields, including names between and around present ones. */
    static const char *missing[] = {"", "a", "activ", "active0", "nam", "zzz", "names"};
    for (size_t i = 0; i < N(missing); i++) {
        assert_null(record_field(r, missing[i]));
        assert_null(record_val(r, missing[i]));
        assert_null(record_str(r, missing[i]));
    }
    record_destroy(&r);
}

static void test_record_id(void **state)
{
    (void)state;
    char sixty_four[65], sixty_five[66];
    memset(sixty_four, 'a', 64);
    sixty_four[64] = '\0';
    memset(sixty_five, 'a', 65);
    sixty_five[65] = '\0';
    assert_true(record_id_valid("a"));
    assert_true(record_id_valid("AZaz09_-"));
    assert_true(record_id_valid(sixty_four));
    assert_false(record_id_valid(sixty_five));
    assert_false(record_id_valid(""));
    assert_false(record_id_valid(NULL));
    assert_false(record_id_valid("a/b"));
    assert_false(record_id_valid("a b"));
    assert_false(record_id_valid("a.b"));
    assert_false(record_id_valid("张"));

    char id[32], id2[32];
    record_id_make(V1, 0x19a1b2c3d4eULL, id);
    assert_string_equal(id, "510104001001-0000019a1b2c3d4e");
    assert_true(record_id_valid(id));
    record_id_make(V1, 0x19a1b2c3d4fULL, id2);
    assert_true(strcmp(id, id2) < 0);
    record_id_make(V1, UINT64_MAX, id2);
    assert_string_equal(id2, "510104001001-ffffffffffffffff");
}

/* ---- round trips ---- */

static void test_record_round_trip(void **state)
{
    (void)state;
    record_t *r = sample_record();
    size_t len;
    unsigned char *buf = encode_record(r, &len);

    record_t *d = NULL;
    why_t why = {{0}};
    int rc = record_decode(buf, len, &d, &why);
    if (rc)
        fail_msg("record_decode: %d %s", rc, why.msg);
    assert_non_null(d);
    assert_record_equal(r, d);
    /* Spot checks that do not rely on val_eq. */
    assert_string_equal(record_str(d, "name"), "张小明");
    assert_string_equal(record_str(d, "gender"), "女");
    assert_true(record_val(d, "active")->b);
    assert_false(record_val(d, "closed")->b);
    assert_int_equal(record_field(d, "removed")->val.kind, VAL_NIL);
    assert_int_equal(record_field(d, "empty_list")->val.kind, VAL_LIST);
    assert_int_equal(record_field(d, "empty_list")->val.n, 0);
    const val_t *tags = record_val(d, "tags");
    assert_int_equal(tags->n, 3);
    assert_string_equal(tags->items[0], "留守");
    assert_string_equal(tags->items[1], "boarding");
    assert_string_equal(tags->items[2], "");
    const field_t *f = record_field(d, "tags");
    assert_int_equal(f->ver.hlc, hlc_make(1795404207200ULL, 3));
    assert_int_equal(f->ver.origin, V2);
    assert_int_equal(f->ver.base, hlc_make(1795404207100ULL, 1));
    assert_string_equal(f->ver.author, "510104001002/edu/wang");
    assert_int_equal(record_field(d, "active")->ver.base, UINT64_MAX);
    assert_int_equal(record_field(d, "empty_list")->ver.origin, UINT64_MAX);
    assert_int_equal(record_field(d, "school")->ver.origin, V2);
    assert_string_equal(record_field(d, "grade")->ver.author, "510104001001/edu/wang");
    assert_string_equal(record_field(d, "name")->ver.author, "510104001001/civil/li");
    assert_int_equal(record_field(d, "name")->ver.origin, V1);

    /* Re-encoding the decoded record gives the same bytes. */
    size_t len2;
    unsigned char *buf2 = encode_record(d, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);

    /* A decoded record can be grown and still encodes canonically. */
    put_str(d, "aaa", "first", 1);
    put_str(d, "zzz", "last", 2);
    assert_sorted(d);
    free(buf2);
    buf2 = encode_record(d, &len2);
    record_t *d2 = NULL;
    assert_int_equal(record_decode(buf2, len2, &d2, &why), LX_OK);
    assert_record_equal(d, d2);

    /* Encoding is canonical: the same fields put in another order give
     * the same bytes. */
    record_t *rev = record_new(ID);
    for (uint32_t i = r->n; i-- > 0;)
        assert_int_equal(record_put(rev, &r->f[i]), LX_OK);
    size_t len3;
    unsigned char *buf3 = encode_record(rev, &len3);
    assert_int_equal(len3, len);
    assert_memory_equal(buf3, buf, len);

    free(buf);
    free(buf2);
    free(buf3);
    record_destroy(&r);
    record_destroy(&d);
    record_destroy(&d2);
    record_destroy(&rev);
}

static void test_record_round_trip_empty(void **state)
{
    (void)state;
    char id[65];
    memset(id, 'Z', 64);
    id[64] = '\0';
    record_t *r = record_new(id);
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    record_t *d = NULL;
    assert_int_equal(record_decode(buf, len, &d, NULL), LX_OK);
    assert_string_equal(d->id, id);
    assert_int_equal(d->n, 0);
    assert_null(record_field(d, "x"));
    put_str(d, "x", "y", 1);
    assert_string_equal(record_str(d, "x"), "y");
    free(buf);
    record_destroy(&r);
    record_destroy(&d);
}

/* A record with n fields, each with its own version. */
static record_t *wide_record(uint32_t n)
{
    record_t *r = record_new("wide");
    char name[16];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%04u", i);
        put_str(r, name, name, hlc_make(1795404207000ULL + i, i));
    }
    assert_int_equal(r->n, n);
    return r;
}

/* Many fields and many distinct versions round trip. A record wider than
 * the codec carries must be refused by record_pack, not written as bytes
 * that cannot be read back (or read from past an array's end). */
static void test_record_wide(void **state)
{
    (void)state;
    record_t *r = wide_record(200);
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    record_t *d = NULL;
    why_t why = {{0}};
    if (record_decode(buf, len, &d, &why))
        fail_msg("200 fields: %s", why.msg);
    assert_record_equal(r, d);
    free(buf);
    record_destroy(&d);
    record_destroy(&r);

    r = wide_record(300);
    enc_t e;
    enc_init(&e);
    int rc = record_pack(r, &e.pk);
    if (rc == 0) {
        buf = enc_done(&e, &len);
        rc = record_decode(buf, len, &d, &why);
        if (rc)
            fail_msg("300 fields: record_pack wrote bytes that do not decode: %s", why.msg);
        assert_record_equal(r, d);
        record_destroy(&d);
        free(buf);
    } else {
        /* A refusal leaves nothing half-written behind. */
        assert_int_equal(e.sb.size, 0);
        msgpack_sbuffer_destroy(&e.sb);
    }

    /* The same for a change carrying all of those writes. */
    change_t c = {.id = (char *)"wide", .village = V1, .n = r->n, .w = r->f};
    enc_init(&e);
    rc = change_pack(&c, &e.pk);
    if (rc == 0) {
        buf = enc_done(&e, &len);
        change_t cd = {0};
        rc = change_decode(buf, len, &cd, &why);
        if (rc)
            fail_msg("300 writes: change_pack wrote bytes that do not decode: %s", why.msg);
        assert_int_equal(cd.n, 300);
        change_free(&cd);
        free(buf);
    } else {
        assert_int_equal(e.sb.size, 0);
        msgpack_sbuffer_destroy(&e.sb);
    }
    record_destroy(&r);
}

/* A change with three writes, sorted by name. */
static void sample_change(change_t *c)
{
    memset(c, 0, sizeof *c);
    c->id = strdup(ID);
    c->village = V2;
    c->prev_village = V1;
    c->from = C1;
    c->n = 3;
    c->w = calloc(3, sizeof *c->w);
    assert_non_null(c->w);
    val_t v = {0};
    ver_t ver;
    assert_int_equal(val_set_str(&v, "510104001002"), LX_OK);
    ver = mkver(hlc_make(1795404207500ULL, 0), V1, hlc_make(1795404207000ULL, 4),
                "510104001001/civil/li");
    assert_int_equal(field_init(&c->w[0], "household_village", &v, &ver), LX_OK);
    val_free(&v);
    v = (val_t){0};
    ver = mkver(hlc_make(1795404207500ULL, 1), V1, 0, "510104001001/civil/li");
    assert_int_equal(field_init(&c->w[1], "phone", &v, &ver), LX_OK);
    assert_int_equal(val_list_add(&v, "pairing"), LX_OK);
    assert_int_equal(val_list_add(&v, "proxy_parent"), LX_OK);
    ver = mkver(hlc_make(1795404207500ULL, 2), V1, 7, "510104001001/civil/li");
    assert_int_equal(field_init(&c->w[2], "support", &v, &ver), LX_OK);
    val_free(&v);
}

static void test_change_round_trip(void **state)
{
    (void)state;
    change_t c;
    sample_change(&c);
    size_t len;
    unsigned char *buf = encode_change(&c, &len);

    change_t d = {0};
    why_t why = {{0}};
    int rc = change_decode(buf, len, &d, &why);
    if (rc)
        fail_msg("change_decode: %d %s", rc, why.msg);
    assert_string_equal(d.id, c.id);
    assert_int_equal(d.village, V2);
    assert_int_equal(d.prev_village, V1);
    assert_int_equal(d.from, C1);
    assert_int_equal(d.n, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_field_equal(&c.w[i], &d.w[i]);
    assert_string_equal(d.w[0].val.s, "510104001002");
    assert_int_equal(d.w[1].val.kind, VAL_NIL);
    assert_true(val_list_has(&d.w[2].val, "proxy_parent"));

    size_t len2;
    unsigned char *buf2 = encode_change(&d, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    /* The batch hot path decodes it alike, and keeps the encoded writes. */
    assert_true(fast_agrees(buf, len, &d));
    {
        arena_t *a = arena_new(0);
        mp_rd_t rd = {buf, buf + len, false};
        change_t f;
        assert_true(change_read(&rd, a, &f));
        assert_non_null(f.packed);
        arena_destroy(&a);
        /* A wider integer than needed decodes, but is not canonical. */
        unsigned char *wide = malloc(len + 8);
        size_t at = len - 1;   /* the last field's base: a fixint 7 */
        assert_int_equal(buf[at], 7);
        memcpy(wide, buf, at);
        wide[at] = 0xcf;
        memset(wide + at + 1, 0, 7);
        wide[at + 8] = 7;
        a = arena_new(0);
        rd = (mp_rd_t){wide, wide + len + 8, false};
        assert_true(change_read(&rd, a, &f));
        assert_null(f.packed);
        assert_int_equal(f.w[2].ver.base, 7);
        arena_destroy(&a);
        free(wide);
    }

    /* A change is not a record, nor the other way round. */
    record_t *r = NULL;
    assert_int_equal(record_decode(buf, len, &r, NULL), LX_ECORRUPT);
    assert_null(r);

    /* No writes at all. */
    change_t e = {.id = (char *)"x", .village = V1};
    free(buf2);
    buf2 = encode_change(&e, &len2);
    change_t ed = {0};
    assert_int_equal(change_decode(buf2, len2, &ed, NULL), LX_OK);
    assert_string_equal(ed.id, "x");
    assert_int_equal(ed.village, V1);
    assert_int_equal(ed.prev_village, 0);
    assert_int_equal(ed.from, 0);
    assert_int_equal(ed.n, 0);

    free(buf);
    free(buf2);
    change_free(&c);
    change_free(&d);
    change_free(&ed);
    change_free(&ed); /* safe twice */
    assert_null(ed.id);
}


/* ---- field numbers ---- */

static bool has_bytes(const unsigned char *b, size_t n, const char *s)
{
    return memmem(b, n, s, strlen(s)) != NULL;
}

/* A record [id, versions, fields] with every field name as text: the form
 * written before field numbers. */
static unsigned char *encode_text_names(const record_t *r, size_t *len)
{
    enc_t e;
    enc_init(&e);
    msgpack_pack_array(&e.pk, 3);
    msgpack_pack_str(&e.pk, strlen(r->id));
    msgpack_pack_str_body(&e.pk, r->id, strlen(r->id));
    msgpack_pack_array(&e.pk, 1);
    msgpack_pack_array(&e.pk, 3);
    msgpack_pack_uint64(&e.pk, r->f[0].ver.hlc);
    msgpack_pack_uint64(&e.pk, r->f[0].ver.origin);
    msgpack_pack_str(&e.pk, strlen(r->f[0].ver.author));
    msgpack_pack_str_body(&e.pk, r->f[0].ver.author, strlen(r->f[0].ver.author));
    msgpack_pack_array(&e.pk, r->n);
    for (uint32_t i = 0; i < r->n; i++) {
        msgpack_pack_array(&e.pk, 4);
        msgpack_pack_str(&e.pk, strlen(r->f[i].name));
        msgpack_pack_str_body(&e.pk, r->f[i].name, strlen(r->f[i].name));
        msgpack_pack_str(&e.pk, strlen(r->f[i].val.s));
        msgpack_pack_str_body(&e.pk, r->f[i].val.s, strlen(r->f[i].val.s));
        msgpack_pack_uint64(&e.pk, 0);
        msgpack_pack_uint64(&e.pk, 0);
    }
    return enc_done(&e, len);
}

static void test_field_numbers(void **state)
{
    (void)state;
    /* The numbers are part of the stored and wire forms: pinned. */
    assert_int_equal(schema_num("name"), 0);
    assert_int_equal(schema_num("village_code"), 6);
    assert_int_equal(schema_num("risk_level"), 26);
    assert_int_equal(schema_num("exit_date"), 32);
    assert_int_equal(schema_num("x_note"), -1);
    assert_int_equal(schema_num("ev_20261123_1"), -1);
    assert_null(schema_num_name(schema_count()));
    assert_null(schema_num_name(UINT64_MAX));
    for (size_t i = 0; i < schema_count(); i++) {
        const char *in = schema_num_name(i);
        assert_string_equal(in, schema_at(i)->name);
        assert_true(schema_interned(in));
        assert_ptr_equal(schema_intern(schema_at(i)->name), in);
        assert_int_equal(schema_num(in), (int)i);
        assert_false(schema_interned(schema_at(i)->name));
        /* Comparing interned names agrees with strcmp, also against text. */
        for (size_t j = 0; j < schema_count(); j++) {
            const char *jn = schema_num_name(j);
            int want = strcmp(schema_at(i)->name, schema_at(j)->name);
            int got = schema_name_cmp(in, jn), mixed = schema_name_cmp(in, schema_at(j)->name);
            assert_true((want < 0) == (got < 0) && (want > 0) == (got > 0));
            assert_true((want < 0) == (mixed < 0) && (want > 0) == (mixed > 0));
        }
    }
    assert_false(schema_interned(NULL));
    assert_false(schema_interned(schema_num_name(1) + 1)); /* inside, not a name */

    /* A record of schema fields and a local one: numbers and text. */
    record_t *r = record_new(ID);
    ver_t v = mkver(hlc_make(1700000000000ULL, 0), V1, 0, "510104001001/local/wang");
    val_t x = {0};
    val_set_str(&x, "Household address, text long enough to see");
    put(r, "household_address", &x, &v);
    val_set_str(&x, "510104001001");
    put(r, "village_code", &x, &v);
    val_set_str(&x, "a local note");
    put(r, "x_note", &x, &v);
    assert_true(schema_interned(r->f[0].name));
    assert_false(schema_interned(r->f[2].name));
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    assert_false(has_bytes(buf, len, "household_address"));
    assert_false(has_bytes(buf, len, "village_code"));
    assert_true(has_bytes(buf, len, "x_note"));
    record_t *d = NULL;
    assert_int_equal(record_decode(buf, len, &d, NULL), LX_OK);
    assert_int_equal(d->n, 3);
    assert_ptr_equal(d->f[0].name, schema_num_name(5));
    assert_string_equal(record_str(d, "village_code"), "510104001001");
    assert_string_equal(record_str(d, "x_note"), "a local note");
    assert_false(schema_interned(d->f[2].name));
    /* A copy shares the interned name and owns the other. */
    field_t c;
    assert_int_equal(field_copy(&c, &d->f[0]), LX_OK);
    assert_ptr_equal(c.name, d->f[0].name);
    field_free(&c);
    assert_int_equal(field_copy(&c, &d->f[2]), LX_OK);
    assert_ptr_not_equal(c.name, d->f[2].name);
    field_free(&c);

    /* The text form still decodes, to the same record and bytes. */
    size_t tlen;
    unsigned char *text = encode_text_names(r, &tlen);
    assert_true(tlen > len);
    record_t *t = NULL;
    assert_int_equal(record_decode(text, tlen, &t, NULL), LX_OK);
    assert_ptr_equal(t->f[1].name, schema_num_name(6));
    size_t len2;
    unsigned char *buf2 = encode_record(t, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);

    /* change_read: numbered names are canonical (their bytes are kept);
     * a schema name as text decodes but is not. */
    change_t ch = {.id = (char *)ID, .village = V1, .w = r->f, .n = r->n};
    size_t clen;
    unsigned char *cb = encode_change(&ch, &clen);
    arena_t *a = arena_new(0);
    mp_rd_t rd = {cb, cb + clen, false};
    change_t f;
    assert_true(change_read(&rd, a, &f));
    assert_non_null(f.packed);
    assert_ptr_equal(f.w[0].name, schema_num_name(5));
    assert_string_equal(f.w[2].name, "x_note");
    arena_destroy(&a);
    change_t slow = {0};
    assert_int_equal(change_decode(cb, clen, &slow, NULL), LX_OK);
    assert_true(fast_agrees(cb, clen, &slow));
    change_free(&slow);
    free(cb);
    enc_t e;
    enc_init(&e);
    msgpack_pack_array(&e.pk, 6);
    msgpack_pack_str(&e.pk, strlen(ID));
    msgpack_pack_str_body(&e.pk, ID, strlen(ID));
    msgpack_pack_uint64(&e.pk, V1);
    msgpack_pack_uint64(&e.pk, 0);
    msgpack_pack_uint64(&e.pk, 0);
    /* text's versions and fields arrays, after its id */
    size_t at = 1 + 1 + strlen(ID);
    msgpack_sbuffer_write(&e.sb, (const char *)text + at, tlen - at);
    cb = enc_done(&e, &clen);
    a = arena_new(0);
    rd = (mp_rd_t){cb, cb + clen, false};
    assert_true(change_read(&rd, a, &f));
    assert_null(f.packed);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.w[1].name, "village_code");
    arena_destroy(&a);
    /* A number no field has is refused by both decoders. */
    free(cb);
    enc_init(&e);
    msgpack_pack_array(&e.pk, 3);
    msgpack_pack_str(&e.pk, strlen(ID));
    msgpack_pack_str_body(&e.pk, ID, strlen(ID));
    msgpack_pack_array(&e.pk, 1);
    msgpack_pack_array(&e.pk, 3);
    msgpack_pack_uint64(&e.pk, 1);
    msgpack_pack_uint64(&e.pk, V1);
    msgpack_pack_str(&e.pk, 0);
    msgpack_pack_array(&e.pk, 1);
    msgpack_pack_array(&e.pk, 4);
    msgpack_pack_uint64(&e.pk, schema_count());
    msgpack_pack_nil(&e.pk);
    msgpack_pack_uint64(&e.pk, 0);
    msgpack_pack_uint64(&e.pk, 0);
    cb = enc_done(&e, &clen);
    record_t *bad = NULL;
    why_t why = {{0}};
    assert_int_equal(record_decode(cb, clen, &bad, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "no field number 33"));
    assert_null(bad);

    free(cb);
    free(buf);
    free(buf2);
    free(text);
    val_free(&x);
    record_destroy(&r);
    record_destroy(&d);
    record_destroy(&t);
}

/* ---- the guard ---- */

/* mp_check must not refuse anything well formed that it has room for:
 * every msgpack type, every length width. */
static void test_mp_check_accepts(void **state)
{
    (void)state;
    enc_t e;
    enc_init(&e);
    msgpack_packer *pk = &e.pk;
    static char big[70000];
    memset(big, 'q', sizeof big);
    msgpack_pack_array(pk, 24);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_uint8(pk, 200);
    msgpack_pack_uint16(pk, 60000);
    msgpack_pack_uint32(pk, 4000000000u);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_int8(pk, -100);
    msgpack_pack_int16(pk, -30000);
    msgpack_pack_int32(pk, -2000000000);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_int(pk, -5);
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_double(pk, 2.25);
    msgpack_pack_str_with_body(pk, big, 40);      /* str8 */
    msgpack_pack_str_with_body(pk, big, 300);     /* str16 */
    msgpack_pack_str_with_body(pk, big, 70000);   /* str32 */
    msgpack_pack_bin_with_body(pk, big, 10);      /* bin8 */
    msgpack_pack_bin_with_body(pk, big, 1000);    /* bin16 */
    msgpack_pack_bin_with_body(pk, big, 70000);   /* bin32 */
    msgpack_pack_array(pk, 5);                    /* fixext 1..16 */
    for (size_t n = 1; n <= 16; n *= 2)
        msgpack_pack_ext_with_body(pk, big, n, 7);
    msgpack_pack_array(pk, 3);                    /* ext8, ext16, ext32 */
    msgpack_pack_ext_with_body(pk, big, 3, -1);
    msgpack_pack_ext_with_body(pk, big, 300, 2);
    msgpack_pack_ext_with_body(pk, big, 70000, 3);
    msgpack_pack_array(pk, 20);                   /* array16 */
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(pk, i);
    msgpack_pack_map(pk, 17);                     /* map16 */
    for (int i = 0; i < 17; i++) {
        msgpack_pack_int(pk, i);
        msgpack_pack_map(pk, 0);
    }
    size_t len;
    unsigned char *buf = enc_done(&e, &len);
    why_t why = {{0}};
    if (mp_check(buf, len, &why))
        fail_msg("mp_check refused a well-formed object: %s", why.msg);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(mp_unpack(buf, len, &u, &why), LX_OK);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(u.data.via.array.size, 24);
    msgpack_unpacked_destroy(&u);
    free(buf);

    /* array32 and map32 headers with honest counts. */
    enc_init(&e);
    msgpack_pack_array(&e.pk, 65536);
    for (int i = 0; i < 65536; i++)
        msgpack_pack_nil(&e.pk);
    buf = enc_done(&e, &len);
    assert_int_equal(buf[0], 0xdd);
    assert_int_equal(mp_check(buf, len, &why), LX_OK);
    free(buf);
    enc_init(&e);
    msgpack_pack_map(&e.pk, 65536);
    for (int i = 0; i < 65536; i++) {
        msgpack_pack_nil(&e.pk);
        msgpack_pack_nil(&e.pk);
    }
    buf = enc_done(&e, &len);
    assert_int_equal(buf[0], 0xdf);
    assert_int_equal(mp_check(buf, len, &why), LX_OK);
    free(buf);
}

static void test_mp_check_depth(void **state)
{
    (void)state;
    unsigned char b[MP_MAX_DEPTH + 2];
    why_t why = {{0}};
    /* MP_MAX_DEPTH nested arrays around a nil pass... */
    memset(b, 0x91, MP_MAX_DEPTH);
    b[MP_MAX_DEPTH] = 0xc0;
    unsigned char *c = dup_exact(b, MP_MAX_DEPTH + 1);
    assert_int_equal(mp_check(c, MP_MAX_DEPTH + 1, &why), LX_OK);
    free(c);
    /* ... one more does not. */
    memset(b, 0x91, MP_MAX_DEPTH + 1);
    b[MP_MAX_DEPTH + 1] = 0xc0;
    c = dup_exact(b, MP_MAX_DEPTH + 2);
    assert_int_equal(mp_check(c, MP_MAX_DEPTH + 2, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "nested deeper"));
    free(c);
    /* Empty containers do not open a level; siblings reuse one. */
    unsigned char flat[] = {0x93, 0x91, 0x91, 0xc0, 0x90, 0x80};
    c = dup_exact(flat, sizeof flat);
    assert_int_equal(mp_check(c, sizeof flat, &why), LX_OK);
    free(c);
}

static void test_mp_readers(void **state)
{
    (void)state;
    msgpack_object s = {.type = MSGPACK_OBJECT_STR};
    s.via.str.ptr = "abc";
    s.via.str.size = 2;
    char *out = NULL;
    why_t why = {{0}};
    assert_int_equal(mp_str(&s, "thing", &out, &why), LX_OK);
    assert_string_equal(out, "ab");
    free(out);
    assert_true(mp_str_eq(&s, "ab"));
    assert_false(mp_str_eq(&s, "abc"));
    assert_false(mp_str_eq(&s, "a"));
    s.via.str.ptr = "a\0c";
    s.via.str.size = 3;
    out = NULL;
    assert_int_equal(mp_str(&s, "thing", &out, &why), LX_ECORRUPT);
    assert_null(out);
    assert_non_null(strstr(why.msg, "thing"));

    /* msgpack-c gives an empty string that no earlier string preceded a
     * NULL ptr ([""] decodes so): it must read as "", touching nothing. */
    msgpack_object empty = {.type = MSGPACK_OBJECT_STR};
    empty.via.str.ptr = NULL;
    empty.via.str.size = 0;
    out = NULL;
    assert_int_equal(mp_str(&empty, "thing", &out, &why), LX_OK);
    assert_string_equal(out, "");
    free(out);
    assert_true(mp_str_eq(&empty, ""));
    assert_false(mp_str_eq(&empty, "a"));
    static const unsigned char first_empty[] = {0x93, 0xa0, 0x90, 0x90};
    unsigned char *fe = dup_exact(first_empty, sizeof first_empty);
    msgpack_unpacked un;
    msgpack_unpacked_init(&un);
    assert_int_equal(mp_unpack(fe, sizeof first_empty, &un, &why), LX_OK);
    out = NULL;
    assert_int_equal(mp_str(&un.data.via.array.ptr[0], "id", &out, &why), LX_OK);
    assert_string_equal(out, "");
    free(out);
    msgpack_unpacked_destroy(&un);
    free(fe);

    msgpack_object u = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    u.via.u64 = 42;
    uint64_t x = 0;
    assert_int_equal(mp_u64(&u, "n", &x, &why), LX_OK);
    assert_int_equal(x, 42);
    assert_int_equal(mp_u64(&s, "n", &x, &why), LX_ECORRUPT);
    assert_false(mp_str_eq(&u, ""));
    u.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    u.via.i64 = -1;
    x = 7;
    assert_int_equal(mp_u64(&u, "n", &x, &why), LX_ECORRUPT);
    assert_int_equal(x, 7);

    msgpack_object a = {.type = MSGPACK_OBJECT_ARRAY};
    a.via.array.size = 3;
    assert_int_equal(mp_array(&a, "arr", 3, 3, &why), LX_OK);
    assert_int_equal(mp_array(&a, "arr", 0, 2, &why), LX_ECORRUPT);
    assert_int_equal(mp_array(&a, "arr", 4, 9, &why), LX_ECORRUPT);
    assert_int_equal(mp_array(&s, "arr", 0, 9, &why), LX_ECORRUPT);
}

/* ---- the malformed corpus ---- */

/* Both decoders refuse buf with LX_ECORRUPT, leave their output alone and
 * say why; the one the frame is shaped for says `want`. */
static void expect_corrupt(const void *buf, size_t len, const char *what,
                           bool is_change, const char *want)
{
    unsigned char *copy = dup_exact(buf, len);
    record_t *r = NULL;
    why_t why = {{0}};
    int rc = record_decode(copy, len, &r, &why);
    if (rc != LX_ECORRUPT)
        fail_msg("%s: record_decode gave %d, expected LX_ECORRUPT", what, rc);
    if (r)
        fail_msg("%s: record_decode set its output", what);
    if (!why.msg[0])
        fail_msg("%s: record_decode gave no reason", what);
    if (!is_change && want && !strstr(why.msg, want))
        fail_msg("%s: record_decode said \"%s\", expected \"%s\"", what, why.msg, want);

    change_t c = {0};
    why_t cwhy = {{0}};
    rc = change_decode(copy, len, &c, &cwhy);
    if (rc != LX_ECORRUPT)
        fail_msg("%s: change_decode gave %d, expected LX_ECORRUPT", what, rc);
    if (c.id || c.w || c.n)
        fail_msg("%s: change_decode set its output", what);
    if (!cwhy.msg[0])
        fail_msg("%s: change_decode gave no reason", what);
    if (is_change && want && !strstr(cwhy.msg, want))
        fail_msg("%s: change_decode said \"%s\", expected \"%s\"", what, cwhy.msg, want);
    if (fast_agrees(copy, len, NULL))
        fail_msg("%s: change_read took it", what);
    free(copy);
}

static void test_corrupt_truncated(void **state)
{
    (void)state;
    record_t *r = sample_record();
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    char what[64];
    for (size_t n = 0; n < len; n++) {
        snprintf(what, sizeof what, "record cut to %zu of %zu bytes", n, len);
        expect_corrupt(buf, n, what, false, NULL);
        why_t why = {{0}};
        if (mp_check(buf, n, &why) != LX_ECORRUPT)
            fail_msg("mp_check accepted %s", what);
    }
    free(buf);
    record_destroy(&r);

    change_t c;
    sample_change(&c);
    buf = encode_change(&c, &len);
    for (size_t n = 0; n < len; n++) {
        snprintf(what, sizeof what, "change cut to %zu of %zu bytes", n, len);
        expect_corrupt(buf, n, what, true, NULL);
    }
    free(buf);
    change_free(&c);
}

static void test_corrupt_trailing(void **state)
{
    (void)state;
    record_t *r = sample_record();
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    unsigned char *more = malloc(2 * len);
    assert_non_null(more);
    memcpy(more, buf, len);
    static const unsigned char tails[] = {0x00, 0xc0, 0x90, 0xc1, 0xff};
    for (size_t i = 0; i < N(tails); i++) {
        char what[64];
        snprintf(what, sizeof what, "record + trailing 0x%02x", tails[i]);
        more[len] = tails[i];
        expect_corrupt(more, len + 1, what, false, "trailing");
    }
    /* Two records back to back are not one. */
    memcpy(more + len, buf, len);
    expect_corrupt(more, 2 * len, "two records", false, "trailing");
    free(more);
    free(buf);
    record_destroy(&r);

    change_t c;
    sample_change(&c);
    buf = encode_change(&c, &len);
    more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0;
    expect_corrupt(more, len + 1, "change + trailing byte", true, "trailing");
    free(more);
    free(buf);
    change_free(&c);
}

/* Headers whose counts are lies: each must be caught by mp_check before
 * msgpack-c sizes an allocation from them. */
static void test_corrupt_lying_headers(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        unsigned char b[16];
        size_t n;
        const char *why;
    } cases[] = {
        {"array32 of 0xFFFFFFFF, 5 bytes left",
         {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 10,
         "claims 4294967295 elements"},
        {"array32 of 0xFFFFFFFF alone",
         {0xdd, 0xff, 0xff, 0xff, 0xff}, 5, "claims 4294967295 elements"},
        {"array32 of 0xFFFFFFFF as the fields",
         {0x93, 0xa1, 'x', 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 14,
         "claims 4294967295 elements"},
        {"array16 of 0xFFFF, 3 bytes left",
         {0xdc, 0xff, 0xff, 0xc0, 0xc0, 0xc0}, 6, "claims 65535 elements"},
        {"array32 header cut short", {0xdd, 0xff, 0xff}, 3, "truncated length"},
        {"map32 of 0xFFFFFFFF, 5 bytes left",
         {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 10,
         "claims 8589934590 elements"},
        {"map32 of 0x80000000, 5 bytes left",
         {0xdf, 0x80, 0x00, 0x00, 0x00, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 10,
         "claims 4294967296 elements"},
        {"map16 of 3 with 5 bytes left",
         {0xde, 0x00, 0x03, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 8, "claims 6 elements"},
        {"str32 of 4 GiB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'}, 8,
         "runs past the end"},
        {"str32 of 4 GiB as the record id",
         {0x93, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 0x90, 0x90}, 9, "runs past the end"},
        {"bin32 of 4 GiB", {0xc6, 0xff, 0xff, 0xff, 0xff, 0}, 6, "runs past the end"},
        {"ext32 of 4 GiB", {0xc9, 0xff, 0xff, 0xff, 0xff, 1, 0}, 7, "runs past the end"},
        {"str8 one byte short", {0xd9, 0x03, 'a', 'b'}, 4, "runs past the end"},
        {"fixstr one byte short", {0xa3, 'a', 'b'}, 3, "runs past the end"},
        {"uint64 cut", {0xcf, 0, 0, 0}, 4, "runs past the end"},
        {"empty input", {0}, 0, "truncated"},
        {"invalid type byte 0xc1", {0xc1}, 1, "invalid type byte 0xc1"},
        {"0xc1 as a field value",
         {0x93, 0xa1, 'x', 0x91, 0x93, 1, 1, 0xa0, 0x91, 0x94, 0xa1, 'n', 0xc1, 0, 0}, 15,
         "invalid type byte 0xc1"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        why_t why = {{0}};
        unsigned char *c = dup_exact(cases[i].b, cases[i].n);
        if (mp_check(c, cases[i].n, &why) != LX_ECORRUPT)
            fail_msg("%s: mp_check accepted it", cases[i].what);
        if (!strstr(why.msg, cases[i].why))
            fail_msg("%s: mp_check said \"%s\", expected \"%s\"", cases[i].what,
                     why.msg, cases[i].why);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        assert_int_equal(mp_unpack(c, cases[i].n, &u, NULL), LX_ECORRUPT);
        msgpack_unpacked_destroy(&u);
        free(c);
        expect_corrupt(cases[i].b, cases[i].n, cases[i].what, false, cases[i].why);
    }

    /* 100 nested one-element arrays. */
    unsigned char deep[101];
    memset(deep, 0x91, 100);
    deep[100] = 0xc0;
    why_t why = {{0}};
    unsigned char *c = dup_exact(deep, sizeof deep);
    assert_int_equal(mp_check(c, sizeof deep, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "nested deeper than"));
    free(c);
    expect_corrupt(deep, sizeof deep, "100 nested arrays", false, "nested deeper than");
    /* And as a field value inside an otherwise good record. */
    unsigned char deepval[200];
    size_t n = 0;
    static const unsigned char head[] = {0x93, 0xa1, 'x', 0x91, 0x93, 1, 1, 0xa0,
                                         0x91, 0x94, 0xa1, 'n'};
    memcpy(deepval, head, sizeof head);
    n = sizeof head;
    memset(deepval + n, 0x91, 100);
    n += 100;
    static const unsigned char tail[] = {0xa1, 'v', 0, 0};
    memcpy(deepval + n, tail, sizeof tail);
    n += sizeof tail;
    expect_corrupt(deepval, n, "100 nested arrays as a value", false, "nested deeper than");
}

/* ---- frames built by hand ----
 *
 * These follow the layout record_pack writes: a record is
 * [id, versions, fields] and a change [id, village, prev_village, from,
 * versions, fields], where versions are [hlc, origin, author] and each
 * field is [name, value, version index, base]. Each frame is good but for
 * one defect; test_hand_frames_good shows the mended frames decode. */

static void pk_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    pk_strn(pk, s, strlen(s));
}

/* The versions table with one good entry. */
static void pk_versions(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, hlc_make(1795404207123ULL, 0));
    msgpack_pack_uint64(pk, V1);
    pk_str(pk, "510104001001/civil/li");
}

/* A well-formed field with a string value and version 0. */
static void pk_field(msgpack_packer *pk, const char *name)
{
    msgpack_pack_array(pk, 4);
    pk_str(pk, name);
    pk_str(pk, "v");
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
}

/* A record around one field whose value is packed by `val`. */
static void pk_rec_value(msgpack_packer *pk, void (*val)(msgpack_packer *))
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    pk_str(pk, "name");
    val(pk);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
}

static void pk_rec_fields(msgpack_packer *pk, const char *id, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    msgpack_pack_array(pk, 3);
    pk_str(pk, id);
    pk_versions(pk);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        pk_field(pk, va_arg(ap, const char *));
    va_end(ap);
}

static void v_good(msgpack_packer *pk) { pk_str(pk, "v"); }
static void v_good_list(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "ok");
    pk_str(pk, "fine");
}
static void v_float(msgpack_packer *pk) { msgpack_pack_float(pk, 1.5f); }
static void v_double(msgpack_packer *pk) { msgpack_pack_double(pk, 0.0); }
static void v_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "k");
    pk_str(pk, "v");
}
static void v_empty_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void v_uint(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1); }
static void v_negint(msgpack_packer *pk) { msgpack_pack_int(pk, -1); }
static void v_bin(msgpack_packer *pk) { msgpack_pack_bin_with_body(pk, "ab", 2); }
static void v_ext(msgpack_packer *pk) { msgpack_pack_ext_with_body(pk, "abcd", 4, -1); }
static void v_str_nul(msgpack_packer *pk) { pk_strn(pk, "a\0b", 3); }
static void v_list_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "ok");
    msgpack_pack_uint64(pk, 3);
}
static void v_list_list(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
}
static void v_list_nil(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
}
static void v_list_nul(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "ok");
    pk_strn(pk, "\0", 1);
}

static void b_value_float(msgpack_packer *pk) { pk_rec_value(pk, v_float); }
static void b_value_double(msgpack_packer *pk) { pk_rec_value(pk, v_double); }
static void b_value_map(msgpack_packer *pk) { pk_rec_value(pk, v_map); }
static void b_value_empty_map(msgpack_packer *pk) { pk_rec_value(pk, v_empty_map); }
static void b_value_uint(msgpack_packer *pk) { pk_rec_value(pk, v_uint); }
static void b_value_negint(msgpack_packer *pk) { pk_rec_value(pk, v_negint); }
static void b_value_bin(msgpack_packer *pk) { pk_rec_value(pk, v_bin); }
static void b_value_ext(msgpack_packer *pk) { pk_rec_value(pk, v_ext); }
static void b_value_str_nul(msgpack_packer *pk) { pk_rec_value(pk, v_str_nul); }
static void b_value_list_int(msgpack_packer *pk) { pk_rec_value(pk, v_list_int); }
static void b_value_list_list(msgpack_packer *pk) { pk_rec_value(pk, v_list_list); }
static void b_value_list_nil(msgpack_packer *pk) { pk_rec_value(pk, v_list_nil); }
static void b_value_list_nul(msgpack_packer *pk) { pk_rec_value(pk, v_list_nul); }

/* Records whose id is packed by `id`, with no versions and no fields. */
static void pk_rec_id(msgpack_packer *pk, void (*id)(msgpack_packer *))
{
    msgpack_pack_array(pk, 3);
    id(pk);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
}
static void x_numstr(msgpack_packer *pk) { pk_str(pk, "1795404207123"); }
static void x_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -1); }
static void x_float(msgpack_packer *pk) { msgpack_pack_double(pk, 1.0); }
static void x_nofield(msgpack_packer *pk) { msgpack_pack_uint64(pk, 999); }
static void x_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void x_empty(msgpack_packer *pk) { pk_str(pk, ""); }
static void x_nul(msgpack_packer *pk) { pk_strn(pk, "na\0me", 5); }
static void x_int(msgpack_packer *pk) { msgpack_pack_uint64(pk, 7); }
static void x_one(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1); }
static void x_max(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }
static void x_bin(msgpack_packer *pk) { msgpack_pack_bin_with_body(pk, "r1", 2); }
static void x_good_id(msgpack_packer *pk) { pk_str(pk, "r1"); }
static void x_long_author(msgpack_packer *pk)
{
    char a[200];
    memset(a, 'a', sizeof a);
    pk_strn(pk, a, sizeof a);
}

static void b_id_int(msgpack_packer *pk) { pk_rec_id(pk, x_int); }
static void b_id_nil(msgpack_packer *pk) { pk_rec_id(pk, x_nil); }
static void b_id_bin(msgpack_packer *pk) { pk_rec_id(pk, x_bin); }
static void b_id_nul(msgpack_packer *pk) { pk_rec_id(pk, x_nul); }
static void b_id_empty(msgpack_packer *pk) { pk_rec_id(pk, x_empty); }
static void b_id_slash(msgpack_packer *pk) { pk_rec_fields(pk, "a/b", 1, "name"); }
static void b_id_dotdot(msgpack_packer *pk) { pk_rec_fields(pk, "..", 0); }
static void b_id_empty_f(msgpack_packer *pk) { pk_rec_fields(pk, "", 1, "name"); }
static void b_id_space(msgpack_packer *pk) { pk_rec_fields(pk, "a b", 0); }
static void b_id_65(msgpack_packer *pk)
{
    char id[66];
    memset(id, 'a', 65);
    id[65] = '\0';
    pk_rec_fields(pk, id, 0);
}
static void b_rec_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 0);
}
static void b_rec_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void b_rec_4(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
}
static void b_rec_2(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 0);
}
static void b_rec_empty(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void b_fields_nil(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_nil(pk);
}
static void b_fields_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_map(pk, 0);
}
static void b_versions_nil(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    msgpack_pack_nil(pk);
    msgpack_pack_array(pk, 0);
}
static void b_field_not_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_array(pk, 1);
    pk_str(pk, "name");
}

/* A record with one field of n elements: the good four, cut or padded. */
static void pk_rec_field_n(msgpack_packer *pk, int n)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, (size_t)n);
    if (n > 0)
        pk_str(pk, "name");
    if (n > 1)
        pk_str(pk, "v");
    if (n > 2)
        msgpack_pack_uint64(pk, 0);
    if (n > 3)
        msgpack_pack_uint64(pk, 0);
    for (int i = 4; i < n; i++)
        msgpack_pack_nil(pk);
}
static void b_field_3(msgpack_packer *pk) { pk_rec_field_n(pk, 3); }
static void b_field_5(msgpack_packer *pk) { pk_rec_field_n(pk, 5); }
static void b_field_6(msgpack_packer *pk) { pk_rec_field_n(pk, 6); }
static void b_field_0(msgpack_packer *pk) { pk_rec_field_n(pk, 0); }

/* A record with one field, whose name, version index or base is `bad`. */
typedef enum { E_NAME, E_INDEX, E_BASE } elem_t;
static void pk_rec_field_bad(msgpack_packer *pk, elem_t which,
                             void (*bad)(msgpack_packer *))
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    if (which == E_NAME)
        bad(pk);
    else
        pk_str(pk, "name");
    pk_str(pk, "v");
    if (which == E_INDEX)
        bad(pk);
    else
        msgpack_pack_uint64(pk, 0);
    if (which == E_BASE)
        bad(pk);
    else
        msgpack_pack_uint64(pk, 0);
}
static void b_name_neg(msgpack_packer *pk) { pk_rec_field_bad(pk, E_NAME, x_neg); }
static void b_name_nofield(msgpack_packer *pk) { pk_rec_field_bad(pk, E_NAME, x_nofield); }
static void b_name_nil(msgpack_packer *pk) { pk_rec_field_bad(pk, E_NAME, x_nil); }
static void b_name_empty(msgpack_packer *pk) { pk_rec_field_bad(pk, E_NAME, x_empty); }
static void b_name_nul(msgpack_packer *pk) { pk_rec_field_bad(pk, E_NAME, x_nul); }
static void b_name_65(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    pk_versions(pk);
    msgpack_pack_array(pk, 1);
    char name[66];
    memset(name, 'n', 65);
    name[65] = '\0';
    pk_field(pk, name);
}
static void b_index_str(msgpack_packer *pk) { pk_rec_field_bad(pk, E_INDEX, x_numstr); }
static void b_index_neg(msgpack_packer *pk) { pk_rec_field_bad(pk, E_INDEX, x_neg); }
static void b_index_out(msgpack_packer *pk) { pk_rec_field_bad(pk, E_INDEX, x_one); }
static void b_index_max(msgpack_packer *pk) { pk_rec_field_bad(pk, E_INDEX, x_max); }
static void b_base_nil(msgpack_packer *pk) { pk_rec_field_bad(pk, E_BASE, x_nil); }
static void b_base_float(msgpack_packer *pk) { pk_rec_field_bad(pk, E_BASE, x_float); }
/* A field that refers to a version when there are none. */
static void b_index_no_versions(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 1);
    pk_field(pk, "name");
}

/* A record with one field and one version entry of n elements, whose
 * hlc, origin or author (slot 0, 1, 2) is `bad`. */
static void pk_rec_version(msgpack_packer *pk, int n, int slot,
                           void (*bad)(msgpack_packer *))
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        if (i == slot)
            bad(pk);
        else if (i == 2)
            pk_str(pk, "510104001001/civil/li");
        else
            msgpack_pack_uint64(pk, i == 0 ? 1 : V1);
    }
    msgpack_pack_array(pk, 1);
    pk_field(pk, "name");
}
static void b_vhlc_str(msgpack_packer *pk) { pk_rec_version(pk, 3, 0, x_numstr); }
static void b_vhlc_neg(msgpack_packer *pk) { pk_rec_version(pk, 3, 0, x_neg); }
static void b_vhlc_float(msgpack_packer *pk) { pk_rec_version(pk, 3, 0, x_float); }
static void b_vorigin_neg(msgpack_packer *pk) { pk_rec_version(pk, 3, 1, x_neg); }
static void b_vorigin_str(msgpack_packer *pk) { pk_rec_version(pk, 3, 1, x_numstr); }
static void b_vauthor_nil(msgpack_packer *pk) { pk_rec_version(pk, 3, 2, x_nil); }
static void b_vauthor_int(msgpack_packer *pk) { pk_rec_version(pk, 3, 2, x_int); }
static void b_vauthor_long(msgpack_packer *pk) { pk_rec_version(pk, 3, 2, x_long_author); }
static void b_vauthor_nul(msgpack_packer *pk) { pk_rec_version(pk, 3, 2, x_nul); }
static void b_version_2(msgpack_packer *pk) { pk_rec_version(pk, 2, -1, NULL); }
static void b_version_4(msgpack_packer *pk) { pk_rec_version(pk, 4, -1, NULL); }
static void b_version_nil(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    pk_str(pk, "r1");
    msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
    msgpack_pack_array(pk, 0);
}

static void b_dup(msgpack_packer *pk) { pk_rec_fields(pk, "r1", 2, "name", "name"); }
static void b_dup_late(msgpack_packer *pk)
{
    pk_rec_fields(pk, "r1", 4, "a", "b", "c", "c");
}
static void b_unordered(msgpack_packer *pk) { pk_rec_fields(pk, "r1", 2, "phone", "name"); }
static void b_unordered_late(msgpack_packer *pk)
{
    pk_rec_fields(pk, "r1", 4, "a", "b", "d", "c");
}
/* strcmp order is byte order: "Name" (0x4e) sorts before "name". */
static void b_unordered_case(msgpack_packer *pk) { pk_rec_fields(pk, "r1", 2, "name", "Name"); }
/* A prefix sorts first. */
static void b_unordered_prefix(msgpack_packer *pk) { pk_rec_fields(pk, "r1", 2, "name2", "name"); }

/* Changes: [id, village, prev_village, from, versions, fields], with
 * slot `bad_slot` packed by `bad` and fields a and b otherwise. */
static void pk_change(msgpack_packer *pk, const char *id, int bad_slot,
                      void (*bad)(msgpack_packer *))
{
    msgpack_pack_array(pk, 6);
    if (bad_slot == 0)
        bad(pk);
    else
        pk_str(pk, id);
    for (int slot = 1; slot <= 3; slot++) {
        if (bad_slot == slot)
            bad(pk);
        else
            msgpack_pack_uint64(pk, V1);
    }
    if (bad_slot == 4)
        bad(pk);
    else
        pk_versions(pk);
    if (bad_slot == 5) {
        bad(pk);
    } else {
        msgpack_pack_array(pk, 2);
        pk_field(pk, "a");
        pk_field(pk, "b");
    }
}
static void c_good(msgpack_packer *pk) { pk_change(pk, ID, -1, NULL); }
static void c_village_str(msgpack_packer *pk) { pk_change(pk, ID, 1, x_numstr); }
static void c_prev_neg(msgpack_packer *pk) { pk_change(pk, ID, 2, x_neg); }
static void c_from_nil(msgpack_packer *pk) { pk_change(pk, ID, 3, x_nil); }
static void c_id_int(msgpack_packer *pk) { pk_change(pk, ID, 0, x_int); }
static void c_id_slash(msgpack_packer *pk) { pk_change(pk, "a/b", -1, NULL); }
static void c_id_empty(msgpack_packer *pk) { pk_change(pk, "", -1, NULL); }
static void c_versions_nil(msgpack_packer *pk) { pk_change(pk, ID, 4, x_nil); }
static void c_writes_nil(msgpack_packer *pk) { pk_change(pk, ID, 5, x_nil); }
static void pk_change_fields(msgpack_packer *pk, const char *a, const char *b)
{
    msgpack_pack_array(pk, 6);
    pk_str(pk, ID);
    msgpack_pack_uint64(pk, V1);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
    pk_versions(pk);
    msgpack_pack_array(pk, 2);
    pk_field(pk, a);
    pk_field(pk, b);
}
static void c_writes_dup(msgpack_packer *pk) { pk_change_fields(pk, "a", "a"); }
static void c_writes_unordered(msgpack_packer *pk) { pk_change_fields(pk, "b", "a"); }
static void c_5(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    pk_str(pk, ID);
    msgpack_pack_uint64(pk, V1);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_array(pk, 0);
}
static void c_7(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    pk_str(pk, ID);
    msgpack_pack_uint64(pk, V1);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
}

static const struct {
    const char *what;
    void (*build)(msgpack_packer *);
    bool is_change;
    const char *why;
} bad_frames[] = {
    {"record id as an integer", b_id_int, false, "record id: expected a string"},
    {"record id as nil", b_id_nil, false, "record id: expected a string"},
    {"record id as bin", b_id_bin, false, "record id: expected a string"},
    {"record id with a NUL", b_id_nul, false, "record id: string holds a NUL"},
    {"record id empty", b_id_empty, false, "record id: malformed"},
    {"record id empty, with a field", b_id_empty_f, false, "record id: malformed"},
    {"record id with a slash", b_id_slash, false, "record id: malformed"},
    {"record id ..", b_id_dotdot, false, "record id: malformed"},
    {"record id with a space", b_id_space, false, "record id: malformed"},
    {"record id of 65 chars", b_id_65, false, "record id: malformed"},
    {"record as a map", b_rec_map, false, "record: expected an array"},
    {"record as nil", b_rec_nil, false, "record: expected an array"},
    {"record of 4 elements", b_rec_4, false, "record: 4 elements"},
    {"record of 2 elements", b_rec_2, false, "record: 2 elements"},
    {"record of 0 elements", b_rec_empty, false, "record: 0 elements"},
    {"versions as nil", b_versions_nil, false, "versions: expected an array"},
    {"fields as nil", b_fields_nil, false, "fields: expected an array"},
    {"fields as a map", b_fields_map, false, "fields: expected an array"},
    {"version as nil", b_version_nil, false, "version: expected an array"},
    {"version of 2 elements", b_version_2, false, "version: 2 elements"},
    {"version of 4 elements", b_version_4, false, "version: 4 elements"},
    {"version hlc as a string", b_vhlc_str, false, "version 0: expected [hlc"},
    {"version hlc negative", b_vhlc_neg, false, "version 0: expected [hlc"},
    {"version hlc as a float", b_vhlc_float, false, "version 0: expected [hlc"},
    {"version origin negative", b_vorigin_neg, false, "version 0: expected [hlc"},
    {"version origin as a string", b_vorigin_str, false, "version 0: expected [hlc"},
    {"version author as nil", b_vauthor_nil, false, "version 0: expected [hlc"},
    {"version author as an integer", b_vauthor_int, false, "version 0: expected [hlc"},
    {"version author of 200 bytes", b_vauthor_long, false, "version 0: expected [hlc"},
    {"version author with a NUL", b_vauthor_nul, false, "author: string holds a NUL"},
    {"field as a string", b_field_not_array, false, "field: expected an array"},
    {"field of 3 elements", b_field_3, false, "field: 3 elements"},
    {"field of 5 elements", b_field_5, false, "field: 5 elements"},
    {"field of 6 elements", b_field_6, false, "field: 6 elements"},
    {"field of 0 elements", b_field_0, false, "field: 0 elements"},
    {"field name as a negative integer", b_name_neg, false, "field name: expected a string"},
    {"field name a number no field has", b_name_nofield, false, "field name: no field number 999"},
    {"field name as nil", b_name_nil, false, "field name: expected a string"},
    {"field name empty", b_name_empty, false, "field name: empty"},
    {"field name of 65 chars", b_name_65, false, "field name: empty or too long"},
    {"field name with a NUL", b_name_nul, false, "field name: string holds a NUL"},
    {"field version index as a string", b_index_str, false, "field version: expected an unsigned"},
    {"field version index negative", b_index_neg, false, "field version: expected an unsigned"},
    {"field version index past the table", b_index_out, false, "field version: index out of range"},
    {"field version index 2^64-1", b_index_max, false, "field version: index out of range"},
    {"field version with no versions", b_index_no_versions, false, "field version: index out of range"},
    {"field base as nil", b_base_nil, false, "field base: expected an unsigned"},
    {"field base as a float", b_base_float, false, "field base: expected an unsigned"},
    {"value as a float32", b_value_float, false, "value: unsupported type"},
    {"value as a float64", b_value_double, false, "value: unsupported type"},
    {"value as a map", b_value_map, false, "value: unsupported type"},
    {"value as an empty map", b_value_empty_map, false, "value: unsupported type"},
    {"value as an integer", b_value_uint, false, "value: unsupported type"},
    {"value as a negative integer", b_value_negint, false, "value: unsupported type"},
    {"value as bin", b_value_bin, false, "value: unsupported type"},
    {"value as ext", b_value_ext, false, "value: unsupported type"},
    {"string value with a NUL", b_value_str_nul, false, "value: string holds a NUL"},
    {"list value holding an integer", b_value_list_int, false, "value item: expected a string"},
    {"list value holding a list", b_value_list_list, false, "value item: expected a string"},
    {"list value holding nil", b_value_list_nil, false, "value item: expected a string"},
    {"list item with a NUL", b_value_list_nul, false, "value item: string holds a NUL"},
    {"duplicate field names", b_dup, false, "duplicate or unordered"},
    {"duplicate field names at the end", b_dup_late, false, "duplicate or unordered"},
    {"unordered field names", b_unordered, false, "duplicate or unordered"},
    {"unordered field names at the end", b_unordered_late, false, "duplicate or unordered"},
    {"unordered by byte order", b_unordered_case, false, "duplicate or unordered"},
    {"longer name before its prefix", b_unordered_prefix, false, "duplicate or unordered"},
    {"change village as a string", c_village_str, true, "change village: expected an unsigned"},
    {"change previous village negative", c_prev_neg, true, "change previous village"},
    {"change sender as nil", c_from_nil, true, "change sender: expected an unsigned"},
    {"change id as an integer", c_id_int, true, "change id: expected a string"},
    {"change id with a slash", c_id_slash, true, "change id: malformed"},
    {"change id empty", c_id_empty, true, "change id: malformed"},
    {"change versions as nil", c_versions_nil, true, "versions: expected an array"},
    {"change writes as nil", c_writes_nil, true, "fields: expected an array"},
    {"change writes duplicated", c_writes_dup, true, "duplicate or unordered"},
    {"change writes unordered", c_writes_unordered, true, "duplicate or unordered"},
    {"change of 5 elements", c_5, true, "change: 5 elements"},
    {"change of 7 elements", c_7, true, "change: 7 elements"},
};

static void test_corrupt_frames(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bad_frames); i++) {
        enc_t e;
        enc_init(&e);
        bad_frames[i].build(&e.pk);
        size_t len;
        unsigned char *buf = enc_done(&e, &len);
        /* The frame is well-formed msgpack: what is refused is its shape. */
        why_t why = {{0}};
        if (mp_check(buf, len, &why))
            fail_msg("%s: not even msgpack: %s", bad_frames[i].what, why.msg);
        expect_corrupt(buf, len, bad_frames[i].what, bad_frames[i].is_change,
                       bad_frames[i].why);
        free(buf);
    }
}

static record_t *decode_built(void (*build)(msgpack_packer *), const char *what)
{
    enc_t e;
    enc_init(&e);
    build(&e.pk);
    size_t len;
    unsigned char *buf = enc_done(&e, &len);
    record_t *r = NULL;
    why_t why = {{0}};
    if (record_decode(buf, len, &r, &why))
        fail_msg("%s: refused: %s", what, why.msg);
    free(buf);
    return r;
}

static void g_three(msgpack_packer *pk) { pk_rec_fields(pk, "r1", 3, "a", "b", "c"); }
static void g_four(msgpack_packer *pk) { pk_rec_field_n(pk, 4); }
static void g_value(msgpack_packer *pk) { pk_rec_value(pk, v_good); }
static void g_list(msgpack_packer *pk) { pk_rec_value(pk, v_good_list); }
static void g_id(msgpack_packer *pk) { pk_rec_id(pk, x_good_id); }
static void g_base(msgpack_packer *pk) { pk_rec_field_bad(pk, E_BASE, x_int); }
static void g_version(msgpack_packer *pk) { pk_rec_version(pk, 3, 0, x_int); }

/* The hand-built frames with their defect mended decode, so the refusals
 * above are for the defect alone. */
static void test_hand_frames_good(void **state)
{
    (void)state;
    record_t *r = decode_built(g_three, "three fields");
    assert_int_equal(r->n, 3);
    assert_string_equal(record_str(r, "b"), "v");
    assert_int_equal(record_field(r, "c")->ver.hlc, hlc_make(1795404207123ULL, 0));
    assert_int_equal(record_field(r, "c")->ver.origin, V1);
    assert_string_equal(record_field(r, "c")->ver.author, "510104001001/civil/li");
    record_destroy(&r);

    r = decode_built(g_four, "field of 4");
    assert_string_equal(record_str(r, "name"), "v");
    record_destroy(&r);

    r = decode_built(g_value, "string value");
    assert_string_equal(record_str(r, "name"), "v");
    record_destroy(&r);

    r = decode_built(g_list, "list value");
    assert_true(val_list_has(record_val(r, "name"), "fine"));
    record_destroy(&r);

    r = decode_built(g_id, "no fields");
    assert_string_equal(r->id, "r1");
    assert_int_equal(r->n, 0);
    record_destroy(&r);

    r = decode_built(g_base, "base 7");
    assert_int_equal(r->f[0].ver.base, 7);
    record_destroy(&r);

    r = decode_built(g_version, "hlc 7");
    assert_int_equal(r->f[0].ver.hlc, 7);
    assert_int_equal(r->f[0].ver.origin, V1);
    record_destroy(&r);

    enc_t e;
    enc_init(&e);
    c_good(&e.pk);
    size_t len;
    unsigned char *buf = enc_done(&e, &len);
    change_t c = {0};
    why_t why = {{0}};
    if (change_decode(buf, len, &c, &why))
        fail_msg("good change refused: %s", why.msg);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.village, V1);
    assert_string_equal(c.w[1].name, "b");
    change_free(&c);
    free(buf);
}

/* The single-field form [name, value, hlc, origin, base, author] that the
 * wire protocol and the conflict log use. */
static int field_decode(const unsigned char *buf, size_t len, field_t *f, why_t *why)
{
    unsigned char *copy = dup_exact(buf, len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(copy, len, &u, why);
    if (rc == LX_OK)
        rc = field_from_obj(&u.data, f, why);
    msgpack_unpacked_destroy(&u);
    free(copy);
    return rc;
}

static void pk_wire_field(msgpack_packer *pk, int n, int slot, void (*bad)(msgpack_packer *))
{
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        if (i == slot)
            bad(pk);
        else if (i == 0)
            pk_str(pk, "name");
        else if (i == 1)
            pk_str(pk, "v");
        else if (i == 5)
            pk_str(pk, "author");
        else
            msgpack_pack_uint64(pk, (uint64_t)i);
    }
}

static void test_field_wire_form(void **state)
{
    (void)state;
    record_t *r = sample_record();
    for (uint32_t i = 0; i < r->n; i++) {
        enc_t e;
        enc_init(&e);
        assert_int_equal(field_pack(&r->f[i], &e.pk), 0);
        size_t len;
        unsigned char *buf = enc_done(&e, &len);
        field_t f;
        why_t why = {{0}};
        if (field_decode(buf, len, &f, &why))
            fail_msg("field %s: %s", r->f[i].name, why.msg);
        assert_field_equal(&r->f[i], &f);
        field_free(&f);
        free(buf);
    }
    record_destroy(&r);

    static const struct {
        const char *what;
        int n, slot;
        void (*bad)(msgpack_packer *);
        const char *why;
    } cases[] = {
        {"hlc as a string", 6, 2, x_numstr, "field hlc: expected an unsigned"},
        {"hlc negative", 6, 2, x_neg, "field hlc: expected an unsigned"},
        {"origin as a float", 6, 3, x_float, "field origin: expected an unsigned"},
        {"base as nil", 6, 4, x_nil, "field base: expected an unsigned"},
        {"author as an integer", 6, 5, x_int, "field author: expected a string"},
        {"author with a NUL", 6, 5, x_nul, "field author: string holds a NUL"},
        {"name empty", 6, 0, x_empty, "field name: empty"},
        {"name as a negative integer", 6, 0, x_neg, "field name: expected a string"},
        {"name a number no field has", 6, 0, x_nofield, "field name: no field number 999"},
        {"value as a float", 6, 1, x_float, "value: unsupported type"},
        {"value as a map", 6, 1, v_map, "value: unsupported type"},
        {"value with a NUL", 6, 1, v_str_nul, "value: string holds a NUL"},
        {"5 elements", 5, -1, NULL, "field: 5 elements"},
        {"7 elements", 7, -1, NULL, "field: 7 elements"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        enc_t e;
        enc_init(&e);
        pk_wire_field(&e.pk, cases[i].n, cases[i].slot, cases[i].bad);
        size_t len;
        unsigned char *buf = enc_done(&e, &len);
        field_t f = {0};
        why_t why = {{0}};
        int rc = field_decode(buf, len, &f, &why);
        if (rc != LX_ECORRUPT)
            fail_msg("wire field, %s: gave %d", cases[i].what, rc);
        if (!strstr(why.msg, cases[i].why))
            fail_msg("wire field, %s: said \"%s\", expected \"%s\"", cases[i].what,
                     why.msg, cases[i].why);
        assert_null(f.name);
        free(buf);
    }
    /* The same builder with nothing wrong decodes. */
    enc_t e;
    enc_init(&e);
    pk_wire_field(&e.pk, 6, -1, NULL);
    size_t len;
    unsigned char *buf = enc_done(&e, &len);
    field_t f;
    assert_int_equal(field_decode(buf, len, &f, NULL), LX_OK);
    assert_string_equal(f.name, "name");
    assert_int_equal(f.ver.hlc, 2);
    assert_int_equal(f.ver.origin, 3);
    assert_int_equal(f.ver.base, 4);
    assert_string_equal(f.ver.author, "author");
    field_free(&f);
    free(buf);
}

/* ---- random mutations ---- */

/* What a caller relies on after a successful decode: a valid id, fields
 * strictly sorted by name, and an encoding that decodes to itself. */
static void check_record(const record_t *r)
{
    assert_true(record_id_valid(r->id));
    assert_sorted(r);
    for (uint32_t i = 0; i < r->n; i++) {
        assert_true(r->f[i].name[0] != '\0');
        assert_non_null(r->f[i].ver.author);
        assert_ptr_equal(record_field(r, r->f[i].name), &r->f[i]);
    }
    size_t len, len2;
    unsigned char *buf = encode_record(r, &len);
    record_t *d = NULL;
    why_t why = {{0}};
    if (record_decode(buf, len, &d, &why))
        fail_msg("re-encoded record does not decode: %s", why.msg);
    assert_record_equal(r, d);
    unsigned char *buf2 = encode_record(d, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf);
    free(buf2);
    record_destroy(&d);
}

static void check_change(const change_t *c)
{
    assert_true(record_id_valid(c->id));
    for (uint32_t i = 1; i < c->n; i++)
        assert_true(strcmp(c->w[i - 1].name, c->w[i].name) < 0);
    size_t len, len2;
    unsigned char *buf = encode_change(c, &len);
    change_t d = {0};
    why_t why = {{0}};
    if (change_decode(buf, len, &d, &why))
        fail_msg("re-encoded change does not decode: %s", why.msg);
    unsigned char *buf2 = encode_change(&d, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf);
    free(buf2);
    change_free(&d);
}

static void test_mutations(void **state)
{
    (void)state;
    size_t blen[2];
    unsigned char *base[2];
    record_t *r = sample_record();
    base[0] = encode_record(r, &blen[0]);
    record_destroy(&r);
    change_t c;
    sample_change(&c);
    base[1] = encode_change(&c, &blen[1]);
    change_free(&c);

    /* Bytes that change the meaning of what follows. */
    static const unsigned char hot[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                        0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca,
                                        0xcf, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde,
                                        0xdf, 0xe0, 0xff};
    uint64_t s = 0x853c49e6748fea9bULL;
    unsigned char work[1024];
    int ok[2] = {0, 0}, bad[2] = {0, 0}, checked = 0;
    for (int it = 0; it < 20000; it++) {
        int which = (int)(xorshift64(&s) & 1);
        size_t len = blen[which];
        assert_true(len + 8 <= sizeof work);
        memcpy(work, base[which], len);
        int edits = 1 + (int)(xorshift64(&s) % 4);
        for (int k = 0; k < edits; k++) {
            uint64_t x = xorshift64(&s);
            size_t at = len ? (size_t)((x >> 8) % len) : 0;
            switch (x % 5) {
            case 0: /* flip a bit */
                if (len)
                    work[at] ^= (unsigned char)(1u << ((x >> 40) % 8));
                break;
            case 1: /* overwrite with a type byte */
                if (len)
                    work[at] = hot[(x >> 40) % N(hot)];
                break;
            case 2: /* insert a byte */
                if (len < sizeof work - 8) {
                    memmove(work + at + 1, work + at, len - at);
                    work[at] = (x >> 40) & 1 ? hot[(x >> 41) % N(hot)]
                                             : (unsigned char)(x >> 48);
                    len++;
                }
                break;
            case 3: /* delete a byte */
                if (len) {
                    memmove(work + at, work + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 4: /* random byte */
                if (len)
                    work[at] = (unsigned char)(x >> 48);
                break;
            }
        }
        unsigned char *m = dup_exact(work, len);

        /* Whatever the guard lets through, msgpack-c must decode whole. */
        why_t why = {{0}};
        if (mp_check(m, len, &why) == LX_OK) {
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            if (mp_unpack(m, len, &u, &why))
                fail_msg("iteration %d: mp_check passed, msgpack failed: %s", it, why.msg);
            msgpack_unpacked_destroy(&u);
        }

        record_t *d = NULL;
        int rc = record_decode(m, len, &d, &why);
        if (rc != LX_OK && rc != LX_ECORRUPT)
            fail_msg("iteration %d: record_decode gave %d", it, rc);
        if (rc == LX_OK) {
            ok[0]++;
            if (checked++ < 2000)
                check_record(d);
            record_destroy(&d);
        } else {
            bad[0]++;
            assert_null(d);
        }
        change_t ch = {0};
        rc = change_decode(m, len, &ch, &why);
        if (rc != LX_OK && rc != LX_ECORRUPT)
            fail_msg("iteration %d: change_decode gave %d", it, rc);
        fast_agrees(m, len, rc == LX_OK ? &ch : NULL);
        if (rc == LX_OK) {
            ok[1]++;
            check_change(&ch);
            change_free(&ch);
        } else {
            bad[1]++;
            assert_null(ch.id);
        }
        free(m);
    }
    /* The loop reached both outcomes of both decoders. */
    print_message("mutations: record %d ok / %d refused, change %d ok / %d refused\n",
                  ok[0], bad[0], ok[1], bad[1]);
    assert_true(ok[0] > 100 && bad[0] > 100);
    assert_true(ok[1] > 100 && bad[1] > 100);
    free(base[0]);
    free(base[1]);
}

/* Arenas: a destroyed arena's block serves the next arena of that size
 * (no fresh pages per frame), yet what arena_alloc hands out is zeroed
 * however the block was used before, and blocks are not shared between
 * live arenas. */
static void test_arena_reuse(void **state)
{
    (void)state;
    const size_t size = (3u << 20) + 17;
    arena_t *a = arena_new(size);
    assert_non_null(a);
    unsigned char *p = arena_alloc(a, 4096);
    assert_non_null(p);
    memset(p, 0xa5, 4096);
    arena_destroy(&a);
    arena_t *b = arena_new(size), *c = arena_new(size);
    unsigned char *q = arena_alloc(b, 4096), *r = arena_alloc(c, 4096);
    assert_non_null(q);
    assert_non_null(r);
    assert_ptr_equal(q, p);      /* the block was kept and taken again */
    assert_ptr_not_equal(r, q);  /* a second live arena gets its own */
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(q[i], 0);
    /* Pieces larger than any kept block still come (from malloc). */
    char *big = arena_bytes(c, 40u << 20);
    assert_non_null(big);
    memset(big, 1, 40u << 20);
    arena_destroy(&b);
    arena_destroy(&c);
}

/* record_pack writes msgpack by hand: its bytes must be exactly what
 * msgpack-c writes for the same items (every integer, string and array in
 * its smallest form), which is what makes the encoding canonical. Each
 * record is packed, read back as objects and packed again by msgpack-c. */
static void assert_canonical(const record_t *r)
{
    size_t len;
    unsigned char *buf = encode_record(r, &len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    enc_t e;
    enc_init(&e);
    assert_int_equal(msgpack_pack_object(&e.pk, u.data), 0);
    size_t len2;
    unsigned char *again = enc_done(&e, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(again, buf, len);
    free(again);
    free(buf);
    msgpack_unpacked_destroy(&u);
}

static void test_pack_canonical(void **state)
{
    (void)state;
    record_t *r = sample_record();
    assert_canonical(r);
    record_destroy(&r);
    r = wide_record(200);  /* arrays of 16 bits, many versions */
    assert_canonical(r);
    record_destroy(&r);
    /* Strings of every header size, the largest of more than one buffer;
     * lists long enough for a 16-bit header; integers of every width. */
    static const size_t lens[] = {0, 31, 32, 255, 256, 3000, 70000};
    r = record_new("510104001001-00000000000000ff");
    char name[16];
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = malloc(lens[i] + 1);
        memset(s, 'a' + (int)i, lens[i]);
        s[lens[i]] = 0;
        snprintf(name, sizeof name, "s%zu", i);
        static const uint64_t widths[] = {0, 127, 128, 255, 256, 65535, 65536};
        val_t v = {0};
        assert_int_equal(val_set_str(&v, s), LX_OK);
        ver_t ver = mkver(widths[i] ? widths[i] : UINT32_MAX + 1ULL, widths[i] + 1,
                          widths[i] * 65537, s + (lens[i] > 300 ? lens[i] - 300 : 0));
        put(r, name, &v, &ver);
        val_free(&v);
        free(s);
    }
    val_t l = {0};
    for (int i = 0; i < 20; i++)
        assert_int_equal(val_list_add(&l, i % 2 ? "x" : ""), LX_OK);
    ver_t ver = mkver(1, 1, 0, "");
    put(r, "list", &l, &ver);
    val_free(&l);
    assert_canonical(r);
    record_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_val_eq_copy),
        cmocka_unit_test(test_ver_cmp),
        cmocka_unit_test(test_record_put),
        cmocka_unit_test(test_record_accessors),
        cmocka_unit_test(test_record_id),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_round_trip_empty),
        cmocka_unit_test(test_record_wide),
        cmocka_unit_test(test_change_round_trip),
        cmocka_unit_test(test_field_numbers),
        cmocka_unit_test(test_mp_check_accepts),
        cmocka_unit_test(test_mp_check_depth),
        cmocka_unit_test(test_mp_readers),
        cmocka_unit_test(test_arena_reuse),
        cmocka_unit_test(test_pack_canonical),
        cmocka_unit_test(test_corrupt_truncated),
        cmocka_unit_test(test_corrupt_trailing),
        cmocka_unit_test(test_corrupt_lying_headers),
        cmocka_unit_test(test_corrupt_frames),
        cmocka_unit_test(test_hand_frames_good),
        cmocka_unit_test(test_field_wire_form),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
