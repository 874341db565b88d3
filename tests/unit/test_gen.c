/* Tests of the synthetic child generator: every child passes the schema,
 * same seed gives the same children, ID numbers are unique and well
 * formed, and the shares match the national figures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/gen.h"
#include "common/schema.h"

#define TODAY 20261123u
#define PROVINCE 510000000000ULL

static const code_t villages[] = {
    510104017001ULL, 510121103201ULL, 510682001202ULL,
    510981101211ULL, 511325103214ULL, 513402102206ULL,
};
#define NVILLAGES (sizeof villages / sizeof villages[0])

/* Completed years on today (YYYYMMDD) of a YYYY-MM-DD birth date. */
static int age_of(const char *birth, uint32_t today)
{
    int by = atoi(birth), bm = atoi(birth + 5), bd = atoi(birth + 8);
    int ty = (int)(today / 10000), tm = (int)(today / 100 % 100),
        td = (int)(today % 100);
    int age = ty - by;
    if (tm < bm || (tm == bm && td < bd))
        age--;
    return age;
}

static bool str_is(const record_t *r, const char *name, const char *want)
{
    const char *s = record_str(r, name);
    return s && strcmp(s, want) == 0;
}

static bool has_cat(const record_t *r, const char *cat)
{
    const val_t *v = record_val(r, "categories");
    return v && val_list_has(v, cat);
}

/* Byte equality of two records' fields, names, kinds and values. */
static bool same_record(const record_t *a, const record_t *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++) {
        const field_t *x = &a->f[i], *y = &b->f[i];
        if (strcmp(x->name, y->name) != 0 || x->val.kind != y->val.kind)
            return false;
        switch (x->val.kind) {
        case VAL_BOOL:
            if (x->val.b != y->val.b)
                return false;
            break;
        case VAL_STR:
            if (strcmp(x->val.s, y->val.s) != 0)
                return false;
            break;
        case VAL_LIST:
            if (x->val.n != y->val.n)
                return false;
            for (uint32_t j = 0; j < x->val.n; j++)
                if (strcmp(x->val.items[j], y->val.items[j]) != 0)
                    return false;
            break;
        case VAL_NIL:
            break;
        }
    }
    return true;
}

/* The check character computed here independently of gen.c. */
static char check_char(const char *id)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3,
                              7, 9, 10, 5, 8, 4, 2};
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (id[i] - '0') * w[i];
    return "10X98765432"[sum % 11];
}

static void test_new_refuses_bad_arguments(void **state)
{
    (void)state;
    const code_t township[] = {510104017000ULL};
    const code_t province[] = {PROVINCE};
    const code_t zero[] = {0};
    const code_t mixed[] = {510104017001ULL, 510104000000ULL};
    const code_t malformed[] = {510100017001ULL}; /* zero county part */

    assert_null(gen_new(1, villages, 0, TODAY));
    assert_null(gen_new(1, NULL, 3, TODAY));
    assert_null(gen_new(1, township, 1, TODAY));
    assert_null(gen_new(1, province, 1, TODAY));
    assert_null(gen_new(1, zero, 1, TODAY));
    assert_null(gen_new(1, mixed, 2, TODAY));
    assert_null(gen_new(1, malformed, 1, TODAY));
    assert_null(gen_new(1, villages, NVILLAGES, 20261301u));
    assert_null(gen_new(1, villages, NVILLAGES, 20250229u));
    assert_null(gen_new(1, villages, NVILLAGES, 0));

    gen_t *g = gen_new(1, villages, NVILLAGES, TODAY);
    assert_non_null(g);
    gen_destroy(&g);
    assert_null(g);
    gen_destroy(&g);
    gen_destroy(NULL);
}

/* The villages are copied: changing the caller's array changes nothing. */
static void test_villages_copied(void **state)
{
    (void)state;
    code_t mine[] = {510104017001ULL};
    gen_t *g = gen_new(7, mine, 1, TODAY);
    assert_non_null(g);
    mine[0] = 0;
    record_t *r = NULL;
    assert_int_equal(gen_child(g, &r), 0);
    assert_string_equal(record_str(r, "village_code"), "510104017001");
    record_destroy(&r);
    gen_destroy(&g);
}

static void check_schema(uint64_t seed, uint32_t today, int count)
{
    gen_t *g = gen_new(seed, villages, NVILLAGES, today);
    assert_non_null(g);
    for (int i = 0; i < count; i++) {
        record_t *r = NULL;
        assert_int_equal(gen_child(g, &r), 0);
        assert_non_null(r);
        assert_null(r->id);
        why_t why = {{0}};
        int rc = schema_check_record(r, PROVINCE, &why);
        if (rc)
            fail_msg("child %d (seed %llu, today %u): %s", i,
                     (unsigned long long)seed, today, why.msg);
        /* And for the node of its own village. */
        code_t v = 0;
        assert_int_equal(code_parse(record_str(r, "village_code"), &v), 0);
        assert_int_equal(schema_check_record(r, v, NULL), 0);
        for (uint32_t j = 0; j < r->n; j++) {
            const ver_t *ver = &r->f[j].ver;
            assert_true(ver->hlc == 0 && ver->origin == 0 && ver->base == 0);
            assert_null(ver->author);
            /* Fields that are there carry a value. */
            assert_int_not_equal(r->f[j].val.kind, VAL_NIL);
        }
        assert_true(age_of(record_str(r, "birth_date"), today) < 16);
        assert_true(age_of(record_str(r, "birth_date"), today) >= 0);
        record_destroy(&r);
    }
    gen_destroy(&g);
}

static void test_children_pass_schema(void **state)
{
    (void)state;
    check_schema(42, TODAY, 2000);
}

/* Today on Feb 29 and on the year's edges: birth dates stay real and
 * ages stay under 16. */
static void test_edge_todays(void **state)
{
    (void)state;
    check_schema(1, 20240229u, 3000);
    check_schema(2, 20250101u, 3000);
    check_schema(3, 20251231u, 3000);
    check_schema(4, 20280229u, 3000);
}

static void test_determinism(void **state)
{
    (void)state;
    gen_t *a = gen_new(12345, villages, NVILLAGES, TODAY);
    gen_t *b = gen_new(12345, villages, NVILLAGES, TODAY);
    gen_t *c = gen_new(12346, villages, NVILLAGES, TODAY);
    assert_true(a && b && c);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        record_t *ra = NULL, *rb = NULL, *rc = NULL;
        assert_int_equal(gen_child(a, &ra), 0);
        assert_int_equal(gen_child(b, &rb), 0);
        assert_int_equal(gen_child(c, &rc), 0);
        assert_true(same_record(ra, rb));
        if (!same_record(ra, rc))
            differ++;
        record_destroy(&ra);
        record_destroy(&rb);
        record_destroy(&rc);
    }
    assert_true(differ > 990);
    gen_destroy(&a);
    gen_destroy(&b);
    gen_destroy(&c);
}

static int cmp_id(const void *x, const void *y)
{
    return memcmp(x, y, 18);
}

/* 50,000 children of one county (few villages, so sequences collide and
 * the generator must retry): all ID numbers distinct and well formed. */
static void test_id_numbers_unique(void **state)
{
    (void)state;
    const code_t one_county[] = {510121103201ULL, 510121103202ULL};
    enum { N = 50000 };
    char (*ids)[18] = malloc(N * sizeof *ids);
    assert_non_null(ids);
    gen_t *g = gen_new(99, one_county, 2, TODAY);
    assert_non_null(g);
    for (int i = 0; i < N; i++) {
        record_t *r = NULL;
        assert_int_equal(gen_child(g, &r), 0);
        const char *id = record_str(r, "id_number");
        const char *birth = record_str(r, "birth_date");
        assert_non_null(id);
        assert_int_equal(strlen(id), 18);
        assert_memory_equal(id, "510121", 6);
        assert_memory_equal(id + 6, birth, 4);
        assert_memory_equal(id + 10, birth + 5, 2);
        assert_memory_equal(id + 12, birth + 8, 2);
        for (int j = 0; j < 17; j++)
            assert_true(id[j] >= '0' && id[j] <= '9');
        assert_int_equal(id[17], check_char(id));
        assert_int_equal((id[16] - '0') % 2 == 1, str_is(r, "gender", "male"));
        assert_false(id[14] == '0' && id[15] == '0' && id[16] == '0');
        memcpy(ids[i], id, 18);
        record_destroy(&r);
    }
    gen_destroy(&g);
    qsort(ids, N, sizeof *ids, cmp_id);
    for (int i = 1; i < N; i++)
        if (memcmp(ids[i - 1], ids[i], 18) == 0)
            fail_msg("duplicate ID number %.18s", ids[i]);
    free(ids);
}

#define SHARE(k, n) (100.0 * (double)(k) / (double)(n))
#define assert_share(k, n, want, tol)                                        \
    do {                                                                     \
        double s_ = SHARE(k, n);                                             \
        if (s_ < (want) - (tol) || s_ > (want) + (tol))                      \
            fail_msg("%s: %.2f%%, want %.1f%% +- %.1f", #k, s_,              \
                     (double)(want), (double)(tol));                         \
    } while (0)

/* Over 20,000 children the shares are the national ones, and every
 * child's fields agree with one another. */
static void test_shares_and_consistency(void **state)
{
    (void)state;
    enum { N = 20000 };
    gen_t *g = gen_new(2026, villages, NVILLAGES, TODAY);
    assert_non_null(g);
    int male = 0, band[3] = {0}, lb = 0, lb_grand = 0, no_guardian = 0;
    int lb_both = 0, orphan = 0, dropout = 0, low = 0, medium = 0, high = 0;
    int han = 0, per_village[NVILLAGES] = {0};
    for (int i = 0; i < N; i++) {
        record_t *r = NULL;
        assert_int_equal(gen_child(g, &r), 0);
        const char *birth = record_str(r, "birth_date");
        int age = age_of(birth, TODAY);
        assert_true(age >= 0 && age < 16);
        band[age <= 5 ? 0 : age <= 13 ? 1 : 2]++;
        male += str_is(r, "gender", "male");
        han += str_is(r, "ethnicity", "汉族");
        assert_true(str_is(r, "status", "active"));

        for (size_t v = 0; v < NVILLAGES; v++) {
            char buf[CODE_STRLEN + 1];
            if (str_is(r, "village_code", code_fmt(villages[v], buf)))
                per_village[v]++;
        }

        const val_t *cats = record_val(r, "categories");
        assert_non_null(cats);
        assert_int_equal(cats->kind, VAL_LIST);
        assert_true(cats->n >= 1);

        const char *fs = record_str(r, "father_status");
        const char *ms = record_str(r, "mother_status");
        assert_true(fs && ms);
        if (has_cat(r, "left_behind")) {
            lb++;
            lb_grand += str_is(r, "guardian_type", "grandparent");
            if (str_is(r, "left_behind_type", "both_parents_away")) {
                lb_both++;
                assert_string_equal(fs, "migrant_worker");
                assert_string_equal(ms, "migrant_worker");
            } else {
                assert_true(str_is(r, "left_behind_type",
                                   "one_away_other_incapable"));
                assert_true((strcmp(fs, "migrant_worker") == 0
                             && strcmp(ms, "incapable") == 0)
                            || (strcmp(ms, "migrant_worker") == 0
                                && strcmp(fs, "incapable") == 0));
            }
            assert_false(has_cat(r, "orphan"));
        } else {
            assert_null(record_val(r, "left_behind_type"));
        }
        if (has_cat(r, "orphan")) {
            orphan++;
            assert_string_equal(fs, "deceased");
            assert_string_equal(ms, "deceased");
        }
        assert_int_equal(strcmp(fs, "migrant_worker") == 0,
                         record_val(r, "father_work_place") != NULL);
        assert_int_equal(strcmp(ms, "migrant_worker") == 0,
                         record_val(r, "mother_work_place") != NULL);

        if (str_is(r, "guardian_type", "none")) {
            no_guardian++;
            assert_null(record_val(r, "guardian_name"));
        } else {
            assert_non_null(record_val(r, "guardian_type"));
            assert_non_null(record_str(r, "guardian_name"));
            assert_non_null(record_str(r, "guardian_relation"));
            assert_non_null(record_str(r, "guardian_phone"));
            const val_t *cap = record_val(r, "guardian_capable");
            assert_non_null(cap);
            assert_int_equal(cap->kind, VAL_BOOL);
        }
        const char *phone = record_str(r, "guardian_phone");
        if (phone) {
            assert_int_equal(strlen(phone), 11);
            assert_true(phone[0] == '1' && strchr("3589", phone[1]));
        }

        const char *school = record_str(r, "school_status");
        assert_non_null(school);
        bool in_school = strcmp(school, "preschool") == 0
                         || strcmp(school, "enrolled") == 0
                         || strcmp(school, "boarding") == 0;
        assert_int_equal(in_school, record_val(r, "grade") != NULL);
        assert_int_equal(in_school, record_val(r, "school_name") != NULL);
        if (age <= 2)
            assert_string_equal(school, "not_school_age");
        else if (age <= 5)
            assert_true(strcmp(school, "preschool") == 0
                        || strcmp(school, "not_school_age") == 0);
        else
            assert_true(strcmp(school, "enrolled") == 0
                        || strcmp(school, "boarding") == 0
                        || strcmp(school, "dropped_out") == 0);
        assert_int_equal(strcmp(school, "dropped_out") == 0,
                         has_cat(r, "dropout"));
        dropout += has_cat(r, "dropout");

        assert_int_equal(has_cat(r, "disabled"),
                         record_val(r, "disability_type") != NULL);
        assert_int_equal(has_cat(r, "disabled"),
                         record_val(r, "disability_level") != NULL);

        low += str_is(r, "risk_level", "low");
        medium += str_is(r, "risk_level", "medium");
        high += str_is(r, "risk_level", "high");
        record_destroy(&r);
    }
    gen_destroy(&g);

    assert_share(male, N, 54.5, 1.5);
    assert_share(band[0], N, 21.7, 1.5);
    assert_share(band[1], N, 67.4, 1.5);
    assert_share(band[2], N, 10.9, 1.5);
    assert_share(lb, N, 92.0, 1.5);
    assert_share(lb_both, lb, 88.0, 2.0);
    assert_true(SHARE(lb_grand, lb) >= 94.0);
    assert_true(SHARE(no_guardian, N) < 0.5);
    assert_share(orphan, N, 1.0, 0.5);
    assert_share(dropout, N, 0.8, 0.5);
    assert_share(han, N, 93.0, 1.5);
    assert_share(low, N, 80.0, 1.5);
    assert_share(medium, N, 17.0, 1.5);
    assert_share(high, N, 3.0, 1.0);
    for (size_t v = 0; v < NVILLAGES; v++)
        assert_share(per_village[v], N, 100.0 / NVILLAGES, 1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_bad_arguments),
        cmocka_unit_test(test_villages_copied),
        cmocka_unit_test(test_children_pass_schema),
        cmocka_unit_test(test_edge_todays),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_id_numbers_unique),
        cmocka_unit_test(test_shares_and_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
