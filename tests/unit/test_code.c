/* Unit tests for common/code: parsing and validating 12-digit division
 * codes, their levels, the parent chain, subtree containment, common
 * ancestors, report breakdown keys, range bounds for scans and the
 * big-endian key encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/code.h"
#include "common/err.h"
#include "xorshift.h"

#define N(a) (sizeof(a) / sizeof *(a))

/* A small tree: one province with two cities, counties, townships and
 * villages, plus units in a second city and a second province. */
#define P1 510000000000ULL  /* province */
#define C1 510100000000ULL  /* city in P1 */
#define C2 510200000000ULL  /* another city in P1 */
#define D1 510104000000ULL  /* county in C1 */
#define D2 510105000000ULL  /* another county in C1 */
#define D3 510201000000ULL  /* county in C2 */
#define T1 510104001000ULL  /* township in D1 */
#define T2 510104002000ULL  /* another township in D1 */
#define T3 510105001000ULL  /* township in D2 */
#define V1 510104001001ULL  /* village in T1 */
#define V2 510104001002ULL  /* another village in T1 */
#define V3 510104002001ULL  /* village in T2 */
#define V4 510105001001ULL  /* village in D2 (same city, other county) */
#define V5 510201001001ULL  /* village in C2 (same province, other city) */
#define P2 520000000000ULL  /* another province */
#define V6 520101001001ULL  /* village in P2 */

static const code_t tree[] = {P1, C1, C2, D1, D2, D3, T1, T2, T3,
                              V1, V2, V3, V4, V5, P2, V6};

/* ---- parsing and levels ---- */

static void test_parse_good(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        code_t c;
        level_t l;
    } good[] = {
        {"510000000000", 510000000000ULL, LEVEL_PROVINCE},
        {"510100000000", 510100000000ULL, LEVEL_CITY},
        {"510104000000", 510104000000ULL, LEVEL_COUNTY},
        {"510104001000", 510104001000ULL, LEVEL_TOWNSHIP},
        {"510104001001", 510104001001ULL, LEVEL_VILLAGE},
        {"110000000000", 110000000000ULL, LEVEL_PROVINCE},
        {"999999999999", 999999999999ULL, LEVEL_VILLAGE},
        {"100000000000", 100000000000ULL, LEVEL_PROVINCE},
        {"010000000000", 10000000000ULL, LEVEL_PROVINCE},
        {"010101001001", 10101001001ULL, LEVEL_VILLAGE},
    };
    for (size_t i = 0; i < N(good); i++) {
        code_t c = 0;
        int rc = code_parse(good[i].s, &c);
        if (rc != LX_OK)
            fail_msg("code_parse(\"%s\") gave %d", good[i].s, rc);
        assert_int_equal(c, good[i].c);
        assert_int_equal(code_level(c), good[i].l);
        /* code_parse_n reads exactly 12 bytes of a longer buffer. */
        char longer[32];
        snprintf(longer, sizeof longer, "%s9999", good[i].s);
        c = 0;
        assert_int_equal(code_parse_n(longer, 12, &c), LX_OK);
        assert_int_equal(c, good[i].c);
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "5",
        "51000000000",    /* 11 digits */
        "5101040010011",  /* 13 digits */
        "51010400100a",   /* a letter */
        "a10104001001",
        "5101O4001001",   /* letter O for zero */
        " 51010400100",   /* leading space */
        "51010400100 ",   /* trailing space */
        "+51010400100",
        "-51010400100",
        "51010400100\n",
        "000000000000",   /* zero */
        "000000000001",   /* province part 00 */
        "001000000000",
        "000100000000",
        "510004000000",   /* county under city 00 */
        "510000001000",   /* township under city 00, county 00 */
        "510100001000",   /* township under county 00 */
        "510104000001",   /* village under township 000 */
        "510100000001",   /* village under county 00 */
        "510000000001",   /* village under city 00 */
        "5101\0404001001",  /* a space inside */
        "5101040010010000",
    };
    for (size_t i = 0; i < N(bad); i++) {
        code_t c = 12345;
        int rc = code_parse(bad[i], &c);
        if (rc != LX_EINVAL)
            fail_msg("code_parse(\"%s\") gave %d, expected LX_EINVAL", bad[i], rc);
    }
    code_t c = 0;
    assert_int_equal(code_parse(NULL, &c), LX_EINVAL);
    /* Lengths other than 12 are refused even when the bytes are digits. */
    assert_int_equal(code_parse_n("5101040010019", 13, &c), LX_EINVAL);
    assert_int_equal(code_parse_n("51010400100", 11, &c), LX_EINVAL);
    assert_int_equal(code_parse_n("510104001001", 0, &c), LX_EINVAL);
    assert_int_equal(code_parse_n("510104001001", -12, &c), LX_EINVAL);
    /* A NUL inside the 12 bytes is not a digit. */
    assert_int_equal(code_parse_n("51010\000100100", 12, &c), LX_EINVAL);
}

static void test_level_of_numbers(void **state)
{
    (void)state;
    assert_int_equal(code_level(P1), LEVEL_PROVINCE);
    assert_int_equal(code_level(C1), LEVEL_CITY);
    assert_int_equal(code_level(D1), LEVEL_COUNTY);
    assert_int_equal(code_level(T1), LEVEL_TOWNSHIP);
    assert_int_equal(code_level(V1), LEVEL_VILLAGE);
    assert_int_equal(code_level(0), LEVEL_NONE);
    assert_int_equal(code_level(1), LEVEL_NONE);               /* province 00 */
    assert_int_equal(code_level(510004000000ULL), LEVEL_NONE);
    assert_int_equal(code_level(510104000001ULL), LEVEL_NONE);
    assert_int_equal(code_level(1000000000000ULL), LEVEL_NONE); /* 13 digits */
    assert_int_equal(code_level(5101040010010ULL), LEVEL_NONE);
    assert_int_equal(code_level(UINT64_MAX), LEVEL_NONE);
}

static void test_fmt_round_trip(void **state)
{
    (void)state;
    char buf[CODE_STRLEN + 1];
    for (size_t i = 0; i < N(tree); i++) {
        memset(buf, 'x', sizeof buf);
        assert_ptr_equal(code_fmt(tree[i], buf), buf);
        assert_int_equal(strlen(buf), CODE_STRLEN);
        code_t back = 0;
        assert_int_equal(code_parse(buf, &back), LX_OK);
        assert_int_equal(back, tree[i]);
    }
    assert_string_equal(code_fmt(V1, buf), "510104001001");
    assert_string_equal(code_fmt(P1, buf), "510000000000");
    /* Leading zeros are kept: a code is always 12 digits. */
    assert_string_equal(code_fmt(10101001001ULL, buf), "010101001001");
    assert_string_equal(code_fmt(7, buf), "000000000007");

    /* Every string that parses formats back to itself. */
    static const char *good[] = {"510000000000", "510100000000", "510104000000",
                                 "510104001000", "510104001001", "010000000000"};
    for (size_t i = 0; i < N(good); i++) {
        code_t c;
        assert_int_equal(code_parse(good[i], &c), LX_OK);
        assert_string_equal(code_fmt(c, buf), good[i]);
    }
}

/* ---- the tree ---- */

static void test_parent_chain(void **state)
{
    (void)state;
    static const code_t chain[] = {V1, T1, D1, C1, P1, 0};
    for (size_t i = 0; i + 1 < N(chain); i++) {
        assert_int_equal(code_parent(chain[i]), chain[i + 1]);
        if (chain[i + 1])
            assert_int_equal(code_level(chain[i + 1]), code_level(chain[i]) - 1);
    }
    assert_int_equal(code_parent(V6), 520101001000ULL);
    assert_int_equal(code_parent(P2), 0);
    /* Malformed codes have no parent. */
    assert_int_equal(code_parent(0), 0);
    assert_int_equal(code_parent(510104000001ULL), 0);
}

static void test_at_level(void **state)
{
    (void)state;
    assert_int_equal(code_at_level(V1, LEVEL_VILLAGE), V1);
    assert_int_equal(code_at_level(V1, LEVEL_TOWNSHIP), T1);
    assert_int_equal(code_at_level(V1, LEVEL_COUNTY), D1);
    assert_int_equal(code_at_level(V1, LEVEL_CITY), C1);
    assert_int_equal(code_at_level(V1, LEVEL_PROVINCE), P1);
    assert_int_equal(code_at_level(D1, LEVEL_COUNTY), D1);
    assert_int_equal(code_at_level(V1, LEVEL_NONE), 0);
}

static void test_contains(void **state)
{
    (void)state;
    /* Every node contains itself and each of its ancestors contains it. */
    for (size_t i = 0; i < N(tree); i++) {
        assert_true(code_contains(tree[i], tree[i]));
        for (code_t a = code_parent(tree[i]); a; a = code_parent(a)) {
            assert_true(code_contains(a, tree[i]));
            /* ... but not the other way round. */
            assert_false(code_contains(tree[i], a));
        }
    }
    /* Descendants. */
    assert_true(code_contains(P1, V1));
    assert_true(code_contains(P1, V5));
    assert_true(code_contains(C1, V4));
    assert_true(code_contains(D1, V3));
    assert_true(code_contains(T1, V2));
    /* Siblings at every level. */
    assert_false(code_contains(P1, P2));
    assert_false(code_contains(C1, C2));
    assert_false(code_contains(D1, D2));
    assert_false(code_contains(T1, T2));
    assert_false(code_contains(V1, V2));
    /* Cousins: children of siblings. */
    assert_false(code_contains(T1, V3));
    assert_false(code_contains(D1, V4));
    assert_false(code_contains(C1, V5));
    assert_false(code_contains(P1, V6));
    assert_false(code_contains(C2, D1));
    /* A village contains only itself. */
    for (size_t i = 0; i < N(tree); i++)
        if (tree[i] != V1)
            assert_false(code_contains(V1, tree[i]));
    /* Malformed codes are in nothing and contain nothing. */
    assert_false(code_contains(P1, 510104000001ULL));
    assert_false(code_contains(P1, 0));
    assert_false(code_contains(0, V1));
    assert_false(code_contains(510004000000ULL, V1));
}

static void test_lca(void **state)
{
    (void)state;
    assert_int_equal(code_lca(V1, V2), T1);  /* sibling villages */
    assert_int_equal(code_lca(V1, V3), D1);  /* different townships */
    assert_int_equal(code_lca(V1, V4), C1);  /* different counties */
    assert_int_equal(code_lca(V1, V5), P1);  /* different cities */
    assert_int_equal(code_lca(V1, V6), 0);   /* different provinces */
    for (size_t i = 0; i < N(tree); i++)
        assert_int_equal(code_lca(tree[i], tree[i]), tree[i]);
    /* A node and its descendant meet at the node, in either order. */
    assert_int_equal(code_lca(D1, V2), D1);
    assert_int_equal(code_lca(V2, D1), D1);
    assert_int_equal(code_lca(P1, V5), P1);
    assert_int_equal(code_lca(T1, T2), D1);
    assert_int_equal(code_lca(T2, V4), C1);
    assert_int_equal(code_lca(C1, C2), P1);
    /* Symmetric over the whole tree, and the result holds both. */
    for (size_t i = 0; i < N(tree); i++)
        for (size_t j = 0; j < N(tree); j++) {
            code_t l = code_lca(tree[i], tree[j]);
            assert_int_equal(l, code_lca(tree[j], tree[i]));
            if (l) {
                assert_true(code_contains(l, tree[i]));
                assert_true(code_contains(l, tree[j]));
            }
        }
}

static void test_child_under(void **state)
{
    (void)state;
    assert_int_equal(code_child_under(P1, V1), C1);
    assert_int_equal(code_child_under(P1, V5), C2);
    assert_int_equal(code_child_under(P1, C2), C2);
    assert_int_equal(code_child_under(P1, D3), C2);
    assert_int_equal(code_child_under(C1, V1), D1);
    assert_int_equal(code_child_under(C1, V4), D2);
    assert_int_equal(code_child_under(D1, V3), T2);
    assert_int_equal(code_child_under(D1, T1), T1);
    assert_int_equal(code_child_under(T1, V2), V2);
    /* Not strictly under: the node itself, ancestors, siblings, others. */
    assert_int_equal(code_child_under(D1, D1), 0);
    assert_int_equal(code_child_under(V1, V1), 0);
    assert_int_equal(code_child_under(D1, C1), 0);
    assert_int_equal(code_child_under(D1, P1), 0);
    assert_int_equal(code_child_under(D1, V4), 0);
    assert_int_equal(code_child_under(T1, V3), 0);
    assert_int_equal(code_child_under(P1, V6), 0);
    assert_int_equal(code_child_under(P1, 0), 0);
    assert_int_equal(code_child_under(0, V1), 0);
    assert_int_equal(code_child_under(P1, 510104000001ULL), 0);
    /* Whatever it returns is one level below node and holds x. */
    for (size_t i = 0; i < N(tree); i++)
        for (size_t j = 0; j < N(tree); j++) {
            code_t k = code_child_under(tree[i], tree[j]);
            if (!k)
                continue;
            assert_int_equal(code_parent(k), tree[i]);
            assert_true(code_contains(k, tree[j]));
        }
}

static void test_range(void **state)
{
    (void)state;
    static const struct {
        code_t node, hi;
    } bounds[] = {
        {P1, 520000000000ULL},
        {C1, 510200000000ULL},
        {D1, 510105000000ULL},
        {T1, 510104002000ULL},
        {V1, 510104001002ULL},
        {990000000000ULL, 1000000000000ULL},
        {519900000000ULL, 520000000000ULL},
        {510199000000ULL, 510200000000ULL},
        {510104999000ULL, 510105000000ULL},
        {510104001999ULL, 510104002000ULL},
    };
    for (size_t i = 0; i < N(bounds); i++) {
        code_t lo = 1, hi = 1;
        code_range(bounds[i].node, &lo, &hi);
        assert_int_equal(lo, bounds[i].node);
        assert_int_equal(hi, bounds[i].hi);
    }

    /* Containment agrees with the range over a set of well-formed codes,
     * including each range's first and last members and its neighbours. */
    static const code_t set[] = {
        P1, C1, C2, D1, D2, D3, T1, T2, T3, V1, V2, V3, V4, V5, P2, V6,
        509999999999ULL, 510101000000ULL, 510199999999ULL, 510104999999ULL,
        510104001999ULL, 510103999999ULL, 510104998999ULL, 519999999999ULL,
        990000000000ULL, 999999999999ULL, 10000000000ULL, 510104999000ULL,
        510199000000ULL, 519900000000ULL, 510104001999ULL,
    };
    for (size_t i = 0; i < N(set); i++) {
        if (code_level(set[i]) == LEVEL_NONE)
            fail_msg("set[%zu] = %llu is not well formed", i,
                     (unsigned long long)set[i]);
        code_t lo, hi;
        code_range(set[i], &lo, &hi);
        for (size_t j = 0; j < N(set); j++) {
            bool in = lo <= set[j] && set[j] < hi;
            if (in != code_contains(set[i], set[j]))
                fail_msg("node %llu, x %llu: range says %d, contains says %d",
                         (unsigned long long)set[i], (unsigned long long)set[j],
                         in, !in);
        }
    }
}

/* ---- key encoding ---- */

static void test_be(void **state)
{
    (void)state;
    unsigned char b[8];
    code_put_be(0x0102030405060708ULL, b);
    static const unsigned char want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(b, want, 8);
    assert_int_equal(code_get_be(b), 0x0102030405060708ULL);

    code_put_be(V1, b);
    static const unsigned char v1[8] = {0, 0, 0, 0x76, 0xc4, 0x91, 0x59, 0xe9};
    assert_memory_equal(b, v1, 8);
    assert_int_equal(code_get_be(b), V1);

    /* Byte order is numeric order, over the tree and over random values
     * that differ in any byte. */
    for (size_t i = 0; i < N(tree); i++)
        for (size_t j = 0; j < N(tree); j++) {
            unsigned char a[8], c[8];
            code_put_be(tree[i], a);
            code_put_be(tree[j], c);
            int m = memcmp(a, c, 8);
            int n = tree[i] < tree[j] ? -1 : tree[i] > tree[j];
            assert_int_equal(m < 0 ? -1 : m > 0, n);
        }
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = xorshift64(&s), y = xorshift64(&s);
        /* Sometimes share a prefix so that lower bytes decide. */
        if (i % 3 == 0)
            y = (x & ~0xffffULL) | (y & 0xffffULL);
        unsigned char a[8], c[8];
        code_put_be(x, a);
        code_put_be(y, c);
        assert_int_equal(code_get_be(a), x);
        assert_int_equal(code_get_be(c), y);
        int m = memcmp(a, c, 8);
        int n = x < y ? -1 : x > y;
        assert_int_equal(m < 0 ? -1 : m > 0, n);
    }
}

/* ---- level names ---- */

static void test_level_names(void **state)
{
    (void)state;
    static const char *names[] = {"none", "province", "city", "county",
                                  "township", "village"};
    for (int l = LEVEL_PROVINCE; l <= LEVEL_VILLAGE; l++) {
        assert_string_equal(level_name((level_t)l), names[l]);
        assert_int_equal(level_parse(level_name((level_t)l)), l);
    }
    assert_string_equal(level_name(LEVEL_NONE), "none");
    assert_string_equal(level_name((level_t)6), "none");
    assert_string_equal(level_name((level_t)99), "none");
    assert_int_equal(level_parse("none"), LEVEL_NONE);
    assert_int_equal(level_parse(""), LEVEL_NONE);
    assert_int_equal(level_parse("Village"), LEVEL_NONE);
    assert_int_equal(level_parse("villages"), LEVEL_NONE);
    assert_int_equal(level_parse("vill"), LEVEL_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_level_of_numbers),
        cmocka_unit_test(test_fmt_round_trip),
        cmocka_unit_test(test_parent_chain),
        cmocka_unit_test(test_at_level),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_lca),
        cmocka_unit_test(test_child_under),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_be),
        cmocka_unit_test(test_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
