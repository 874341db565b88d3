/* Unit tests for the policy modules (common/policy.c, polbody.c,
 * effective.c, classify.c) on temporary stores: documents refused naming
 * the field, every refusal of the accept path, the fold with refinements
 * allowed and not, classification and its exits, alerts, retention, the
 * daily pass, acknowledgements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "assert_why.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/classify.h"
#include "common/effective.h"
#include "common/policy.h"

#define PROVINCE 510000000000ULL
#define CITY 510100000000ULL
#define COUNTY 510104000000ULL
#define TOWNSHIP 510104001000ULL
#define VILLAGE 510104001001ULL
#define OTHER_CITY 510300000000ULL


typedef struct {
    unsigned char pk[32], sk[64];
} keys_t;

typedef struct {
    char dir[64];
    store_t *s;
    keys_t prov, city, town, other, rogue;
} fx_t;

static int setup(void **state, code_t node)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lx-policy-XXXXXX");
    if (!mkdtemp(f->dir) || sodium_init() < 0)
        return -1;
    why_t why = {""};
    if (store_create(f->dir, node, &why) || store_open(f->dir, STORE_NOSYNC, &f->s, &why))
        return -1;
    keys_t *all[] = {&f->prov, &f->city, &f->town, &f->other, &f->rogue};
    for (size_t i = 0; i < 5; i++)
        crypto_sign_keypair(all[i]->pk, all[i]->sk);
    /* Pinned as a rendered village would have them (no rogue key). */
    stxn_t *t;
    if (store_begin(f->s, true, &t) || policy_pin_key(t, PROVINCE, f->prov.pk)
        || policy_pin_key(t, CITY, f->city.pk) || policy_pin_key(t, TOWNSHIP, f->town.pk)
        || policy_pin_key(t, OTHER_CITY, f->other.pk) || store_commit(&t))
        return -1;
    *state = f;
    return 0;
}

static int setup_village(void **state) { return setup(state, VILLAGE); }

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    store_close(&f->s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* A document: issuer, kind, version, expiry ("" none), body. */
static char *doc(code_t issuer, const char *kind, int version, const char *expires,
                 const char *body)
{
    char *s = NULL;
    char c[CODE_STRLEN + 1];
    char ex[48] = "";
    if (*expires)
        snprintf(ex, sizeof ex, "\"expires\": \"%s\", ", expires);
    assert_true(asprintf(&s, "{\"issuer\": \"%s\", \"kind\": \"%s\", \"version\": %d, "
                         "\"effective\": \"2020-01-01\", %s\"body\": %s}",
                         code_fmt(issuer, c), kind, version, ex, body) > 0);
    return s;
}

/* Signs and accepts; returns policy_accept's code. */
static int accept_doc(fx_t *f, const keys_t *k, char *d, unsigned how, why_t *why)
{
    unsigned char *env;
    size_t len;
    assert_int_equal(policy_sign(d, strlen(d), k->sk, &env, &len), LX_OK);
    stxn_t *t;
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    why->msg[0] = '\0';
    int rc = policy_accept(t, env, len, how, hlc_wall_ms(), NULL, why);
    if (rc == LX_OK)
        assert_int_equal(store_commit(&t), LX_OK);
    else
        store_abort(&t);
    free(env);
    free(d);
    return rc;
}

static size_t held(fx_t *f)
{
    stxn_t *t;
    policy_ver_t *v = NULL;
    size_t n = 0;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_versions(t, &v, &n), LX_OK);
    store_abort(&t);
    free(v);
    return n;
}

static const char *SCHEMA_BODY =
    "{\"fields\": [{\"name\": \"x_hukou\", \"type\": \"enum\", \"label_zh\": \"户口\","
    " \"label_en\": \"Hukou\", \"enum\": [{\"value\": \"rural\", \"zh\": \"农业\", \"en\": \"Rural\"}],"
    " \"refine\": [\"enum\"]}], \"require\": [\"guardian_type\"], \"refine\": [\"fields\"]}";

/* ---- documents ---- */

static void parse_fails(const char *text, const char *needle)
{
    policy_t p;
    why_t why = {""};
    assert_why(policy_parse(text, strlen(text), "p.json", &p, &why), LX_EINVAL, &why, needle);
}

static void test_documents(void **state)
{
    (void)state;
    char *d = doc(PROVINCE, "schema", 1, "", SCHEMA_BODY);
    policy_t p;
    why_t why = {""};
    assert_int_equal(policy_parse(d, strlen(d), "p.json", &p, &why), LX_OK);
    assert_int_equal(p.kind, POLICY_SCHEMA);
    assert_int_equal(p.version, 1);
    assert_int_equal(p.json_len, strlen(d));
    policy_free(&p);
    policy_free(&p); /* safe twice */
    free(d);
    parse_fails("{\"issuer\": \"510000000000\", \"kind\": \"schema\", \"version\": 1,"
                " \"effective\": \"2026-01-01\", \"body\": {}, \"colour\": 1}", "p.json: colour: unknown key");
    parse_fails("{\"issuer\": \"510000000000\", \"kind\": \"schema\", \"version\": \"1\","
                " \"effective\": \"2026-01-01\", \"body\": {}}", "p.json: version");
    parse_fails("{\"issuer\": \"510000000000\", \"kind\": \"schema\", \"version\": 1,"
                " \"effective\": \"2026-02-30\", \"body\": {}}", "p.json: effective");
    parse_fails("{\"issuer\": \"510000000000\", \"kind\": \"weather\", \"version\": 1,"
                " \"effective\": \"2026-01-01\", \"body\": {}}", "p.json: kind");
    parse_fails("{\"issuer\": \"5100\", \"kind\": \"schema\", \"version\": 1,"
                " \"effective\": \"2026-01-01\", \"body\": {}}", "p.json: issuer");
    parse_fails("{\"issuer\": \"510000000000\",", "p.json: line 1");
    d = doc(PROVINCE, "schema", 1, "", "{\"fields\": [{\"name\": \"x_a\", \"type\": \"str\","
            " \"label_zh\": \"a\", \"label_en\": \"a\"}, {\"name\": \"x_b\", \"type\": \"str\","
            " \"label_zh\": \"b\", \"label_en\": \"b\"}, {\"name\": \"x_c\", \"type\": \"colour\","
            " \"label_zh\": \"c\", \"label_en\": \"c\"}]}");
    parse_fails(d, "p.json: body.fields[2].type: unknown type \"colour\"");
    free(d);
    d = doc(PROVINCE, "schema", 1, "", "{\"fields\": [{\"name\": \"hukou\", \"type\": \"str\","
            " \"label_zh\": \"a\", \"label_en\": \"a\"}]}");
    parse_fails(d, "body.fields[0].name");
    free(d);
    d = doc(PROVINCE, "classification", 1, "", "{\"rules\": [{\"id\": \"a\", \"category\":"
            " \"left_behind\", \"when\": {\"field\": \"shoe_size\", \"in\": [\"1\"]}}]}");
    parse_fails(d, "body.rules[0].when.field: unknown field");
    free(d);
    d = doc(PROVINCE, "retention", 1, "", "{\"after_years\": 5, \"action\": \"shred\"}");
    parse_fails(d, "body.action");
    free(d);
    d = doc(PROVINCE, "access", 1, "", "{\"roles\": {\"police\": {\"read\": [\"*\"]}}}");
    parse_fails(d, "body.roles.police: unknown role");
    free(d);
}

/* ---- the accept path ---- */

static void test_accept(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    /* Forged: the province's name, another key. */
    assert_why(accept_doc(f, &f->rogue, doc(PROVINCE, "schema", 1, "", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_EINVAL, &why, "bad signature");
    /* Altered after signing. */
    char *d = doc(PROVINCE, "schema", 1, "", SCHEMA_BODY);
    unsigned char *env;
    size_t len;
    assert_int_equal(policy_sign(d, strlen(d), f->prov.sk, &env, &len), LX_OK);
    char *v = memmem(env, len, "\"version\": 1", 12);
    assert_non_null(v);
    v[11] = '7';
    stxn_t *t;
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_why(policy_accept(t, env, len, POLICY_FROM_PARENT, hlc_wall_ms(), NULL, &why),
               LX_EINVAL, &why, "bad signature");
    store_abort(&t);
    free(env);
    free(d);
    /* An issuer that is not an ancestor, though its key is pinned. */
    assert_why(accept_doc(f, &f->other, doc(OTHER_CITY, "schema", 1, "", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_ESCOPE, &why, "neither this node");
    /* An ancestor with no key pinned. */
    assert_why(accept_doc(f, &f->rogue, doc(COUNTY, "schema", 1, "", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_ESCOPE, &why, "no signing key");
    /* Expired. */
    assert_why(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 1, "2021-01-01", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_EINVAL, &why, "expired");
    /* From a child, even well signed. */
    assert_why(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 1, "", SCHEMA_BODY),
                          POLICY_FROM_CHILD, &why), LX_ESCOPE, &why, "from a child");
    assert_int_equal(held(f), 0); /* nothing half-written */

    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 2, "", SCHEMA_BODY),
                                POLICY_FROM_PARENT, &why), LX_OK);
    /* Replayed older version, and the same version with other bytes. */
    assert_why(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 1, "", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_EINVAL, &why, "not newer");
    assert_why(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 2, "", "{}"),
                          POLICY_FROM_PARENT, &why), LX_EINVAL, &why, "not newer");
    /* The identical envelope again: harmless. */
    assert_why(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 2, "", SCHEMA_BODY),
                          POLICY_FROM_PARENT, &why), LX_EEXIST, &why, "already held");
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 3, "", SCHEMA_BODY),
                                POLICY_FROM_PARENT, &why), LX_OK);
    stxn_t *r;
    policy_ver_t *vs;
    size_t n;
    assert_int_equal(store_begin(f->s, false, &r), LX_OK);
    assert_int_equal(policy_versions(r, &vs, &n), LX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(vs[0].version, 3);
    assert_int_equal(vs[0].issuer, PROVINCE);
    free(vs);
    /* A truncated envelope is malformed, not a crash. */
    void *e;
    assert_int_equal(policy_get(r, PROVINCE, POLICY_SCHEMA, &e, &len), LX_OK);
    policy_t p;
    assert_int_equal(policy_open(e, len - 1, &p, &why), LX_ECORRUPT);
    free(e);
    store_abort(&r);
}

/* ---- writes against the effective schema ---- */

static record_t *child(const char *birth)
{
    record_t *r = record_new(NULL);
    assert_non_null(r);
    const char *kv[][2] = {{"village_code", "510104001001"}, {"name", "测试"},
                           {"gender", "female"}, {"birth_date", birth}};
    for (size_t i = 0; i < 4; i++) {
        field_t fl = {.name = (char *)kv[i][0]};
        assert_int_equal(val_set_str(&fl.val, kv[i][1]), LX_OK);
        assert_int_equal(record_put(r, &fl), LX_OK);
        val_free(&fl.val);
    }
    return r;
}

static void set(record_t *r, const char *name, const char *value)
{
    field_t fl = {.name = (char *)name};
    if (strcmp(value, "false") == 0 || strcmp(value, "true") == 0)
        fl.val = (val_t){.kind = VAL_BOOL, .b = value[0] == 't'};
    else if (*value)
        assert_int_equal(val_set_str(&fl.val, value), LX_OK);
    assert_int_equal(record_put(r, &fl), LX_OK);
    val_free(&fl.val);
}

/* A write as a command makes it, with the policy of `today`. */
static int write_on(fx_t *f, record_t *r, const char *today, why_t *why)
{
    stxn_t *t;
    effective_t *e = NULL;
    apply_t res;
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(policy_effective(t, today, &e, why), LX_OK);
    write_opts_t o = {.author = "test/local/unit", .mode = WRITE_UPSERT, .eff = e};
    why->msg[0] = '\0';
    int rc = policy_write(t, r, &o, &res, why);
    if (!rc)
        assert_int_equal(store_commit(&t), LX_OK);
    store_abort(&t);
    effective_free(&e);
    return rc;
}

static record_t *get(fx_t *f, const char *id)
{
    stxn_t *t;
    record_t *r = NULL;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(store_get(t, id, &r, NULL), LX_OK);
    store_abort(&t);
    return r;
}

static void test_schema_required(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    record_t *r = child("2015-03-01");
    /* A local field no policy defines here is refused. */
    set(r, "x_hukou", "rural");
    assert_why(write_on(f, r, "2026-06-01", &why), LX_EINVAL, &why, "x_hukou");
    record_destroy(&r);
    /* The province's schema, at a village: guardian_type now required. */
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 1, "", SCHEMA_BODY),
                                POLICY_FROM_PARENT, &why), LX_OK);
    r = child("2015-03-01");
    set(r, "x_hukou", "rural");
    assert_why(write_on(f, r, "2026-06-01", &why), LX_EINVAL, &why, "guardian_type");
    set(r, "x_hukou", "city");
    set(r, "guardian_type", "grandparent");
    assert_why(write_on(f, r, "2026-06-01", &why), LX_EINVAL, &why, "x_hukou");
    set(r, "x_hukou", "rural");
    assert_int_equal(write_on(f, r, "2026-06-01", &why), LX_OK);
    record_t *got = get(f, r->id);
    assert_string_equal(record_str(got, "x_hukou"), "rural");
    record_destroy(&got);
    /* An update that clears it is refused too. */
    record_t *u = record_new(r->id);
    set(u, "guardian_type", "");
    assert_why(write_on(f, u, "2026-06-01", &why), LX_EINVAL, &why, "guardian_type");
    record_destroy(&u);
    record_destroy(&r);
}

static void test_refinement(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "schema", 1, "", SCHEMA_BODY),
                                POLICY_FROM_PARENT, &why), LX_OK);
    /* The township adds a value (allowed), makes x_hukou required (not
     * allowed), adds a field (allowed) and requires school_status (not
     * allowed: the province's refine lacks "required"). */
    assert_int_equal(accept_doc(f, &f->town, doc(TOWNSHIP, "schema", 1, "",
        "{\"fields\": [{\"name\": \"x_hukou\", \"type\": \"enum\", \"label_zh\": \"户口\","
        " \"label_en\": \"Hukou\", \"required\": true, \"enum\": [{\"value\": \"permit\","
        " \"zh\": \"居住证\", \"en\": \"Permit\"}]}, {\"name\": \"x_note\", \"type\": \"str\","
        " \"label_zh\": \"备注\", \"label_en\": \"Note\"}], \"require\": [\"school_status\"]}"),
                                POLICY_FROM_PARENT, &why), LX_OK);
    /* The city tries to add rules to a province classification that does
     * not allow it. */
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "classification", 1, "",
        "{\"rules\": [{\"id\": \"orphan\", \"category\": \"orphan\", \"when\": {\"all\": ["
        "{\"field\": \"father_status\", \"in\": [\"deceased\"]},"
        "{\"field\": \"mother_status\", \"in\": [\"deceased\"]}]}}]}"), POLICY_FROM_PARENT, &why),
        LX_OK);
    assert_int_equal(accept_doc(f, &f->city, doc(CITY, "classification", 1, "",
        "{\"rules\": [{\"id\": \"dropout\", \"category\": \"dropout\", \"when\":"
        " {\"field\": \"school_status\", \"in\": [\"dropped_out\"]}}]}"), POLICY_FROM_PARENT, &why),
        LX_OK);
    stxn_t *t;
    effective_t *e;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_effective(t, "2026-06-01", &e, &why), LX_OK);
    store_abort(&t);
    const field_def_t *h = eff_field(e, "x_hukou");
    assert_non_null(h);
    assert_string_equal(h->enums[1].value, "permit");
    assert_false(h->required);
    assert_non_null(eff_field(e, "x_note"));
    assert_false(eff_field(e, "school_status")->required);
    assert_true(eff_field(e, "guardian_type")->required);
    assert_int_equal(e->nclass, 1);
    /* Provenance: set by the province, refined by the township. */
    for (size_t i = 0; i < e->nfields; i++)
        if (strcmp(e->fields[i].def.name, "x_hukou") == 0) {
            assert_int_equal(e->fields[i].prov.set_by, PROVINCE);
            assert_int_equal(e->fields[i].prov.nrefined, 1);
            assert_int_equal(e->fields[i].prov.refined[0], TOWNSHIP);
        }
    /* Each refusal is listed with the level whose rule stands. */
    char *s = json_dumps(e->overridden, JSON_COMPACT);
    assert_non_null(strstr(s, "\"rule\":\"x_hukou\",\"reason\":\"making it required is not allowed\",\"by\":\"510000000000\""));
    assert_non_null(strstr(s, "\"rule\":\"school_status\""));
    assert_non_null(strstr(s, "\"issuer\":\"510100000000\",\"kind\":\"classification\",\"rule\":\"dropout\""));
    free(s);
    effective_free(&e);
    effective_free(&e);
}

/* ---- classification, daily, alerts, retention ---- */

static const char *add(fx_t *f, record_t *r, const char *today)
{
    why_t why = {""};
    if (write_on(f, r, today, &why))
        fail_msg("write: %s", why.msg);
    return r->id;
}

static void daily(fx_t *f, const char *today, uint64_t want_changed)
{
    policy_stats_t st = {0};
    why_t why = {""};
    assert_int_equal(policy_daily(f->s, today, &st, &why), LX_OK);
    if (st.changed != want_changed)
        fail_msg("daily %s: %llu changed, want %llu", today, (unsigned long long)st.changed,
                 (unsigned long long)want_changed);
}

static bool has_cat(const record_t *r, const char *c)
{
    const val_t *v = record_val(r, "categories");
    return v && val_list_has(v, c);
}

static void test_classification(void **state)
{
    fx_t *f = *state;
    record_t *lb = child("2012-06-15");
    set(lb, "father_status", "migrant_worker");
    set(lb, "mother_status", "migrant_worker");
    record_t *both = child("2012-06-15");
    set(both, "father_status", "migrant_worker");
    set(both, "mother_status", "incapable");
    set(both, "categories", "");
    record_t *orph = child("2012-01-10");
    set(orph, "father_status", "deceased");
    set(orph, "mother_status", "deceased");
    record_t *unk = child("2012-06-15"); /* categories by hand, parents unknown */
    val_t cats = {0};
    val_list_add(&cats, "low_income");
    val_list_add(&cats, "left_behind");
    field_t cf = {.name = "categories", .val = cats};
    record_put(unk, &cf);
    val_free(&cats);
    char id_lb[65], id_both[65], id_orph[65], id_unk[65];
    snprintf(id_lb, sizeof id_lb, "%s", add(f, lb, "2026-06-01"));
    snprintf(id_both, sizeof id_both, "%s", add(f, both, "2026-06-01"));
    snprintf(id_orph, sizeof id_orph, "%s", add(f, orph, "2026-06-01"));
    snprintf(id_unk, sizeof id_unk, "%s", add(f, unk, "2026-06-01"));
    record_t *r = get(f, id_lb);
    assert_true(has_cat(r, "left_behind"));
    assert_string_equal(record_str(r, "left_behind_type"), "both_parents_away");
    record_destroy(&r);
    r = get(f, id_both);
    assert_string_equal(record_str(r, "left_behind_type"), "one_away_other_incapable");
    record_destroy(&r);
    r = get(f, id_orph);
    assert_true(has_cat(r, "orphan"));
    assert_false(has_cat(r, "left_behind"));
    record_destroy(&r);
    /* Unknown parents: the hand-set categories stand. */
    r = get(f, id_unk);
    assert_true(has_cat(r, "left_behind"));
    record_destroy(&r);

    daily(f, "2026-06-02", 0);
    /* The day before the 16th birthday nothing changes; on it, the
     * left-behind children leave; the one with low_income stays active. */
    daily(f, "2028-06-14", 0);
    daily(f, "2028-06-15", 3);
    daily(f, "2028-06-15", 0); /* idempotent */
    r = get(f, id_lb);
    assert_string_equal(record_str(r, "status"), "exited");
    assert_string_equal(record_str(r, "exit_reason"), "reached_age_limit");
    assert_string_equal(record_str(r, "exit_date"), "2028-06-15");
    assert_false(has_cat(r, "left_behind"));
    record_destroy(&r);
    r = get(f, id_unk);
    assert_false(has_cat(r, "left_behind"));
    assert_true(has_cat(r, "low_income"));
    assert_null(record_str(r, "status"));
    record_destroy(&r);
    /* The orphan stays until 18. */
    r = get(f, id_orph);
    assert_true(has_cat(r, "orphan"));
    assert_null(record_str(r, "exit_date"));
    record_destroy(&r);
    daily(f, "2030-01-10", 1);
    r = get(f, id_orph);
    assert_string_equal(record_str(r, "status"), "exited");
    assert_string_equal(record_str(r, "exit_date"), "2030-01-10");
    record_destroy(&r);
    daily(f, "2030-01-11", 0);

    /* Parents come home: an authoritative category leaves by its rules. */
    record_t *ret = child("2018-01-01");
    set(ret, "father_status", "migrant_worker");
    set(ret, "mother_status", "migrant_worker");
    char id_ret[65];
    snprintf(id_ret, sizeof id_ret, "%s", add(f, ret, "2026-06-01"));
    record_t *u = record_new(id_ret);
    set(u, "father_status", "at_home");
    set(u, "mother_status", "at_home");
    add(f, u, "2026-07-01");
    r = get(f, id_ret);
    assert_string_equal(record_str(r, "exit_reason"), "parents_returned");
    assert_null(record_str(r, "left_behind_type"));
    record_destroy(&r);
    record_destroy(&u);
    record_destroy(&lb);
    record_destroy(&both);
    record_destroy(&orph);
    record_destroy(&unk);
    record_destroy(&ret);
}

static int count_alerts(fx_t *f, const char *id, const char *today)
{
    stxn_t *t;
    effective_t *e;
    record_t *r = get(f, id);
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_effective(t, today, &e, NULL), LX_OK);
    store_abort(&t);
    int n = policy_alerts(e, r, NULL, NULL);
    effective_free(&e);
    record_destroy(&r);
    return n;
}

static void test_alerts(void **state)
{
    fx_t *f = *state;
    record_t *r = child("2016-05-01");
    set(r, "guardian_type", "none");
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2026-06-01"));
    assert_int_equal(count_alerts(f, id, "2026-06-01"), 1);
    record_t *u = record_new(id);
    set(u, "guardian_type", "grandparent");
    set(u, "risk_level", "high");
    add(f, u, "2026-06-01");
    record_destroy(&u);
    /* No guardian cleared; high risk with no visit on file. */
    assert_int_equal(count_alerts(f, id, "2026-06-01"), 1);
    u = record_new(id);
    set(u, "last_visit_date", "2026-05-20");
    add(f, u, "2026-06-01");
    record_destroy(&u);
    assert_int_equal(count_alerts(f, id, "2026-06-01"), 0);
    /* Until the visit is 31 days old. */
    assert_int_equal(count_alerts(f, id, "2026-06-19"), 0);
    assert_int_equal(count_alerts(f, id, "2026-06-20"), 1);
    record_destroy(&r);
}

/* The province's retention policy, version `version`: after two years,
 * `action`. */
static void retain(fx_t *f, int version, const char *action)
{
    why_t why = {""};
    char body[96];
    snprintf(body, sizeof body, "{\"after_years\": 2, \"action\": \"%s\"}", action);
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "retention", version, "", body),
                                POLICY_FROM_PARENT, &why), LX_OK);
}

/* A left-behind child born 2010-03-01, with a guardian's name, phone
 * and an address for retention to remove. */
static record_t *left_behind(void)
{
    record_t *r = child("2010-03-01");
    set(r, "father_status", "migrant_worker");
    set(r, "mother_status", "migrant_worker");
    set(r, "guardian_name", "李四");
    set(r, "guardian_phone", "13800000000");
    set(r, "household_address", "某村1号");
    return r;
}

static void test_retention(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    retain(f, 1, "anonymise");
    record_t *r = left_behind();
    set(r, "id_number", "");
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2024-01-01"));
    record_destroy(&r);
    daily(f, "2026-03-01", 1); /* exits at 16 */
    policy_stats_t st = {0};
    assert_int_equal(policy_retention(f->s, "2028-02-29", &st, &why), LX_OK);
    assert_int_equal(st.anonymised, 0);
    assert_int_equal(policy_retention(f->s, "2028-03-01", &st, &why), LX_OK);
    assert_int_equal(st.anonymised, 1);
    r = get(f, id);
    assert_string_equal(record_str(r, "name"), "已匿名");
    assert_null(record_val(r, "guardian_name"));
    assert_null(record_val(r, "guardian_phone"));
    assert_null(record_val(r, "household_address"));
    assert_string_equal(record_str(r, "birth_date"), "2010-03-01");
    record_destroy(&r);
    st = (policy_stats_t){0};
    assert_int_equal(policy_retention(f->s, "2028-03-02", &st, &why), LX_OK);
    assert_int_equal(st.changed, 0);
}

/* ---- retention reaches the history ---- */

typedef struct {
    fx_t *f;
    store_t *to;
    stxn_t *t, *pt;
    uint64_t upto;
} mirror_t;

static int mirror_cb(void *arg, const loghdr_t *h)
{
    mirror_t *m = arg;
    change_t c;
    why_t why = {""};
    apply_t res;
    assert_int_equal(store_log_change(m->t, h, false, &c, &why), LX_OK);
    apply_opts_t o = {.from = VILLAGE, .within = VILLAGE};
    if (store_apply_ex(m->pt, c.id, c.w, c.n, &o, &res, &why))
        fail_msg("mirror: %s", why.msg);
    change_free(&c);
    m->upto = h->seq;
    return 0;
}

/* Sends the village's log since *upto to store `to` as its parent
 * receives it: each entry with the fields' state as of now. */
static void mirror(fx_t *f, store_t *to, uint64_t *upto)
{
    mirror_t m = {.f = f, .to = to, .upto = *upto};
    assert_int_equal(store_begin(f->s, false, &m.t), LX_OK);
    assert_int_equal(store_begin(to, true, &m.pt), LX_OK);
    assert_int_equal(store_each_log_hdr(m.t, *upto + 1, mirror_cb, &m), LX_OK);
    assert_int_equal(store_commit(&m.pt), LX_OK);
    store_abort(&m.t);
    *upto = m.upto;
}

typedef struct {
    const char *id;
    record_t *r;
} asof_one_t;

static int asof_one_cb(void *arg, const record_t *r)
{
    asof_one_t *a = arg;
    if (strcmp(r->id, a->id) == 0) {
        record_t *c = record_new(r->id);
        for (uint32_t i = 0; i < r->n; i++)
            assert_int_equal(record_put(c, &r->f[i]), LX_OK);
        a->r = c;
    }
    return 0;
}

/* Record id as store s held it at cut (NULL when it did not). */
static record_t *asof_get(store_t *s, const char *id, hlc_t cut)
{
    stxn_t *t;
    asof_one_t a = {id, NULL};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_record_asof(t, 0, cut, asof_one_cb, &a), LX_OK);
    store_abort(&t);
    return a.r;
}

static void edit(fx_t *f, const char *id, const char *name, const char *value, const char *today)
{
    record_t *u = record_new(id);
    set(u, name, value);
    add(f, u, today);
    record_destroy(&u);
}

/* A write of field `name` made elsewhere without seeing the one here
 * (base 0), just after it: it wins, and the two are a conflict. */
static void conflicting(fx_t *f, const char *id, const char *name, const char *value)
{
    record_t *r = get(f, id);
    field_t w = {0};
    assert_int_equal(field_copy(&w, record_field(r, name)), LX_OK);
    record_destroy(&r);
    val_free(&w.val);
    assert_int_equal(val_set_str(&w.val, value), LX_OK);
    w.ver.hlc++;
    w.ver.origin = COUNTY;
    w.ver.base = 0;
    stxn_t *t;
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(store_apply(t, id, &w, 1, 0, &res, &why), LX_OK);
    assert_int_equal(res.conflicts, 1);
    assert_int_equal(store_commit(&t), LX_OK);
    field_free(&w);
}

typedef struct {
    const char *id, *name;
    int values;
} cfvals_t;

static int cfvals_cb(void *arg, const conflict_t *c)
{
    cfvals_t *x = arg;
    if (strcmp(c->id, x->id) == 0 && strcmp(c->kept->name, x->name) == 0)
        x->values += (c->kept->val.kind != VAL_NIL) + (c->lost->val.kind != VAL_NIL);
    return 0;
}

/* The values store s's conflict log holds for field `name` of record id. */
static int conflict_values(store_t *s, const char *id, const char *name)
{
    stxn_t *t;
    cfvals_t x = {id, name, 0};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_conflict(t, cfvals_cb, &x), LX_OK);
    store_abort(&t);
    return x.values;
}

/* What each store showed at the first cut after retention: `gone` fields
 * have no value from before, `kept` fields the value they had. */
static void check_asof(store_t *s, const char *id, hlc_t cut, const char *const *gone,
                       const char *const (*kept)[2])
{
    record_t *r = asof_get(s, id, cut);
    assert_non_null(r);
    for (size_t i = 0; gone[i]; i++) {
        const char *v = record_str(r, gone[i]);
        if (v)
            fail_msg("%s is still in the history (\"%s\")", gone[i], v);
    }
    for (size_t i = 0; kept[i][0]; i++) {
        const char *v = record_str(r, kept[i][0]);
        if (!v || strcmp(v, kept[i][1]) != 0)
            fail_msg("%s as of the cut: \"%s\", want \"%s\"", kept[i][0], v ? v : "(none)",
                     kept[i][1]);
    }
    record_destroy(&r);
}

/* A record written, corrected, then anonymised or purged, here and at
 * a parent that received every change: no version of what retention
 * removed stays in either history, and what it keeps reads as it was. */
static void retention_history(fx_t *f, const char *action)
{
    why_t why = {""};
    bool purge = strcmp(action, "purge") == 0;
    retain(f, 1, action);
    char pdir[64] = "/tmp/lx-policy-parent-XXXXXX";
    store_t *p;
    assert_non_null(mkdtemp(pdir));
    assert_int_equal(store_create(pdir, TOWNSHIP, &why), LX_OK);
    assert_int_equal(store_open(pdir, STORE_NOSYNC, &p, &why), LX_OK);
    uint64_t upto = 0;

    record_t *r = left_behind();
    set(r, "mother_phone", "13600000000");
    set(r, "help_pairing", "王五");
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2024-01-01"));
    record_destroy(&r);
    mirror(f, p, &upto);
    r = get(f, id);
    hlc_t cut1 = record_field(r, "name")->ver.hlc;
    record_destroy(&r);
    /* Corrections put the first values into the history. */
    edit(f, id, "guardian_phone", "13900000000", "2024-02-01");
    edit(f, id, "name", "测试二", "2024-02-01");
    edit(f, id, "father_status", "at_home", "2024-02-01");
    /* Cleared by hand before retention: the marker's write clears the
     * rest, and the history of this one goes with it. */
    edit(f, id, "mother_phone", "", "2024-02-01");
    edit(f, id, "help_pairing", "", "2024-02-01");
    /* Two writes that did not see each other: conflicts, with values. */
    conflicting(f, id, "guardian_phone", "13500000000");
    conflicting(f, id, "father_status", "deceased");
    mirror(f, p, &upto);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(conflict_values(i ? p : f->s, id, "guardian_phone"), 2);
        assert_int_equal(conflict_values(i ? p : f->s, id, "father_status"), 2);
    }
    /* Before retention both histories hold the first values. */
    const char *const first[][2] = {{"name", "测试"}, {"guardian_phone", "13800000000"},
                                    {"guardian_name", "李四"}, {"father_status", "migrant_worker"},
                                    {"mother_phone", "13600000000"}, {"help_pairing", "王五"},
                                    {NULL, NULL}};
    const char *const none[] = {NULL};
    store_t *both[] = {f->s, p};
    for (int i = 0; i < 2; i++)
        check_asof(both[i], id, cut1, none, first);

    daily(f, "2026-03-01", 1); /* exits at 16 */
    policy_stats_t st = {0};
    assert_int_equal(policy_retention(f->s, "2028-03-01", &st, &why), LX_OK);
    assert_int_equal(purge ? st.purged : st.anonymised, 1);
    assert_int_equal(st.scrubbed, purge ? 2 : 1);
    mirror(f, p, &upto);
    /* The parent clears its own log on its own pass (no policy needed). */
    st = (policy_stats_t){0};
    assert_int_equal(conflict_values(p, id, "guardian_phone"), 2);
    assert_int_equal(policy_retention(p, "2028-03-01", &st, &why), LX_OK);
    assert_int_equal(st.scrubbed, purge ? 2 : 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(conflict_values(both[i], id, "guardian_phone"), 0);
        assert_int_equal(conflict_values(both[i], id, "father_status"), purge ? 0 : 2);
    }
    /* Someone enters a phone again; the next pass clears it, and its
     * history, too. */
    edit(f, id, "guardian_phone", "13700000000", "2028-03-02");
    mirror(f, p, &upto);
    r = get(f, id);
    hlc_t cut2 = record_field(r, "guardian_phone")->ver.hlc;
    record_destroy(&r);
    st = (policy_stats_t){0};
    assert_int_equal(policy_retention(f->s, "2028-03-03", &st, &why), LX_OK);
    assert_int_equal(st.changed, 1);
    mirror(f, p, &upto);

    const char *const gone_anon[] = {"name", "guardian_phone", "guardian_name",
                                     "household_address", "mother_phone", NULL};
    const char *const gone_purge[] = {"name", "guardian_phone", "guardian_name",
                                      "household_address", "mother_phone", "father_status",
                                      "mother_status", "help_pairing", NULL};
    /* help_pairing, cleared by hand: without a value now, but a field
     * anonymising keeps, history and all (reports count it). */
    const char *const kept_anon[][2] = {{"father_status", "migrant_worker"},
                                        {"mother_status", "migrant_worker"},
                                        {"help_pairing", "王五"},
                                        {"gender", "female"}, {"birth_date", "2010-03-01"},
                                        {NULL, NULL}};
    const char *const kept_purge[][2] = {{"gender", "female"}, {"birth_date", "2010-03-01"},
                                         {"village_code", "510104001001"}, {NULL, NULL}};
    const char *const phone[] = {"guardian_phone", NULL};
    const char *const nothing[][2] = {{NULL, NULL}};
    for (int i = 0; i < 2; i++) {
        check_asof(both[i], id, cut1, purge ? gone_purge : gone_anon,
                   purge ? kept_purge : kept_anon);
        check_asof(both[i], id, cut2, phone, nothing);
        r = get(f, id);
        assert_string_equal(record_str(r, "name"), purge ? "已清除" : "已匿名");
        record_destroy(&r);
    }
    store_close(&p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", pdir);
    assert_int_equal(system(cmd), 0);
}

static void test_retention_history_anonymise(void **state)
{
    retention_history(*state, "anonymise");
}

static void test_retention_history_purge(void **state) { retention_history(*state, "purge"); }

/* A child who moved out of the village left a stub there, its data in
 * the history, which no later write reaches: the village's own pass
 * removes it when retention falls due. */
static void test_retention_moved_out(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    retain(f, 1, "anonymise");
    record_t *r = left_behind();
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2024-01-01"));
    record_destroy(&r);
    daily(f, "2026-03-01", 1); /* exits at 16 */
    conflicting(f, id, "guardian_phone", "13500000000");
    r = get(f, id);
    hlc_t cut = record_field(r, "guardian_phone")->ver.hlc;
    record_destroy(&r);
    /* Moved to a village of another township, as its county would. */
    stxn_t *t;
    apply_t res;
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    field_t mv = {.name = "village_code", .val = {.kind = VAL_STR, .s = "510104002001"},
                  .ver = {.hlc = store_tick(t), .origin = COUNTY, .author = "c/local/u"}};
    assert_int_equal(store_apply(t, id, &mv, 1, COUNTY, &res, &why), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    r = get(f, id);
    assert_int_equal(r->n, 1); /* a stub */
    record_destroy(&r);
    const char *const none[] = {NULL};
    const char *const before[][2] = {{"name", "测试"}, {"guardian_phone", "13500000000"},
                                     {"father_status", "migrant_worker"}, {NULL, NULL}};
    policy_stats_t st = {0};
    assert_int_equal(policy_retention(f->s, "2028-02-29", &st, &why), LX_OK);
    assert_int_equal(st.stubs, 0);
    check_asof(f->s, id, cut, none, before);
    assert_int_equal(policy_retention(f->s, "2028-03-01", &st, &why), LX_OK);
    assert_int_equal(st.stubs, 1);
    const char *const gone[] = {"name", "guardian_phone", "guardian_name", "household_address",
                                NULL};
    const char *const kept[][2] = {{"father_status", "migrant_worker"}, {"gender", "female"},
                                   {"village_code", "510104001001"}, {NULL, NULL}};
    check_asof(f->s, id, cut, gone, kept);
    assert_int_equal(conflict_values(f->s, id, "guardian_phone"), 0);
    /* Nothing left to remove the next day... */
    st = (policy_stats_t){0};
    assert_int_equal(policy_retention(f->s, "2028-03-02", &st, &why), LX_OK);
    assert_int_equal(st.stubs, 0);
    /* ... until the policy asks for more: a purge takes what anonymising
     * kept. */
    retain(f, 2, "purge");
    assert_int_equal(policy_retention(f->s, "2028-03-03", &st, &why), LX_OK);
    assert_int_equal(st.stubs, 1);
    const char *const gone_purge[] = {"name", "guardian_phone", "father_status",
                                      "mother_status", NULL};
    const char *const kept_purge[][2] = {{"gender", "female"}, {"birth_date", "2010-03-01"},
                                         {"village_code", "510104001001"}, {NULL, NULL}};
    check_asof(f->s, id, cut, gone_purge, kept_purge);
}

/* Only retention writes a marker: typed by hand it would take the
 * record's history with it. */
static void test_marker_by_hand(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    record_t *r = child("2012-05-01");
    set(r, "name", "已匿名");
    assert_int_equal(write_on(f, r, "2024-01-01", &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "retention only"));
    record_destroy(&r);
    r = child("2012-05-01");
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2024-01-01"));
    record_destroy(&r);
    r = record_new(id);
    set(r, "name", "已清除");
    assert_int_equal(write_on(f, r, "2024-01-02", &why), LX_EINVAL);
    record_destroy(&r);
    r = get(f, id);
    assert_string_equal(record_str(r, "name"), "测试");
    record_destroy(&r);
}

/* Clearing a field in a record that holds no marker keeps its history:
 * reports as of an earlier quarter still read it. */
static void test_clear_keeps_history(void **state)
{
    fx_t *f = *state;
    record_t *r = child("2012-05-01");
    set(r, "father_status", "migrant_worker");
    char id[65];
    snprintf(id, sizeof id, "%s", add(f, r, "2024-01-01"));
    record_destroy(&r);
    r = get(f, id);
    hlc_t cut = record_field(r, "father_status")->ver.hlc;
    record_destroy(&r);
    edit(f, id, "father_status", "", "2024-02-01");
    const char *const none[] = {NULL};
    const char *const kept[][2] = {{"father_status", "migrant_worker"}, {"name", "测试"},
                                   {NULL, NULL}};
    check_asof(f->s, id, cut, none, kept);
}

/* ---- reporting, access, acknowledgements ---- */

static void test_reporting_access(void **state)
{
    fx_t *f = *state;
    why_t why = {""};
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "reporting", 1, "",
        "{\"deadline_days_after_quarter\": 20, \"levels\": {\"village\": 5}, \"refine\": [\"deadline\"]}"),
        POLICY_FROM_PARENT, &why), LX_OK);
    assert_int_equal(accept_doc(f, &f->prov, doc(PROVINCE, "access", 1, "",
        "{\"roles\": {\"education\": {\"read\": [\"*\"], \"write\": [\"school_status\"],"
        " \"masked\": [\"id_number\"]}}, \"refine\": [\"narrow\"]}"), POLICY_FROM_PARENT, &why),
        LX_OK);
    /* The city widens education (refused) and narrows its reads. */
    assert_int_equal(accept_doc(f, &f->city, doc(CITY, "access", 1, "",
        "{\"roles\": {\"education\": {\"read\": [\"name\", \"school_status\", \"id_number\"],"
        " \"write\": [\"school_status\", \"name\"]}}}"), POLICY_FROM_PARENT, &why), LX_OK);
    stxn_t *t;
    effective_t *e;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_effective(t, "2026-06-01", &e, &why), LX_OK);
    store_abort(&t);
    char d[11];
    assert_int_equal(policy_report_deadline(e, "2026Q4", d, &why), LX_OK);
    assert_string_equal(d, "2027-01-05");
    assert_int_equal(policy_report_deadline(e, "2026Q3", d, &why), LX_OK);
    assert_string_equal(d, "2026-10-05");
    assert_int_equal(policy_report_deadline(e, "2026Q5", d, &why), LX_EINVAL);
    assert_int_equal(policy_access(e, "education", "school_status"), ACCESS_READ | ACCESS_WRITE);
    assert_int_equal(policy_access(e, "education", "name"), ACCESS_READ);
    assert_int_equal(policy_access(e, "education", "id_number"), ACCESS_READ | ACCESS_MASKED);
    assert_int_equal(policy_access(e, "education", "guardian_phone"), 0);
    assert_int_equal(policy_access(e, "health", "name"), 0);
    effective_free(&e);
}

static int ack_cb(void *arg, code_t node, const policy_ver_t *v, size_t n, uint64_t when)
{
    int *seen = arg;
    if (node == TOWNSHIP) {
        assert_int_equal(n, 2);
        assert_int_equal(v[1].kind, POLICY_ALERTS);
        assert_int_equal(v[1].version, 4);
        assert_int_equal(when, 1000);
    } else {
        assert_int_equal(node, VILLAGE);
        assert_int_equal(n, 0);
    }
    (*seen)++;
    return 0;
}

static void test_acks(void **state)
{
    fx_t *f = *state;
    stxn_t *t;
    policy_ver_t v[2] = {{PROVINCE, POLICY_SCHEMA, 3}, {PROVINCE, POLICY_ALERTS, 4}};
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(policy_ack_put(t, TOWNSHIP, v, 1, 500), LX_OK);
    assert_int_equal(policy_ack_put(t, TOWNSHIP, v, 2, 1000), LX_OK); /* replaces */
    assert_int_equal(policy_ack_put(t, VILLAGE, NULL, 0, 2000), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    int seen = 0;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_ack_each(t, ack_cb, &seen), LX_OK);
    store_abort(&t);
    assert_int_equal(seen, 2);
}

/* The defaults apply with no policy, and pass the same checks. */
static void test_defaults(void **state)
{
    fx_t *f = *state;
    stxn_t *t;
    effective_t *e;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(policy_effective(t, "2026-06-01", &e, NULL), LX_OK);
    store_abort(&t);
    assert_int_equal(e->nclass, 6);
    assert_int_equal(e->nalerts, 3);
    assert_int_equal(e->deadline_days, 10);
    assert_int_equal(e->retention_years, 0);
    assert_false(e->schema_policy);
    json_t *j = effective_json(e);
    json_t *body = json_pack("{s:O}", "rules", json_object_get(json_object_get(j, "alerts"), "rules"));
    json_decref(body);
    json_decref(j);
    effective_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documents),
        cmocka_unit_test_setup_teardown(test_accept, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_schema_required, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_refinement, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_classification, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_alerts, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_retention_history_anonymise, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_retention_history_purge, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_clear_keeps_history, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_marker_by_hand, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_retention_moved_out, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_reporting_access, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_acks, setup_village, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup_village, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
