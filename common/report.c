/* The quarterly report: columns, quarters, the computation over the store
 * as of the cut, the table's equalities, and the msgpack form a frozen
 * report travels in. The formats are in report_fmt.c. */
#include "report.h"
#include "report_int.h"
#include "mp.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- columns ---- */

static const report_group_t groups[] = {
    [G_SUMMARY] = {"summary", "总表", "Summary"},
    [G_CATEGORY] = {"categories", "类别", "Categories"},
    [G_GUARDIAN] = {"guardianship", "监护", "Guardianship"},
    [G_SCHOOL] = {"schooling", "就学", "Schooling"},
    [G_HEALTH] = {"health", "健康", "Health"},
    [G_HELP] = {"help", "帮扶与走访", "Help and visits"},
    [G_FLOW] = {"flow", "进出", "Entries and exits"},
};

static const report_col_t cols[] = {
#define X(id, key, zh, en, g) [C_##id] = {key, zh, en, g},
    REPORT_COLUMNS(X)
#undef X
};

size_t report_ncols(void) { return C_COUNT; }
const report_col_t *report_col(size_t i) { return i < C_COUNT ? &cols[i] : NULL; }
size_t report_ngroups(void) { return G_COUNT; }
const report_group_t *report_group(size_t i) { return i < G_COUNT ? &groups[i] : NULL; }

int report_col_index(const char *key)
{
    for (size_t i = 0; key && i < C_COUNT; i++)
        if (strcmp(cols[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* ---- quarters and dates ---- */

#define CST_OFFSET_S (8 * 3600) /* China Standard Time, UTC+8, no DST */

/* Milliseconds since the epoch of 00:00 China Standard Time on y-m-01. */
static uint64_t cst_month_start_ms(int y, int m)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 1};
    return (uint64_t)(timegm(&tm) - CST_OFFSET_S) * 1000u;
}

int quarter_parse(const char *s, quarter_t *out, why_t *why)
{
    if (!s || strlen(s) != 6 || (s[4] != 'Q' && s[4] != 'q') || s[5] < '1' || s[5] > '4')
        return why_set(why, LX_EINVAL, "quarter '%.16s': expected YYYYQn, n from 1 to 4 (e.g. 2026Q3)",
                       s ? s : "");
    int y = 0;
    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9')
            return why_set(why, LX_EINVAL, "quarter '%s': expected YYYYQn, n from 1 to 4 (e.g. 2026Q3)", s);
        y = y * 10 + (s[i] - '0');
    }
    if (y < 1970 || y > 2199)
        return why_set(why, LX_EINVAL, "quarter '%s': year outside 1970-2199", s);
    quarter_t q = {.year = y, .q = s[5] - '0'};
    int m0 = 3 * (q.q - 1) + 1, m1 = m0 + 2;
    static const int last_day[] = {31, 30, 30, 31}; /* of March, June, Sept., Dec. */
    snprintf(q.first, sizeof q.first, "%04d-%02d-01", y, m0);
    snprintf(q.last, sizeof q.last, "%04d-%02d-%02d", y, m1, last_day[q.q - 1]);
    q.start = hlc_make(cst_month_start_ms(y, m0), 0);
    q.cut = hlc_make(q.q == 4 ? cst_month_start_ms(y + 1, 1) : cst_month_start_ms(y, m1 + 1), 0);
    *out = q;
    return LX_OK;
}

void quarter_of_ms(uint64_t ms, char out[8])
{
    time_t secs = (time_t)(ms / 1000) + CST_OFFSET_S;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 8, "%04dQ%d", (tm.tm_year + 1900) % 10000, tm.tm_mon / 3 + 1);
}

/* "YYYY-MM-DD" to its three numbers; false when it is not that shape. */
static bool ymd(const char *s, int *y, int *m, int *d)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    int v[3] = {0}, k = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            k++;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            return false;
        v[k] = v[k] * 10 + (s[i] - '0');
    }
    *y = v[0], *m = v[1], *d = v[2];
    return true;
}

int report_age(const char *birth, const char *on)
{
    int by, bm, bd, y, m, d;
    if (!ymd(birth, &by, &bm, &bd) || !ymd(on, &y, &m, &d))
        return -1000;
    /* Completed years: one more on each birthday. One born on 29 February
     * has a birthday on 1 March in common years; a quarter never ends
     * between the two, so the choice does not show. */
    int age = y - by;
    if (m < bm || (m == bm && d < bd))
        age--;
    return age;
}

/* ---- the report ---- */

void report_destroy(report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    report_t *r = *self_p;
    for (size_t i = 0; i < r->n; i++)
        free(r->rows[i].name);
    free(r->rows);
    free(r);
    *self_p = NULL;
}

report_t *report_alloc(const char *quarter, code_t node, hlc_t cut)
{
    report_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->quarter, sizeof r->quarter, "%s", quarter);
    r->node = node;
    r->cut = cut;
    return r;
}

/* The row of unit `code`, created (zeroed, in code order) when absent;
 * NULL on allocation failure. Only unit rows: the total comes last. */
row_t *report_row_for(report_t *r, code_t code, const char *name)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->rows[mid].code < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->n && r->rows[lo].code == code)
        return &r->rows[lo];
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        row_t *n = realloc(r->rows, ncap * sizeof *n);
        if (!n)
            return NULL;
        r->rows = n;
        r->cap = ncap;
    }
    memmove(&r->rows[lo + 1], &r->rows[lo], (r->n - lo) * sizeof *r->rows);
    row_t *row = &r->rows[lo];
    memset(row, 0, sizeof *row);
    row->code = code;
    char buf[CODE_STRLEN + 1];
    row->name = strdup(name ? name : code_fmt(code, buf));
    if (!row->name) {
        memmove(&r->rows[lo], &r->rows[lo + 1], (r->n - lo) * sizeof *r->rows);
        return NULL;
    }
    r->n++;
    return row;
}

/* Adds b to a, both 256-bit little-endian numbers. */
static void digest_add(unsigned char a[REPORT_DIGEST_LEN], const unsigned char b[REPORT_DIGEST_LEN])
{
    unsigned carry = 0;
    for (int i = 0; i < REPORT_DIGEST_LEN; i++) {
        carry += (unsigned)a[i] + b[i];
        a[i] = (unsigned char)carry;
        carry >>= 8;
    }
}

/* Appends the total row, the column sums of the unit rows. */
int report_finish(report_t *r)
{
    row_t total = {.code = r->node};
    for (size_t i = 0; i < r->n; i++) {
        for (size_t c = 0; c < C_COUNT; c++)
            total.v[c] += r->rows[i].v[c];
        digest_add(total.dig, r->rows[i].dig);
    }
    if (!(total.name = strdup("合计")))
        return LX_ENOMEM;
    /* report_row_for keeps units in code order; the total goes after them
     * whatever its code. */
    if (r->n == r->cap) {
        row_t *n = realloc(r->rows, (r->cap + 1) * sizeof *n);
        if (!n) {
            free(total.name);
            return LX_ENOMEM;
        }
        r->rows = n;
        r->cap++;
    }
    r->rows[r->n++] = total;
    return LX_OK;
}

/* ---- one record ---- */

typedef struct {
    report_t *r;
    quarter_t q;
    code_t node;
    bool village_node;
    code_t last_unit; /* the row of the previous record, as records come */
    row_t *last_row;  /* in village order: one lookup per village */
} walk_t;

/* Field names the report reads; their versions make up the digest. */
static const char *const READ[] = {
    "birth_date", "categories", "exit_date", "exit_reason", "gender",
    "guardian_capable", "guardian_type", "health_status", "help_pairing",
    "last_visit_date", "left_behind_type", "proxy_parent", "risk_level",
    "school_name", "school_status", "status", "village_code",
};
#define NREAD (sizeof READ / sizeof READ[0])

static bool in_quarter(const quarter_t *q, hlc_t h) { return h > q->start && h <= q->cut; }

static bool date_in_quarter(const quarter_t *q, const char *d)
{
    return d && strlen(d) == 10 && strcmp(d, q->first) >= 0 && strcmp(d, q->last) <= 0;
}

static bool is(const char *s, const char *v) { return s && strcmp(s, v) == 0; }

/* The index of s among names (n of them), or -1. */
static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The age band columns: the band's total; boys and girls follow it. */
static int age_band(int age)
{
    if (age >= 0 && age <= 5)
        return C_AGE0;
    if (age >= 6 && age <= 13)
        return C_AGE6;
    if (age >= 14 && age <= 16)
        return C_AGE14;
    if (age == 17)
        return C_AGE17;
    return C_AGEX;
}

/* Guardianship assessment (监护评估), one class for every child so that
 * the classes add up to the total: good (较好) when the guardian is able to
 * care and is a parent or grandparent; average (一般) when able and another
 * relative, friend or an institution; poor (较差) otherwise: no guardian,
 * guardian_type missing, or the guardian not (or not known to be) able. */
static int assessment(const record_t *rec)
{
    const char *gt = record_str(rec, "guardian_type");
    const val_t *cap = record_val(rec, "guardian_capable");
    bool able = cap && cap->kind == VAL_BOOL && cap->b;
    if (!able || !gt || is(gt, "none"))
        return C_GA_POOR;
    if (is(gt, "parent") || is(gt, "grandparent"))
        return C_GA_GOOD;
    if (is(gt, "relative") || is(gt, "institution"))
        return C_GA_AVERAGE;
    return C_GA_POOR;
}

static void count_active(uint64_t *v, const record_t *rec, const quarter_t *q)
{
    static const char *const cats[] = {
        "left_behind", "orphan", "de_facto_unsupported", "disabled",
        "serious_illness", "low_income", "dropout", "other_difficulty"};
    static const char *const lbts[] = {"both_parents_away", "one_away_other_incapable"};
    static const char *const gts[] = {"grandparent", "relative", "institution", "parent", "none"};
    static const char *const schools[] = {"not_school_age", "preschool", "enrolled",
                                          "boarding", "dropped_out", "graduated"};
    static const char *const health[] = {"健康", "一般", "较差"};
    v[C_TOTAL]++;
    const char *g = record_str(rec, "gender");
    int sex = is(g, "male") ? 1 : is(g, "female") ? 2 : 0;
    if (sex)
        v[sex == 1 ? C_MALE : C_FEMALE]++;
    int band = age_band(report_age(record_str(rec, "birth_date"), q->last));
    v[band]++;
    if (sex)
        v[band + sex]++;

    const val_t *cv = record_val(rec, "categories");
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++)
        if (cv && cv->kind == VAL_LIST && val_list_has(cv, cats[i]))
            v[C_CAT_LEFT_BEHIND + i]++;
    int k = pick(record_str(rec, "left_behind_type"), lbts, 2);
    if (k >= 0)
        v[C_LBT_BOTH + k]++;
    k = pick(record_str(rec, "guardian_type"), gts, 5);
    v[k >= 0 ? C_GT_GRANDPARENT + k : C_GT_UNSET]++;
    v[assessment(rec)]++;
    k = pick(record_str(rec, "school_status"), schools, 6);
    v[k >= 0 ? C_SCHOOL_NOT_AGE + k : C_SCHOOL_UNSET]++;
    const char *h = record_str(rec, "health_status");
    k = pick(h, health, 3);
    v[k >= 0 ? C_HEALTH_GOOD + k : h && *h ? C_HEALTH_OTHER : C_HEALTH_UNSET]++;

    const char *s = record_str(rec, "help_pairing");
    if (s && *s)
        v[C_HELP_PAIRING]++;
    s = record_str(rec, "proxy_parent");
    if (s && *s)
        v[C_PROXY_PARENT]++;
    if (date_in_quarter(q, record_str(rec, "last_visit_date")))
        v[C_VISITED]++;
    const field_t *risk = record_field(rec, "risk_level");
    if (risk && risk->val.kind == VAL_STR && is(risk->val.s, "high")) {
        v[C_RISK_HIGH]++;
        if (in_quarter(q, risk->ver.hlc))
            v[C_CASE_OPENED]++;
    }
}

/* Counts that any record may add to, active or not: entries, exits, and
 * cases closed (a child may leave the register in the quarter its case
 * closes). */
static void count_flows(uint64_t *v, const record_t *rec, const quarter_t *q, hlc_t created)
{
    static const char *const reasons[] = {"parents_returned", "reached_age_limit", "moved_away",
                                          "category_changed", "death", "other"};
    if (in_quarter(q, created))
        v[C_ENTRIES]++;
    if (is(record_str(rec, "status"), "exited") && date_in_quarter(q, record_str(rec, "exit_date"))) {
        v[C_EXITS]++;
        int k = pick(record_str(rec, "exit_reason"), reasons, 6);
        v[k >= 0 ? C_EXIT_PARENTS_RETURNED + k : C_EXIT_UNSET]++;
    }
    const field_t *risk = record_field(rec, "risk_level");
    if (risk && risk->val.kind == VAL_STR && !is(risk->val.s, "high") && risk->ver.base
        && in_quarter(q, risk->ver.hlc))
        v[C_CASE_CLOSED]++;
}

/* BLAKE2b-256 of the record's id and the versions of the fields the
 * report reads, added into the row's sum. */
static void digest_record(unsigned char sum[REPORT_DIGEST_LEN], const record_t *rec)
{
    unsigned char buf[80 + NREAD * 40], h[REPORT_DIGEST_LEN];
    size_t n = 0, il = strlen(rec->id);
    memcpy(buf, rec->id, il < 64 ? il : 64);
    n = il < 64 ? il : 64;
    buf[n++] = 0;
    for (size_t i = 0; i < NREAD; i++) {
        const field_t *f = record_field(rec, READ[i]);
        if (!f)
            continue;
        buf[n++] = (unsigned char)i;
        for (int b = 7; b >= 0; b--)
            buf[n++] = (unsigned char)(f->ver.hlc >> (8 * b));
        for (int b = 7; b >= 0; b--)
            buf[n++] = (unsigned char)(f->ver.origin >> (8 * b));
    }
    crypto_generichash(h, sizeof h, buf, n, NULL, 0);
    digest_add(sum, h);
}

/* The moment the record entered the register: the oldest write it still
 * holds (as of the cut). A field rewritten since keeps nothing of its
 * first write, but a record has fields nobody rewrites (birth date, sex). */
static hlc_t created_at(const record_t *rec)
{
    hlc_t min = 0;
    for (uint32_t i = 0; i < rec->n; i++)
        if (rec->f[i].ver.hlc && (!min || rec->f[i].ver.hlc < min))
            min = rec->f[i].ver.hlc;
    return min;
}

static int walk_cb(void *arg, const record_t *rec)
{
    walk_t *w = arg;
    code_t village;
    const char *vs = record_str(rec, "village_code");
    if (!vs || code_parse(vs, &village) || !code_contains(w->node, village))
        return 0;
    hlc_t created = created_at(rec);
    if (created > w->q.cut)
        return 0; /* entered after the cut: not in this quarter's report */
    code_t unit = w->village_node ? w->node : code_child_under(w->node, village);
    if (!unit)
        return 0;
    if (unit != w->last_unit || !w->last_row) {
        if (!(w->last_row = report_row_for(w->r, unit, NULL)))
            return LX_ENOMEM;
        w->last_unit = unit;
    }
    uint64_t *v = w->last_row->v;
    /* A record with no status is taken as in the register: status is
     * optional in the schema and a new file is active until it exits. */
    if (!is(record_str(rec, "status"), "exited"))
        count_active(v, rec, &w->q);
    count_flows(v, rec, &w->q, created);
    digest_record(w->last_row->dig, rec);
    return 0;
}

/* The one place that reads the store: the records under `under` as they
 * stood at the cut. */
static int walk_asof(stxn_t *t, code_t under, hlc_t cut, store_record_cb cb, void *arg)
{
    return store_each_record_asof(t, under, cut, cb, arg);
}

/* Rows for every unit the division tables know under node, so that a
 * unit with no children shows as zeros instead of missing. */
static int seed_rows(report_t *r, code_t node, bool village_node, const divs_t *d)
{
    if (village_node)
        return report_row_for(r, node, d ? divs_name(d, node) : NULL) ? LX_OK : LX_ENOMEM;
    if (!d)
        return LX_OK;
    size_t all = divs_villages(d, node, NULL, 0);
    code_t *vil = malloc((all ? all : 1) * sizeof *vil);
    if (!vil)
        return LX_ENOMEM;
    divs_villages(d, node, vil, all);
    code_t last = 0;
    int rc = LX_OK;
    for (size_t i = 0; i < all && !rc; i++) {
        code_t unit = code_child_under(node, vil[i]);
        if (unit && unit != last && !report_row_for(r, unit, divs_name(d, unit)))
            rc = LX_ENOMEM;
        last = unit;
    }
    free(vil);
    return rc;
}

/* Names the rows found only in the store, when the tables know them. */
static int name_rows(report_t *r, const divs_t *d)
{
    char buf[CODE_STRLEN + 1];
    for (size_t i = 0; d && i < r->n; i++) {
        const char *name = divs_name(d, r->rows[i].code);
        if (name && strcmp(r->rows[i].name, code_fmt(r->rows[i].code, buf)) == 0) {
            char *n = strdup(name);
            if (!n)
                return LX_ENOMEM;
            free(r->rows[i].name);
            r->rows[i].name = n;
        }
    }
    return LX_OK;
}

int report_compute(stxn_t *t, code_t node, const char *quarter, const divs_t *divs,
                   report_t **out, why_t *why)
{
    *out = NULL;
    quarter_t q;
    int rc = quarter_parse(quarter, &q, why);
    if (rc)
        return rc;
    code_t own = store_code_of(t);
    if (!node)
        node = own;
    char a[CODE_STRLEN + 1], b[CODE_STRLEN + 1];
    if (!code_contains(own, node))
        return why_set(why, LX_EINVAL, "unit %s is outside this node's subtree (%s)",
                       code_fmt(node, a), code_fmt(own, b));
    report_t *r = report_alloc(quarter, node, q.cut);
    if (!r)
        return LX_ENOMEM;
    snprintf(r->quarter, sizeof r->quarter, "%04dQ%d", q.year, q.q);
    walk_t w = {.r = r, .q = q, .node = node,
                .village_node = code_level(node) == LEVEL_VILLAGE};
    if (!(rc = seed_rows(r, node, w.village_node, divs)))
        rc = walk_asof(t, node, q.cut, walk_cb, &w);
    if (!rc)
        rc = name_rows(r, divs);
    if (!rc)
        rc = report_finish(r);
    if (rc) {
        report_destroy(&r);
        return why && why->msg[0] ? rc : why_set(why, rc, "report: %s", err_str(rc));
    }
    *out = r;
    return LX_OK;
}

/* ---- the equalities ---- */

static int fail_cell(const report_t *r, size_t row, int col, why_t *why, const char *fmt,
                     uint64_t have, uint64_t sum)
{
    char code[CODE_STRLEN + 1];
    const row_t *rw = &r->rows[row];
    char what[160];
    snprintf(what, sizeof what, fmt, (unsigned long long)sum);
    return why_set(why, LX_EINVAL, "row %s (%s), column %s (%s): %llu, but %s",
                   code_fmt(rw->code, code), rw->name, cols[col].key, cols[col].zh,
                   (unsigned long long)have, what);
}

static uint64_t sum_cols(const uint64_t *v, int from, int n, int step)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s += v[from + i * step];
    return s;
}

static int check_row(const report_t *r, size_t row, why_t *why)
{
    const uint64_t *v = r->rows[row].v;
    uint64_t s;
    if ((s = sum_cols(v, C_AGE0, 5, 3)) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "the age bands add up to %llu", v[C_TOTAL], s);
    for (int b = C_AGE0; b <= C_AGEX; b += 3)
        if ((s = v[b + 1] + v[b + 2]) != v[b])
            return fail_cell(r, row, b, why, "boys + girls = %llu", v[b], s);
    if ((s = v[C_MALE] + v[C_FEMALE]) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "boys + girls = %llu", v[C_TOTAL], s);
    if ((s = sum_cols(v, C_SCHOOL_NOT_AGE, C_SCHOOL_UNSET - C_SCHOOL_NOT_AGE + 1, 1)) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "the school states add up to %llu", v[C_TOTAL], s);
    if ((s = sum_cols(v, C_GA_GOOD, 3, 1)) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "the guardianship assessments add up to %llu",
                         v[C_TOTAL], s);
    if ((s = sum_cols(v, C_GT_GRANDPARENT, C_GT_UNSET - C_GT_GRANDPARENT + 1, 1)) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "the guardian types add up to %llu", v[C_TOTAL], s);
    if ((s = sum_cols(v, C_HEALTH_GOOD, C_HEALTH_UNSET - C_HEALTH_GOOD + 1, 1)) != v[C_TOTAL])
        return fail_cell(r, row, C_TOTAL, why, "the health states add up to %llu", v[C_TOTAL], s);
    if ((s = sum_cols(v, C_EXIT_PARENTS_RETURNED, C_EXIT_UNSET - C_EXIT_PARENTS_RETURNED + 1, 1))
        != v[C_EXITS])
        return fail_cell(r, row, C_EXITS, why, "the exit reasons add up to %llu", v[C_EXITS], s);
    return LX_OK;
}

int report_check(const report_t *r, why_t *why)
{
    if (r->n == 0)
        return why_set(why, LX_EINVAL, "report: no total row");
    size_t tot = r->n - 1;
    for (size_t i = 0; i < r->n; i++) {
        int rc = check_row(r, i, why);
        if (rc)
            return rc;
    }
    for (size_t c = 0; c < C_COUNT; c++) {
        uint64_t s = 0;
        for (size_t i = 0; i < tot; i++)
            s += r->rows[i].v[c];
        if (s != r->rows[tot].v[c])
            return fail_cell(r, tot, (int)c, why, "the unit rows add up to %llu",
                             r->rows[tot].v[c], s);
    }
    return LX_OK;
}

/* ---- reading ---- */

const char *report_quarter(const report_t *r) { return r->quarter; }
code_t report_node(const report_t *r) { return r->node; }
hlc_t report_cut(const report_t *r) { return r->cut; }
size_t report_nrows(const report_t *r) { return r->n; }
code_t report_row_code(const report_t *r, size_t row) { return r->rows[row].code; }

const char *report_row_name(const report_t *r, size_t row, bool zh)
{
    if (row + 1 == r->n)
        return zh ? "合计" : "Total";
    return r->rows[row].name;
}

uint64_t report_value(const report_t *r, size_t row, size_t col)
{
    return row < r->n && col < C_COUNT ? r->rows[row].v[col] : 0;
}

void report_set_value(report_t *r, size_t row, size_t col, uint64_t v)
{
    if (row < r->n && col < C_COUNT)
        r->rows[row].v[col] = v;
}

const unsigned char *report_row_digest(const report_t *r, size_t row)
{
    return r->rows[row].dig;
}

/* ---- msgpack ---- */

int report_pack(const report_t *r, msgpack_packer *pk)
{
    size_t ql = strlen(r->quarter);
    msgpack_pack_array(pk, 5);
    msgpack_pack_str(pk, ql);
    msgpack_pack_str_body(pk, r->quarter, ql);
    msgpack_pack_uint64(pk, r->node);
    msgpack_pack_uint64(pk, r->cut);
    /* The column keys travel with the figures, so a reader with another
     * column set maps them by name or refuses. */
    msgpack_pack_array(pk, C_COUNT);
    for (size_t c = 0; c < C_COUNT; c++) {
        size_t kl = strlen(cols[c].key);
        msgpack_pack_str(pk, kl);
        msgpack_pack_str_body(pk, cols[c].key, kl);
    }
    msgpack_pack_array(pk, r->n);
    for (size_t i = 0; i < r->n; i++) {
        const row_t *rw = &r->rows[i];
        size_t nl = strlen(rw->name);
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, rw->code);
        msgpack_pack_str(pk, nl);
        msgpack_pack_str_body(pk, rw->name, nl);
        msgpack_pack_bin(pk, REPORT_DIGEST_LEN);
        msgpack_pack_bin_body(pk, rw->dig, REPORT_DIGEST_LEN);
        msgpack_pack_array(pk, C_COUNT);
        for (size_t c = 0; c < C_COUNT; c++)
            msgpack_pack_uint64(pk, rw->v[c]);
    }
    return LX_OK;
}

static int unpack_row(const msgpack_object *o, const int *map, uint32_t ncol, row_t *rw,
                      why_t *why)
{
    int rc;
    if ((rc = mp_array(o, "report row", 4, 4, why)))
        return rc;
    const msgpack_object *e = o->via.array.ptr;
    if ((rc = mp_u64(&e[0], "row code", &rw->code, why))
        || (rc = mp_str(&e[1], "row name", &rw->name, why)))
        return rc;
    if (e[2].type != MSGPACK_OBJECT_BIN || e[2].via.bin.size != REPORT_DIGEST_LEN)
        return why_set(why, LX_ECORRUPT, "row digest: expected %d bytes", REPORT_DIGEST_LEN);
    memcpy(rw->dig, e[2].via.bin.ptr, REPORT_DIGEST_LEN);
    if ((rc = mp_array(&e[3], "row values", ncol, ncol, why)))
        return rc;
    for (uint32_t c = 0; c < ncol; c++) {
        uint64_t x;
        if ((rc = mp_u64(&e[3].via.array.ptr[c], "row value", &x, why)))
            return rc;
        rw->v[map[c]] = x;
    }
    return LX_OK;
}

static int unpack_obj(const msgpack_object *o, report_t **out, why_t *why)
{
    int rc = mp_array(o, "report", 5, 5, why);
    if (rc)
        return rc;
    const msgpack_object *e = o->via.array.ptr;
    char *quarter = NULL;
    uint64_t node, cut;
    quarter_t q;
    if ((rc = mp_str(&e[0], "report quarter", &quarter, why)))
        return rc;
    rc = quarter_parse(quarter, &q, why);
    if (!rc && !(rc = mp_u64(&e[1], "report node", &node, why)))
        rc = mp_u64(&e[2], "report cut", &cut, why);
    if (!rc && (code_level(node) == LEVEL_NONE || cut != q.cut))
        rc = why_set(why, LX_ECORRUPT, "report: node or cut does not fit quarter %s", quarter);
    /* Every column this build knows must be there, in any order. */
    int map[C_COUNT];
    if (!rc)
        rc = mp_array(&e[3], "report columns", C_COUNT, C_COUNT, why);
    for (uint32_t c = 0; !rc && c < C_COUNT; c++) {
        const msgpack_object *k = &e[3].via.array.ptr[c];
        char key[64] = "";
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size < sizeof key)
            memcpy(key, k->via.str.ptr, k->via.str.size);
        if ((map[c] = report_col_index(key)) < 0)
            rc = why_set(why, LX_ECORRUPT, "report column %u: unknown key '%s'", c + 1, key);
        for (uint32_t j = 0; !rc && j < c; j++)
            if (map[j] == map[c])
                rc = why_set(why, LX_ECORRUPT, "report column %s appears twice", key);
    }
    if (!rc)
        rc = mp_array(&e[4], "report rows", 1, 100000, why);
    report_t *r = rc ? NULL : report_alloc(quarter, node, cut);
    if (!rc && !r)
        rc = LX_ENOMEM;
    free(quarter);
    uint32_t nrows = rc ? 0 : e[4].via.array.size;
    if (!rc && !(r->rows = calloc(nrows, sizeof *r->rows)))
        rc = LX_ENOMEM;
    for (uint32_t i = 0; !rc && i < nrows; i++) {
        r->n = r->cap = i + 1;
        rc = unpack_row(&e[4].via.array.ptr[i], map, C_COUNT, &r->rows[i], why);
    }
    if (rc) {
        report_destroy(&r);
        return rc;
    }
    *out = r;
    return LX_OK;
}

int report_unpack(const void *buf, size_t len, report_t **out, why_t *why)
{
    *out = NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(buf, len, &u, why);
    if (rc == LX_OK)
        rc = unpack_obj(&u.data, out, why);
    msgpack_unpacked_destroy(&u);
    return rc;
}
