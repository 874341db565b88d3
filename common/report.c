/* The quarterly report: columns, quarters, the report object, the table's
 * equalities, and the msgpack form a frozen report travels in. The
 * computation is in report_walk.c, the formats in report_fmt.c. */
#include "report.h"
#include "report_int.h"
#include "mp.h"

#include <endian.h>
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

static bool ymd(const char *s, int *y, int *m, int *d)
{
    return report_ymd(s, s ? strlen(s) : 0, y, m, d);
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

/* Adds b to a, both 256-bit little-endian numbers, 64 bits at a time
 * (it runs once for every record a report counts). */
void report_digest_add(unsigned char a[REPORT_DIGEST_LEN], const unsigned char b[REPORT_DIGEST_LEN])
{
    uint64_t carry = 0;
    for (int i = 0; i < REPORT_DIGEST_LEN; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        x = le64toh(x);
        uint64_t s = x + le64toh(y), c = s < x;
        s += carry;
        carry = c | (s < carry);
        s = htole64(s);
        memcpy(a + i, &s, 8);
    }
}

/* Appends the total row, the column sums of the unit rows. */
int report_finish(report_t *r, const char *node_name)
{
    char code[CODE_STRLEN + 1];
    row_t total = {.code = r->node};
    for (size_t i = 0; i < r->n; i++) {
        for (size_t c = 0; c < C_COUNT; c++)
            total.v[c] += r->rows[i].v[c];
        report_digest_add(total.dig, r->rows[i].dig);
    }
    if (!(total.name = strdup(node_name ? node_name : code_fmt(r->node, code))))
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

/* ---- the equalities ---- */

static int fail_cell(const report_t *r, size_t row, int col, why_t *why, const char *fmt,
                     uint64_t have, uint64_t sum)
{
    char code[CODE_STRLEN + 1];
    const row_t *rw = &r->rows[row];
    char what[160];
    snprintf(what, sizeof what, fmt, (unsigned long long)sum);
    return why_set(why, LX_EINVAL, "row %s (%s), column %s (%s): %llu, but %s",
                   code_fmt(rw->code, code), report_row_name(r, row, true), cols[col].key, cols[col].zh,
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
const char *report_node_name(const report_t *r) { return r->n ? r->rows[r->n - 1].name : ""; }
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

int report_hash(const report_t *r, unsigned char out[REPORT_DIGEST_LEN])
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = report_pack(r, &pk);
    if (!rc && !sb.data)
        rc = LX_ENOMEM;
    if (!rc)
        crypto_generichash(out, REPORT_DIGEST_LEN, (const unsigned char *)sb.data, sb.size, NULL, 0);
    msgpack_sbuffer_destroy(&sb);
    return rc;
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
