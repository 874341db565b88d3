/* The report workflow's records: revisions frozen as of the cut (a late
 * change stamped before the cut makes revision 2 naming the changed cells;
 * a change after the cut makes nothing; a revision is never overwritten),
 * the automatic freeze after the deadline, a child's submission checked
 * and stored at the parent, answers and their delivery, and the state
 * table's merge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/report.h"
#include "common/rflow.h"
#include "common/store.h"

static const code_t COUNTY = 510104000000ULL;
static const code_t TOWN_A = 510104001000ULL, TOWN_B = 510104002000ULL;

static uint64_t utc_ms(int y, int m, int d, int hh)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = hh};
    return (uint64_t)timegm(&tm) * 1000u;
}

/* ---- a small store ---- */

#include "store_fixture.h"

#define BASE(v) "village_code=" v, "gender=male", "status=active", "birth_date=2015-01-01"

static hlc_t in_q3(int d) { return hlc_make(utc_ms(2026, 7, 1, 0) + (uint64_t)d * 86400000u, 0); }

static void fill(store_t *s)
{
    put(s, "a1", in_q3(1), BASE("510104001201"), NULL);
    put(s, "a2", in_q3(2), BASE("510104001201"), NULL);
    put(s, "b1", in_q3(3), BASE("510104002201"), NULL);
}

static int freeze(store_t *s, const char *q, uint64_t now, rflow_frozen_t *f)
{
    stxn_t *t;
    why_t why = {""};
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    int rc = rflow_freeze(t, q, NULL, now, f, &why);
    if (rc)
        fail_msg("rflow_freeze: %s", why.msg);
    assert_int_equal(store_commit(&t), LX_OK);
    return rc;
}

static const rcell_t *find_cell(const rflow_frozen_t *f, code_t row, const char *key)
{
    for (size_t i = 0; i < f->ncells; i++)
        if (f->cells[i].row == row && f->cells[i].total == (row == COUNTY) && (int)f->cells[i].col == report_col_index(key))
            return &f->cells[i];
    return NULL;
}

static uint64_t total_of(store_t *s, const char *q, uint32_t rev, code_t row)
{
    stxn_t *t;
    report_t *r = NULL;
    uint32_t got = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(rflow_get(t, q, rev, &got, NULL, &r, NULL, NULL), LX_OK);
    store_abort(&t);
    if (rev)
        assert_int_equal(got, rev);
    uint64_t v = 0;
    for (size_t i = 0; i < report_nrows(r); i++)
        if (report_row_code(r, i) == row)
            v = report_value(r, i, (size_t)report_col_index("total"));
    report_destroy(&r);
    return v;
}

static void test_revisions(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    uint64_t oct20 = utc_ms(2026, 10, 20, 4);
    rflow_frozen_t fr;
    freeze(f->s, "2026Q3", oct20, &fr);
    assert_int_equal(fr.rev, 1);
    assert_true(fr.created);
    assert_int_equal(fr.ncells, 0);
    rflow_frozen_free(&fr);
    /* The same figures: nothing new. */
    freeze(f->s, "2026Q3", oct20 + 1000, &fr);
    assert_int_equal(fr.rev, 1);
    assert_false(fr.created);
    rflow_frozen_free(&fr);

    /* A change stamped before the cut arrives late: revision 2 with the
     * cells it changed, old -> new. */
    put(f->s, "a3", in_q3(40), BASE("510104001201"), NULL);
    freeze(f->s, "2026Q3", oct20 + 2000, &fr);
    assert_int_equal(fr.rev, 2);
    assert_true(fr.created);
    const rcell_t *c = find_cell(&fr, TOWN_A, "total");
    assert_non_null(c);
    assert_int_equal(c->old, 2);
    assert_int_equal(c->now, 3);
    c = find_cell(&fr, COUNTY, "total");
    assert_non_null(c);
    assert_int_equal(c->old, 3);
    assert_int_equal(c->now, 4);
    assert_null(find_cell(&fr, TOWN_B, "total"));
    rflow_frozen_free(&fr);

    /* A change after the cut: nothing. */
    put(f->s, "a4", hlc_make(utc_ms(2026, 10, 2, 0), 0), BASE("510104001201"), NULL);
    put(f->s, "b1", hlc_make(utc_ms(2026, 10, 2, 0), 1), "status=exited", "exit_date=2026-10-02",
        NULL);
    freeze(f->s, "2026Q3", oct20 + 3000, &fr);
    assert_int_equal(fr.rev, 2);
    assert_false(fr.created);
    rflow_frozen_free(&fr);

    /* Revision 1 is kept as it was frozen. */
    assert_int_equal(total_of(f->s, "2026Q3", 1, TOWN_A), 2);
    assert_int_equal(total_of(f->s, "2026Q3", 2, TOWN_A), 3);
    assert_int_equal(total_of(f->s, "2026Q3", 0, TOWN_A), 3);

    /* This node's own state: submitted, revision 2. */
    stxn_t *t;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(rflow_acked(t, "2026Q3"), 0);
    store_abort(&t);
}

static int count_frozen(void *arg, const char *q, uint32_t rev)
{
    (void)q;
    (void)rev;
    (*(int *)arg)++;
    return 0;
}

static void test_auto(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    stxn_t *t;
    uint32_t made = 9;
    why_t why = {""};
    int n = 0;
    /* Before the deadline (no reporting policy: the default, 10 days
     * after the quarter, effective.c): nothing. */
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 10, 4), 0, &made, &why), LX_OK);
    assert_int_equal(made, 0);
    assert_int_equal(rflow_each_frozen(t, count_frozen, &n), LX_OK);
    assert_int_equal(n, 0);
    /* After it: the last quarter is frozen. */
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 11, 4), 0, &made, &why), LX_OK);
    assert_int_equal(made, 1);
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 11, 5), 0, &made, &why), LX_OK);
    assert_int_equal(made, 0);
    assert_int_equal(store_commit(&t), LX_OK);
    /* Late data: the pass makes revision 2 by itself. */
    put(f->s, "b2", in_q3(50), BASE("510104002201"), NULL);
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 12, 4), 0, &made, &why), LX_OK);
    assert_int_equal(made, 1);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_int_equal(total_of(f->s, "2026Q3", 2, TOWN_B), 2);
    /* With the log position of the last pass, only entries after it are
     * looked at: late data the pass has already seen is not computed
     * again, and data stamped after every cut computes nothing. */
    put(f->s, "b3", in_q3(60), BASE("510104002201"), NULL);
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    uint64_t seq = store_last_seq(t);
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 13, 4), seq, &made, &why), LX_OK);
    assert_int_equal(made, 0);
    assert_int_equal(rflow_auto(t, NULL, utc_ms(2026, 10, 13, 4), seq - 1, &made, &why), LX_OK);
    assert_int_equal(made, 1);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_int_equal(total_of(f->s, "2026Q3", 3, TOWN_B), 3);
}

static void pack_unit(store_t *s, code_t unit, const char *q, msgpack_sbuffer *sb)
{
    stxn_t *t;
    report_t *r = NULL;
    why_t why = {""};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(report_compute(t, unit, q, NULL, &r, &why), LX_OK);
    store_abort(&t);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    assert_int_equal(report_pack(r, &pk), LX_OK);
    report_destroy(&r);
}

typedef struct {
    int n;
    code_t child;
    uint32_t rev;
    unsigned state;
    char reason[RFLOW_REASON_MAX + 1];
} seen_t;

static int sub_cb(void *arg, code_t child, const char *q, uint32_t rev, uint64_t received,
                  const report_t *r, unsigned st, uint64_t st_ms, const char *reason)
{
    seen_t *s = arg;
    (void)q;
    (void)received;
    (void)st_ms;
    assert_true(report_node(r) == child);
    s->n++;
    s->child = child;
    s->rev = rev;
    s->state = st;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    return 0;
}

static int ans_cb(void *arg, code_t child, const char *q, uint32_t rev, unsigned st,
                  uint64_t when, const char *reason)
{
    seen_t *s = arg;
    (void)q;
    (void)when;
    s->n++;
    s->child = child;
    s->rev = rev;
    s->state = st;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    return 0;
}

static int st_cb(void *arg, const rstate_t *e)
{
    seen_t *s = arg;
    s->n++;
    s->child = e->node;
    s->rev = e->rev;
    s->state = e->state;
    snprintf(s->reason, sizeof s->reason, "%s", e->reason);
    return 0;
}

static void test_inbox_answers_states(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    msgpack_sbuffer sb;
    pack_unit(f->s, TOWN_A, "2026Q3", &sb);
    stxn_t *t;
    why_t why = {""};
    uint64_t now = utc_ms(2026, 10, 20, 0);
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", 1, sb.data, sb.size, now, &why), LX_OK);
    /* A resend is harmless; other bytes under the same revision are not. */
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", 1, sb.data, sb.size, now, &why), LX_EEXIST);
    /* Another child's report, a wrong quarter, revision 0, garbage. */
    assert_int_equal(rflow_receive(t, TOWN_B, "2026Q3", 1, sb.data, sb.size, now, &why), LX_ESCOPE);
    assert_non_null(strstr(why.msg, "510104001000"));
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q2", 1, sb.data, sb.size, now, &why), LX_EINVAL);
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", 0, sb.data, sb.size, now, &why), LX_EINVAL);
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", RFLOW_MAX_REV + 1, sb.data, sb.size, now,
                                   &why), LX_EINVAL);
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", 2, "\x93\x01\x02", 3, now, &why), LX_EINVAL);
    msgpack_sbuffer other;
    pack_unit(f->s, TOWN_A, "2026Q3", &other);
    other.data[other.size - 1] ^= 1;  /* the last figure */
    assert_int_equal(rflow_receive(t, TOWN_A, "2026Q3", 1, other.data, other.size, now, &why),
                     LX_EINVAL);
    assert_non_null(strstr(why.msg, "never overwritten"));
    msgpack_sbuffer_destroy(&other);

    seen_t s = {0};
    assert_int_equal(rflow_each_submission(t, NULL, sub_cb, &s), LX_OK);
    assert_int_equal(s.n, 1);
    assert_true(s.child == TOWN_A);
    assert_int_equal(s.state, RST_SUBMITTED);

    uint32_t rev = 0;
    assert_int_equal(rflow_answer(t, TOWN_B, "2026Q3", RST_APPROVED, NULL, now, &rev, &why),
                     LX_ENOTFOUND);
    assert_int_equal(rflow_answer(t, TOWN_A, "2026Q3", RST_RETURNED, "缺少\n走访数据", now + 1,
                                  &rev, &why), LX_OK);
    assert_int_equal(rev, 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(rflow_each_undelivered(t, TOWN_A, ans_cb, &s), LX_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.state, RST_RETURNED);
    assert_string_equal(s.reason, "缺少 走访数据");
    assert_int_equal(rflow_delivered(t, TOWN_A, "2026Q3", 1), LX_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(rflow_each_undelivered(t, 0, ans_cb, &s), LX_OK);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(rflow_each_submission(t, "2026Q3", sub_cb, &s), LX_OK);
    assert_int_equal(s.state, RST_RETURNED);

    /* The state table: an older report does not undo the answer; a new
     * revision does. */
    rstate_t e = {.node = TOWN_A, .quarter = "2026Q3", .rev = 1, .state = RST_SUBMITTED,
                  .when_ms = now + 5};
    bool changed = true;
    uint64_t seq0 = 0;
    assert_int_equal(rflow_state_put(t, &e, &changed), LX_OK);
    assert_false(changed);
    memset(&s, 0, sizeof s);
    assert_int_equal(rflow_state_each(t, 0, st_cb, &s), LX_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.state, RST_RETURNED);
    e.rev = 2;
    assert_int_equal(rflow_state_put(t, &e, &changed), LX_OK);
    assert_true(changed);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_meta_get(t, "rstseq", &seq0), LX_OK);
    assert_int_equal(rflow_state_each(t, seq0 - 1, st_cb, &s), LX_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.rev, 2);
    assert_int_equal(s.state, RST_SUBMITTED);

    /* Child side: an answer to a revision frozen here, and one that is not. */
    rflow_frozen_t fr;
    assert_int_equal(rflow_freeze(t, "2026Q3", NULL, now, &fr, &why), LX_OK);
    rflow_frozen_free(&fr);
    assert_int_equal(rflow_got(t, "2026Q3", 5, RST_APPROVED, now, "", &why), LX_EINVAL);
    assert_int_equal(rflow_got(t, "2026Q3", 1, RST_APPROVED, now + 9, "", &why), LX_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(rflow_state_each(t, 0, st_cb, &s), LX_OK);
    assert_int_equal(s.n, 2);
    assert_true(s.child == TOWN_A); /* code order: the county's own first */
    assert_int_equal(store_commit(&t), LX_OK);
    msgpack_sbuffer_destroy(&sb);
}

static void test_diff_missing_rows(void **state)
{
    fix_t *f = *state;
    fill(f->s);
    stxn_t *t;
    report_t *a = NULL, *b = NULL;
    why_t why = {""};
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(report_compute(t, 0, "2026Q3", NULL, &a, &why), LX_OK);
    assert_int_equal(report_compute(t, 0, "2026Q3", NULL, &b, &why), LX_OK);
    store_abort(&t);
    rcell_t *cells;
    size_t n;
    assert_int_equal(rflow_diff(a, b, &cells, &n), LX_OK);
    assert_int_equal(n, 0);
    report_set_value(b, 1, 0, 7);
    assert_int_equal(rflow_diff(a, b, &cells, &n), LX_OK);
    assert_int_equal(n, 1);
    assert_true(cells[0].row == TOWN_B);
    assert_int_equal(cells[0].old, 1);
    assert_int_equal(cells[0].now, 7);
    free(cells);
    report_destroy(&a);
    report_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_answers_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diff_missing_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
