/* Unit tests for common/schema.c: the default schema, value and record
 * validation, GB 11643 ID numbers, dates and UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "assert_why.h"

#include <stdio.h>
#include <string.h>

#include "common/schema.h"

#define NODE 510104000000ULL     /* a county: 锦江区 */
#define VILLAGE "510104001001"   /* a village below it */

/* An ID number with the right check character for first17. */
static void make_id(char out[19], const char *first17)
{
    memcpy(out, first17, 17);
    out[17] = idnum_check_char(first17);
    out[18] = '\0';
}


static void put_str(record_t *r, const char *name, const char *s)
{
    val_t v = {0};
    ver_t ver = {0};
    field_t f;
    assert_int_equal(val_set_str(&v, s), LX_OK);
    assert_int_equal(field_init(&f, name, &v, &ver), LX_OK);
    assert_int_equal(record_put(r, &f), LX_OK);
    field_free(&f);
    val_free(&v);
}

static void put_val(record_t *r, const char *name, const val_t *v)
{
    ver_t ver = {0};
    field_t f;
    assert_int_equal(field_init(&f, name, v, &ver), LX_OK);
    assert_int_equal(record_put(r, &f), LX_OK);
    field_free(&f);
}

/* A record that passes: every kind of field filled in. */
static record_t *valid_record(void)
{
    char id[19];
    make_id(id, "51010420100315123"); /* born 2010-03-15, odd: a boy */
    record_t *r = record_new("510104-0001");
    assert_non_null(r);
    put_str(r, "village_code", VILLAGE);
    put_str(r, "name", "张小明");
    put_str(r, "gender", "male");
    put_str(r, "birth_date", "2010-03-15");
    put_str(r, "id_number", id);
    put_str(r, "guardian_type", "grandparent");
    put_str(r, "guardian_phone", "+86 138-0000-0000");
    put_str(r, "status", "active");
    val_t cat = {0};
    assert_int_equal(val_list_add(&cat, "left_behind"), LX_OK);
    assert_int_equal(val_list_add(&cat, "low_income"), LX_OK);
    put_val(r, "categories", &cat);
    val_free(&cat);
    val_t yes = {.kind = VAL_BOOL, .b = true};
    put_val(r, "guardian_capable", &yes);
    return r;
}

static void test_schema_table(void **state)
{
    (void)state;
    assert_int_equal(schema_count(), 33);
    assert_string_equal(schema_at(0)->name, "name");
    assert_string_equal(schema_at(32)->name, "exit_date");
    assert_null(schema_at(33));
    assert_int_equal(schema_field("last_visit_date")->type, FT_DATE);
    assert_null(schema_field("shoe_size"));
    const field_def_t *g = schema_field("gender");
    assert_non_null(g);
    assert_true(g->required);
    assert_int_equal(g->type, FT_ENUM);
    assert_string_equal(schema_enum_label(g, "female", true), "女");
    assert_null(schema_enum_label(g, "other", true));
    assert_true(schema_field("id_number")->personal);
    assert_false(schema_field("village_code")->personal);
    assert_string_equal(schema_enum_label(schema_field("exit_reason"),
                                          "reached_age_limit", true),
                        "年满16/18周岁");
    /* Exactly the CONTRACT.md required fields, and the personal ones. */
    char req[128] = "", pers[512] = "";
    for (size_t i = 0; i < schema_count(); i++) {
        const field_def_t *d = schema_at(i);
        if (d->required)
            strcat(strcat(req, d->name), " ");
        if (d->personal)
            strcat(strcat(pers, d->name), " ");
    }
    assert_string_equal(req, "name gender birth_date village_code ");
    assert_string_equal(pers, "name id_number household_address guardian_name "
                              "guardian_phone father_work_place father_phone "
                              "mother_work_place mother_phone help_pairing "
                              "proxy_parent ");
    /* Names are unique and every enum list is terminated. */
    for (size_t i = 0; i < schema_count(); i++) {
        const field_def_t *d = schema_at(i);
        assert_ptr_equal(schema_field(d->name), d);
        if (d->type == FT_ENUM || d->type == FT_SET)
            assert_non_null(d->enums);
        if (d->type == FT_STR)
            assert_true(d->max_len > 0);
    }
}

static void test_idnum(void **state)
{
    (void)state;
    why_t why = {{0}};
    char id[19];
    make_id(id, "11010519491231002");
    assert_string_equal(id, "11010519491231002X"); /* the GB 11643 example */
    assert_int_equal(idnum_check(id, &why), LX_OK);
    id[17] = 'x';
    assert_why(idnum_check(id, &why), LX_EINVAL, &why, "upper-case X");

    make_id(id, "51010420100315123");
    assert_int_equal(idnum_check(id, &why), LX_OK);
    id[17] = id[17] == '0' ? '1' : '0';
    assert_why(idnum_check(id, &why), LX_EINVAL, &why, "check digit");

    assert_why(idnum_check("51010420100315123", &why), LX_EINVAL, &why, "18");
    assert_why(idnum_check("5101042010031512A3", &why), LX_EINVAL, &why,
               "digits");
    make_id(id, "51010420101315123"); /* month 13 */
    assert_why(idnum_check(id, &why), LX_EINVAL, &why, "date");
    make_id(id, "51010420230229123"); /* not a leap year */
    assert_why(idnum_check(id, &why), LX_EINVAL, &why, "date");
}

static void test_dates(void **state)
{
    (void)state;
    assert_true(date_valid("2024-02-29"));
    assert_false(date_valid("2023-02-29"));
    assert_true(date_valid("2000-02-29"));
    assert_false(date_valid("1900-02-29"));
    assert_false(date_valid("2024-13-01"));
    assert_false(date_valid("2024-00-10"));
    assert_false(date_valid("2024-04-31"));
    assert_true(date_valid("2024-12-31"));
    assert_false(date_valid("2024-01-00"));
    assert_false(date_valid("1899-12-31"));
    assert_false(date_valid("2200-01-01"));
    assert_false(date_valid("2024-1-01"));
    assert_false(date_valid("2024/01/01"));
    assert_false(date_valid("2024-01-01 "));
    assert_false(date_valid(""));
}

static void test_utf8(void **state)
{
    (void)state;
    const char *ok = "张小明 héllo \xF0\x9F\x98\x80";
    assert_true(utf8_valid(ok, strlen(ok)));
    assert_true(utf8_valid("", 0));
    assert_false(utf8_valid("\xC0\x80", 2));          /* overlong NUL */
    assert_false(utf8_valid("\xE0\x80\xAF", 3));      /* overlong '/' */
    assert_false(utf8_valid("\xED\xA0\x80", 3));      /* surrogate */
    assert_false(utf8_valid("\xF4\x90\x80\x80", 4));  /* above U+10FFFF */
    assert_false(utf8_valid("\xE5\xBC", 2));          /* truncated 张 */
    assert_false(utf8_valid("\x80", 1));              /* stray continuation */
    assert_false(utf8_valid("\xFF", 1));
    assert_true(utf8_valid("\xF4\x8F\xBF\xBF", 4));   /* U+10FFFF */
}

static void test_check_value(void **state)
{
    (void)state;
    why_t why = {{0}};
    val_t v = {0};
    const field_def_t *gender = schema_field("gender");
    const field_def_t *eth = schema_field("ethnicity");

    assert_why(schema_check_value(gender, &v, &why), LX_EINVAL, &why,
               "field gender: required");
    assert_int_equal(schema_check_value(eth, &v, &why), LX_OK);

    assert_int_equal(val_set_str(&v, "x"), LX_OK);
    assert_why(schema_check_value(gender, &v, &why), LX_EINVAL, &why,
               "field gender: expected one of male, female, got \"x\"");
    val_free(&v);

    val_t b = {.kind = VAL_BOOL, .b = true};
    assert_why(schema_check_value(eth, &b, &why), LX_EINVAL, &why,
               "field ethnicity: expected text");

    /* Too long, control characters, bad UTF-8. */
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(val_set_str(&v, longname), LX_OK);
    assert_why(schema_check_value(schema_field("name"), &v, &why), LX_EINVAL,
               &why, "field name: longer than 64");
    assert_int_equal(val_set_str(&v, "a\nb"), LX_OK);
    assert_why(schema_check_value(eth, &v, &why), LX_EINVAL, &why, "control");
    assert_int_equal(val_set_str(&v, "\xC0\x80"), LX_OK);
    assert_why(schema_check_value(eth, &v, &why), LX_EINVAL, &why, "UTF-8");

    /* Random bytes from an alphabet of troublemakers: the one-pass text
     * check says what utf8_valid and a byte-wise control scan say. */
    static const unsigned char alpha[] = {'a', 0x01, 0x1F, 0x7F, 0x80, 0x85, 0x9F, 0xA0,
                                          0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF,
                                          0xF0, 0xF4, 0xF5, 0xFF};
    uint64_t seed = 7;
    for (int it = 0; it < 20000; it++) {
        char t[12];
        size_t tn = 1 + (size_t)(it % 10);
        for (size_t i = 0; i < tn; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            t[i] = (char)alpha[(seed >> 33) % sizeof alpha];
        }
        t[tn] = '\0';
        bool ctrl = false;
        for (const unsigned char *p = (const unsigned char *)t; *p; p++)
            ctrl |= *p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F);
        const char *want = !utf8_valid(t, tn) ? "UTF-8" : ctrl ? "control" : NULL;
        assert_int_equal(val_set_str(&v, t), LX_OK);
        int rc = schema_check_value(eth, &v, &why);
        if (want)
            assert_why(rc, LX_EINVAL, &why, want);
        else
            assert_int_equal(rc, LX_OK);
    }

    /* Personal fields never echo the value. */
    assert_int_equal(val_set_str(&v, "51010420100315123Q"), LX_OK);
    assert_why(schema_check_value(schema_field("id_number"), &v, &why),
               LX_EINVAL, &why, "field id_number:");
    assert_null(strstr(why.msg, "51010420100315123"));

    /* Codes must be well formed and at village level. */
    const field_def_t *vc = schema_field("village_code");
    assert_int_equal(val_set_str(&v, VILLAGE), LX_OK);
    assert_int_equal(schema_check_value(vc, &v, &why), LX_OK);
    assert_int_equal(val_set_str(&v, "510104001000"), LX_OK);
    assert_why(schema_check_value(vc, &v, &why), LX_EINVAL, &why,
               "field village_code: 510104001000 is a township code");
    assert_int_equal(val_set_str(&v, "51010400100"), LX_OK);
    assert_why(schema_check_value(vc, &v, &why), LX_EINVAL, &why,
               "field village_code");

    const field_def_t *ph = schema_field("father_phone");
    assert_int_equal(val_set_str(&v, "138 0000 0000"), LX_OK);
    assert_int_equal(schema_check_value(ph, &v, &why), LX_OK);
    assert_int_equal(val_set_str(&v, "138x0000"), LX_OK);
    assert_why(schema_check_value(ph, &v, &why), LX_EINVAL, &why,
               "field father_phone");
    assert_null(strstr(why.msg, "138x"));
    val_free(&v);

    /* Sets: distinct known values; empty is fine. */
    const field_def_t *cat = schema_field("categories");
    val_t l = {.kind = VAL_LIST};
    assert_int_equal(schema_check_value(cat, &l, &why), LX_OK);
    assert_int_equal(val_list_add(&l, "orphan"), LX_OK);
    assert_int_equal(val_list_add(&l, "orphan"), LX_OK);
    assert_why(schema_check_value(cat, &l, &why), LX_EINVAL, &why, "twice");
    val_free(&l);
    assert_int_equal(val_list_add(&l, "astronaut"), LX_OK);
    assert_why(schema_check_value(cat, &l, &why), LX_EINVAL, &why,
               "got \"astronaut\"");
    val_free(&l);
}

static void test_parse_text(void **state)
{
    (void)state;
    why_t why = {{0}};
    val_t v;
    const field_def_t *cap = schema_field("guardian_capable");

    const char *yes[] = {"true", "1", "yes", "是", "YES", " True "};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        assert_int_equal(schema_parse_text(cap, yes[i], &v, &why), LX_OK);
        assert_int_equal(v.kind, VAL_BOOL);
        assert_true(v.b);
    }
    const char *no[] = {"false", "0", "no", "否"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        assert_int_equal(schema_parse_text(cap, no[i], &v, &why), LX_OK);
        assert_int_equal(v.kind, VAL_BOOL);
        assert_false(v.b);
    }
    assert_why(schema_parse_text(cap, "maybe", &v, &why), LX_EINVAL, &why,
               "field guardian_capable");
    assert_int_equal(v.kind, VAL_NIL);

    /* Empty text is null: fine when optional, refused when required. */
    assert_int_equal(schema_parse_text(cap, "", &v, &why), LX_OK);
    assert_int_equal(v.kind, VAL_NIL);
    assert_why(schema_parse_text(schema_field("name"), "  ", &v, &why),
               LX_EINVAL, &why, "field name: required");

    const field_def_t *g = schema_field("gender");
    assert_int_equal(schema_parse_text(g, "female", &v, &why), LX_OK);
    assert_string_equal(v.s, "female");
    val_free(&v);
    assert_int_equal(schema_parse_text(g, "男", &v, &why), LX_OK);
    assert_string_equal(v.s, "male");
    val_free(&v);
    assert_why(schema_parse_text(g, "boy", &v, &why), LX_EINVAL, &why,
               "got \"boy\"");

    const field_def_t *cat = schema_field("categories");
    assert_int_equal(schema_parse_text(cat, "left_behind; 孤儿|dropout;", &v, &why),
                     LX_OK);
    assert_int_equal(v.kind, VAL_LIST);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.items[0], "left_behind");
    assert_string_equal(v.items[1], "orphan");
    assert_string_equal(v.items[2], "dropout");
    val_free(&v);
    assert_why(schema_parse_text(cat, "orphan;orphan", &v, &why), LX_EINVAL,
               &why, "twice");
    assert_int_equal(v.kind, VAL_NIL);
    assert_why(schema_parse_text(cat, "orphan|pirate", &v, &why), LX_EINVAL,
               &why, "got \"pirate\"");

    assert_int_equal(schema_parse_text(schema_field("birth_date"), "2024-02-29",
                                       &v, &why), LX_OK);
    val_free(&v);
    assert_why(schema_parse_text(schema_field("birth_date"), "2023-02-29", &v,
                                 &why), LX_EINVAL, &why, "field birth_date");
    assert_int_equal(schema_parse_text(schema_field("name"), " 李四 ", &v, &why),
                     LX_OK);
    assert_string_equal(v.s, "李四");
    val_free(&v);
}

static void test_record_valid(void **state)
{
    (void)state;
    why_t why = {{0}};
    record_t *r = valid_record();
    int rc = schema_check_record(r, NODE, &why);
    if (rc)
        fail_msg("valid record refused: %s", why.msg);
    /* The village node itself holds the record too. */
    assert_int_equal(schema_check_record(r, 510104001001ULL, &why), LX_OK);
    /* A girl with an even sequence digit passes as well. */
    char id[19];
    make_id(id, "51010420100315124");
    put_str(r, "id_number", id);
    put_str(r, "gender", "female");
    assert_int_equal(schema_check_record(r, NODE, &why), LX_OK);
    record_destroy(&r);
}

static void test_record_invalid(void **state)
{
    (void)state;
    why_t why = {{0}};
    record_t *r;
    val_t nil = {0};

    r = valid_record();
    put_val(r, "name", &nil);
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field name: required");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "shoe_size", "38");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "unknown field shoe_size");
    record_destroy(&r);

    r = valid_record();
    assert_why(schema_check_record(r, 510105000000ULL, &why), LX_ESCOPE, &why,
               "field village_code: " VILLAGE " is outside");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "village_code", "510104001000");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field village_code");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "birth_date", "2010-03-16");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field id_number: embedded birth date");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "gender", "female");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field id_number: embedded sex");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "gender", "M");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field gender");
    record_destroy(&r);

    r = valid_record();
    put_str(r, "status", "exited");
    assert_why(schema_check_record(r, NODE, &why), LX_EINVAL, &why,
               "field exit_reason");
    put_str(r, "exit_reason", "parents_returned");
    put_str(r, "exit_date", "2024-06-30");
    assert_int_equal(schema_check_record(r, NODE, &why), LX_OK);
    record_destroy(&r);

    r = valid_record();
    record_t *missing = record_new("x");
    for (uint32_t i = 0; i < r->n; i++)
        if (strcmp(r->f[i].name, "birth_date") != 0)
            assert_int_equal(record_put(missing, &r->f[i]), LX_OK);
    assert_why(schema_check_record(missing, NODE, &why), LX_EINVAL, &why,
               "field birth_date: required");
    record_destroy(&missing);
    record_destroy(&r);
}

/* Local fields (x_...) come from a descendant's schema policy that the
 * receiving node does not hold: the generic check takes text, booleans
 * and short lists, and nothing else. */
static void test_local_fields(void **state)
{
    (void)state;
    why_t why = {""};
    assert_true(schema_local_name("x_hukou_type"));
    assert_false(schema_local_name("x_"));
    assert_false(schema_local_name("x_Hukou"));
    assert_false(schema_local_name("hukou"));
    assert_false(schema_local_name("x_a-b"));
    val_t v = {0};
    assert_int_equal(val_set_str(&v, "农业户口"), LX_OK);
    assert_int_equal(schema_check_local("x_hukou", &v, &why), LX_OK);
    val_free(&v);
    char big[SCHEMA_LOCAL_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(val_set_str(&v, big), LX_OK);
    assert_why(schema_check_local("x_note", &v, &why), LX_EINVAL, &why, "x_note");
    val_free(&v);
    assert_int_equal(val_set_str(&v, "a\nb"), LX_OK);
    assert_why(schema_check_local("x_note", &v, &why), LX_EINVAL, &why, "single-line");
    val_free(&v);
    for (int i = 0; i < SCHEMA_LOCAL_ITEMS + 1; i++)
        assert_int_equal(val_list_add(&v, "item"), LX_OK);
    assert_why(schema_check_local("x_tags", &v, &why), LX_EINVAL, &why, "items");
    val_free(&v);

    /* A change carrying one goes through; an unknown default-looking name
     * does not. */
    field_t w[2] = {0};
    w[0].name = "name";
    assert_int_equal(val_set_str(&w[0].val, "张三"), LX_OK);
    w[1].name = "x_hukou";
    w[1].val.kind = VAL_BOOL;
    change_t c = {.id = "r1", .n = 2, .w = w};
    assert_int_equal(schema_check_change(&c, &why), LX_OK);
    w[1].name = "hukou";
    assert_why(schema_check_change(&c, &why), LX_EINVAL, &why, "hukou");
    val_free(&w[0].val);

    /* A whole record holding one passes the default record check. */
    record_t *r = valid_record();
    put_str(r, "x_hukou", "rural");
    assert_int_equal(schema_check_record(r, NODE, &why), LX_OK);
    record_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_table),
        cmocka_unit_test(test_idnum),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_parse_text),
        cmocka_unit_test(test_record_valid),
        cmocka_unit_test(test_record_invalid),
        cmocka_unit_test(test_local_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
