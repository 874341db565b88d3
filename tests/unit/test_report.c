/* Reports: quarters and their cuts, ages at the quarter's last day across
 * every band boundary, what each column counts on a small store written
 * at pinned times, the equalities and the naming of a broken cell, the
 * msgpack round trip, and the formats' first bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/gen.h"
#include "common/mp.h"
#include "common/report.h"
#include "common/report_int.h"
#include "common/store.h"

static const code_t COUNTY = 510104000000ULL;
static const code_t TOWN_A = 510104001000ULL, TOWN_B = 510104002000ULL;
static const code_t VIL_A = 510104001201ULL, VIL_B = 510104002201ULL;

/* ---- quarters ---- */

static uint64_t utc_ms(int y, int m, int d, int hh)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = hh};
    return (uint64_t)timegm(&tm) * 1000u;
}

static void test_quarter_parse(void **state)
{
    (void)state;
    quarter_t q;
    why_t why = {""};
    assert_int_equal(quarter_parse("2026Q3", &q, &why), LX_OK);
    assert_int_equal(q.year, 2026);
    assert_int_equal(q.q, 3);
    assert_string_equal(q.first, "2026-07-01");
    assert_string_equal(q.last, "2026-09-30");
    /* The first millisecond of 1 October in China is 16:00 UTC the day before. */
    assert_true(q.cut == hlc_make(utc_ms(2026, 9, 30, 16), 0));
    assert_true(q.start == hlc_make(utc_ms(2026, 6, 30, 16), 0));
    assert_int_equal(quarter_parse("2026q4", &q, &why), LX_OK);
    assert_string_equal(q.last, "2026-12-31");
    assert_true(q.cut == hlc_make(utc_ms(2026, 12, 31, 16), 0));
    assert_int_equal(quarter_parse("2024Q1", &q, &why), LX_OK);
    assert_string_equal(q.last, "2024-03-31");
    assert_true(q.start == hlc_make(utc_ms(2023, 12, 31, 16), 0));
    /* One quarter's cut is the next one's start: no moment is in two. */
    quarter_t q2;
    assert_int_equal(quarter_parse("2024Q2", &q2, &why), LX_OK);
    assert_true(q2.start == q.cut);

    const char *bad[] = {"2026Q5", "2026Q0", "26Q1", "2026-Q1", "2026Q1x", "", "abcdQ1",
                         "1969Q4", "2026 Q1", "2026X1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why.msg[0] = '\0';
        assert_int_equal(quarter_parse(bad[i], &q, &why), LX_EINVAL);
        assert_non_null(strstr(why.msg, "quarter"));
    }
    assert_int_equal(quarter_parse(NULL, &q, &why), LX_EINVAL);

    char s[8];
    quarter_of_ms(utc_ms(2026, 9, 30, 15), s); /* 23:00 in China: still Q3 */
    assert_string_equal(s, "2026Q3");
    quarter_of_ms(utc_ms(2026, 9, 30, 16), s); /* midnight in China: Q4 */
    assert_string_equal(s, "2026Q4");
}

static void test_age_boundaries(void **state)
{
    (void)state;
    const char *on = "2026-09-30";
    struct {
        const char *birth;
        int age;
    } cases[] = {
        {"2026-09-30", 0},  {"2020-10-01", 5},  {"2020-09-30", 6},  {"2012-10-01", 13},
        {"2012-09-30", 14}, {"2009-10-01", 16}, {"2009-09-30", 17}, {"2008-10-01", 17},
        {"2008-09-30", 18}, {"2026-10-01", -1}, {"2008-02-29", 18},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(report_age(cases[i].birth, on), cases[i].age);
    assert_int_equal(report_age("2020-02-29", "2024-02-28"), 3);
    assert_int_equal(report_age("2020-02-29", "2024-02-29"), 4);
    assert_true(report_age("20200229", on) < -100);
    assert_true(report_age(NULL, on) < -100);
}

/* ---- a small store ---- */

#include "store_fixture.h"

#define BASE(v) "village_code=" v, "gender=male", "status=active"

/* A moment inside 2026Q3 (China time), d days after 1 July. */
static hlc_t in_q3(int d) { return hlc_make(utc_ms(2026, 7, 1, 0) + (uint64_t)d * 86400000u, 0); }

static void fill(store_t *s)
{
    const char *va = "510104001201", *vb = "510104002201";
    /* Ages at 2026-09-30 across the band edges, in village A. */
    put(s, "a1", in_q3(1), BASE("510104001201"), "birth_date=2020-10-01", NULL); /* 5 */
    put(s, "a2", in_q3(1), "village_code=510104001201", "gender=female", "birth_date=2020-09-30",
        NULL); /* 6, no status: in the register */
    put(s, "a3", in_q3(1), BASE("510104001201"), "birth_date=2012-09-30", NULL); /* 14 */
    put(s, "a7", in_q3(1), "village_code=510104001201", "gender=female", "status=active",
        "birth_date=2012-10-01", NULL); /* 13 */
    put(s, "a4", in_q3(1), BASE("510104001201"), "birth_date=2009-10-01", NULL); /* 16 */
    put(s, "a5", in_q3(1), BASE("510104001201"), "birth_date=2009-09-30", NULL); /* 17 */
    put(s, "a6", in_q3(1), "village_code=510104001201", "gender=female", "status=active",
        "birth_date=2008-09-30", NULL); /* 18 */
    /* Written exactly at the cut: in the quarter (at or before the cut). */
    put(s, "a8", hlc_make(utc_ms(2026, 9, 30, 16), 0), BASE("510104001201"),
        "birth_date=2015-01-01", NULL);
    (void)va;
    (void)vb;
    /* Village B: guardianship, schooling, help, visits, risk. */
    put(s, "b1", in_q3(2), BASE("510104002201"), "birth_date=2015-01-01",
        "guardian_type=grandparent", "guardian_capable=true", "school_status=enrolled",
        "categories=left_behind;disabled", "left_behind_type=both_parents_away",
        "help_pairing=x", "last_visit_date=2026-08-15", "health_status=健康", NULL);
    put(s, "b2", in_q3(2), BASE("510104002201"), "birth_date=2015-01-01",
        "guardian_type=relative", "guardian_capable=true", "school_status=boarding",
        "proxy_parent=y", "last_visit_date=2026-06-30", "health_status=一般",
        "risk_level=low", NULL); /* new at low risk: no case closed */
    put(s, "b3", in_q3(2), BASE("510104002201"), "birth_date=2015-01-01", "guardian_type=none",
        "risk_level=high", "health_status=有点咳嗽", NULL);
    put(s, "b4", in_q3(2), BASE("510104002201"), "birth_date=2015-01-01",
        "guardian_type=parent", "guardian_capable=false", NULL);
    /* Entered last quarter with high risk, lowered in this one: a case
     * closed, not an entry. */
    hlc_t q2 = hlc_make(utc_ms(2026, 5, 1, 0), 0);
    put(s, "b5", q2, BASE("510104002201"), "birth_date=2015-01-01", "risk_level=high", NULL);
    put(s, "b5", in_q3(10), "risk_level=low", NULL);
    /* Exits: in the quarter with a reason, in the quarter without one,
     * and in the quarter before (counted nowhere). */
    put(s, "e1", q2, "village_code=510104002201", "gender=female", "birth_date=2015-01-01",
        "status=exited", "exit_reason=parents_returned", "exit_date=2026-07-01", NULL);
    put(s, "e2", in_q3(3), "village_code=510104002201", "gender=female", "birth_date=2015-01-01",
        "status=exited", "exit_date=2026-09-30", NULL);
    put(s, "e3", q2, "village_code=510104002201", "gender=female", "birth_date=2015-01-01",
        "status=exited", "exit_reason=death", "exit_date=2026-06-30", NULL);
    /* Entered after the cut: not in the report at all. */
    put(s, "late", hlc_make(utc_ms(2026, 9, 30, 16), 1), BASE("510104002201"),
        "birth_date=2015-01-01", NULL);
}

static report_t *compute(store_t *s, code_t node, const char *q)
{
    stxn_t *t;
    report_t *r = NULL;
    why_t why = {""};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    int rc = report_compute(t, node, q, NULL, &r, &why);
    store_abort(&t);
    if (rc)
        fail_msg("report_compute: %s", why.msg);
    return r;
}

static uint64_t cell(const report_t *r, size_t row, const char *key)
{
    int c = report_col_index(key);
    if (c < 0)
        fail_msg("no column %s", key);
    return report_value(r, row, (size_t)c);
}

static void test_compute(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    report_t *r = compute(f->s, 0, "2026Q3");
    why_t why = {""};
    assert_int_equal(report_check(r, &why), LX_OK);
    assert_int_equal(report_nrows(r), 3); /* two townships and the total */
    assert_true(report_row_code(r, 0) == TOWN_A);
    assert_true(report_row_code(r, 1) == TOWN_B);
    assert_true(report_row_code(r, 2) == COUNTY);
    assert_string_equal(report_row_name(r, 2, true), "合计");
    assert_string_equal(report_row_name(r, 0, true), "510104001000"); /* no tables given */

    /* Township A: one child per band edge. */
    assert_int_equal(cell(r, 0, "total"), 8);
    assert_int_equal(cell(r, 0, "age_0_5"), 1);
    assert_int_equal(cell(r, 0, "age_0_5_male"), 1);
    assert_int_equal(cell(r, 0, "age_6_13"), 3);
    assert_int_equal(cell(r, 0, "age_6_13_female"), 2);
    assert_int_equal(cell(r, 0, "age_14_16"), 2);
    assert_int_equal(cell(r, 0, "age_17"), 1);
    assert_int_equal(cell(r, 0, "age_17_male"), 1);
    assert_int_equal(cell(r, 0, "age_other"), 1);
    assert_int_equal(cell(r, 0, "age_other_female"), 1);
    assert_int_equal(cell(r, 0, "school_unset"), 8);
    assert_int_equal(cell(r, 0, "gt_unset"), 8);
    assert_int_equal(cell(r, 0, "ga_poor"), 8);
    assert_int_equal(cell(r, 0, "entries"), 8);

    /* Township B: b1..b5 in the register; e1..e3 exited; late not counted. */
    assert_int_equal(cell(r, 1, "total"), 5);
    assert_int_equal(cell(r, 1, "ga_good"), 1);    /* b1 */
    assert_int_equal(cell(r, 1, "ga_average"), 1); /* b2 */
    assert_int_equal(cell(r, 1, "ga_poor"), 3);    /* b3 none, b4 incapable, b5 unset */
    assert_int_equal(cell(r, 1, "gt_grandparent"), 1);
    assert_int_equal(cell(r, 1, "gt_none"), 1);
    assert_int_equal(cell(r, 1, "gt_unset"), 1);
    assert_int_equal(cell(r, 1, "school_enrolled"), 1);
    assert_int_equal(cell(r, 1, "school_boarding"), 1);
    assert_int_equal(cell(r, 1, "school_unset"), 3);
    assert_int_equal(cell(r, 1, "cat_left_behind"), 1);
    assert_int_equal(cell(r, 1, "cat_disabled"), 1);
    assert_int_equal(cell(r, 1, "lbt_both_parents_away"), 1);
    assert_int_equal(cell(r, 1, "health_good"), 1);
    assert_int_equal(cell(r, 1, "health_fair"), 1);
    assert_int_equal(cell(r, 1, "health_other"), 1);
    assert_int_equal(cell(r, 1, "health_unset"), 2);
    assert_int_equal(cell(r, 1, "help_pairing"), 1);
    assert_int_equal(cell(r, 1, "proxy_parent"), 1);
    assert_int_equal(cell(r, 1, "visited"), 1); /* b2's visit was in Q2 */
    assert_int_equal(cell(r, 1, "risk_high"), 1);
    assert_int_equal(cell(r, 1, "case_opened"), 1);
    assert_int_equal(cell(r, 1, "case_closed"), 1); /* b5 */
    assert_int_equal(cell(r, 1, "entries"), 5);     /* b1-b4 and e2 */
    assert_int_equal(cell(r, 1, "exits"), 2);
    assert_int_equal(cell(r, 1, "exit_parents_returned"), 1);
    assert_int_equal(cell(r, 1, "exit_unset"), 1);
    assert_int_equal(cell(r, 1, "exit_death"), 0);

    assert_int_equal(cell(r, 2, "total"), 13);
    assert_int_equal(cell(r, 2, "male"), 10);
    assert_int_equal(cell(r, 2, "female"), 3);

    /* The total's digest is the sum of the units', and a unit's changes
     * with its data. */
    unsigned char sum[REPORT_DIGEST_LEN] = {0};
    unsigned carry = 0;
    for (int i = 0; i < REPORT_DIGEST_LEN; i++) {
        carry += (unsigned)report_row_digest(r, 0)[i] + report_row_digest(r, 1)[i];
        sum[i] = (unsigned char)carry;
        carry >>= 8;
    }
    assert_memory_equal(sum, report_row_digest(r, 2), REPORT_DIGEST_LEN);
    unsigned char before[REPORT_DIGEST_LEN];
    memcpy(before, report_row_digest(r, 1), REPORT_DIGEST_LEN);
    report_destroy(&r);
    assert_null(r);
    report_destroy(&r); /* twice is fine */

    put(f->s, "b4", in_q3(20), "guardian_capable=true", NULL);
    r = compute(f->s, 0, "2026Q3");
    assert_memory_not_equal(before, report_row_digest(r, 1), REPORT_DIGEST_LEN);
    assert_int_equal(cell(r, 1, "ga_good"), 2);
    report_destroy(&r);

    /* The quarter before: only what was there by its cut. */
    r = compute(f->s, 0, "2026Q2");
    assert_int_equal(report_nrows(r), 2);
    assert_int_equal(cell(r, 1, "total"), 1);   /* b5 (e1 and e3 are exited) */
    assert_int_equal(cell(r, 1, "exits"), 1);   /* e3 */
    assert_int_equal(cell(r, 1, "exit_death"), 1);
    assert_int_equal(cell(r, 1, "entries"), 3); /* b5, e1, e3 */
    assert_int_equal(cell(r, 1, "risk_high"), 1); /* b5 was high then */
    assert_int_equal(cell(r, 1, "case_opened"), 1);
    report_destroy(&r);
}

/* Writes after the cut change nothing in the quarter's report: values,
 * rows and digests, moves out of a unit included. */
static void test_asof_unchanged(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    report_t *before = compute(f->s, 0, "2026Q3");
    hlc_t q4 = hlc_make(utc_ms(2026, 11, 1, 0), 0);
    put(f->s, "b3", q4, "risk_level=low", NULL);
    put(f->s, "a1", q4 + 1, "status=exited", "exit_reason=moved_away", "exit_date=2026-10-20",
        NULL);
    put(f->s, "a3", q4 + 2, "village_code=510104002201", NULL);
    put(f->s, "b1", q4 + 3, "guardian_type=none", "last_visit_date=2026-09-01", NULL);
    put(f->s, "n1", q4 + 4, BASE("510104001201"), "birth_date=2015-01-01", NULL);
    report_t *after = compute(f->s, 0, "2026Q3");
    assert_int_equal(report_nrows(after), report_nrows(before));
    for (size_t i = 0; i < report_nrows(before); i++) {
        assert_true(report_row_code(after, i) == report_row_code(before, i));
        for (size_t c = 0; c < report_ncols(); c++)
            if (report_value(after, i, c) != report_value(before, i, c))
                fail_msg("row %zu column %s: %llu before, %llu after", i, report_col(c)->key,
                         (unsigned long long)report_value(before, i, c),
                         (unsigned long long)report_value(after, i, c));
        assert_memory_equal(report_row_digest(after, i), report_row_digest(before, i),
                            REPORT_DIGEST_LEN);
    }
    report_destroy(&after);
    /* The next quarter sees them. */
    after = compute(f->s, 0, "2026Q4");
    assert_int_equal(cell(after, 0, "total"), 7);   /* 8, less a1 exited and a3 moved, n1 new */
    assert_int_equal(cell(after, 1, "total"), 7);   /* b1-b5, "late", and a3 moved in */
    assert_int_equal(cell(after, 0, "exits"), 1);
    assert_int_equal(cell(after, 0, "exit_moved_away"), 1);
    assert_int_equal(cell(after, 0, "entries"), 1);
    assert_int_equal(cell(after, 1, "gt_none"), 2);
    assert_int_equal(cell(after, 1, "visited"), 0);  /* b1's visit was in Q3 */
    assert_int_equal(cell(after, 1, "case_closed"), 1);
    report_destroy(&after);
    report_destroy(&before);
}

static void test_unit_and_village(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    /* A township's report breaks down by village; a village's has itself. */
    report_t *r = compute(f->s, TOWN_B, "2026Q3");
    assert_int_equal(report_nrows(r), 2);
    assert_true(report_row_code(r, 0) == VIL_B);
    assert_int_equal(cell(r, 1, "total"), 5);
    report_destroy(&r);
    r = compute(f->s, VIL_A, "2026Q3");
    assert_int_equal(report_nrows(r), 2);
    assert_true(report_row_code(r, 0) == VIL_A);
    assert_int_equal(cell(r, 0, "total"), 8);
    report_destroy(&r);
    /* Outside the store's subtree: refused naming the unit. */
    stxn_t *t;
    why_t why = {""};
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(report_compute(t, 510105000000ULL, "2026Q3", NULL, &r, &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "510105000000"));
    assert_int_equal(report_compute(t, 0, "2026Q9", NULL, &r, &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "2026Q9"));
    store_abort(&t);
}

static void expect_fail(report_t *r, size_t row, const char *key, uint64_t v, const char *row_code,
                        const char *col_key)
{
    int c = report_col_index(key);
    uint64_t old = report_value(r, row, (size_t)c);
    report_set_value(r, row, (size_t)c, v);
    why_t why = {""};
    assert_int_equal(report_check(r, &why), LX_EINVAL);
    if (!strstr(why.msg, row_code) || !strstr(why.msg, col_key))
        fail_msg("expected row %s and column %s in: %s", row_code, col_key, why.msg);
    report_set_value(r, row, (size_t)c, old);
    assert_int_equal(report_check(r, &why), LX_OK);
}

static void test_check_names_cell(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    report_t *r = compute(f->s, 0, "2026Q3");
    /* A band that is not boys + girls. */
    expect_fail(r, 0, "age_6_13_female", 0, "510104001000", "column age_6_13 ");
    /* The bands do not add up to the total (the band and its sexes move
     * together, so only the first equality breaks). */
    report_set_value(r, 1, (size_t)report_col_index("age_6_13_male"), 99);
    report_set_value(r, 1, (size_t)report_col_index("age_6_13"), 99 + 0);
    why_t why = {""};
    assert_int_equal(report_check(r, &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "510104002000"));
    assert_non_null(strstr(why.msg, "column total "));
    assert_non_null(strstr(why.msg, "age bands"));
    report_destroy(&r);
    r = compute(f->s, 0, "2026Q3");
    expect_fail(r, 1, "school_unset", 0, "510104002000", "school states");
    expect_fail(r, 1, "ga_poor", 0, "510104002000", "guardianship assessments");
    expect_fail(r, 1, "exit_unset", 0, "510104002000", "column exits ");
    /* The total row against the units: named by the column. */
    expect_fail(r, 2, "visited", 7, "合计", "column visited ");
    expect_fail(r, 0, "help_pairing", 3, "合计", "column help_pairing ");
    report_destroy(&r);
}

static void test_pack_round_trip(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    report_t *r = compute(f->s, 0, "2026Q3");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(report_pack(r, &pk), LX_OK);
    report_t *back = NULL;
    why_t why = {""};
    assert_int_equal(report_unpack(sb.data, sb.size, &back, &why), LX_OK);
    assert_string_equal(report_quarter(back), "2026Q3");
    assert_true(report_node(back) == COUNTY);
    assert_true(report_cut(back) == report_cut(r));
    assert_int_equal(report_nrows(back), report_nrows(r));
    for (size_t i = 0; i < report_nrows(r); i++) {
        assert_true(report_row_code(back, i) == report_row_code(r, i));
        assert_memory_equal(report_row_digest(back, i), report_row_digest(r, i), REPORT_DIGEST_LEN);
        for (size_t c = 0; c < report_ncols(); c++)
            assert_int_equal(report_value(back, i, c), report_value(r, i, c));
    }
    assert_int_equal(report_check(back, &why), LX_OK);
    /* The hash a frozen report is known by: equal for the copy, and
     * different after any one cell changes. */
    unsigned char h1[REPORT_DIGEST_LEN], h2[REPORT_DIGEST_LEN];
    assert_int_equal(report_hash(r, h1), LX_OK);
    assert_int_equal(report_hash(back, h2), LX_OK);
    assert_memory_equal(h1, h2, REPORT_DIGEST_LEN);
    report_set_value(back, 1, report_ncols() - 1, report_value(back, 1, report_ncols() - 1) + 1);
    assert_int_equal(report_hash(back, h2), LX_OK);
    assert_memory_not_equal(h1, h2, REPORT_DIGEST_LEN);
    report_destroy(&back);
    /* Truncated or bit-flipped bytes are refused or decode to something
     * that still parses safely; never a crash. */
    for (size_t cut = 0; cut < sb.size; cut += 7) {
        assert_int_not_equal(report_unpack(sb.data, cut, &back, &why), LX_OK);
        assert_null(back);
    }
    for (size_t i = 0; i < sb.size; i += 3) {
        sb.data[i] ^= 0x5a;
        if (report_unpack(sb.data, sb.size, &back, &why) == LX_OK)
            report_destroy(&back);
        sb.data[i] ^= 0x5a;
    }
    msgpack_sbuffer_destroy(&sb);
    report_destroy(&r);
}

static char *render(const report_t *r, report_fmt_t fmt, bool zh, size_t *len)
{
    char *buf = NULL;
    FILE *m = open_memstream(&buf, len);
    why_t why = {""};
    int rc = report_write(r, fmt, zh, m, &why);
    fclose(m);
    if (rc)
        fail_msg("report_write: %s", why.msg);
    return buf;
}

static void test_formats(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    report_t *r = compute(f->s, 0, "2026Q3");
    size_t len;
    char *csv = render(r, REPORT_CSV, true, &len);
    const char *zh = "\xEF\xBB\xBF代码,单位,在册儿童数,男,女,";
    assert_memory_equal(csv, zh, strlen(zh));
    assert_non_null(strstr(csv, "\r\n510104000000,合计,13,10,3,"));
    free(csv);
    csv = render(r, REPORT_CSV, false, &len);
    const char *en = "\xEF\xBB\xBF" "Code,Unit,Children in the registry,Boys,Girls,";
    assert_memory_equal(csv, en, strlen(en));
    assert_non_null(strstr(csv, "\r\n510104000000,Total,13,10,3,"));
    free(csv);

    char *js = render(r, REPORT_JSON, true, &len);
    json_error_t e;
    json_t *j = json_loadb(js, len, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "quarter")), "2026Q3");
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "columns")), report_ncols());
    json_t *tot = json_object_get(json_object_get(j, "total"), "values");
    assert_int_equal(json_integer_value(json_object_get(tot, "total")), 13);
    assert_int_equal(json_integer_value(json_object_get(tot, "exits")), 2);
    json_decref(j);
    free(js);

    char *html = render(r, REPORT_HTML, true, &len);
    assert_non_null(strstr(html, "<html lang=\"zh-CN\">"));
    assert_non_null(strstr(html, "<svg"));
    assert_non_null(strstr(html, "<td>合计</td>"));
    assert_null(strstr(html, "src=")); /* nothing fetched: no images, scripts */
    assert_null(strstr(html, "<link"));  /* or style sheets */
    free(html);

    char *x = render(r, REPORT_XLSX, true, &len);
    assert_true(len > 1000);
    assert_memory_equal(x, "PK\x03\x04", 4);
    free(x);
    report_destroy(&r);
}

/* The two feeds of the computation, a decoded record and its stored
 * bytes, count the same on generated children with random versions,
 * cleared fields and odd values; bytes the packed reader does not know
 * fall back to the decoder, and bytes nobody can read are an error. */
static void test_packed_feed(void **state)
{
    (void)state;
    code_t vil[] = {VIL_A, 510104001202ULL, VIL_B};
    gen_t *g = gen_new(7, vil, 3, 20260815);
    assert_non_null(g);
    walk_t *wa, *wb;
    why_t why = {""};
    assert_int_equal(walk_new(COUNTY, "2026Q3", NULL, &wa, &why), LX_OK);
    assert_int_equal(walk_new(COUNTY, "2026Q3", NULL, &wb, &why), LX_OK);
    uint64_t rs = 99;
    quarter_t q;
    quarter_parse("2026Q3", &q, &why);
    const char *clear[] = {"school_status", "guardian_type", "health_status", "categories",
                           "risk_level", "help_pairing"};
    for (int i = 0; i < 3000; i++) {
        record_t *r;
        assert_int_equal(gen_child(g, &r), LX_OK);
        char id[32];
        snprintf(id, sizeof id, "r%d", i);
        r->id = strdup(id);
        for (uint32_t k = 0; k < r->n; k++) {
            rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
            /* Versions from the quarter before to the one after. */
            r->f[k].ver.hlc = q.start - hlc_make(86400000ull * 30, 0)
                              + rs % (q.cut - q.start + hlc_make(86400000ull * 60, 0));
            r->f[k].ver.origin = (rs & 1) ? COUNTY : VIL_A;
            r->f[k].ver.base = (rs & 2) ? r->f[k].ver.hlc - 1 : 0;
            r->f[k].ver.author = strdup("510104000000/x/y");
        }
        if (i % 5 == 0) {
            field_t f = {.name = strdup(clear[i / 5 % 6]), .ver = r->f[0].ver};
            f.ver.author = NULL;
            record_take(r, &f); /* cleared: a null value with a version */
        }
        if (i % 7 == 0) {
            field_t f = {.name = strdup("status"), .ver = r->f[1].ver};
            f.ver.author = NULL;
            val_set_str(&f.val, "exited");
            record_take(r, &f);
            field_t d = {.name = strdup("exit_date"), .ver = r->f[2].ver};
            d.ver.author = NULL;
            val_set_str(&d.val, i % 2 ? "2026-09-30" : "2026-06-30");
            record_take(r, &d);
        }
        if (i % 11 == 0) {
            field_t f = {.name = strdup("last_visit_date"), .ver = r->f[0].ver};
            f.ver.author = NULL;
            val_set_str(&f.val, i % 2 ? "2026-07-01" : "2026-10-01");
            record_take(r, &f);
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        assert_int_equal(record_pack(r, &pk), LX_OK);
        assert_int_equal(walk_record(wa, r), LX_OK);
        assert_int_equal(walk_packed(wb, sb.data, sb.size), LX_OK);
        /* Cut short: never a crash, and an error from both readers. */
        assert_int_not_equal(walk_packed(wb, sb.data, sb.size / 2), LX_OK);
        msgpack_sbuffer_destroy(&sb);
        record_destroy(&r);
    }
    gen_destroy(&g);
    /* record_pack's bytes (fields by number) all took the fast reader;
     * only the cut ones went on to the decoder. */
    assert_int_equal(walk_decoded(wb), 3000);
    report_t *a, *b;
    assert_int_equal(walk_finish(&wa, NULL, &a), LX_OK);
    assert_int_equal(walk_finish(&wb, NULL, &b), LX_OK);
    assert_null(wa);
    assert_int_equal(report_check(a, &why), LX_OK);
    assert_int_equal(report_nrows(a), report_nrows(b));
    uint64_t nonzero = 0;
    for (size_t i = 0; i < report_nrows(a); i++) {
        for (size_t c = 0; c < report_ncols(); c++) {
            if (report_value(a, i, c) != report_value(b, i, c))
                fail_msg("row %zu column %s: %llu decoded, %llu packed", i, report_col(c)->key,
                         (unsigned long long)report_value(a, i, c),
                         (unsigned long long)report_value(b, i, c));
            nonzero += report_value(a, i, c) != 0;
        }
        assert_memory_equal(report_row_digest(a, i), report_row_digest(b, i), REPORT_DIGEST_LEN);
    }
    /* The data reach most columns, so the comparison means something. */
    assert_true(nonzero > report_ncols() * 2);
    assert_true(report_value(a, 2, (size_t)report_col_index("exits")) > 0);
    assert_true(report_value(a, 2, (size_t)report_col_index("visited")) > 0);
    assert_true(report_value(a, 2, (size_t)report_col_index("case_closed")) > 0);
    assert_true(report_value(a, 2, (size_t)report_col_index("health_unset")) > 0);
    assert_true(report_value(a, 2, (size_t)report_col_index("entries")) > 0);
    report_destroy(&a);
    report_destroy(&b);
}

/* ---- the walk split between two threads ---- */

static uint64_t lcg(uint64_t *s) { return *s = *s * 6364136223846793005ULL + 1442695040888963407ULL; }

static void put_one(stxn_t *t, const char *id, const char *name, const char *v, hlc_t h, hlc_t base)
{
    field_t f = {.name = strdup(name), .ver = {.hlc = h, .origin = COUNTY, .base = base}};
    val_set_str(&f.val, v);
    apply_t res;
    why_t why = {""};
    if (store_apply(t, id, &f, 1, 0, &res, &why))
        fail_msg("store_apply %s %s: %s", id, name, why.msg);
    field_free(&f);
}

/* n generated children created from the quarter before 2026Q3 to the one
 * after, a third of them changed later (risk, exits, moves within the
 * county and out of it), so the walk meets records as stored, created
 * after the cut, and changed since (read from the history). */
static void fill_many(store_t *s, int n)
{
    code_t vil[] = {VIL_A, 510104001202ULL, VIL_B};
    gen_t *g = gen_new(11, vil, 3, 20260815);
    assert_non_null(g);
    quarter_t q;
    why_t why = {""};
    assert_int_equal(quarter_parse("2026Q3", &q, &why), LX_OK);
    hlc_t span = q.cut - q.start;
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    uint64_t rs = 5;
    for (int i = 0; i < n; i++) {
        record_t *r;
        assert_int_equal(gen_child(g, &r), LX_OK);
        char id[16];
        snprintf(id, sizeof id, "m%05d", i);
        hlc_t h = q.start - span + lcg(&rs) % (3 * span), later = h + 1 + lcg(&rs) % span;
        for (uint32_t k = 0; k < r->n; k++)
            r->f[k].ver = (ver_t){.hlc = h, .origin = COUNTY};
        apply_t res;
        if (store_apply(t, id, r->f, r->n, 0, &res, &why))
            fail_msg("store_apply %s: %s", id, why.msg);
        record_destroy(&r);
        if (i % 3 == 0)
            put_one(t, id, "risk_level", i % 2 ? "high" : "low", later, h);
        if (i % 9 == 1)
            put_one(t, id, "status", "exited", later, h);
        if (i % 11 == 2)
            put_one(t, id, "village_code", i % 2 ? "510104002201" : "510105001201", later, h);
    }
    assert_int_equal(store_commit(&t), LX_OK);
    gen_destroy(&g);
}

static report_t *compute_walkers(store_t *s, code_t node, const char *q, int walkers)
{
    stxn_t *t;
    report_t *r = NULL;
    why_t why = {""};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    int rc = report_compute_walkers(t, node, q, NULL, walkers, &r, &why);
    store_abort(&t);
    if (rc)
        fail_msg("report_compute_walkers: %s", why.msg);
    return r;
}

static void assert_same_report(const report_t *a, const report_t *b)
{
    assert_int_equal(report_nrows(a), report_nrows(b));
    for (size_t i = 0; i < report_nrows(a); i++) {
        assert_true(report_row_code(a, i) == report_row_code(b, i));
        for (size_t c = 0; c < report_ncols(); c++)
            if (report_value(a, i, c) != report_value(b, i, c))
                fail_msg("row %zu column %s: %llu and %llu", i, report_col(c)->key,
                         (unsigned long long)report_value(a, i, c),
                         (unsigned long long)report_value(b, i, c));
        assert_memory_equal(report_row_digest(a, i), report_row_digest(b, i), REPORT_DIGEST_LEN);
    }
}

/* Two walkers count what one does, cell for cell and digest for digest,
 * in every quarter and for a unit; report_compute (which splits a store
 * this size on a machine with two processors) too. */
static void test_split_same(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    fill_many(f->s, 3000);
    const char *qs[] = {"2026Q2", "2026Q3", "2026Q4"};
    for (size_t i = 0; i < 3; i++) {
        report_t *one = compute_walkers(f->s, 0, qs[i], 1);
        why_t why = {""};
        assert_int_equal(report_check(one, &why), LX_OK);
        assert_true(report_value(one, report_nrows(one) - 1, C_TOTAL) > 500);
        for (int k = 0; k < 3; k++) {
            report_t *two = compute_walkers(f->s, 0, qs[i], 2);
            assert_same_report(one, two);
            report_destroy(&two);
        }
        report_t *dflt = compute(f->s, 0, qs[i]);
        assert_same_report(one, dflt);
        report_destroy(&dflt);
        report_destroy(&one);
    }
    report_t *one = compute_walkers(f->s, TOWN_A, "2026Q3", 1);
    report_t *two = compute_walkers(f->s, TOWN_A, "2026Q3", 2);
    assert_same_report(one, two);
    report_destroy(&one);
    report_destroy(&two);
}

typedef struct {
    stxn_t *t;
    store_share_t *sh;
    bool backward;
    char (*ids)[16];
    size_t n, cap;
    int rc;
} taker_t;

static int take_cb(void *arg, const void *buf, size_t len)
{
    taker_t *k = arg;
    mp_rd_t r = {buf, (const unsigned char *)buf + len, false};
    mp_rd_array(&r);
    mp_sv_t id = mp_rd_str(&r);
    if (r.bad || id.n >= 16 || k->n == k->cap)
        return LX_EINVAL;
    memcpy(k->ids[k->n], id.p, id.n);
    k->ids[k->n++][id.n] = '\0';
    return LX_OK;
}

static void *taker_main(void *arg)
{
    taker_t *k = arg;
    k->rc = store_each_packed_asof_shared(k->t, 0, hlc_make(utc_ms(2027, 1, 1, 0), 0), k->sh,
                                          k->backward, take_cb, k);
    return NULL;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* The two walkers of a share hand over every record once between them;
 * one alone (the other never started) takes them all. */
static void test_share_once(void **state)
{
    fix_t *f = *state;
    fill_many(f->s, 2000);
    stxn_t *t, *t2;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(store_begin_twin(t, &t2), LX_OK);
    size_t cap = 4000;
    taker_t a = {t, NULL, false, calloc(cap, 16), 0, cap, 0};
    taker_t b = {t2, NULL, true, calloc(cap, 16), 0, cap, 0};
    taker_t all = {t, NULL, false, calloc(cap, 16), 0, cap, 0};
    assert_int_equal(store_each_packed_asof(t, 0, hlc_make(utc_ms(2027, 1, 1, 0), 0), take_cb, &all),
                     LX_OK);
    for (int round = 0; round < 5; round++) {
        store_share_t sh;
        assert_int_equal(store_share_init(t, &sh), LX_OK);
        a.sh = b.sh = &sh;
        a.n = b.n = 0;
        pthread_t th;
        if (round < 4) {
            assert_int_equal(pthread_create(&th, NULL, taker_main, &b), 0);
            taker_main(&a);
            pthread_join(th, NULL);
        } else {
            taker_main(&b);  /* the backward one alone */
        }
        assert_int_equal(a.rc, LX_OK);
        assert_int_equal(b.rc, LX_OK);
        assert_int_equal(a.n + b.n, all.n);
        if (round == 4)
            assert_int_equal(a.n, 0);
        char (*got)[16] = calloc(cap, 16);
        memcpy(got, a.ids, a.n * 16);
        memcpy(got + a.n, b.ids, b.n * 16);
        qsort(got, all.n, 16, cmp_id);
        qsort(all.ids, all.n, 16, cmp_id);
        for (size_t i = 0; i < all.n; i++)
            assert_string_equal(got[i], all.ids[i]);
        free(got);
    }
    free(a.ids);
    free(b.ids);
    free(all.ids);
    store_abort(&t2);
    store_abort(&t);
}

/* A second transaction that would not see what t sees is refused, and the
 * report is then walked in one thread: a write since t began, or t a
 * write transaction. */
static void test_twin_refused(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    fill_many(f->s, 600);
    report_t *before = compute_walkers(f->s, 0, "2026Q4", 1);
    stxn_t *t, *t2;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    put(f->s, "n1", in_q3(5), BASE("510104001201"), "birth_date=2015-01-01", NULL);
    assert_int_equal(store_begin_twin(t, &t2), LX_EBUSY);
    assert_null(t2);
    report_t *r = NULL;
    why_t why = {""};
    assert_int_equal(report_compute_walkers(t, 0, "2026Q4", NULL, 2, &r, &why), LX_OK);
    assert_same_report(before, r);
    report_destroy(&r);
    store_abort(&t);
    report_destroy(&before);

    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(store_begin_twin(t, &t2), LX_EBUSY);
    report_t *one = NULL, *two = NULL;
    assert_int_equal(report_compute_walkers(t, 0, "2026Q4", NULL, 1, &one, &why), LX_OK);
    assert_int_equal(report_compute_walkers(t, 0, "2026Q4", NULL, 2, &two, &why), LX_OK);
    assert_same_report(one, two);
    report_destroy(&one);
    report_destroy(&two);
    store_abort(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quarter_parse),
        cmocka_unit_test(test_age_boundaries),
        cmocka_unit_test_setup_teardown(test_compute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asof_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_and_village, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_names_cell, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
        cmocka_unit_test(test_packed_feed),
        cmocka_unit_test_setup_teardown(test_split_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
