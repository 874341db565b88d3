/* The report workflow's records in the store: frozen revisions, a child's
 * submissions, answers, and the state table. Layout in rflow.h. */
#include "rflow.h"
#include "effective.h"
#include "mp.h"
#include "policy.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rst_name(unsigned state)
{
    static const char *names[] = {"none", "submitted", "approved", "returned"};
    return state <= RST_RETURNED ? names[state] : "?";
}

void rflow_reason(char out[RFLOW_REASON_MAX + 1], const char *text, size_t len)
{
    size_t n = len < RFLOW_REASON_MAX ? len : RFLOW_REASON_MAX;
    /* Do not cut a UTF-8 sequence in two. */
    if (n < len)
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[n] = '\0';
}

static int bump_gen(stxn_t *t)
{
    uint64_t g = 0;
    store_meta_get(t, "rgen", &g);
    return store_meta_put(t, "rgen", g + 1);
}

uint64_t rflow_gen(stxn_t *t)
{
    uint64_t g = 0;
    store_meta_get(t, "rgen", &g);
    return g;
}

/* ---- comparing ---- */

/* The total is the last row; a village's only unit row has its code too. */
static int find_row(const report_t *r, code_t code, bool total)
{
    size_t n = report_nrows(r);
    if (total)
        return n ? (int)n - 1 : -1;
    for (size_t i = 0; i + 1 < n; i++)
        if (report_row_code(r, i) == code)
            return (int)i;
    return -1;
}

int rflow_diff(const report_t *a, const report_t *b, rcell_t **cells, size_t *n)
{
    size_t cap = 0, k = 0, nc = report_ncols();
    rcell_t *out = NULL;
    *cells = NULL;
    *n = 0;
    /* The rows of a (matched in b), then b's rows a lacks. */
    for (int pass = 0; pass < 2; pass++) {
        const report_t *x = pass == 0 ? a : b, *y = pass == 0 ? b : a;
        for (size_t i = 0; i < report_nrows(x); i++) {
            code_t code = report_row_code(x, i);
            bool total = i + 1 == report_nrows(x);
            int j = find_row(y, code, total);
            if (pass == 1 && j >= 0)
                continue;
            for (size_t c = 0; c < nc; c++) {
                uint64_t vx = report_value(x, i, c), vy = j >= 0 ? report_value(y, (size_t)j, c) : 0;
                if (vx == vy)
                    continue;
                if (k == cap) {
                    cap = cap ? 2 * cap : 16;
                    rcell_t *p = realloc(out, cap * sizeof *out);
                    if (!p) {
                        free(out);
                        return LX_ENOMEM;
                    }
                    out = p;
                }
                out[k++] = (rcell_t){code, total, (uint32_t)c, pass == 0 ? vx : vy, pass == 0 ? vy : vx};
            }
        }
    }
    *cells = out;
    *n = k;
    return LX_OK;
}

/* ---- packing the stored entries ---- */

/* [ms, hash, report] */
static int put_frozen(stxn_t *t, const char *key, uint64_t ms, const unsigned char *hash,
                      const void *packed, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, ms);
    msgpack_pack_bin(&pk, REPORT_DIGEST_LEN);
    msgpack_pack_bin_body(&pk, hash, REPORT_DIGEST_LEN);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, packed, len);
    int rc = sb.data ? store_blob_put(t, key, sb.data, sb.size) : LX_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Reads [ms, hash, report]; *packed points into u (valid while it lives). */
static int read_frozen(const void *data, size_t len, msgpack_unpacked *u, uint64_t *ms,
                       const void **packed, size_t *plen)
{
    if (mp_unpack(data, len, u, NULL))
        return LX_ECORRUPT;
    const msgpack_object *o = &u->data;
    if (mp_array(o, "frozen", 3, 3, NULL) || mp_u64(&o->via.array.ptr[0], "", ms, NULL)
        || o->via.array.ptr[2].type != MSGPACK_OBJECT_BIN)
        return LX_ECORRUPT;
    *packed = o->via.array.ptr[2].via.bin.ptr;
    *plen = o->via.array.ptr[2].via.bin.size;
    return LX_OK;
}

static int pack_report(const report_t *r, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = report_pack(r, &pk);
    return !rc && !sb->data ? LX_ENOMEM : rc;
}

/* ---- revisions frozen here ---- */

void rflow_frozen_free(rflow_frozen_t *f)
{
    free(f->cells);
    f->cells = NULL;
    f->ncells = 0;
}

typedef struct {
    char quarter[8];
    uint32_t rev;
    rflow_quarter_cb cb;
    void *arg;
    int rc;
} qwalk_t;

static int quarter_of_key(const char *key, size_t skip, char q[8], uint32_t *rev)
{
    /* "rpt/2026Q3/000001" after skip */
    const char *s = key + skip;
    if (strlen(s) != 13 || s[6] != '/')
        return -1;
    memcpy(q, s, 6);
    q[6] = '\0';
    char *end;
    unsigned long v = strtoul(s + 7, &end, 10);
    if (*end || v == 0 || v > UINT32_MAX)
        return -1;
    *rev = (uint32_t)v;
    return 0;
}

static int qwalk_cb(void *arg, const char *key, const void *data, size_t len)
{
    qwalk_t *w = arg;
    char q[8];
    uint32_t rev;
    (void)data;
    (void)len;
    if (quarter_of_key(key, 4, q, &rev))
        return 0;
    if (w->quarter[0] && strcmp(q, w->quarter) != 0) {
        int rc = w->cb(w->arg, w->quarter, w->rev);
        if (rc)
            return rc;
    }
    memcpy(w->quarter, q, sizeof q);
    w->rev = rev;
    return 0;
}

int rflow_each_frozen(stxn_t *t, rflow_quarter_cb cb, void *arg)
{
    qwalk_t w = {.cb = cb, .arg = arg};
    int rc = store_blob_each(t, "rpt/", qwalk_cb, &w);
    if (!rc && w.quarter[0])
        rc = cb(arg, w.quarter, w.rev);
    return rc;
}

typedef struct {
    const char *quarter;
    uint32_t last;
} lastq_t;

static int last_cb(void *arg, const char *quarter, uint32_t rev)
{
    lastq_t *l = arg;
    if (strcmp(quarter, l->quarter) == 0)
        l->last = rev;
    return 0;
}

static int frozen_key(char *buf, size_t n, const char *quarter, uint32_t rev)
{
    return snprintf(buf, n, "rpt/%s/%06u", quarter, rev);
}

int rflow_get(stxn_t *t, const char *quarter, uint32_t rev, uint32_t *got,
              uint64_t *when_ms, report_t **r, void **packed, size_t *len)
{
    if (r)
        *r = NULL;
    if (packed)
        *packed = NULL;
    if (rev == 0) {
        /* Keys sort by revision within the quarter: the walk finds the last. */
        lastq_t l = {quarter, 0};
        char prefix[16];
        snprintf(prefix, sizeof prefix, "rpt/%s/", quarter);
        qwalk_t w = {.cb = last_cb, .arg = &l};
        int rc = store_blob_each(t, prefix, qwalk_cb, &w);
        if (!rc && w.quarter[0])
            last_cb(&l, w.quarter, w.rev);
        if (rc)
            return rc;
        if (!(rev = l.last))
            return LX_ENOTFOUND;
    }
    char key[32];
    frozen_key(key, sizeof key, quarter, rev);
    void *data;
    size_t dlen;
    int rc = store_blob_get(t, key, &data, &dlen);
    if (rc)
        return rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const void *p;
    size_t plen;
    uint64_t ms = 0;
    rc = read_frozen(data, dlen, &u, &ms, &p, &plen);
    if (!rc && r)
        rc = report_unpack(p, plen, r, NULL) ? LX_ECORRUPT : LX_OK;
    if (!rc && packed) {
        if ((*packed = malloc(plen ? plen : 1)))
            memcpy(*packed, p, plen);
        else
            rc = LX_ENOMEM;
        *len = plen;
    }
    msgpack_unpacked_destroy(&u);
    free(data);
    if (rc && r)
        report_destroy(r);
    if (!rc) {
        if (got)
            *got = rev;
        if (when_ms)
            *when_ms = ms;
    }
    return rc;
}

int rflow_freeze(stxn_t *t, const char *quarter, const divs_t *divs, uint64_t now_ms,
                 rflow_frozen_t *out, why_t *why)
{
    memset(out, 0, sizeof *out);
    report_t *now = NULL, *last = NULL;
    uint32_t rev = 0;
    int rc = report_compute(t, 0, quarter, divs, &now, why);
    if (!rc && (rc = report_check(now, why)))
        why_prefix(why, rc, "the summary table's equalities do not hold; nothing frozen");
    if (!rc) {
        rc = rflow_get(t, quarter, 0, &rev, NULL, &last, NULL, NULL);
        if (rc == LX_ENOTFOUND)
            rc = LX_OK, rev = 0;
        else if (rc)
            why_set(why, rc, "revision of %s held here: %s", quarter, err_str(rc));
    }
    if (!rc && rev >= RFLOW_MAX_REV)
        rc = why_set(why, LX_EFULL, "%s: %u revisions frozen, no more", quarter, rev);
    if (!rc && last) {
        rc = rflow_diff(last, now, &out->cells, &out->ncells);
        if (!rc && out->ncells == 0) {
            out->rev = rev;  /* the same figures: nothing new */
            goto done;
        }
    }
    msgpack_sbuffer sb = {0};
    unsigned char hash[REPORT_DIGEST_LEN];
    if (!rc)
        rc = pack_report(now, &sb);
    if (!rc)
        rc = report_hash(now, hash);
    char key[32];
    frozen_key(key, sizeof key, quarter, rev + 1);
    if (!rc)
        rc = put_frozen(t, key, now_ms, hash, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!rc) {
        rstate_t e = {.node = store_code_of(t), .rev = rev + 1, .state = RST_SUBMITTED,
                      .when_ms = now_ms};
        snprintf(e.quarter, sizeof e.quarter, "%s", quarter);
        rc = rflow_state_put(t, &e, NULL);
    }
    if (!rc)
        rc = bump_gen(t);
    if (!rc) {
        out->rev = rev + 1;
        out->created = true;
    } else if (!why || !why->msg[0]) {
        why_set(why, rc, "freezing %s: %s", quarter, err_str(rc));
    }
done:
    if (rc)
        rflow_frozen_free(out);
    report_destroy(&now);
    report_destroy(&last);
    return rc;
}

uint32_t rflow_acked(stxn_t *t, const char *quarter)
{
    char key[32];
    uint64_t v = 0;
    snprintf(key, sizeof key, "rptack/%s", quarter);
    store_meta_get(t, key, &v);
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

int rflow_set_acked(stxn_t *t, const char *quarter, uint32_t rev)
{
    char key[32];
    snprintf(key, sizeof key, "rptack/%s", quarter);
    return store_meta_put(t, key, rev);
}

typedef struct {
    char (*q)[8];
    size_t n, cap;
} qlist_t;

static int qlist_cb(void *arg, const char *quarter, uint32_t rev)
{
    qlist_t *l = arg;
    (void)rev;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        void *p = realloc(l->q, cap * sizeof *l->q);
        if (!p)
            return LX_ENOMEM;
        l->q = p;
        l->cap = cap;
    }
    snprintf(l->q[l->n++], 8, "%s", quarter);
    return 0;
}

/* The oldest field version among the log entries after `from`: quarters
 * whose cut comes before it cannot have changed. */
typedef struct {
    stxn_t *t;
    hlc_t oldest;
} oldest_t;

static int oldest_cb(void *arg, const loghdr_t *h)
{
    oldest_t *o = arg;
    change_t c = {0};
    if (store_log_change(o->t, h, false, &c, NULL)) {
        o->oldest = 0;   /* unreadable: assume anything may have changed */
        return 1;
    }
    for (uint32_t i = 0; i < c.n; i++)
        if (c.w[i].ver.hlc < o->oldest)
            o->oldest = c.w[i].ver.hlc;
    change_free(&c);
    return 0;
}

int rflow_auto(stxn_t *t, const divs_t *divs, uint64_t now_ms, uint64_t since_seq,
               uint32_t *made, why_t *why)
{
    *made = 0;
    char cur[8], today[11];
    quarter_of_ms(now_ms, cur);
    policy_today(now_ms, today);
    /* The last quarter: the one before today's. */
    int y = atoi(cur), q = cur[5] - '0';
    char last[8];
    snprintf(last, sizeof last, "%04dQ%d", q == 1 ? y - 1 : y, q == 1 ? 4 : q - 1);
    qlist_t l = {0};
    int rc = rflow_each_frozen(t, qlist_cb, &l);
    bool have_last = false, fresh_last = false;   /* fresh: not frozen yet */
    for (size_t i = 0; !rc && i < l.n; i++)
        have_last |= strcmp(l.q[i], last) == 0;
    if (!rc && !have_last) {
        effective_t *eff = NULL;
        char deadline[11];
        rc = policy_effective(t, today, &eff, why);
        if (!rc)
            rc = policy_report_deadline(eff, last, deadline, why);
        effective_free(&eff);
        if (!rc && strcmp(today, deadline) > 0 && (rc = qlist_cb(&l, last, 0)) == 0)
            have_last = fresh_last = true;
    }
    /* Every quarter frozen here that has ended: late data makes a revision.
     * Only a change stamped before a quarter's cut can move its figures. */
    oldest_t old = {t, UINT64_MAX};
    if (!rc && since_seq)
        rc = store_each_log_hdr(t, since_seq + 1, oldest_cb, &old);
    if (rc == 1)
        rc = LX_OK;
    if (!since_seq)
        old.oldest = 0;
    for (size_t i = 0; !rc && i < l.n; i++) {
        quarter_t qt;
        if (quarter_parse(l.q[i], &qt, NULL) || hlc_make(now_ms, 0) <= qt.cut)
            continue;
        if (old.oldest >= qt.cut && !(fresh_last && strcmp(l.q[i], last) == 0))
            continue;
        rflow_frozen_t f;
        rc = rflow_freeze(t, l.q[i], divs, now_ms, &f, why);
        if (!rc && f.created)
            (*made)++;
        rflow_frozen_free(&f);
    }
    free(l.q);
    return rc;
}

/* ---- a parent's inbox ---- */

static void child_key(char *buf, size_t n, const char *what, code_t child, const char *quarter,
                      uint32_t rev)
{
    char c[CODE_STRLEN + 1];
    if (rev)
        snprintf(buf, n, "%s/%s/%s/%06u", what, code_fmt(child, c), quarter, rev);
    else
        snprintf(buf, n, "%s/%s/%s", what, code_fmt(child, c), quarter);
}

int rflow_receive(stxn_t *t, code_t child, const char *quarter, uint32_t rev,
                  const void *packed, size_t len, uint64_t now_ms, why_t *why)
{
    quarter_t qt;
    report_t *r = NULL;
    char cc[CODE_STRLEN + 1], rc_[CODE_STRLEN + 1];
    code_fmt(child, cc);
    if (quarter_parse(quarter, &qt, why))
        return LX_EINVAL;
    if (rev == 0 || rev > RFLOW_MAX_REV)
        return why_set(why, LX_EINVAL, "report %s of %s: revision %u out of range", quarter, cc,
                       rev);
    why_t w = {""};
    if (report_unpack(packed, len, &r, &w))
        return why_set(why, LX_EINVAL, "report %s revision %u of %s: %s", quarter, rev, cc, w.msg);
    int rc = LX_OK;
    if (report_node(r) != child)
        rc = why_set(why, LX_ESCOPE, "report %s revision %u: it is the report of %s, not of "
                     "the child %s", quarter, rev, code_fmt(report_node(r), rc_), cc);
    else if (strcmp(report_quarter(r), quarter) != 0)
        rc = why_set(why, LX_EINVAL, "report %s revision %u of %s holds quarter %s", quarter,
                     rev, cc, report_quarter(r));
    else if (report_cut(r) != qt.cut)
        rc = why_set(why, LX_EINVAL, "report %s revision %u of %s: cut is not the quarter's end",
                     quarter, rev, cc);
    unsigned char hash[REPORT_DIGEST_LEN];
    if (!rc)
        rc = report_hash(r, hash);
    report_destroy(&r);
    if (rc)
        return rc;
    char key[64];
    child_key(key, sizeof key, "rin", child, quarter, rev);
    void *old;
    size_t olen;
    if ((rc = store_blob_get(t, key, &old, &olen)) == LX_OK) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const void *p;
        size_t plen;
        uint64_t ms;
        bool same = read_frozen(old, olen, &u, &ms, &p, &plen) == LX_OK && plen == len
                    && memcmp(p, packed, len) == 0;
        msgpack_unpacked_destroy(&u);
        free(old);
        return same ? LX_EEXIST
                    : why_set(why, LX_EINVAL, "report %s revision %u of %s differs from the one "
                              "held (a revision is never overwritten)", quarter, rev, cc);
    }
    if (rc != LX_ENOTFOUND)
        return rc;
    if ((rc = put_frozen(t, key, now_ms, hash, packed, len)))
        return rc;
    rstate_t e = {.node = child, .rev = rev, .state = RST_SUBMITTED, .when_ms = now_ms};
    snprintf(e.quarter, sizeof e.quarter, "%s", quarter);
    if (!(rc = rflow_state_put(t, &e, NULL)))
        rc = bump_gen(t);
    return rc;
}

static int state_get(stxn_t *t, code_t node, const char *quarter, rstate_t *e);

typedef struct {
    stxn_t *t;
    const char *quarter;
    rflow_sub_cb cb;
    void *arg;
    code_t child;
    char q[8];
    uint32_t rev;
    char key[64];
} subwalk_t;

/* Emits the (child, quarter) the walk has just left. */
static int sub_emit(subwalk_t *w)
{
    if (!w->child)
        return 0;
    void *data;
    size_t dlen;
    int rc = store_blob_get(w->t, w->key, &data, &dlen);
    if (rc)
        return rc == LX_ENOTFOUND ? 0 : rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const void *p;
    size_t plen;
    uint64_t ms;
    report_t *r = NULL;
    if (read_frozen(data, dlen, &u, &ms, &p, &plen) == LX_OK
        && report_unpack(p, plen, &r, NULL) == LX_OK) {
        rstate_t e;
        if (state_get(w->t, w->child, w->q, &e))
            e = (rstate_t){.state = RST_SUBMITTED, .when_ms = ms};
        rc = w->cb(w->arg, w->child, w->q, w->rev, ms, r, e.rev == w->rev ? e.state : RST_SUBMITTED,
                   e.when_ms, e.rev == w->rev ? e.reason : "");
    }
    report_destroy(&r);
    msgpack_unpacked_destroy(&u);
    free(data);
    return rc;
}

static int sub_cb(void *arg, const char *key, const void *data, size_t len)
{
    subwalk_t *w = arg;
    (void)data;
    (void)len;
    /* "rin/CHILD/Q/REV" */
    code_t child;
    char cs[CODE_STRLEN + 1], q[8];
    uint32_t rev;
    if (strlen(key) < 4 + CODE_STRLEN + 1)
        return 0;
    memcpy(cs, key + 4, CODE_STRLEN);
    cs[CODE_STRLEN] = '\0';
    if (code_parse(cs, &child) || quarter_of_key(key, 4 + CODE_STRLEN + 1, q, &rev))
        return 0;
    if (w->quarter && strcmp(q, w->quarter) != 0)
        return 0;
    if (w->child && (w->child != child || strcmp(w->q, q) != 0)) {
        int rc = sub_emit(w);
        if (rc)
            return rc;
    }
    w->child = child;
    memcpy(w->q, q, sizeof q);
    w->rev = rev;
    snprintf(w->key, sizeof w->key, "%s", key);
    return 0;
}

int rflow_each_submission(stxn_t *t, const char *quarter, rflow_sub_cb cb, void *arg)
{
    subwalk_t w = {.t = t, .quarter = quarter, .cb = cb, .arg = arg};
    int rc = store_blob_each(t, "rin/", sub_cb, &w);
    if (!rc)
        rc = sub_emit(&w);
    return rc;
}

/* [rev, state, when_ms, reason, delivered] */
static int put_answer(stxn_t *t, const char *key, uint32_t rev, unsigned state, uint64_t when,
                      const char *reason, bool delivered)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t rl = strlen(reason);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint32(&pk, rev);
    msgpack_pack_uint32(&pk, state);
    msgpack_pack_uint64(&pk, when);
    msgpack_pack_str(&pk, rl);
    msgpack_pack_str_body(&pk, reason, rl);
    msgpack_pack_int(&pk, delivered);
    int rc = sb.data ? store_blob_put(t, key, sb.data, sb.size) : LX_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

typedef struct {
    uint32_t rev, state;
    uint64_t when;
    char reason[RFLOW_REASON_MAX + 1];
    bool delivered;
} answer_t;

static int read_answer(const void *data, size_t len, answer_t *a)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(data, len, &u, NULL) ? LX_ECORRUPT : LX_OK;
    const msgpack_object *o = &u.data;
    uint64_t rev, st, dl = 0;
    if (!rc && (mp_array(o, "answer", 4, 5, NULL) || mp_u64(&o->via.array.ptr[0], "", &rev, NULL)
                || mp_u64(&o->via.array.ptr[1], "", &st, NULL)
                || mp_u64(&o->via.array.ptr[2], "", &a->when, NULL)
                || o->via.array.ptr[3].type != MSGPACK_OBJECT_STR || rev > UINT32_MAX
                || st > RST_RETURNED
                || (o->via.array.size == 5 && mp_u64(&o->via.array.ptr[4], "", &dl, NULL))))
        rc = LX_ECORRUPT;
    if (!rc) {
        a->rev = (uint32_t)rev;
        a->state = (uint32_t)st;
        a->delivered = dl != 0;
        rflow_reason(a->reason, o->via.array.ptr[3].via.str.ptr, o->via.array.ptr[3].via.str.size);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* The largest revision among keys "PREFIX" + "NNNNNN". */
static int maxrev_cb(void *arg, const char *key, const void *data, size_t len)
{
    uint32_t *max = arg;
    const char *slash = strrchr(key, '/');
    (void)data;
    (void)len;
    char *end;
    unsigned long v = slash ? strtoul(slash + 1, &end, 10) : 0;
    if (slash && !*end && v <= UINT32_MAX && v > *max)
        *max = (uint32_t)v;
    return 0;
}

int rflow_answer(stxn_t *t, code_t child, const char *quarter, unsigned state,
                 const char *reason, uint64_t now_ms, uint32_t *rev, why_t *why)
{
    char cc[CODE_STRLEN + 1], prefix[48], key[48];
    code_fmt(child, cc);
    if (state != RST_APPROVED && state != RST_RETURNED)
        return why_set(why, LX_EINVAL, "an answer is approved or returned");
    snprintf(prefix, sizeof prefix, "rin/%s/%s/", cc, quarter);
    uint32_t last = 0;
    int rc = store_blob_each(t, prefix, maxrev_cb, &last);
    if (rc)
        return why_set(why, rc, "reading the submissions: %s", err_str(rc));
    if (!last)
        return why_set(why, LX_ENOTFOUND, "%s has submitted no report for %s", cc, quarter);
    rstate_t e = {.node = child, .rev = last, .state = state, .when_ms = now_ms};
    snprintf(e.quarter, sizeof e.quarter, "%s", quarter);
    rflow_reason(e.reason, reason ? reason : "", reason ? strlen(reason) : 0);
    child_key(key, sizeof key, "rans", child, quarter, 0);
    rc = put_answer(t, key, last, state, now_ms, e.reason, false);
    if (!rc)
        rc = rflow_state_put(t, &e, NULL);
    if (!rc)
        rc = bump_gen(t);
    if (rc)
        return why_set(why, rc, "recording the answer: %s", err_str(rc));
    *rev = last;
    return LX_OK;
}

typedef struct {
    code_t child;
    rflow_ans_cb cb;
    void *arg;
} answalk_t;

static int answalk_cb(void *arg, const char *key, const void *data, size_t len)
{
    answalk_t *w = arg;
    /* "rans/CHILD/Q" */
    char cs[CODE_STRLEN + 1];
    code_t child;
    answer_t a;
    if (strlen(key) != 5 + CODE_STRLEN + 1 + 6)
        return 0;
    memcpy(cs, key + 5, CODE_STRLEN);
    cs[CODE_STRLEN] = '\0';
    if (code_parse(cs, &child) || (w->child && child != w->child)
        || read_answer(data, len, &a) || a.delivered)
        return 0;
    return w->cb(w->arg, child, key + 5 + CODE_STRLEN + 1, a.rev, a.state, a.when, a.reason);
}

int rflow_each_undelivered(stxn_t *t, code_t child, rflow_ans_cb cb, void *arg)
{
    answalk_t w = {child, cb, arg};
    char prefix[32], cc[CODE_STRLEN + 1];
    if (child)
        snprintf(prefix, sizeof prefix, "rans/%s/", code_fmt(child, cc));
    else
        snprintf(prefix, sizeof prefix, "rans/");
    return store_blob_each(t, prefix, answalk_cb, &w);
}

int rflow_delivered(stxn_t *t, code_t child, const char *quarter, uint32_t rev)
{
    char key[48];
    child_key(key, sizeof key, "rans", child, quarter, 0);
    void *data;
    size_t len;
    answer_t a;
    int rc = store_blob_get(t, key, &data, &len);
    if (rc)
        return rc;
    rc = read_answer(data, len, &a);
    free(data);
    if (rc || a.delivered || a.rev != rev)
        return rc;
    return put_answer(t, key, a.rev, a.state, a.when, a.reason, true);
}

int rflow_got(stxn_t *t, const char *quarter, uint32_t rev, unsigned state,
              uint64_t when_ms, const char *reason, why_t *why)
{
    quarter_t qt;
    if (quarter_parse(quarter, &qt, why))
        return LX_EINVAL;
    if (state != RST_APPROVED && state != RST_RETURNED)
        return why_set(why, LX_EINVAL, "answer to %s: state %u is neither approved nor returned",
                       quarter, state);
    char key[32];
    frozen_key(key, sizeof key, quarter, rev);
    void *data;
    size_t len;
    int rc = rev ? store_blob_get(t, key, &data, &len) : LX_ENOTFOUND;
    if (rc == LX_ENOTFOUND)
        return why_set(why, LX_EINVAL, "answer to %s revision %u, which was not frozen here",
                       quarter, rev);
    if (rc)
        return rc;
    free(data);
    rstate_t e = {.node = store_code_of(t), .rev = rev, .state = state, .when_ms = when_ms};
    snprintf(e.quarter, sizeof e.quarter, "%s", quarter);
    rflow_reason(e.reason, reason ? reason : "", reason ? strlen(reason) : 0);
    snprintf(key, sizeof key, "rgot/%s", quarter);
    rc = put_answer(t, key, rev, state, when_ms, e.reason, true);
    if (!rc)
        rc = rflow_state_put(t, &e, NULL);
    if (!rc)
        rc = bump_gen(t);
    return rc;
}

/* ---- the state table ---- */

static void state_key(char *buf, size_t n, code_t node, const char *quarter)
{
    char c[CODE_STRLEN + 1];
    snprintf(buf, n, "rst/%s/%s", code_fmt(node, c), quarter);
}

/* [seq, rev, state, when_ms, reason] */
static int read_state(const char *key, const void *data, size_t len, rstate_t *e)
{
    /* "rst/NODE/Q" */
    char cs[CODE_STRLEN + 1];
    memset(e, 0, sizeof *e);
    if (strlen(key) != 4 + CODE_STRLEN + 1 + 6)
        return LX_ECORRUPT;
    memcpy(cs, key + 4, CODE_STRLEN);
    cs[CODE_STRLEN] = '\0';
    if (code_parse(cs, &e->node))
        return LX_ECORRUPT;
    memcpy(e->quarter, key + 4 + CODE_STRLEN + 1, 6);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(data, len, &u, NULL) ? LX_ECORRUPT : LX_OK;
    const msgpack_object *o = &u.data;
    uint64_t rev, st;
    if (!rc && (mp_array(o, "state", 5, 5, NULL) || mp_u64(&o->via.array.ptr[0], "", &e->seq, NULL)
                || mp_u64(&o->via.array.ptr[1], "", &rev, NULL)
                || mp_u64(&o->via.array.ptr[2], "", &st, NULL)
                || mp_u64(&o->via.array.ptr[3], "", &e->when_ms, NULL)
                || o->via.array.ptr[4].type != MSGPACK_OBJECT_STR || rev > UINT32_MAX
                || st > RST_RETURNED))
        rc = LX_ECORRUPT;
    if (!rc) {
        e->rev = (uint32_t)rev;
        e->state = (uint32_t)st;
        rflow_reason(e->reason, o->via.array.ptr[4].via.str.ptr, o->via.array.ptr[4].via.str.size);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int state_get(stxn_t *t, code_t node, const char *quarter, rstate_t *e)
{
    char key[48];
    void *data;
    size_t len;
    state_key(key, sizeof key, node, quarter);
    int rc = store_blob_get(t, key, &data, &len);
    if (rc)
        return rc;
    rc = read_state(key, data, len, e);
    free(data);
    return rc;
}

/* Whether e is news over what is held: a later revision; an answer over a
 * submission of the same revision; a later answer. */
static bool newer(const rstate_t *e, const rstate_t *old)
{
    if (e->rev != old->rev)
        return e->rev > old->rev;
    bool ea = e->state >= RST_APPROVED, oa = old->state >= RST_APPROVED;
    if (ea != oa)
        return ea;
    if (!ea)
        return false;
    if (e->when_ms != old->when_ms)
        return e->when_ms > old->when_ms;
    return e->state != old->state ? e->state > old->state : strcmp(e->reason, old->reason) > 0;
}

int rflow_state_put(stxn_t *t, const rstate_t *e, bool *changed)
{
    rstate_t old;
    if (changed)
        *changed = false;
    if (e->state < RST_SUBMITTED || e->state > RST_RETURNED || e->rev == 0)
        return LX_EINVAL;
    int rc = state_get(t, e->node, e->quarter, &old);
    if (rc == LX_OK && !newer(e, &old))
        return LX_OK;
    if (rc && rc != LX_ENOTFOUND && rc != LX_ECORRUPT)
        return rc;
    uint64_t seq = 0;
    store_meta_get(t, "rstseq", &seq);
    seq++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t rl = strlen(e->reason);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_uint32(&pk, e->rev);
    msgpack_pack_uint32(&pk, e->state);
    msgpack_pack_uint64(&pk, e->when_ms);
    msgpack_pack_str(&pk, rl);
    msgpack_pack_str_body(&pk, e->reason, rl);
    char key[48];
    state_key(key, sizeof key, e->node, e->quarter);
    rc = sb.data ? store_blob_put(t, key, sb.data, sb.size) : LX_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (!rc)
        rc = store_meta_put(t, "rstseq", seq);
    if (!rc)
        rc = bump_gen(t);
    if (!rc && changed)
        *changed = true;
    return rc;
}

typedef struct {
    uint64_t after;
    rflow_state_cb cb;
    void *arg;
} stwalk_t;

static int stwalk_cb(void *arg, const char *key, const void *data, size_t len)
{
    stwalk_t *w = arg;
    rstate_t e;
    if (read_state(key, data, len, &e) || e.seq <= w->after)
        return 0;
    return w->cb(w->arg, &e);
}

int rflow_state_each(stxn_t *t, uint64_t after, rflow_state_cb cb, void *arg)
{
    stwalk_t w = {after, cb, arg};
    return store_blob_each(t, "rst/", stwalk_cb, &w);
}

uint64_t rflow_state_seq(stxn_t *t)
{
    uint64_t v = 0;
    store_meta_get(t, "rstseq", &v);
    return v;
}
