/* Store and merge: the properties the design rests on. Random sets of
 * field writes applied in random orders, in random groupings and with
 * duplicates must give byte-identical records, identical duplicate flags
 * and equal digests; the indexes must follow moves; nothing that changes
 * nothing is logged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "common/bloom.h"
#include "common/idnmap.h"
#include "common/merge.h"
#include "common/store.h"
#include "xorshift.h"

static const code_t NODE = 510104000000ULL;
static const code_t VIL[] = {510104001001ULL, 510104001002ULL, 510104002001ULL,
                             510105001001ULL /* outside the node */};
static const code_t ORIGINS[] = {510104001001ULL, 510104000000ULL, 510104002001ULL};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* splitmix64: deterministic by seed */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static char *tmpdir(void)
{
    char *d = strdup("/tmp/lx-test-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmrf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static store_t *open_new(const char *dir, code_t code)
{
    store_t *s = NULL;
    why_t why = {""};
    assert_int_equal(store_create(dir, code, &why), LX_OK);
    assert_int_equal(store_open(dir, STORE_NOSYNC, &s, &why), LX_OK);
    return s;
}

/* A random write to one of a few fields of one record. */
typedef struct {
    char id[40];
    field_t f;
} wr_t;

static void make_write(wr_t *w, int iter, uint64_t hbase)
{
    static const char *names[] = {"village_code", "id_number", "name",
                                  "risk_level", "categories", "guardian_capable"};
    snprintf(w->id, sizeof w->id, "r%d-%d", iter, (int)(rnd() % 3));
    const char *name = names[rnd() % 6];
    char buf[64];
    val_t v = {0};
    if (strcmp(name, "village_code") == 0) {
        /* Moves stay inside the node: a move out leaves a stub, and the
         * way back (the full record) is the protocol's job, tested there. */
        code_fmt(VIL[rnd() % 3], buf);
        val_set_str(&v, buf);
    } else if (strcmp(name, "id_number") == 0) {
        snprintf(buf, sizeof buf, "51010420100101%04d", (int)(rnd() % 3));
        val_set_str(&v, buf);
    } else if (strcmp(name, "categories") == 0) {
        v.kind = VAL_LIST;
        val_list_add(&v, "left_behind");
        if (rnd() % 2)
            val_list_add(&v, "orphan");
    } else if (strcmp(name, "guardian_capable") == 0) {
        v.kind = VAL_BOOL;
        v.b = rnd() % 2;
    } else if (rnd() % 5 == 0) {
        v.kind = VAL_NIL;
    } else {
        snprintf(buf, sizeof buf, "v%d", (int)(rnd() % 4));
        val_set_str(&v, buf);
    }
    /* Few distinct timestamps, so ties on hlc (broken by origin) and even
     * equal versions carrying different values occur. */
    ver_t ver = {.hlc = hbase + rnd() % 6, .origin = ORIGINS[rnd() % 3],
                 .base = rnd() % 3 ? hbase + rnd() % 6 : 0,
                 .author = rnd() % 2 ? "510104000000/education/li" : "510104001001/local/wang"};
    assert_int_equal(field_init(&w->f, name, &v, &ver), LX_OK);
    val_free(&v);
}

static int cmp_field_name(const void *a, const void *b)
{
    return strcmp(((const field_t *)a)->name, ((const field_t *)b)->name);
}

/* Applies writes (indexes into ws) in groups of 1-3 writes of one record. */
static void apply_all(store_t *s, wr_t *ws, const int *order, int n)
{
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    int i = 0;
    while (i < n) {
        field_t group[3];
        int g = 0;
        const char *id = ws[order[i]].id;
        /* A group holds distinct field names of one record. */
        while (i < n && g < 3 && strcmp(ws[order[i]].id, id) == 0) {
            bool dup = false;
            for (int k = 0; k < g; k++)
                dup |= strcmp(group[k].name, ws[order[i]].f.name) == 0;
            if (dup)
                break;
            group[g++] = ws[order[i++]].f;
            if (rnd() % 2)
                break;
        }
        apply_t res;
        why_t why = {""};
        if (rnd() % 2) {
            assert_int_equal(store_apply(t, id, group, (uint32_t)g, 0, &res, &why), LX_OK);
            continue;
        }
        /* Half the groups come the way of a batch: encoded, read back by
         * change_read, applied with the encoded writes alongside (which a
         * new record is stored as); the records must not tell. */
        qsort(group, (size_t)g, sizeof *group, cmp_field_name);
        change_t c = {.id = (char *)id, .n = (uint32_t)g, .w = group};
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        assert_int_equal(change_pack(&c, &pk), 0);
        arena_t *a = arena_new(sb.size);
        mp_rd_t rd = {(const unsigned char *)sb.data, (const unsigned char *)sb.data + sb.size,
                      false};
        change_t d;
        assert_true(change_read(&rd, a, &d));
        assert_non_null(d.packed);
        apply_opts_t o = {.packed = d.packed, .packedlen = d.packedlen};
        assert_int_equal(store_apply_ex(t, d.id, d.w, d.n, &o, &res, &why), LX_OK);
        arena_destroy(&a);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_int_equal(store_commit(&t), LX_OK);
}

static void pack_record(store_t *s, const char *id, msgpack_sbuffer *sb, bool *found)
{
    stxn_t *t;
    record_t *r = NULL;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    int rc = store_get(t, id, &r, NULL);
    store_abort(&t);
    *found = rc == LX_OK;
    if (!*found) {
        assert_int_equal(rc, LX_ENOTFOUND);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    record_pack(r, &pk);
    record_destroy(&r);
}

static void digest_of(store_t *s, code_t under, unsigned char d[32])
{
    stxn_t *t;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_digest(t, under, d), LX_OK);
    store_abort(&t);
}

typedef struct {
    char buf[1 << 16];
    size_t len;
} text_t;

static int dup_text(void *arg, const char *idn, const char *id)
{
    text_t *x = arg;
    x->len += (size_t)snprintf(x->buf + x->len, sizeof x->buf - x->len, "%s %s\n", idn, id);
    return 0;
}

static int rec_text(void *arg, const record_t *r)
{
    text_t *x = arg;
    x->len += (size_t)snprintf(x->buf + x->len, sizeof x->buf - x->len, "%s\n", r->id);
    return 0;
}

static void listing(store_t *s, code_t under, text_t *recs, text_t *dups)
{
    stxn_t *t;
    recs->len = dups->len = 0;
    recs->buf[0] = dups->buf[0] = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_record(t, under, rec_text, recs), LX_OK);
    assert_int_equal(store_each_duplicate(t, dup_text, dups), LX_OK);
    store_abort(&t);
}

static void shuffle(int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint64_t)(i + 1)), x = a[i];
        a[i] = a[j];
        a[j] = x;
    }
}

/* The property: thousands of random sets, three delivery schedules. */
static void test_merge_converges(void **state)
{
    (void)state;
    char *da = tmpdir(), *db = tmpdir(), *dc = tmpdir();
    char pa[300], pb[300], pc[300];
    snprintf(pa, sizeof pa, "%s/s", da);
    snprintf(pb, sizeof pb, "%s/s", db);
    snprintf(pc, sizeof pc, "%s/s", dc);
    store_t *a = open_new(pa, NODE), *b = open_new(pb, NODE), *c = open_new(pc, NODE);
    rng_state = 42;
    const int sets = 2000;
    const uint64_t hbase = hlc_make(hlc_wall_ms() - 100000, 0);
    for (int iter = 0; iter < sets; iter++) {
        int n = 2 + (int)(rnd() % 14);
        wr_t ws[16];
        int order_a[16], order_b[32], order_c[16];
        for (int i = 0; i < n; i++) {
            make_write(&ws[i], iter, hbase);
            order_a[i] = order_c[i] = i;
            order_b[i] = i;
        }
        /* b sees every write, some twice; c in reverse. */
        int nb = n;
        for (int i = 0; i < n; i++)
            if (rnd() % 3 == 0)
                order_b[nb++] = (int)(rnd() % (uint64_t)n);
        shuffle(order_b, nb);
        for (int i = 0; i < n / 2; i++) {
            int x = order_c[i];
            order_c[i] = order_c[n - 1 - i];
            order_c[n - 1 - i] = x;
        }
        apply_all(a, ws, order_a, n);
        apply_all(b, ws, order_b, nb);
        apply_all(c, ws, order_c, n);
        for (int k = 0; k < 3; k++) {
            char id[40];
            snprintf(id, sizeof id, "r%d-%d", iter, k);
            msgpack_sbuffer sa, sb, sc;
            msgpack_sbuffer_init(&sa);
            msgpack_sbuffer_init(&sb);
            msgpack_sbuffer_init(&sc);
            bool fa, fb, fc;
            pack_record(a, id, &sa, &fa);
            pack_record(b, id, &sb, &fb);
            pack_record(c, id, &sc, &fc);
            assert_int_equal(fa, fb);
            assert_int_equal(fa, fc);
            assert_int_equal(sa.size, sb.size);
            assert_int_equal(sa.size, sc.size);
            if (sa.size) {
                assert_memory_equal(sa.data, sb.data, sa.size);
                assert_memory_equal(sa.data, sc.data, sa.size);
            }
            msgpack_sbuffer_destroy(&sa);
            msgpack_sbuffer_destroy(&sb);
            msgpack_sbuffer_destroy(&sc);
        }
        for (int i = 0; i < n; i++)
            field_free(&ws[i].f);
        if (iter % 250 == 249) {
            unsigned char x[32], y[32], z[32];
            digest_of(a, 0, x);
            digest_of(b, 0, y);
            digest_of(c, 0, z);
            assert_memory_equal(x, y, 32);
            assert_memory_equal(x, z, 32);
        }
    }
    /* Per-unit digests agree too, and so do indexes and duplicate flags. */
    const code_t units[] = {0, 510104001000ULL, 510104002000ULL, 510104001001ULL};
    for (size_t u = 0; u < 4; u++) {
        unsigned char x[32], y[32];
        digest_of(a, units[u], x);
        digest_of(b, units[u], y);
        assert_memory_equal(x, y, 32);
    }
    /* The incrementally kept sums equal sums recomputed from scratch. */
    stxn_t *vt;
    why_t why = {""};
    assert_int_equal(store_begin(a, false, &vt), LX_OK);
    assert_int_equal(store_verify(vt, &why), LX_OK);
    store_abort(&vt);
    assert_int_equal(store_begin(b, true, &vt), LX_OK);
    assert_int_equal(store_verify(vt, &why), LX_OK);
    store_abort(&vt);
    static text_t ra, rb, xa, xb;
    listing(a, 0, &ra, &xa);
    listing(b, 0, &rb, &xb);
    assert_true(ra.len > 0);
    assert_true(xa.len > 0);
    assert_string_equal(ra.buf, rb.buf);
    assert_string_equal(xa.buf, xb.buf);
    store_close(&a);
    store_close(&b);
    store_close(&c);
    rmrf(da);
    rmrf(db);
    rmrf(dc);
    free(da);
    free(db);
    free(dc);
}

static field_t fw(const char *name, const char *value, hlc_t hlc, code_t origin, hlc_t base)
{
    field_t f;
    val_t v = {0};
    if (value)
        val_set_str(&v, value);
    ver_t ver = {.hlc = hlc, .origin = origin, .base = base, .author = "t/local/u"};
    assert_int_equal(field_init(&f, name, &v, &ver), LX_OK);
    val_free(&v);
    return f;
}

static apply_t apply1(store_t *s, const char *id, field_t *f, uint32_t n, code_t from, int want)
{
    stxn_t *t;
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    assert_int_equal(store_apply(t, id, f, n, from, &res, &why), want);
    assert_int_equal(store_commit(&t), LX_OK);
    return res;
}

static uint64_t count_under(store_t *s, code_t under)
{
    text_t *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
    listing(s, under, x, y);
    uint64_t n = 0;
    for (size_t i = 0; i < x->len; i++)
        n += x->buf[i] == '\n';
    free(x);
    free(y);
    return n;
}

static void test_log_indexes_moves(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
    field_t f[2] = {fw("name", "a", h, VIL[0], 0), fw("village_code", "510104001001", h, VIL[0], 0)};
    apply_t r = apply1(s, "x1", f, 2, 0, LX_OK);
    assert_true(r.created);
    assert_int_equal(r.changed, 2);
    assert_int_equal(r.seq, 1);
    /* The same writes again change nothing and are not logged. */
    r = apply1(s, "x1", f, 2, VIL[0], LX_OK);
    assert_int_equal(r.changed, 0);
    assert_int_equal(r.seq, 0);
    /* An older write loses and is not logged either. */
    field_t old = fw("name", "old", h - 5, VIL[0], 0);
    r = apply1(s, "x1", &old, 1, 0, LX_OK);
    assert_int_equal(r.changed, 0);
    assert_int_equal(count_under(s, VIL[0]), 1);
    /* Move within the node: the village index follows. */
    field_t mv = fw("village_code", "510104002001", h + 10, NODE, h);
    r = apply1(s, "x1", &mv, 1, 0, LX_OK);
    assert_int_equal(r.seq, 2);
    assert_int_equal(count_under(s, VIL[0]), 0);
    assert_int_equal(count_under(s, VIL[2]), 1);
    assert_int_equal(count_under(s, 0), 1);
    /* Move out of the node: no longer live here, the digest is empty. */
    unsigned char empty[32], dg[32];
    char *d2 = tmpdir();
    char p2[300];
    snprintf(p2, sizeof p2, "%s/s", d2);
    store_t *e = open_new(p2, NODE);
    digest_of(e, 0, empty);
    field_t out = fw("village_code", "510105001001", h + 20, NODE, h + 10);
    r = apply1(s, "x1", &out, 1, 0, LX_OK);
    assert_int_equal(count_under(s, 0), 0);
    /* What stays is a moved-out stub: the village, nothing personal. */
    {
        stxn_t *g;
        record_t *stub;
        assert_int_equal(store_begin(s, false, &g), LX_OK);
        assert_int_equal(store_get(g, "x1", &stub, NULL), LX_OK);
        store_abort(&g);
        assert_int_equal(stub->n, 1);
        assert_string_equal(record_str(stub, "village_code"), "510105001001");
        assert_null(record_field(stub, "name"));
        record_destroy(&stub);
    }
    digest_of(s, 0, dg);
    assert_memory_equal(dg, empty, 32);
    /* The log holds exactly the three changes that won. */
    stxn_t *t;
    store_stats_t st;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_stats(t, &st), LX_OK);
    store_abort(&t);
    assert_int_equal(st.last_seq, 3);
    assert_int_equal(st.records, 0);
    /* A remote write far ahead of the clock is refused whole. */
    field_t fut[2] = {fw("name", "z", hlc_make(hlc_wall_ms() + 3600000, 0), VIL[0], 0),
                      fw("risk_level", "high", h + 30, VIL[0], 0)};
    r = apply1(s, "x1", fut, 2, VIL[0], LX_ESKEW);
    assert_int_equal(r.changed, 0);
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_stats(t, &st), LX_OK);
    store_abort(&t);
    assert_int_equal(st.last_seq, 3);
    for (int i = 0; i < 2; i++) {
        field_free(&f[i]);
        field_free(&fut[i]);
    }
    field_free(&old);
    field_free(&mv);
    field_free(&out);
    store_close(&s);
    store_close(&e);
    rmrf(d);
    rmrf(d2);
    free(d);
    free(d2);
}

typedef struct {
    int n;
    char field[32];
    char kept[32], lost[32];
} conf_seen_t;

static int conf_cb(void *arg, const conflict_t *c)
{
    conf_seen_t *x = arg;
    x->n++;
    snprintf(x->field, sizeof x->field, "%s", c->kept->name);
    snprintf(x->kept, sizeof x->kept, "%s", c->kept->val.s);
    snprintf(x->lost, sizeof x->lost, "%s", c->lost->val.s);
    return 0;
}

/* A village and its county edit one field concurrently: whichever order,
 * both stores keep the same value and each logs the conflict once; a
 * sequential edit is no conflict. */
static void test_conflicts(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        char *d = tmpdir();
        char p[300];
        snprintf(p, sizeof p, "%s/s", d);
        store_t *s = open_new(p, NODE);
        hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
        field_t base[2] = {fw("school_status", "enrolled", h, VIL[0], 0),
                           fw("village_code", "510104001001", h, VIL[0], 0)};
        apply1(s, "c1", base, 2, 0, LX_OK);
        field_t seq = fw("school_status", "boarding", h + 1, VIL[0], h);
        field_t vil = fw("school_status", "dropped_out", h + 2, VIL[0], h + 1);
        field_t cty = fw("school_status", "enrolled_again", h + 3, NODE, h + 1);
        apply1(s, "c1", &seq, 1, 0, LX_OK);
        apply1(s, "c1", order ? &cty : &vil, 1, 0, LX_OK);
        apply1(s, "c1", order ? &vil : &cty, 1, 0, LX_OK);
        conf_seen_t x = {0};
        stxn_t *t;
        record_t *r;
        assert_int_equal(store_begin(s, false, &t), LX_OK);
        assert_int_equal(store_each_conflict(t, conf_cb, &x), LX_OK);
        assert_int_equal(store_get(t, "c1", &r, NULL), LX_OK);
        store_abort(&t);
        assert_int_equal(x.n, 1);
        assert_string_equal(x.field, "school_status");
        assert_string_equal(x.kept, "enrolled_again");
        assert_string_equal(x.lost, "dropped_out");
        assert_string_equal(record_str(r, "school_status"), "enrolled_again");
        record_destroy(&r);
        field_free(&base[0]);
        field_free(&base[1]);
        field_free(&seq);
        field_free(&vil);
        field_free(&cty);
        store_close(&s);
        rmrf(d);
        free(d);
    }
}

static int dup_count(void *arg, const char *idn, const char *id)
{
    (void)idn;
    (void)id;
    (*(int *)arg)++;
    return 0;
}

static int dup_count_holder(void *arg, const char *id)
{
    (void)id;
    (*(int *)arg)++;
    return 0;
}

static void test_duplicates(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
    const char *idn = "510104201001011234";
    field_t a[2] = {fw("id_number", idn, h, VIL[0], 0), fw("village_code", "510104001001", h, VIL[0], 0)};
    field_t b[2] = {fw("id_number", idn, h + 1, VIL[2], 0), fw("village_code", "510104002001", h + 1, VIL[2], 0)};
    apply1(s, "d1", a, 2, 0, LX_OK);
    int n = 0;
    stxn_t *t;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_duplicate(t, dup_count, &n), LX_OK);
    store_abort(&t);
    assert_int_equal(n, 0);
    apply1(s, "d2", b, 2, 0, LX_OK);
    n = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_duplicate(t, dup_count, &n), LX_OK);
    char ids[4][65];
    uint32_t found;
    assert_int_equal(store_find_idnum(t, idn, ids, 4, &found), LX_OK);
    store_abort(&t);
    assert_int_equal(n, 2);
    assert_int_equal(found, 2);
    /* Correcting one number clears both flags. */
    field_t fix = fw("id_number", "510104201001015678", h + 2, VIL[2], h + 1);
    apply1(s, "d2", &fix, 1, 0, LX_OK);
    n = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_duplicate(t, dup_count, &n), LX_OK);
    store_abort(&t);
    assert_int_equal(n, 0);
    for (int i = 0; i < 2; i++) {
        field_free(&a[i]);
        field_free(&b[i]);
    }
    field_free(&fix);
    store_close(&s);
    rmrf(d);
    free(d);
}

/* The HLC continues across transactions and processes' reopenings. */
static void test_clock_persists(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    hlc_t h1 = store_tick(t);
    assert_int_equal(store_commit(&t), LX_OK);
    store_close(&s);
    why_t why;
    assert_int_equal(store_open(p, 0, &s, &why), LX_OK);
    assert_int_equal(store_code(s), NODE);
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    hlc_t h2 = store_tick(t);
    store_abort(&t);
    assert_true(h2 > h1);
    /* A second create over the same directory is refused. */
    assert_int_equal(store_create(p, NODE, &why), LX_EEXIST);
    store_close(&s);
    rmrf(d);
    free(d);
}

/* Whether the file at path holds the bytes needle. */
static bool file_holds(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* store_backup: a copy that opens as the same store (digest, records),
 * mode 0600, refused over an existing one, taken while a write
 * transaction is open (holding the snapshot before it), and without the
 * bytes of values the store no longer holds, which its own file keeps in
 * free pages. */
static void test_backup(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300], b[300], path[400];
    snprintf(p, sizeof p, "%s/s", d);
    snprintf(b, sizeof b, "%s/b", d);
    store_t *s = open_new(p, NODE);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
    for (int i = 0; i < 300; i++) {
        char id[32], name[32];
        snprintf(id, sizeof id, "v%d", i);
        snprintf(name, sizeof name, "child-%d", i);
        field_t f[2] = {fw("name", name, h, VIL[0], 0), fw("village_code", "510104001001", h, VIL[0], 0)};
        apply1(s, id, f, 2, 0, LX_OK);
        field_free(&f[0]);
        field_free(&f[1]);
    }
    /* A value written, then removed (a blob stands for any value). */
    static const char secret[] = "REMOVED-VALUE-7f3a9c";
    stxn_t *t;
    char big[3000];
    for (size_t i = 0; i + sizeof secret <= sizeof big; i += sizeof secret - 1)
        memcpy(big + i, secret, sizeof secret - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    assert_int_equal(store_blob_put(t, "gone", big, sizeof big), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    assert_int_equal(store_blob_del(t, "gone"), LX_OK);
    assert_int_equal(store_commit(&t), LX_OK);
    snprintf(path, sizeof path, "%s/data.mdb", p);
    assert_true(file_holds(path, secret)); /* what the copy must leave behind */

    unsigned char want[STORE_DIGEST_LEN], got[STORE_DIGEST_LEN];
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_digest(t, 0, want), LX_OK);
    store_abort(&t);
    /* Taken while a writer holds an open transaction with more. */
    stxn_t *w;
    assert_int_equal(store_begin(s, true, &w), LX_OK);
    assert_int_equal(store_blob_put(w, "later", "x", 1), LX_OK);
    assert_int_equal(mkdir(b, 0700), 0);
    why_t why = {""};
    assert_int_equal(store_backup(s, b, &why), LX_OK);
    assert_int_equal(store_commit(&w), LX_OK);
    assert_int_equal(store_backup(s, b, &why), LX_EEXIST);

    snprintf(path, sizeof path, "%s/data.mdb", b);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(file_holds(path, secret));
    snprintf(path, sizeof path, "%s/data.mdb.part", b);
    assert_int_not_equal(access(path, F_OK), 0);

    store_t *c;
    assert_int_equal(store_open(b, STORE_RDONLY, &c, &why), LX_OK);
    assert_int_equal(store_code(c), NODE);
    assert_int_equal(store_begin(c, false, &t), LX_OK);
    assert_int_equal(store_digest(t, 0, got), LX_OK);
    assert_memory_equal(got, want, sizeof want);
    store_stats_t ss = {0};
    store_stats(t, &ss);
    assert_int_equal(ss.records, 300);
    void *blob = NULL;
    size_t blen = 0;
    assert_int_equal(store_blob_get(t, "later", &blob, &blen), LX_ENOTFOUND);
    store_abort(&t);
    store_close(&c);

    /* Another backup's part file, or a link in its place: refused, and
     * neither the part file nor the link's target written or removed. */
    char b2[300], target[400];
    snprintf(b2, sizeof b2, "%s/b2", d);
    assert_int_equal(mkdir(b2, 0700), 0);
    snprintf(path, sizeof path, "%s/data.mdb.part", b2);
    FILE *pf = fopen(path, "w");
    assert_non_null(pf);
    fputs("another", pf);
    fclose(pf);
    why.msg[0] = '\0';
    assert_int_equal(store_backup(s, b2, &why), LX_EEXIST);
    assert_non_null(strstr(why.msg, "data.mdb.part"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 7);
    assert_int_equal(unlink(path), 0);
    snprintf(target, sizeof target, "%s/target", d);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(store_backup(s, b2, &why), LX_EEXIST);
    assert_int_not_equal(access(target, F_OK), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(store_backup(s, b2, &why), LX_OK);

    /* Into a directory that is not there: refused, nothing left behind. */
    snprintf(path, sizeof path, "%s/none/deeper", d);
    assert_int_equal(store_backup(s, path, &why), LX_EIO);
    assert_non_null(strstr(why.msg, "none/deeper"));
    store_close(&s);
    rmrf(d);
    free(d);
}

/* store_verify notices a stored digest sum that no longer matches. */
static void test_verify_detects_damage(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
    field_t f[2] = {fw("name", "a", h, VIL[0], 0), fw("village_code", "510104001001", h, VIL[0], 0)};
    apply1(s, "v1", f, 2, 0, LX_OK);
    stxn_t *t;
    why_t why = {""};
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_verify(t, &why), LX_OK);
    store_abort(&t);
    store_close(&s);
    /* Flip one byte of the village's sum behind the store's back. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, p, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "vdig", 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
    unsigned char val[40];
    memcpy(val, v.mv_data, 40);
    val[20] ^= 1;
    v.mv_data = val;
    assert_int_equal(mdb_cursor_put(c, &k, &v, MDB_CURRENT), 0);
    mdb_cursor_close(c);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(store_open(p, 0, &s, &why), LX_OK);
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_verify(t, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "510104001001"));
    store_abort(&t);
    store_close(&s);
    field_free(&f[0]);
    field_free(&f[1]);
    rmrf(d);
    free(d);
}

/* Records as they stood at a cut: later values replaced by the ones kept
 * in the history, a record that moved away since counted where it was,
 * one created since left out. */
typedef struct {
    int n;
    char ids[8][16], risk[8][16], vil[8][16];
} asof_t;

static int asof_cb(void *arg, const record_t *r)
{
    asof_t *a = arg;
    assert_true(a->n < 8);
    const char *rk = record_str(r, "risk_level"), *v = record_str(r, "village_code");
    snprintf(a->ids[a->n], 16, "%s", r->id);
    snprintf(a->risk[a->n], 16, "%s", rk ? rk : "-");
    snprintf(a->vil[a->n], 16, "%s", v ? v : "-");
    a->n++;
    return 0;
}

static asof_t asof(store_t *s, code_t under, uint64_t cut_ms)
{
    asof_t a = {0};
    stxn_t *t;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_record_asof(t, under, hlc_make(cut_ms, 0), asof_cb, &a), LX_OK);
    store_abort(&t);
    return a;
}

static void test_asof(void **state)
{
    (void)state;
    char *dir = tmpdir();
    store_t *s = open_new(dir, NODE);
    char v0[16], v1[16], out[16];
    code_fmt(VIL[0], v0);
    code_fmt(VIL[1], v1);
    code_fmt(VIL[3], out);
    field_t a[3] = {fw("name", "A", hlc_make(1000, 0), VIL[0], 0),
                    fw("risk_level", "low", hlc_make(1000, 0), VIL[0], 0),
                    fw("village_code", v0, hlc_make(1000, 0), VIL[0], 0)};
    apply1(s, "a", a, 3, 0, LX_OK);
    field_t hi = fw("risk_level", "high", hlc_make(3000, 0), NODE, hlc_make(1000, 0));
    apply1(s, "a", &hi, 1, 0, LX_OK);
    field_t b[2] = {fw("risk_level", "medium", hlc_make(3500, 0), VIL[1], 0),
                    fw("village_code", v1, hlc_make(3500, 0), VIL[1], 0)};
    apply1(s, "b", b, 2, 0, LX_OK);
    field_t mv = fw("village_code", out, hlc_make(4000, 0), NODE, hlc_make(1000, 0));
    apply1(s, "a", &mv, 1, 0, LX_OK);

    asof_t x = asof(s, 0, 2000);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.ids[0], "a");
    assert_string_equal(x.risk[0], "low");
    assert_string_equal(x.vil[0], v0);
    x = asof(s, VIL[0], 3200);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.risk[0], "high");
    x = asof(s, 0, 3700);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.ids[1], "b");
    x = asof(s, 0, 5000);  /* a has moved away */
    assert_int_equal(x.n, 1);
    assert_string_equal(x.ids[0], "b");
    x = asof(s, 0, 500);   /* before anything */
    assert_int_equal(x.n, 0);

    for (int i = 0; i < 3; i++)
        field_free(&a[i]);
    field_free(&b[0]);
    field_free(&b[1]);
    field_free(&hi);
    field_free(&mv);
    store_close(&s);
    rmrf(dir);
    free(dir);
}


/* ---- the ID-number index with changes pending ---- */

static void test_idnmap(void **state)
{
    (void)state;
    idnmap_t *m = idnmap_new();
    assert_non_null(m);
    char id[16];
    /* Enough to grow the tables and the string pool several times. */
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "r%d", i);
        char num[8];
        snprintf(num, sizeof num, "n%d", i % 7);
        assert_int_equal(idnmap_set(m, id, i % 2 ? "old" : "", num), LX_OK);
    }
    assert_int_equal(idnmap_count(m), 5000);
    idnmap_ent_t e;
    assert_true(idnmap_get(m, "r4999", &e));
    assert_string_equal(e.id, "r4999");
    assert_string_equal(e.old, "old");
    assert_string_equal(e.now, "n1");
    idnmap_at(m, 17, &e);  /* in the order entered */
    assert_string_equal(e.id, "r17");
    assert_string_equal(e.old, "old");
    assert_string_equal(e.now, "n3");
    /* A second set moves the number and keeps the first `old`, whether
     * the new number is as long as the last or longer. */
    assert_int_equal(idnmap_set_ent(m, "r4999", "other", "n9", &e), LX_OK);
    assert_string_equal(e.old, "old");
    assert_string_equal(e.now, "n9");
    assert_int_equal(idnmap_set(m, "r4998", "other", "n1234567890"), LX_OK);
    assert_true(idnmap_get(m, "r4998", &e));
    assert_string_equal(e.id, "r4998");
    assert_string_equal(e.old, "");
    assert_string_equal(e.now, "n1234567890");
    assert_false(idnmap_get(m, "r5000", NULL));
    /* An id known to be new goes in without a search, and is found like
     * any other by id and by number. */
    assert_int_equal(idnmap_add_ent(m, "r5000", "", "n9", &e), LX_OK);
    assert_string_equal(e.id, "r5000");
    assert_true(idnmap_get(m, "r5000", &e));
    assert_string_equal(e.now, "n9");
    assert_int_equal(idnmap_count(m), 5001);
    idnmap_pop(m);
    assert_false(idnmap_get(m, "r5000", NULL));
    int n = 0;
    assert_int_equal(idnmap_each_holder(m, "n1", dup_count_holder, &n), 0);
    assert_int_equal(n, 714); /* i % 7 == 1 below 5000, less r4999 */
    n = 0;
    assert_int_equal(idnmap_each_holder(m, "n9", dup_count_holder, &n), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(idnmap_each_holder(m, "n1234567890", dup_count_holder, &n), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(idnmap_each_holder(m, "n0", dup_count_holder, &n), 0);
    assert_int_equal(n, 714); /* i % 7 == 0 below 5000, less r4998 */
    /* Cleared: nothing held. */
    assert_int_equal(idnmap_set(m, "r4999", NULL, ""), LX_OK);
    n = 0;
    assert_int_equal(idnmap_each_holder(m, "n9", dup_count_holder, &n), 0);
    assert_int_equal(n, 0);
    char big[80];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(idnmap_set(m, big, "", "n1"), LX_EINVAL);
    assert_int_equal(idnmap_set(m, "r1", "", big), LX_EINVAL);
    /* Popped: the last entry (r4999) is gone from both lookups. */
    assert_int_equal(idnmap_set(m, "r4999", NULL, "n3"), LX_OK);
    int n3 = 0;
    assert_int_equal(idnmap_each_holder(m, "n3", dup_count_holder, &n3), 0);
    idnmap_pop(m);
    assert_int_equal(idnmap_count(m), 4999);
    assert_false(idnmap_get(m, "r4999", NULL));
    assert_true(idnmap_get(m, "r4998", &e));
    assert_string_equal(e.now, "n1234567890");
    n = 0;
    assert_int_equal(idnmap_each_holder(m, "n3", dup_count_holder, &n), 0);
    assert_int_equal(n, n3 - 1);
    /* Entries made after a pop are whole. */
    assert_int_equal(idnmap_set(m, "r9000", "a", "b"), LX_OK);
    assert_true(idnmap_get(m, "r9000", &e));
    assert_string_equal(e.old, "a");
    assert_string_equal(e.now, "b");
    assert_true(idnmap_get(m, "r4998", &e));
    assert_string_equal(e.now, "n1234567890");
    idnmap_clear(m);
    assert_int_equal(idnmap_count(m), 0);
    assert_false(idnmap_get(m, "r1", NULL));
    /* Kept memory serves again. */
    assert_int_equal(idnmap_set(m, "r1", "", "n1"), LX_OK);
    assert_true(idnmap_get(m, "r1", &e));
    assert_string_equal(e.now, "n1");
    idnmap_release(m);
    assert_int_equal(idnmap_count(m), 0);
    assert_false(idnmap_get(m, "r1", NULL));
    idnmap_destroy(&m);
    idnmap_destroy(&m);
}

static const char *const POOL[] = {"510104201001010001", "510104201001010002",
                                   "510104201001010003", "510104201001010004"};
#define NPOOL 4
#define NREC 6

typedef struct {
    char ids[NPOOL][NREC + 1][16];
    int n[NPOOL];
} holders_t;

static int model_cb(void *arg, const record_t *r)
{
    holders_t *h = arg;
    const char *num = record_str(r, "id_number");
    for (int i = 0; num && i < NPOOL; i++)
        if (strcmp(num, POOL[i]) == 0 && h->n[i] <= NREC)
            snprintf(h->ids[i][h->n[i]++], 16, "%s", r->id);
    return 0;
}

static int cmp_str16(const void *a, const void *b) { return strcmp(a, b); }

typedef struct {
    char pairs[NPOOL * (NREC + 1)][48];
    int n;
} pairs_t;

static int pair_cb(void *arg, const char *idn, const char *id)
{
    pairs_t *p = arg;
    if (p->n < NPOOL * (NREC + 1))
        snprintf(p->pairs[p->n], 48, "%s/%s", idn, id);
    p->n++;
    return 0;
}

static int cmp_str48(const void *a, const void *b) { return strcmp(a, b); }

/* Holders and duplicate flags as the store answers them in t, against
 * what its live records say. */
static void check_idn(stxn_t *t)
{
    holders_t want = {0};
    assert_int_equal(store_each_record(t, NODE, model_cb, &want), LX_OK);
    pairs_t wp = {0}, got = {0};
    for (int i = 0; i < NPOOL; i++) {
        char ids[NREC + 1][65];
        uint32_t n = 0;
        assert_int_equal(store_find_idnum(t, POOL[i], ids, NREC + 1, &n), LX_OK);
        assert_int_equal((int)n, want.n[i]);
        char g[NREC + 1][16];
        for (uint32_t k = 0; k < n; k++)
            snprintf(g[k], 16, "%s", ids[k]);
        qsort(g, n, 16, cmp_str16);
        qsort(want.ids[i], (size_t)want.n[i], 16, cmp_str16);
        for (uint32_t k = 0; k < n; k++)
            assert_string_equal(g[k], want.ids[i][k]);
        for (int k = 0; want.n[i] >= 2 && k < want.n[i]; k++)
            snprintf(wp.pairs[wp.n++], 48, "%s/%s", POOL[i], want.ids[i][k]);
    }
    assert_int_equal(store_each_duplicate(t, pair_cb, &got), LX_OK);
    assert_int_equal(got.n, wp.n);
    qsort(got.pairs, (size_t)got.n, 48, cmp_str48);
    qsort(wp.pairs, (size_t)wp.n, 48, cmp_str48);
    for (int k = 0; k < got.n; k++)
        assert_string_equal(got.pairs[k], wp.pairs[k]);
}

/* One random write: a record's number (or none), or its village, which
 * may lie outside the node (the record becomes a stub and leaves the
 * index). */
static void idn_write(stxn_t *t, hlc_t *h)
{
    char id[8], buf[24];
    snprintf(id, sizeof id, "q%d", (int)(rnd() % NREC));
    field_t f;
    if (rnd() % 5 < 3)
        f = fw("id_number", rnd() % 8 ? POOL[rnd() % NPOOL] : NULL, ++*h, NODE, 0);
    else
        f = fw("village_code", code_fmt(VIL[rnd() % 4], buf), ++*h, NODE, 0);
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_apply(t, id, &f, 1, 0, &res, &why), LX_OK);
    field_free(&f);
}

/* Random writes in random transactions, some aborted, some folded, some
 * by another process, with the fold deferred by different amounts: the
 * holders of every number and the duplicate flags always agree with the
 * records, inside the writing transaction and outside it. */
static void test_idn_pending(void **state)
{
    (void)state;
    const size_t defers[] = {0, 2, 1000};
    for (size_t di = 0; di < 3; di++) {
        rng_state = 77 + di;
        char *d = tmpdir();
        char p[300];
        snprintf(p, sizeof p, "%s/s", d);
        store_t *s = open_new(p, NODE);
        store_set_idn_defer(s, defers[di]);
        hlc_t h = hlc_make(hlc_wall_ms() - 100000, 0);
        for (int step = 0; step < 300; step++) {
            stxn_t *t;
            assert_int_equal(store_begin(s, true, &t), LX_OK);
            int k = 1 + (int)(rnd() % 3);
            for (int i = 0; i < k; i++)
                idn_write(t, &h);
            if (rnd() % 3 == 0)
                check_idn(t);
            int r = (int)(rnd() % 10);
            if (r == 0) {
                store_abort(&t);
            } else {
                assert_int_equal(store_commit(&t), LX_OK);
                if (r == 1)
                    assert_int_equal(store_idn_fold(s, 0), LX_OK);
                if (r == 2)  /* a step of an idle node's fold */
                    assert_int_equal(store_idn_fold(s, 1 + rnd() % 3), LX_OK);
            }
            if (defers[di] == 0)
                assert_int_equal(store_idn_pending(s), 0);
            if (step % 40 == 39) {
                /* Another process writes (and folds, as a command does). */
                hlc_t h2 = h + 1000;
                h += 2000;
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                    store_t *c = NULL;
                    why_t why = {""};
                    if (store_open(p, STORE_NOSYNC, &c, &why))
                        _exit(2);
                    stxn_t *ct;
                    if (store_begin(c, true, &ct))
                        _exit(3);
                    for (int i = 0; i < 3; i++)
                        idn_write(ct, &h2);
                    _exit(store_commit(&ct) ? 4 : 0);
                }
                int st = 0;
                assert_int_equal(waitpid(pid, &st, 0), pid);
                assert_true(WIFEXITED(st));
                assert_int_equal(WEXITSTATUS(st), 0);
            }
            assert_int_equal(store_begin(s, false, &t), LX_OK);
            check_idn(t);
            store_abort(&t);
        }
        /* Folded, the index alone answers. */
        assert_int_equal(store_idn_fold(s, 0), LX_OK);
        assert_int_equal(store_idn_pending(s), 0);
        stxn_t *t;
        assert_int_equal(store_begin(s, false, &t), LX_OK);
        check_idn(t);
        store_abort(&t);
        store_close(&s);
        rmrf(d);
        free(d);
    }
}

/* The number filter that spares a writer the index search for a number
 * no record holds: numbers another process entered meanwhile (directly
 * into the index, or pending) still make duplicates, as do numbers
 * entered in the same transaction, across the filter's rebuilds when it
 * fills. */
static int count_pairs(stxn_t *t)
{
    pairs_t got = {0};
    assert_int_equal(store_each_duplicate(t, pair_cb, &got), LX_OK);
    return got.n;
}

static void put_num(stxn_t *t, const char *id, const char *num, hlc_t *h)
{
    char vil[24];
    ++*h;
    field_t f[2] = {fw("id_number", num, *h, NODE, 0), fw("village_code", code_fmt(VIL[0], vil), *h, NODE, 0)};
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_apply(t, id, f, 2, 0, &res, &why), LX_OK);
    field_free(&f[0]);
    field_free(&f[1]);
}

/* Another process writes number num for record id, into the index
 * directly (defer 0) or pending. */
static void other_puts(const char *p, const char *id, const char *num, hlc_t h, bool pending)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_t *c = NULL;
        why_t why = {""};
        if (store_open(p, STORE_NOSYNC, &c, &why))
            _exit(2);
        store_set_idn_defer(c, pending ? 100000 : 0);
        stxn_t *ct;
        if (store_begin(c, true, &ct))
            _exit(3);
        put_num(ct, id, num, &h);
        _exit(store_commit(&ct) ? 4 : 0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_idn_filter(void **state)
{
    (void)state;
    for (int defer = 0; defer < 2; defer++) {
        char *d = tmpdir();
        char p[300], id[32], num[32];
        snprintf(p, sizeof p, "%s/s", d);
        store_t *s = open_new(p, NODE);
        store_set_idn_defer(s, defer ? 100000 : 0);
        hlc_t h = hlc_make(hlc_wall_ms() - 100000, 0);
        stxn_t *t;
        /* 3,000 distinct numbers (the filter, made for about a thousand,
         * fills and grows a stage), then one of them again, within one
         * transaction. */
        for (int i = 0; i < 3000; i += 500) {
            assert_int_equal(store_begin(s, true, &t), LX_OK);
            for (int k = i; k < i + 500; k++) {
                snprintf(id, sizeof id, "a%d", k);
                snprintf(num, sizeof num, "5101042010%08d", k);
                put_num(t, id, num, &h);
            }
            assert_int_equal(count_pairs(t), 0);
            assert_int_equal(store_commit(&t), LX_OK);
        }
        assert_int_equal(store_begin(s, true, &t), LX_OK);
        put_num(t, "b1", "510104201000002999", &h);
        put_num(t, "b2", "510104201099999999", &h);
        put_num(t, "b3", "510104201099999999", &h);
        assert_int_equal(count_pairs(t), 4);
        assert_int_equal(store_commit(&t), LX_OK);
        /* Another process enters numbers this one's filter never saw,
         * directly into the index (nothing pending there) or pending. */
        for (int other = 0; other < 2; other++) {
            snprintf(num, sizeof num, "51010420107777777%d", other);
            snprintf(id, sizeof id, "c%d", other);
            other_puts(p, id, num, h + 1000, other);
            h += 2000;
            assert_int_equal(store_begin(s, true, &t), LX_OK);
            snprintf(num, sizeof num, "51010420107777777%d", other);
            snprintf(id, sizeof id, "p%d", other);
            put_num(t, id, num, &h);
            assert_int_equal(count_pairs(t), 6 + 2 * other);
            assert_int_equal(store_commit(&t), LX_OK);
        }
        assert_int_equal(store_begin(s, false, &t), LX_OK);
        assert_int_equal(count_pairs(t), 8);
        char ids[4][65];
        uint32_t n = 0;
        assert_int_equal(store_find_idnum(t, "510104201077777771", ids, 4, &n), LX_OK);
        assert_int_equal(n, 2);
        store_abort(&t);
        store_close(&s);
        rmrf(d);
        free(d);
    }
}

/* A node's filter (STORE_FILTER_IDLE) filled past the room it was built
 * with grows instead of dropping out: a long burst of new children keeps
 * it (before, every new number from then on was searched for in the
 * index until a pause), duplicates still come out right, and the next
 * pause builds it again as one. */
static void test_idn_filter_burst(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300], id[32], num[32];
    snprintf(p, sizeof p, "%s/s", d);
    why_t why = {""};
    store_t *s = NULL;
    assert_int_equal(store_create(p, NODE, &why), LX_OK);
    assert_int_equal(store_open(p, STORE_NOSYNC | STORE_FILTER_IDLE, &s, &why), LX_OK);
    store_set_idn_defer(s, 100000);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000000, 0);
    assert_true(store_idn_filter(s)); /* built empty, with room for 131,072 */
    stxn_t *t;
    for (int i = 0; i < 140000; i += 10000) {
        assert_int_equal(store_begin(s, true, &t), LX_OK);
        for (int k = i; k < i + 10000; k++) {
            snprintf(id, sizeof id, "a%d", k);
            snprintf(num, sizeof num, "5101042010%08d", k);
            put_num(t, id, num, &h);
        }
        assert_int_equal(store_commit(&t), LX_OK);
        assert_true(store_idn_filter_ready(s));
    }
    assert_true(store_idn_filter_due(s)); /* grown: one stage again at a pause */
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "b1", "510104201000000017", &h);  /* folded into the index */
    put_num(t, "b2", "510104201000139999", &h);  /* pending */
    put_num(t, "b3", "510104201099999999", &h);  /* new */
    assert_int_equal(count_pairs(t), 4);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_true(store_idn_filter(s));
    assert_true(store_idn_filter_ready(s));
    assert_false(store_idn_filter_due(s));
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "b4", "510104201099999999", &h);  /* b3's: the rebuilt filter knows it */
    put_num(t, "b5", "510104201000000018", &h);
    assert_int_equal(count_pairs(t), 8);
    assert_int_equal(store_commit(&t), LX_OK);
    store_close(&s);
    rmrf(d);
    free(d);
}

/* A filter built inside a write (a command's store, after another
 * process changed the index) sees that write's own changes; when the
 * write is then aborted, a number it had taken out of the index is back,
 * and a filter that does not know it would call the next record with that
 * number unique. The abort must drop the filter. */
static void test_idn_filter_abort(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    store_set_idn_defer(s, 0);
    hlc_t h = hlc_make(hlc_wall_ms() - 100000, 0);
    stxn_t *t;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "R", "510104201000000001", &h);
    assert_int_equal(store_commit(&t), LX_OK);
    other_puts(p, "O", "510104201000000002", h + 1000, false); /* our filter is stale */
    h += 2000;
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "R", "", &h);                    /* R's number out of the index, in t */
    put_num(t, "S", "510104201000000003", &h);  /* the filter built again from t's view */
    store_abort(&t);                            /* R holds its number again */
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "Q", "510104201000000001", &h);  /* R's number */
    assert_int_equal(count_pairs(t), 2);
    assert_int_equal(store_commit(&t), LX_OK);
    store_close(&s);
    rmrf(d);
    free(d);
}

/* The number filter grows by stages: every hash added answers "maybe"
 * however far past its first size it goes, hashes never added mostly
 * answer "no", and once no stage can be added it says it is full. */
static void test_bloom_grows(void **state)
{
    (void)state;
    bloom_t b = {0};
    assert_true(bloom_init(&b, 1000));
    uint64_t x = 88172645463325252ULL;
    uint64_t *added = malloc(20000 * sizeof *added);
    for (int i = 0; i < 20000; i++) {
        added[i] = xorshift64(&x);
        bloom_add(&b, added[i]);
    }
    assert_int_equal(bloom_count(&b), 20000);
    assert_true(b.nst >= 4 && b.nst < BLOOM_STAGES); /* 1000 + 2000 + 4000 + 8000 + ... */
    assert_false(b.full);
    for (int i = 0; i < 20000; i++)
        assert_true(bloom_maybe(&b, added[i]));
    int wrong = 0;
    for (int i = 0; i < 100000; i++)
        wrong += bloom_maybe(&b, xorshift64(&x));
    /* About 1 in 400 per full stage: four or five stages, under 2%. */
    assert_true(wrong < 2000);
    /* Beyond the last stage: full, and still no false "no". */
    size_t total = 0;
    for (unsigned k = 0; k < BLOOM_STAGES; k++)
        total += (size_t)1000 << k;
    for (size_t i = 20000; i <= total; i++)
        bloom_add(&b, xorshift64(&x));
    assert_int_equal(b.nst, BLOOM_STAGES);
    assert_true(b.full);
    for (int i = 0; i < 20000; i++)
        assert_true(bloom_maybe(&b, added[i]));
    bloom_free(&b);
    assert_int_equal(b.nst, 0);
    assert_true(bloom_maybe(&b, added[0])); /* no stage: it cannot say "absent" */
    assert_true(bloom_init(&b, 0));
    for (int i = 0; i < 100; i++)
        bloom_add(&b, added[i]);
    assert_true(b.nst < BLOOM_STAGES && !b.full); /* sized 0: stages of 1, 2, 4, ... */
    for (int i = 0; i < 100; i++)
        assert_true(bloom_maybe(&b, added[i]));
    bloom_free(&b);
    free(added);
}

/* A store opened STORE_FILTER_IDLE (the node) never builds the number
 * filter inside a write, where reading a large index would hold a batch
 * up: its writes search for other holders until store_idn_filter, called
 * in a pause, builds it. Duplicates come out right all along. */
static void test_idn_filter_idle(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300], id[32], num[32];
    snprintf(p, sizeof p, "%s/s", d);
    why_t why = {""};
    store_t *s = NULL;
    assert_int_equal(store_create(p, NODE, &why), LX_OK);
    assert_int_equal(store_open(p, STORE_NOSYNC | STORE_FILTER_IDLE, &s, &why), LX_OK);
    store_set_idn_defer(s, 100000);
    hlc_t h = hlc_make(hlc_wall_ms() - 100000, 0);
    stxn_t *t;
    assert_true(store_idn_filter_due(s)); /* from the start */
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    for (int k = 0; k < 500; k++) {
        snprintf(id, sizeof id, "a%d", k);
        snprintf(num, sizeof num, "5101042010%08d", k);
        put_num(t, id, num, &h);
    }
    put_num(t, "b0", "510104201000000007", &h);
    assert_int_equal(count_pairs(t), 2);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_false(store_idn_filter_ready(s)); /* the writes searched */
    assert_true(store_idn_filter_due(s));

    size_t np = store_idn_pending(s);
    assert_int_equal(np, 501);
    assert_true(store_idn_filter(s));
    assert_true(store_idn_filter_ready(s));
    assert_false(store_idn_filter_due(s));
    assert_int_equal(store_idn_pending(s), np); /* the build wrote nothing */
    assert_true(store_idn_filter(s));           /* not due: nothing to do */
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    put_num(t, "b1", "510104201000000499", &h);  /* held by a499: the filter knows it */
    put_num(t, "b2", "510104201099999999", &h);  /* new */
    assert_int_equal(count_pairs(t), 4);
    assert_int_equal(store_commit(&t), LX_OK);
    assert_true(store_idn_filter_ready(s));

    static const int after_p[2] = {6, 11}, after_r[2] = {9, 12};
    for (int pending = 0; pending < 2; pending++) {
        /* Another process enters a number (the first time folding every
         * pending number into the index). The next write finds it by
         * search and leaves the filter, stale, to the next pause; the
         * filter built then knows the number, and the folded ones. */
        snprintf(num, sizeof num, "51010420107777777%d", pending);
        snprintf(id, sizeof id, "c%d", pending);
        h += 1000;
        other_puts(p, id, num, h, pending);
        h += 1000;
        assert_int_equal(store_begin(s, true, &t), LX_OK);
        snprintf(id, sizeof id, "p%d", pending);
        put_num(t, id, num, &h);
        assert_int_equal(count_pairs(t), after_p[pending]);
        assert_int_equal(store_commit(&t), LX_OK);
        assert_false(store_idn_filter_ready(s));
        assert_true(store_idn_filter_due(s));

        assert_true(store_idn_filter(s));
        assert_true(store_idn_filter_ready(s));
        assert_int_equal(store_begin(s, true, &t), LX_OK);
        snprintf(id, sizeof id, "r%d", pending);
        put_num(t, id, num, &h);                    /* a third holder */
        put_num(t, "r8", "510104201000000100", &h); /* a100's, folded into the index */
        assert_int_equal(count_pairs(t), after_r[pending]);
        assert_int_equal(store_commit(&t), LX_OK);
        assert_true(store_idn_filter_ready(s));
    }
    /* A reader cannot build it. */
    store_t *r = NULL;
    assert_int_equal(store_open(p, STORE_RDONLY, &r, &why), LX_OK);
    assert_false(store_idn_filter(r));
    store_close(&r);
    store_close(&s);
    rmrf(d);
    free(d);
}

/* A store of layout 1 (whose digest sums hashed records with BLAKE2b)
 * is refused by a reader, and a writer brings it to layout 2 with every
 * village's sum made anew: the digest is what a store written by this
 * version holds. */
/* A write transaction on the store in dir, straight through LMDB (to
 * make it what an older program left). */
static MDB_txn *raw_begin(const char *dir, MDB_env **env)
{
    MDB_txn *txn;
    assert_int_equal(mdb_env_create(env), 0);
    assert_int_equal(mdb_env_set_maxdbs(*env, 16), 0);
    assert_int_equal(mdb_env_open(*env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(*env, NULL, 0, &txn), 0);
    return txn;
}

static void test_layout_upgrade(void **state)
{
    (void)state;
    char *d = tmpdir();
    char p[300];
    snprintf(p, sizeof p, "%s/s", d);
    store_t *s = open_new(p, NODE);
    hlc_t h = hlc_make(hlc_wall_ms() - 1000, 0);
    for (int i = 0; i < 3; i++) {
        char id[8], vil[24];
        snprintf(id, sizeof id, "u%d", i);
        field_t f[2] = {fw("name", id, h + (hlc_t)i, VIL[0], 0),
                        fw("village_code", code_fmt(VIL[i % 2], vil), h + (hlc_t)i, VIL[0], 0)};
        apply1(s, id, f, 2, 0, LX_OK);
        field_free(&f[0]);
        field_free(&f[1]);
    }
    stxn_t *t;
    why_t why = {""};
    unsigned char want[STORE_DIGEST_LEN], got[STORE_DIGEST_LEN];
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_digest(t, 0, want), LX_OK);
    store_abort(&t);
    store_close(&s);
    /* Make it what version 1 left: layout 1, sums of other hashes. */
    MDB_env *env;
    MDB_txn *txn = raw_begin(p, &env);
    MDB_dbi meta, vdig;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "vdig", 0, &vdig), 0);
    unsigned char one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    k = (MDB_val){6, "layout"};
    v = (MDB_val){8, one};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_cursor_open(txn, vdig, &c), 0);
    int n = 0;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), n++) {
        unsigned char val[40];
        memcpy(val, v.mv_data, 40);
        memset(val + 8, 0x5a, 32);
        v.mv_data = val;
        assert_int_equal(mdb_cursor_put(c, &k, &v, MDB_CURRENT), 0);
    }
    assert_int_equal(n, 2);
    mdb_cursor_close(c);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    /* A reader cannot use it and says how it is brought up to date. */
    assert_int_equal(store_open(p, STORE_RDONLY, &s, &why), LX_ECORRUPT);
    assert_non_null(strstr(why.msg, "layout 1"));
    assert_non_null(strstr(why.msg, "brings it to layout 2"));
    /* A writer brings it up to date. */
    assert_int_equal(store_open(p, 0, &s, &why), LX_OK);
    uint64_t layout = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_meta_get(t, "layout", &layout), LX_OK);
    assert_int_equal(layout, 2);
    assert_int_equal(store_verify(t, &why), LX_OK);
    assert_int_equal(store_digest(t, 0, got), LX_OK);
    assert_memory_equal(got, want, STORE_DIGEST_LEN);
    store_abort(&t);
    store_close(&s);
    assert_int_equal(store_open(p, STORE_RDONLY, &s, &why), LX_OK);
    store_close(&s);
    rmrf(d);
    free(d);
}

typedef struct {
    int a, x, low; /* records named "A", "X"; at risk "low" */
} names_t;

static int names_cb(void *arg, const record_t *r)
{
    names_t *n = arg;
    const char *v = record_str(r, "name"), *rk = record_str(r, "risk_level");
    n->a += v && strcmp(v, "A") == 0;
    n->x += v && strcmp(v, "X") == 0;
    n->low += rk && strcmp(rk, "low") == 0;
    return 0;
}

/* The names the store in dir held at cut_ms, read by a reader. */
static names_t names_asof(const char *dir, uint64_t cut_ms)
{
    store_t *s;
    stxn_t *t;
    why_t why = {""};
    names_t n = {0, 0, 0};
    assert_int_equal(store_open(dir, STORE_RDONLY, &s, &why), LX_OK);
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_each_record_asof(t, 0, hlc_make(cut_ms, 0), names_cb, &n), LX_OK);
    store_abort(&t);
    store_close(&s);
    return n;
}

typedef struct {
    size_t n;
    MDB_val *k, *v;
} saved_t;

/* Every entry of the history of the store in dir: saved (into sv), or
 * put back from it (and, forget, meta "hscrub" removed: as a store from
 * before the history followed retention was left). */
static void raw_hist(const char *dir, saved_t *sv, bool put_back, bool forget)
{
    MDB_env *env;
    MDB_txn *txn = raw_begin(dir, &env);
    MDB_dbi hist, meta;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_dbi_open(txn, "hist", 0, &hist), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    if (put_back) {
        for (size_t i = 0; i < sv->n; i++)
            assert_int_equal(mdb_put(txn, hist, &sv->k[i], &sv->v[i], 0), 0);
        k = (MDB_val){6, "hscrub"};
        if (forget)
            assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
    } else {
        MDB_stat st;
        assert_int_equal(mdb_stat(txn, hist, &st), 0);
        sv->k = calloc(st.ms_entries + 1, sizeof *sv->k);
        sv->v = calloc(st.ms_entries + 1, sizeof *sv->v);
        sv->n = 0;
        assert_int_equal(mdb_cursor_open(txn, hist, &c), 0);
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), sv->n++) {
            sv->k[sv->n] = (MDB_val){k.mv_size, malloc(k.mv_size)};
            sv->v[sv->n] = (MDB_val){v.mv_size, malloc(v.mv_size)};
            memcpy(sv->k[sv->n].mv_data, k.mv_data, k.mv_size);
            memcpy(sv->v[sv->n].mv_data, v.mv_data, v.mv_size);
        }
        mdb_cursor_close(c);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void saved_free(saved_t *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        free(sv->k[i].mv_data);
        free(sv->v[i].mv_data);
    }
    free(sv->k);
    free(sv->v);
}

/* A store whose records were anonymised before retention reached the
 * history (more of them than one step of the sweep takes): its first
 * writer removes what the marker's write now would, once, and leaves
 * other records alone; a reader leaves it all. */
static void test_hist_scrub_once(void **state)
{
    (void)state;
    enum { N = 2100 };
    char *d = tmpdir();
    store_t *s = open_new(d, NODE);
    char v0[16];
    code_fmt(VIL[0], v0);
    stxn_t *t;
    apply_t res;
    why_t why = {""};
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    for (int i = 0; i <= N; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%04d", i); /* r2100: never marked */
        const char *first = i < N ? "A" : "X", *then = i < N ? "B" : "Y";
        field_t a[3] = {fw("name", first, hlc_make(1000, 0), VIL[0], 0),
                        fw("risk_level", "low", hlc_make(1000, 0), VIL[0], 0),
                        fw("village_code", v0, hlc_make(1000, 0), VIL[0], 0)};
        field_t b[2] = {fw("name", then, hlc_make(2000, 0), VIL[0], hlc_make(1000, 0)),
                        fw("risk_level", "high", hlc_make(2000, 0), VIL[0], hlc_make(1000, 0))};
        assert_int_equal(store_apply(t, id, a, 3, 0, &res, &why), LX_OK);
        assert_int_equal(store_apply(t, id, b, 2, 0, &res, &why), LX_OK);
        for (int k = 0; k < 3; k++)
            field_free(&a[k]);
        field_free(&b[0]);
        field_free(&b[1]);
    }
    assert_int_equal(store_commit(&t), LX_OK);
    store_close(&s);
    saved_t sv;
    raw_hist(d, &sv, false, false);
    assert_int_equal(sv.n, 2 * (N + 1)); /* each first name and risk level */

    assert_int_equal(store_open(d, STORE_NOSYNC, &s, &why), LX_OK);
    assert_int_equal(store_begin(s, true, &t), LX_OK);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%04d", i);
        field_t m = fw("name", "已匿名", hlc_make(3000, 0), VIL[0], hlc_make(2000, 0));
        assert_int_equal(store_apply(t, id, &m, 1, 0, &res, &why), LX_OK);
        field_free(&m);
    }
    assert_int_equal(store_commit(&t), LX_OK);
    store_close(&s);
    names_t n = names_asof(d, 1500);
    assert_int_equal(n.a, 0); /* the markers' writes took them away */
    assert_int_equal(n.x, 1);
    assert_int_equal(n.low, N + 1);

    /* As an older program left it: the history back, no "hscrub". */
    raw_hist(d, &sv, true, true);
    n = names_asof(d, 1500);
    assert_int_equal(n.a, N); /* a reader changes nothing */
    /* A writer's open scrubs it, in steps, and marks the store done. */
    assert_int_equal(store_open(d, STORE_NOSYNC, &s, &why), LX_OK);
    uint64_t done = 0;
    assert_int_equal(store_begin(s, false, &t), LX_OK);
    assert_int_equal(store_meta_get(t, "hscrub", &done), LX_OK);
    assert_int_equal(done, 1);
    assert_int_equal(store_verify(t, &why), LX_OK);
    store_abort(&t);
    store_close(&s);
    n = names_asof(d, 1500);
    assert_int_equal(n.a, 0);
    assert_int_equal(n.x, 1); /* the unmarked record keeps its history */
    assert_int_equal(n.low, N + 1); /* and every record what anonymising keeps */
    /* Once: the next writer does not sweep again. */
    raw_hist(d, &sv, true, false);
    assert_int_equal(store_open(d, STORE_NOSYNC, &s, &why), LX_OK);
    store_close(&s);
    n = names_asof(d, 1500);
    assert_int_equal(n.a, N);
    saved_free(&sv);
    rmrf(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_converges),
        cmocka_unit_test(test_log_indexes_moves),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_idnmap),
        cmocka_unit_test(test_idn_pending),
        cmocka_unit_test(test_idn_filter),
        cmocka_unit_test(test_idn_filter_idle),
        cmocka_unit_test(test_bloom_grows),
        cmocka_unit_test(test_idn_filter_burst),
        cmocka_unit_test(test_idn_filter_abort),
        cmocka_unit_test(test_clock_persists),
        cmocka_unit_test(test_backup),
        cmocka_unit_test(test_verify_detects_damage),
        cmocka_unit_test(test_layout_upgrade),
        cmocka_unit_test(test_hist_scrub_once),
        cmocka_unit_test(test_asof),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
