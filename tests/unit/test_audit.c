/* Audit chains: appended entries verify; a byte flipped anywhere in an
 * entry's stored value is found at that entry; a chain received from a
 * child must continue the one held (next seq, matching hash) and lie in
 * the child's subtree; list filters by principal, record and time; and
 * an entry holds only the fields it is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/audit.h"
#include "common/store.h"

#define COUNTY 510104000000ULL
#include "store_fixture.h"

static const code_t TOWN = 510104001000ULL;
static const code_t VIL = 510104001001ULL;
static const code_t OTHER_VIL = 510104002001ULL;

static store_t *open_store(const char *dir, code_t code)
{
    store_t *s = NULL;
    why_t why = {""};
    assert_int_equal(store_create(dir, code, &why), LX_OK);
    assert_int_equal(store_open(dir, STORE_NOSYNC, &s, &why), LX_OK);
    return s;
}

/* Appends n entries: principal p<i % 3>, record r<i>, time 1000 * (i + 1). */
static void append_n(store_t *s, uint32_t n)
{
    stxn_t *t;
    why_t why = {""};
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    for (uint32_t i = 0; i < n; i++) {
        char p[16], id[16];
        snprintf(p, sizeof p, "p%u", i % 3);
        snprintf(id, sizeof id, "r%u", i);
        const char *ids[] = {id, "shared"};
        audit_entry_t e = {.time_ms = 1000 * (uint64_t)(i + 1), .principal = p,
                           .role = "education", .action = i % 2 ? "patch" : "read",
                           .ids = ids, .nids = 2, .purpose = i % 2 ? NULL : "home visit",
                           .result = "ok"};
        assert_int_equal(audit_append(t, &e, 1, &why), LX_OK);
    }
    assert_int_equal(store_commit(&t), LX_OK);
}

static int verify(store_t *s, code_t node, why_t *why)
{
    stxn_t *t;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    int rc = audit_verify(t, node, NULL, NULL, why);
    store_abort(&t);
    return rc;
}

/* Flips one bit of byte `off` of the stored value of (node, seq); a
 * negative off counts from the end. */
static void flip(store_t *s, code_t node, uint64_t seq, long off)
{
    unsigned char key[16];
    code_put_be(node, key);
    code_put_be(seq, key + 8);
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    const void *v;
    size_t n;
    assert_int_equal(store_audit_get(t, key, 16, &v, &n), LX_OK);
    unsigned char *copy = malloc(n);
    memcpy(copy, v, n);
    size_t at = off < 0 ? n - (size_t)(-off) : (size_t)off;
    assert_true(at < n);
    copy[at] ^= 0x01;
    assert_int_equal(store_audit_put(t, key, 16, copy, n), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    free(copy);
}

static void test_chain_verifies(void **state)
{
    fix_t *f = *state;
    why_t why = {""};
    assert_int_equal(verify(f->s, 0, &why), LX_OK); /* no chain at all */
    append_n(f->s, 10);
    append_n(f->s, 5);  /* a second transaction continues the chain */
    assert_int_equal(verify(f->s, 0, &why), LX_OK);
    stxn_t *t;
    uint64_t seq;
    unsigned char h[AUDIT_HASH_LEN], zero[AUDIT_HASH_LEN] = {0};
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(audit_last(t, COUNTY, &seq, h), LX_OK);
    assert_int_equal(seq, 15);
    assert_memory_not_equal(h, zero, AUDIT_HASH_LEN);
    assert_int_equal(audit_count(t), 15);
    store_abort(&t);
}

static void test_bad_entries_refused(void **state)
{
    fix_t *f = *state;
    stxn_t *t;
    why_t why = {""};
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    audit_entry_t e = {.principal = "x", .action = "read", .result = NULL};
    assert_int_equal(audit_append(t, &e, 1, &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "result"));
    char big[AUDIT_MAX_TEXT + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    e = (audit_entry_t){.principal = "x", .action = "read", .result = "ok", .purpose = big};
    assert_int_equal(audit_append(t, &e, 1, &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "purpose"));
    store_abort(&t);
}

/* A flipped bit anywhere in entry k (its bytes or its hash) is found at
 * entry k, and not before. */
static void test_flip_found_at_entry(void **state)
{
    fix_t *f = *state;
    append_n(f->s, 12);
    char want[64];
    long offsets[] = {0, 1, 5, 20, -33, -1, -16};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        uint64_t k = 3 + i;
        flip(f->s, COUNTY, k, offsets[i]);
        why_t why = {""};
        assert_int_equal(verify(f->s, 0, &why), LX_ECORRUPT);
        snprintf(want, sizeof want, "audit chain 510104000000 broken at entry %llu:",
                 (unsigned long long)k);
        if (!strstr(why.msg, want))
            fail_msg("flip at offset %ld of entry %llu: %s", offsets[i], (unsigned long long)k,
                     why.msg);
        flip(f->s, COUNTY, k, offsets[i]);  /* back as it was */
        assert_int_equal(verify(f->s, 0, &why), LX_OK);
    }
}

typedef struct {
    audit_chain_t c[8];
    int n;
} chains_t;

static int chain_cb(void *arg, const audit_chain_t *c)
{
    chains_t *x = arg;
    if (x->n < 8)
        x->c[x->n++] = *c;
    return 0;
}

typedef struct {
    uint64_t seq[64];
    size_t len[64];
    unsigned char val[64][512];
    int n;
} raws_t;

static int raw_cb(void *arg, uint64_t seq, const void *val, size_t len)
{
    raws_t *x = arg;
    assert_true(x->n < 64 && len <= 512);
    x->seq[x->n] = seq;
    x->len[x->n] = len;
    memcpy(x->val[x->n++], val, len);
    return 0;
}

static void raws_of(store_t *s, code_t node, raws_t *x)
{
    stxn_t *t;
    memset(x, 0, sizeof *x);
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(audit_raw_each(t, node, 1, raw_cb, x), LX_OK);
    store_abort(&t);
}

static int receive(store_t *s, code_t from, code_t node, const void *v, size_t n, why_t *why)
{
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    int rc = audit_receive(t, from, node, v, n, why);
    assert_int_equal(store_commit(&t), LX_OK);
    return rc;
}

/* A village's chain travels to the county: it is taken in order, a resend
 * is harmless, a gap, a rewrite, an altered entry and a foreign chain are
 * refused; and the county verifies both chains. */
static void test_receive(void **state)
{
    fix_t *f = *state;
    char vdir[96];
    snprintf(vdir, sizeof vdir, "%s/v", f->dir);
    store_t *v = open_store(vdir, VIL);
    append_n(v, 6);
    append_n(f->s, 2);
    raws_t x;
    raws_of(v, VIL, &x);
    assert_int_equal(x.n, 6);
    why_t why = {""};
    /* Entry 2 before 1: a gap. */
    assert_int_equal(receive(f->s, TOWN, VIL, x.val[1], x.len[1], &why), LX_ENOTFOUND);
    /* From a child whose subtree does not hold the village. */
    assert_int_equal(receive(f->s, 510104002000ULL, VIL, x.val[0], x.len[0], &why), LX_ESCOPE);
    /* Filed under another chain than its own. */
    assert_int_equal(receive(f->s, 510104000000ULL, OTHER_VIL, x.val[0], x.len[0], &why),
                     LX_ECORRUPT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(receive(f->s, TOWN, VIL, x.val[i], x.len[i], &why), LX_OK);
    /* A resend of what is held. */
    assert_int_equal(receive(f->s, TOWN, VIL, x.val[1], x.len[1], &why), LX_EEXIST);
    /* Entry 4 altered (a byte of its bytes, or its hash): refused. */
    unsigned char bad[512];
    memcpy(bad, x.val[3], x.len[3]);
    bad[x.len[3] - 40] ^= 1;
    assert_int_equal(receive(f->s, TOWN, VIL, bad, x.len[3], &why), LX_EINVAL);
    memcpy(bad, x.val[3], x.len[3]);
    bad[x.len[3] - 1] ^= 1;
    assert_int_equal(receive(f->s, TOWN, VIL, bad, x.len[3], &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "entry 4"));

    /* The village rewrites its history from entry 3 on (a new store whose
     * chain differs): what the county holds stands. */
    char v2dir[96];
    snprintf(v2dir, sizeof v2dir, "%s/v2", f->dir);
    store_t *v2 = open_store(v2dir, VIL);
    append_n(v2, 1);
    append_n(v2, 5);  /* other times: other bytes */
    raws_t y;
    raws_of(v2, VIL, &y);
    assert_int_equal(receive(f->s, TOWN, VIL, y.val[2], y.len[2], &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "differs"));
    /* Its entry 4 chains from its own entry 3, not the one held. */
    assert_int_equal(receive(f->s, TOWN, VIL, y.val[3], y.len[3], &why), LX_EINVAL);
    assert_non_null(strstr(why.msg, "does not continue"));

    for (int i = 3; i < 6; i++)
        assert_int_equal(receive(f->s, TOWN, VIL, x.val[i], x.len[i], &why), LX_OK);
    chains_t cs = {0};
    stxn_t *t;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(audit_verify(t, 0, chain_cb, &cs, &why), LX_OK);
    store_abort(&t);
    assert_int_equal(cs.n, 2);
    assert_int_equal(cs.c[0].node, COUNTY);
    assert_int_equal(cs.c[0].entries, 2);
    assert_int_equal(cs.c[1].node, VIL);
    assert_int_equal(cs.c[1].last_seq, 6);
    assert_int_equal(cs.c[1].bad_seq, 0);
    /* The county's copy tampered: found in the village's chain. */
    flip(f->s, VIL, 5, 7);
    cs.n = 0;
    assert_int_equal(store_begin(f->s, false, &t), LX_OK);
    assert_int_equal(audit_verify(t, 0, chain_cb, &cs, &why), LX_ECORRUPT);
    store_abort(&t);
    assert_non_null(strstr(why.msg, "audit chain 510104001001 broken at entry 5"));
    assert_int_equal(cs.c[0].bad_seq, 0);
    assert_int_equal(cs.c[1].bad_seq, 5);
    /* Verifying another township's subtree only: fine. */
    assert_int_equal(verify(f->s, 510104002000ULL, &why), LX_OK);
    assert_int_equal(verify(f->s, TOWN, &why), LX_ECORRUPT);
    store_close(&v);
    store_close(&v2);
}

/* A missing entry is named as such. */
static void test_gap_named(void **state)
{
    fix_t *f = *state;
    char vdir[96];
    snprintf(vdir, sizeof vdir, "%s/v", f->dir);
    store_t *v = open_store(vdir, VIL);
    append_n(v, 4);
    raws_t x;
    raws_of(v, VIL, &x);
    why_t why = {""};
    for (int i = 0; i < 4; i++)
        assert_int_equal(receive(f->s, TOWN, VIL, x.val[i], x.len[i], &why), LX_OK);
    /* Entry 4's bytes stored again under seq 5: they name another
     * position, so they cannot pass for the entry after 4. */
    unsigned char k5[16];
    code_put_be(VIL, k5);
    code_put_be(5, k5 + 8);
    stxn_t *t;
    assert_int_equal(store_begin(f->s, true, &t), LX_OK);
    assert_int_equal(store_audit_put(t, k5, 16, x.val[3], x.len[3]), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_int_equal(verify(f->s, VIL, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "entry 5: undecodable: names another position"));
    store_close(&v);
}

typedef struct {
    char lines[32][600];
    int n;
} listed_t;

static int list_cb(void *arg, const audit_rec_t *r)
{
    listed_t *x = arg;
    char c[CODE_STRLEN + 1];
    int k = snprintf(x->lines[x->n], sizeof x->lines[0], "%s/%llu %llu %s %s %s [",
                     code_fmt(r->node, c), (unsigned long long)r->seq,
                     (unsigned long long)r->e.time_ms, r->e.principal, r->e.role, r->e.action);
    for (uint32_t i = 0; i < r->e.nids; i++)
        k += snprintf(x->lines[x->n] + k, sizeof x->lines[0] - (size_t)k, "%s%s", i ? " " : "",
                      r->e.ids[i]);
    snprintf(x->lines[x->n] + k, sizeof x->lines[0] - (size_t)k, "] %s %s",
             r->e.purpose ? r->e.purpose : "-", r->e.result);
    x->n++;
    return 0;
}

static int list(store_t *s, const audit_filter_t *fl, listed_t *x)
{
    stxn_t *t;
    why_t why = {""};
    memset(x, 0, sizeof *x);
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(audit_list(t, fl, list_cb, x, &why), LX_OK);
    store_abort(&t);
    return x->n;
}

static void test_list_filters(void **state)
{
    fix_t *f = *state;
    append_n(f->s, 9);
    listed_t x;
    audit_filter_t fl = {0};
    assert_int_equal(list(f->s, &fl, &x), 9);
    /* Exactly the given fields, nothing else. */
    assert_string_equal(x.lines[0], "510104000000/1 1000 p0 education read [r0 shared] home visit ok");
    assert_string_equal(x.lines[1], "510104000000/2 2000 p1 education patch [r1 shared] - ok");
    fl.principal = "p1";
    assert_int_equal(list(f->s, &fl, &x), 3);
    fl.principal = NULL;
    fl.record = "r4";
    assert_int_equal(list(f->s, &fl, &x), 1);
    assert_string_equal(x.lines[0], "510104000000/5 5000 p1 education read [r4 shared] home visit ok");
    fl.record = "shared";
    fl.since_ms = 3000;
    fl.until_ms = 6000;
    assert_int_equal(list(f->s, &fl, &x), 3);
    fl = (audit_filter_t){.node = TOWN};
    assert_int_equal(list(f->s, &fl, &x), 0);
}

int main(void)
{
    (void)put;  /* the fixture's record writer: not needed here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_entries_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_found_at_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
