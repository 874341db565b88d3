/* Unit tests for common/access.c: masks, what a role sees, the purpose
 * rule, and the request bodies that set fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "assert_why.h"

#include <stdio.h>
#include <string.h>

#include "common/access.h"
#include "common/schema.h"


static void put(record_t *r, const char *name, const char *s)
{
    field_t f = {.name = (char *)name, .val = {.kind = VAL_STR, .s = (char *)s}};
    assert_int_equal(record_put(r, &f), LX_OK);
}

static record_t *sample(void)
{
    record_t *r = record_new("510121106218-0001");
    put(r, "village_code", "510121106218");
    put(r, "name", "王小明");
    put(r, "gender", "male");
    put(r, "id_number", "51012120150301123X");
    put(r, "guardian_phone", "13800001234");
    put(r, "school_status", "enrolled");
    put(r, "ev_01a2_510121106218", "{\"type\":\"call\"}");
    return r;
}

static void test_masks(void **state)
{
    (void)state;
    char out[64];
    access_mask("id_number", "51012120150301123X", out, sizeof out);
    assert_string_equal(out, "5101**********123X");
    access_mask("guardian_phone", "13800001234", out, sizeof out);
    assert_string_equal(out, "*******1234");
    access_mask("mother_phone", "123", out, sizeof out);
    assert_string_equal(out, "***");            /* too short to show a part */
    access_mask("household_address", "成都市金堂县", out, sizeof out);
    assert_string_equal(out, "***");
    access_mask("id_number", "51012120150301123X", out, 6);
    assert_int_equal(strlen(out), 5);            /* cut to the buffer */
}

/* The rights without an access policy are the example policy's. */
static void test_default_roles_match_example(void **state)
{
    (void)state;
    json_error_t je;
    json_t *p = json_load_file("config/policies/access.json", 0, &je);
    assert_non_null(p);
    json_t *roles = json_object_get(json_object_get(p, "body"), "roles");
    const char *role;
    json_t *rv;
    static const char *const fields[] = {"name", "id_number", "guardian_phone",
                                         "school_status", "health_status", "help_pairing",
                                         "household_address", "cases", "events", NULL};
    size_t n = 0;
    json_object_foreach(roles, role, rv) {
        n++;
        assert_true(access_role_known(NULL, role));
        for (size_t i = 0; fields[i]; i++)
            if (access_rights(NULL, role, fields[i]) != policy_access_in(roles, role, fields[i]))
                fail_msg("role %s field %s differs from config/policies/access.json", role,
                         fields[i]);
    }
    assert_int_equal(n, 9);
    assert_false(access_role_known(NULL, "teacher"));
    json_decref(p);
}

static void test_view(void **state)
{
    (void)state;
    record_t *r = sample();
    json_t *j = NULL;
    why_t why = {""};
    /* Without a purpose: refused, naming a personal field. */
    assert_why(access_view(NULL, "education", r, NULL, 0, false, &j, &why), LX_EDENIED, &why,
               "X-Purpose");
    assert_null(j);
    assert_int_equal(access_view(NULL, "education", r, NULL, 0, true, &j, &why), LX_OK);
    assert_string_equal(json_string_value(json_object_get(j, "id_number")), "5101**********123X");
    assert_string_equal(json_string_value(json_object_get(j, "guardian_phone")), "*******1234");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "王小明");
    assert_null(json_object_get(j, "ev_01a2_510121106218"));   /* journal: its own endpoint */
    json_decref(j);
    /* Public security reads the ID number whole. */
    assert_int_equal(access_view(NULL, "public_security", r, NULL, 0, true, &j, &why), LX_OK);
    assert_string_equal(json_string_value(json_object_get(j, "id_number")), "51012120150301123X");
    json_decref(j);
    /* Only non-personal fields asked for: no purpose needed. */
    const char *want[] = {"gender", "school_status"};
    assert_int_equal(access_view(NULL, "education", r, want, 2, false, &j, &why), LX_OK);
    assert_int_equal(json_object_size(j), 3);   /* id + the two */
    json_decref(j);
    /* An unknown role sees nothing but the id. */
    assert_int_equal(access_view(NULL, "teacher", r, NULL, 0, true, &j, &why), LX_OK);
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);
    record_destroy(&r);
}

static void test_parse_write(void **state)
{
    (void)state;
    why_t why = {""};
    record_t *r = record_new("x");
#define W(body) access_parse_write(body, strlen(body), NULL, "education", r, &why)
    assert_int_equal(W("{\"school_status\": \"enrolled\", \"grade\": \"5\"}"), LX_OK);
    assert_int_equal(r->n, 2);
    assert_why(W("{\"name\": \"x\"}"), LX_EDENIED, &why, "field name");
    assert_why(W("{\"school_status\": 5}"), LX_EINVAL, &why, "school_status");
    assert_why(W("{\"school_status\": \"flying\"}"), LX_EINVAL, &why, "school_status");
    assert_why(W("{\"colour\": \"blue\"}"), LX_EINVAL, &why, "field colour: unknown");
    assert_why(W("{\"id\": \"y\"}"), LX_EINVAL, &why, "field id");
    assert_why(W("[1, 2]"), LX_EINVAL, &why, "JSON object");
    assert_why(W("{\"grade\": "), LX_EINVAL, &why, "line 1");
    assert_why(W("{\"grade\": \"5\", \"grade\": \"6\"}"), LX_EINVAL, &why, "line 1");
    assert_why(W(""), LX_EINVAL, &why, "empty");
    char big[64 * 20 + 64] = "{";
    for (int i = 0; i < ACCESS_BODY_FIELDS + 1; i++)
        sprintf(big + strlen(big), "%s\"x_f%d\": \"1\"", i ? ", " : "", i);
    strcat(big, "}");
    assert_why(W(big), LX_EINVAL, &why, "more than");
#undef W
    /* The operator writes what the schema knows, and nothing else. */
    assert_int_equal(access_parse_write("{\"name\": \"改\"}", strlen("{\"name\": \"改\"}"), NULL,
                                        "operator", r, &why),
                     LX_OK);
    record_destroy(&r);
}

static void test_personal(void **state)
{
    (void)state;
    assert_true(access_personal("name"));
    assert_true(access_personal("id_number"));
    assert_true(access_personal("ev_01_510121106218"));
    assert_true(access_personal("x_note"));
    assert_false(access_personal("gender"));
    assert_false(access_personal("school_status"));
    assert_int_equal(access_rights(NULL, "education", "ev_01_510121106218"),
                     access_rights(NULL, "education", "events"));
    assert_true(access_rights(NULL, "justice", "cases") & ACCESS_WRITE);
    assert_false(access_rights(NULL, "education", "cases") & ACCESS_WRITE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_default_roles_match_example),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_parse_write),
        cmocka_unit_test(test_personal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
