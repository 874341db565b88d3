/* A small store for the report tests (test_report, test_rflow): a
 * county's store in a temporary directory, and put() to write fields to a
 * record at a pinned HLC. Include after cmocka.h, with COUNTY defined. */
#ifndef LX_TEST_STORE_FIXTURE_H
#define LX_TEST_STORE_FIXTURE_H

typedef struct {
    char dir[64];
    store_t *s;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lx-fixture-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    why_t why = {""};
    char sub[96];
    snprintf(sub, sizeof sub, "%s/s", f->dir);
    assert_int_equal(store_create(sub, COUNTY, &why), LX_OK);
    assert_int_equal(store_open(sub, STORE_NOSYNC, &f->s, &why), LX_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    store_close(&f->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Writes "name=value" pairs (NULL-terminated) to record id, all stamped
 * with hlc; guardian_capable is a boolean and categories a ';' list. */
static void put(store_t *s, const char *id, hlc_t h, ...)
{
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    record_t *cur = NULL;
    store_get(t, id, &cur, NULL);
    field_t w[32];
    uint32_t n = 0;
    va_list ap;
    va_start(ap, h);
    for (const char *kv; (kv = va_arg(ap, const char *));) {
        const char *eq = strchr(kv, '=');
        field_t *f = &w[n++];
        memset(f, 0, sizeof *f);
        f->name = strndup(kv, (size_t)(eq - kv));
        const char *v = eq + 1;
        if (strcmp(f->name, "guardian_capable") == 0) {
            f->val.kind = VAL_BOOL;
            f->val.b = strcmp(v, "true") == 0;
        } else if (strcmp(f->name, "categories") == 0) {
            char *dup = strdup(v), *save = NULL;
            f->val.kind = VAL_LIST;
            for (char *tok = strtok_r(dup, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
                val_list_add(&f->val, tok);
            free(dup);
        } else {
            val_set_str(&f->val, v);
        }
        const field_t *old = cur ? record_field(cur, f->name) : NULL;
        f->ver = (ver_t){.hlc = h, .origin = COUNTY, .base = old ? old->ver.hlc : 0};
    }
    va_end(ap);
    /* store_apply wants the writes in name order. */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && strcmp(w[j - 1].name, w[j].name) > 0; j--) {
            field_t x = w[j];
            w[j] = w[j - 1];
            w[j - 1] = x;
        }
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_apply(t, id, w, n, 0, &res, &why), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    for (uint32_t i = 0; i < n; i++)
        field_free(&w[i]);
    record_destroy(&cur);
}

#endif
