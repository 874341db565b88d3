/* The report's computation: every record under the node, as it stood at
 * the cut, is reduced to a view of the fields the report reads and counted
 * into the row of its unit. A view is filled either from a decoded record
 * or straight from the record's stored bytes, reading only those fields
 * (decoding whole records is most of the time of a large report). */
#include "report.h"
#include "report_int.h"
#include "mp.h"
#include "schema.h"

#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The fields the report reads, in strcmp order; their versions make up
 * the digest of the data behind a row. */
enum {
    R_BIRTH, R_CATS, R_EXIT_DATE, R_EXIT_REASON, R_GENDER, R_GCAP, R_GTYPE, R_HEALTH,
    R_HELP, R_VISIT, R_LBT, R_PROXY, R_RISK, R_SCHOOL, R_STATUS, R_VILLAGE, NREAD
};
/* A string that need not end in NUL (it may point into stored bytes),
 * and the same for literals, whose lengths the compiler counts. */
typedef mp_sv_t sv_t; /* p NULL: absent, null or not a string */
#define LIT(s) {s, sizeof(s) - 1}

static const sv_t READ[NREAD] = {
    LIT("birth_date"), LIT("categories"), LIT("exit_date"), LIT("exit_reason"), LIT("gender"),
    LIT("guardian_capable"), LIT("guardian_type"), LIT("health_status"), LIT("help_pairing"),
    LIT("last_visit_date"), LIT("left_behind_type"), LIT("proxy_parent"), LIT("risk_level"),
    LIT("school_status"), LIT("status"), LIT("village_code"),
};

static const sv_t CATS[] = {
    LIT("left_behind"), LIT("orphan"), LIT("de_facto_unsupported"), LIT("disabled"),
    LIT("serious_illness"), LIT("low_income"), LIT("dropout"), LIT("other_difficulty")};
#define NCATS (int)(sizeof CATS / sizeof CATS[0])

typedef struct {
    const char *id;
    size_t idlen;
    hlc_t created;           /* the oldest version the record holds */
    uint32_t present;        /* bit i: READ[i] is a field (null or not) */
    sv_t s[NREAD];           /* string values */
    hlc_t hlc[NREAD], base[NREAD];
    code_t origin[NREAD];
    int capable;             /* guardian_capable: 1, 0, or -1 unknown */
    unsigned cats;           /* bit i: CATS[i] */
} view_t;

/* Field names to READ indexes: an open-addressing table built once per
 * walk, since a record has twice as many fields as the report reads and
 * this lookup runs for each of them. The slot is the name's length and
 * first letter, which tell the names the report reads apart, so a lookup
 * is one comparison. */
#define NAME_SLOTS 1024
/* Villages to units, remembered: a report meets a few thousand villages
 * for a city, tens of thousands for a province. */
#define VIL_SLOTS 16384

struct walk {
    report_t *r;
    quarter_t q;
    code_t node;
    bool village_node;
    int last_y, last_m, last_d;     /* the quarter's last day, ages are taken at */
    signed char names[NAME_SLOTS];  /* READ index + 1; 0 empty */
    signed char bynum[128];         /* READ index by field number; -1 none */
    struct {
        code_t village, unit;       /* unit 0: outside the node */
    } vil[VIL_SLOTS];               /* villages seen, direct-mapped */
    row_t *last_row;
    code_t last_unit;
    uint64_t decoded;               /* records the packed reader passed on */
};

/* Equal bytes, compared as two overlapping words of 8 (or 4) bytes, which
 * covers the lengths of every name and value the report compares: a call
 * to memcmp for each was an eighth of a large report's time. */
static inline bool sv_eq(sv_t a, sv_t b)
{
    if (!a.p || a.n != b.n)
        return false;
    uint32_t n = a.n;
    if (n >= 8 && n <= 16) {
        uint64_t x[2], y[2];
        memcpy(&x[0], a.p, 8);
        memcpy(&x[1], a.p + n - 8, 8);
        memcpy(&y[0], b.p, 8);
        memcpy(&y[1], b.p + n - 8, 8);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x[2], y[2];
        memcpy(&x[0], a.p, 4);
        memcpy(&x[1], a.p + n - 4, 4);
        memcpy(&y[0], b.p, 4);
        memcpy(&y[1], b.p + n - 4, 4);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
    }
    return memcmp(a.p, b.p, n) == 0;
}
#define SV_IS(a, lit) sv_eq((a), (sv_t)LIT(lit))

/* The index of a among names (n of them), or -1. */
static int sv_pick(sv_t a, const sv_t *names, int n)
{
    for (int i = 0; a.p && i < n; i++)
        if (sv_eq(a, names[i]))
            return i;
    return -1;
}

static unsigned name_hash(sv_t s)
{
    return s.n ? ((s.n & 31u) << 5 | ((unsigned char)s.p[0] & 31u)) % NAME_SLOTS : 0;
}

static void names_init(walk_t *w)
{
    memset(w->bynum, -1, sizeof w->bynum);
    for (int k = 0; k < NREAD; k++) {
        int num = schema_num(READ[k].p); /* READ's names are literals */
        if (num >= 0 && num < (int)sizeof w->bynum)
            w->bynum[num] = (signed char)k;
        unsigned h = name_hash(READ[k]);
        while (w->names[h])
            h = (h + 1) % NAME_SLOTS;
        w->names[h] = (signed char)(k + 1);
    }
}

static inline int read_index(const walk_t *w, sv_t name)
{
    if (!name.p)
        return -1;
    for (unsigned h = name_hash(name); w->names[h]; h = (h + 1) % NAME_SLOTS)
        if (sv_eq(name, READ[w->names[h] - 1]))
            return w->names[h] - 1;
    return -1;
}

static void view_init(view_t *v)
{
    memset(v, 0, sizeof *v);
    v->capable = -1;
}

static void view_version(view_t *v, int k, hlc_t h, code_t origin, hlc_t base)
{
    v->present |= 1u << k;
    v->hlc[k] = h;
    v->origin[k] = origin;
    v->base[k] = base;
}

/* ---- a view of a decoded record ---- */

static void view_from_record(const walk_t *w, view_t *v, const record_t *rec)
{
    view_init(v);
    v->id = rec->id;
    v->idlen = strlen(rec->id);
    for (uint32_t i = 0; i < rec->n; i++) {
        const field_t *f = &rec->f[i];
        if (f->ver.hlc && (!v->created || f->ver.hlc < v->created))
            v->created = f->ver.hlc;
        int k = read_index(w, (sv_t){f->name, (uint32_t)strlen(f->name)});
        if (k < 0)
            continue;
        view_version(v, k, f->ver.hlc, f->ver.origin, f->ver.base);
        if (f->val.kind == VAL_STR)
            v->s[k] = (sv_t){f->val.s, (uint32_t)strlen(f->val.s)};
        else if (f->val.kind == VAL_BOOL && k == R_GCAP)
            v->capable = f->val.b;
        else if (f->val.kind == VAL_LIST && k == R_CATS)
            for (uint32_t j = 0; j < f->val.n; j++) {
                sv_t it = {f->val.items[j], (uint32_t)strlen(f->val.items[j])};
                int c = sv_pick(it, CATS, NCATS);
                if (c >= 0)
                    v->cats |= 1u << c;
            }
    }
}

/* ---- a view of a record's stored bytes ----
 *
 * record_pack writes [id, [[hlc, origin, author]...], [[name, value,
 * version index, base]...]], a name a field number or text, with values
 * nil, a boolean, a string or an array of strings. The reader (mp_rd_t,
 * common/mp.h) takes exactly that, numbers in one byte (every field of
 * the schema), and gives up on anything else (the caller then decodes the
 * record the ordinary way). */

/* One value into the view's slot k (k < 0: skipped). */
static void rd_value(mp_rd_t *r, view_t *v, int k)
{
    unsigned b = mp_rd_byte(r);
    if (b == 0xc0)
        return;
    if (b == 0xc2 || b == 0xc3) {
        if (k == R_GCAP)
            v->capable = b == 0xc3;
        return;
    }
    if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
        r->p--;
        uint32_t n = mp_rd_array(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            sv_t it = mp_rd_str(r);
            int c = k == R_CATS ? sv_pick(it, CATS, NCATS) : -1;
            if (c >= 0)
                v->cats |= 1u << c;
        }
        return;
    }
    sv_t s = mp_rd_str_body(r, b);
    if (k >= 0)
        v->s[k] = s;
}

#define MAX_VERSIONS 64

static bool view_from_packed(const walk_t *w, view_t *v, const void *buf, size_t len)
{
    view_init(v);
    mp_rd_t r = {buf, (const unsigned char *)buf + len, false};
    hlc_t vh[MAX_VERSIONS];
    code_t vo[MAX_VERSIONS];
    if (mp_rd_array(&r) != 3)
        return false;
    sv_t id = mp_rd_str(&r);
    v->id = id.p;
    v->idlen = id.n;
    uint32_t nv = mp_rd_array(&r);
    if (nv > MAX_VERSIONS)
        return false;
    for (uint32_t i = 0; i < nv && !r.bad; i++) {
        if (mp_rd_array(&r) != 3)
            return false;
        vh[i] = mp_rd_uint(&r);
        vo[i] = mp_rd_uint(&r);
        mp_rd_str(&r); /* the author: not the report's business */
    }
    uint32_t nf = mp_rd_array(&r);
    for (uint32_t i = 0; i < nf && !r.bad; i++) {
        if (mp_rd_array(&r) != 4)
            return false;
        /* A schema field by number, any other by name (schema.h). */
        unsigned b = r.p < r.end ? *r.p : 0xc1;
        int k;
        if (b <= 0x7f) {
            r.p++;
            k = w->bynum[b];
        } else {
            k = read_index(w, mp_rd_str(&r));
        }
        rd_value(&r, v, k);
        uint64_t vi = mp_rd_uint(&r), base = mp_rd_uint(&r);
        if (r.bad || vi >= nv)
            return false;
        if (vh[vi] && (!v->created || vh[vi] < v->created))
            v->created = vh[vi];
        if (k >= 0)
            view_version(v, k, vh[vi], vo[vi], base);
    }
    return !r.bad && r.p == r.end && id.p;
}

/* ---- counting ---- */

static bool in_quarter(const quarter_t *q, hlc_t h) { return h > q->start && h <= q->cut; }

static bool date_in_quarter(const quarter_t *q, sv_t d)
{
    return d.p && d.n == 10 && memcmp(d.p, q->first, 10) >= 0 && memcmp(d.p, q->last, 10) <= 0;
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

/* The band of a birth date at the quarter's last day: report_age over
 * bytes that need not end in NUL, with the quarter's day parsed once. */
static int band_of(const walk_t *w, sv_t birth)
{
    int y, m, d;
    if (!report_ymd(birth.p, birth.n, &y, &m, &d))
        return age_band(-1000);
    int age = w->last_y - y;
    if (w->last_m < m || (w->last_m == m && w->last_d < d))
        age--;
    return age_band(age);
}

/* Guardianship assessment (监护评估), one class for every child so that
 * the classes add up to the total: good (较好) when the guardian is able to
 * care and is a parent or grandparent; average (一般) when able and another
 * relative, friend or an institution; poor (较差) otherwise: no guardian,
 * guardian_type missing, or the guardian not (or not known to be) able. */
static int assessment(const view_t *v)
{
    sv_t gt = v->s[R_GTYPE];
    if (v->capable != 1 || !gt.p || SV_IS(gt, "none"))
        return C_GA_POOR;
    if (SV_IS(gt, "parent") || SV_IS(gt, "grandparent"))
        return C_GA_GOOD;
    if (SV_IS(gt, "relative") || SV_IS(gt, "institution"))
        return C_GA_AVERAGE;
    return C_GA_POOR;
}

static void count_active(uint64_t *c, const view_t *v, const walk_t *w)
{
    const quarter_t *q = &w->q;
    static const sv_t lbts[] = {LIT("both_parents_away"), LIT("one_away_other_incapable")};
    static const sv_t gts[] = {LIT("grandparent"), LIT("relative"), LIT("institution"),
                               LIT("parent"), LIT("none")};
    static const sv_t schools[] = {LIT("not_school_age"), LIT("preschool"), LIT("enrolled"),
                                   LIT("boarding"), LIT("dropped_out"), LIT("graduated")};
    static const sv_t health[] = {LIT("健康"), LIT("一般"), LIT("较差")};
    c[C_TOTAL]++;
    int sex = SV_IS(v->s[R_GENDER], "male") ? 1 : SV_IS(v->s[R_GENDER], "female") ? 2 : 0;
    if (sex)
        c[sex == 1 ? C_MALE : C_FEMALE]++;
    int band = band_of(w, v->s[R_BIRTH]);
    c[band]++;
    if (sex)
        c[band + sex]++;
    for (int i = 0; i < NCATS; i++)
        if (v->cats & (1u << i))
            c[C_CAT_LEFT_BEHIND + i]++;
    int k = sv_pick(v->s[R_LBT], lbts, 2);
    if (k >= 0)
        c[C_LBT_BOTH + k]++;
    k = sv_pick(v->s[R_GTYPE], gts, 5);
    c[k >= 0 ? C_GT_GRANDPARENT + k : C_GT_UNSET]++;
    c[assessment(v)]++;
    k = sv_pick(v->s[R_SCHOOL], schools, 6);
    c[k >= 0 ? C_SCHOOL_NOT_AGE + k : C_SCHOOL_UNSET]++;
    sv_t h = v->s[R_HEALTH];
    k = sv_pick(h, health, 3);
    c[k >= 0 ? C_HEALTH_GOOD + k : h.p && h.n ? C_HEALTH_OTHER : C_HEALTH_UNSET]++;
    if (v->s[R_HELP].p && v->s[R_HELP].n)
        c[C_HELP_PAIRING]++;
    if (v->s[R_PROXY].p && v->s[R_PROXY].n)
        c[C_PROXY_PARENT]++;
    if (date_in_quarter(q, v->s[R_VISIT]))
        c[C_VISITED]++;
    if (SV_IS(v->s[R_RISK], "high")) {
        c[C_RISK_HIGH]++;
        if (in_quarter(q, v->hlc[R_RISK]))
            c[C_CASE_OPENED]++;
    }
}

/* Counts that any record may add to, in the register or not: entries,
 * exits, and cases closed (a child may leave the register in the quarter
 * its case closes). A case is a high risk level until the case workflow
 * exists: opened when set to high in the quarter, closed when a high (or
 * any earlier) level was replaced by low or medium in the quarter. */
static void count_flows(uint64_t *c, const view_t *v, const quarter_t *q)
{
    static const sv_t reasons[] = {LIT("parents_returned"), LIT("reached_age_limit"),
                                   LIT("moved_away"), LIT("category_changed"), LIT("death"),
                                   LIT("other")};
    if (in_quarter(q, v->created))
        c[C_ENTRIES]++;
    if (SV_IS(v->s[R_STATUS], "exited") && date_in_quarter(q, v->s[R_EXIT_DATE])) {
        c[C_EXITS]++;
        int k = sv_pick(v->s[R_EXIT_REASON], reasons, 6);
        c[k >= 0 ? C_EXIT_PARENTS_RETURNED + k : C_EXIT_UNSET]++;
    }
    sv_t risk = v->s[R_RISK];
    if (risk.p && !SV_IS(risk, "high") && v->base[R_RISK] && in_quarter(q, v->hlc[R_RISK]))
        c[C_CASE_CLOSED]++;
}

/* BLAKE2b-256 of the record's id and, for each field the report reads
 * that the record holds, its index and version (hlc, origin), added into
 * the row's sum. Under last-writer-wins a version fixes the value, so
 * equal sums mean equal data behind the figures. */
static void put_be64(unsigned char *p, uint64_t x)
{
    x = htobe64(x);
    memcpy(p, &x, 8);
}

static void digest_view(unsigned char sum[REPORT_DIGEST_LEN], const view_t *v)
{
    unsigned char buf[65 + NREAD * 17], h[REPORT_DIGEST_LEN];
    size_t n = v->idlen < 64 ? v->idlen : 64;
    memcpy(buf, v->id, n);
    buf[n++] = 0;
    for (int k = 0; k < NREAD; k++) {
        if (!(v->present & (1u << k)))
            continue;
        buf[n] = (unsigned char)k;
        put_be64(buf + n + 1, v->hlc[k]);
        put_be64(buf + n + 9, v->origin[k]);
        n += 17;
    }
    crypto_generichash(h, sizeof h, buf, n, NULL, 0);
    report_digest_add(sum, h);
}

/* The unit of a village code's text, 0 when outside the node or not a
 * code; remembered per village (records come in id order, so villages
 * come in any order). */
static code_t unit_of(walk_t *w, sv_t vs)
{
    if (!vs.p || vs.n != CODE_STRLEN)
        return 0;
    code_t village = 0;
    for (int i = 0; i < CODE_STRLEN; i++) {
        if (vs.p[i] < '0' || vs.p[i] > '9')
            return 0;
        village = village * 10 + (code_t)(vs.p[i] - '0');
    }
    size_t slot = (size_t)((village * 0x9e3779b97f4a7c15u) >> 40) % VIL_SLOTS;
    if (w->vil[slot].village == village)
        return w->vil[slot].unit;
    code_t unit = 0;
    if (!code_parse_n(vs.p, CODE_STRLEN, &village) && code_contains(w->node, village))
        unit = w->village_node ? w->node : code_child_under(w->node, village);
    w->vil[slot].village = village;
    w->vil[slot].unit = unit;
    return unit;
}

/* The row of the record's unit; NULL with *rc 0 when the record lies
 * outside the node. */
static row_t *row_of(walk_t *w, sv_t vs, int *rc)
{
    *rc = LX_OK;
    code_t unit = unit_of(w, vs);
    if (!unit)
        return NULL;
    if (unit == w->last_unit && w->last_row)
        return w->last_row;
    /* Rows move when one is inserted: keep only the latest pointer. */
    row_t *row = report_row_for(w->r, unit, NULL);
    if (!row) {
        *rc = LX_ENOMEM;
        return NULL;
    }
    w->last_unit = unit;
    return w->last_row = row;
}

static int count_view(walk_t *w, const view_t *v)
{
    if (v->created > w->q.cut)
        return LX_OK; /* entered after the cut: not in this quarter's report */
    int rc;
    row_t *row = row_of(w, v->s[R_VILLAGE], &rc);
    if (!row)
        return rc;
    /* A record with no status is taken as in the register: status is
     * optional in the schema and a new file is active until it exits. */
    if (!SV_IS(v->s[R_STATUS], "exited"))
        count_active(row->v, v, w);
    count_flows(row->v, v, &w->q);
    digest_view(row->dig, v);
    return LX_OK;
}

int walk_record(walk_t *w, const record_t *rec)
{
    view_t v;
    view_from_record(w, &v, rec);
    return count_view(w, &v);
}

int walk_packed(walk_t *w, const void *buf, size_t len)
{
    view_t v;
    if (view_from_packed(w, &v, buf, len))
        return count_view(w, &v);
    /* Not the shape the reader knows: decode it the ordinary way. */
    w->decoded++;
    record_t *rec;
    int rc = record_decode(buf, len, &rec, NULL);
    if (rc)
        return rc;
    rc = walk_record(w, rec);
    record_destroy(&rec);
    return rc;
}

uint64_t walk_decoded(const walk_t *w) { return w->decoded; }

/* ---- rows and the whole walk ---- */

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

int walk_new(code_t node, const char *quarter, const divs_t *divs, walk_t **out, why_t *why)
{
    *out = NULL;
    quarter_t q;
    int rc = quarter_parse(quarter, &q, why);
    if (rc)
        return rc;
    walk_t *w = calloc(1, sizeof *w);
    char norm[8];
    snprintf(norm, sizeof norm, "%04dQ%d", q.year, q.q);
    if (!w || !(w->r = report_alloc(norm, node, q.cut))) {
        free(w);
        return LX_ENOMEM;
    }
    w->q = q;
    w->last_y = q.year;
    w->last_m = atoi(q.last + 5);
    w->last_d = atoi(q.last + 8);
    w->node = node;
    w->village_node = code_level(node) == LEVEL_VILLAGE;
    names_init(w);
    if ((rc = seed_rows(w->r, node, w->village_node, divs))) {
        walk_destroy(&w);
        return rc;
    }
    *out = w;
    return LX_OK;
}

void walk_destroy(walk_t **w)
{
    if (!w || !*w)
        return;
    report_destroy(&(*w)->r);
    free(*w);
    *w = NULL;
}

int walk_finish(walk_t **w, const divs_t *divs, report_t **out)
{
    int rc = name_rows((*w)->r, divs);
    if (!rc)
        rc = report_finish((*w)->r, divs ? divs_name(divs, (*w)->node) : NULL);
    if (!rc) {
        *out = (*w)->r;
        (*w)->r = NULL;
    }
    walk_destroy(w);
    return rc;
}

static int packed_cb(void *arg, const void *buf, size_t len) { return walk_packed(arg, buf, len); }

/* ---- two walkers ----
 *
 * Most of a large report's time is per record (reading the stored bytes,
 * counting, hashing for the digest), so two threads share the records
 * (store_each_packed_asof_shared), each counting into a walk of its own;
 * the second's rows are then added into the first's. Counts and digests
 * are sums, so the result is the one walker's, whichever records each
 * took. */

/* Below this many records a second thread is not worth starting. */
#define SPLIT_MIN 256

typedef struct {
    stxn_t *t;
    code_t node;
    hlc_t cut;
    store_share_t *sh;
    walk_t *w;
    int rc;
} half_t;

static void *half_main(void *arg)
{
    half_t *h = arg;
    h->rc = store_each_packed_asof_shared(h->t, h->node, h->cut, h->sh, true, packed_cb, h->w);
    return NULL;
}

/* Adds the rows of b into a. */
static int walk_merge(walk_t *a, const walk_t *b)
{
    for (size_t i = 0; i < b->r->n; i++) {
        const row_t *src = &b->r->rows[i];
        row_t *dst = report_row_for(a->r, src->code, NULL);
        if (!dst)
            return LX_ENOMEM;
        for (size_t c = 0; c < C_COUNT; c++)
            dst->v[c] += src->v[c];
        report_digest_add(dst->dig, src->dig);
    }
    a->last_row = NULL; /* rows may have moved */
    return LX_OK;
}

/* The walk over the store, in two threads when walkers is 2 and the
 * store lets a second transaction see t's snapshot, else in this one. */
static int walk_store(stxn_t *t, walk_t *w, int walkers)
{
    store_share_t sh;
    stxn_t *t2 = NULL;
    walk_t *w2 = NULL;
    int rc = store_share_init(t, &sh);
    if (rc || walkers < 2 || store_begin_twin(t, &t2))
        return rc ? rc : store_each_packed_asof(t, w->node, w->q.cut, packed_cb, w);
    char quarter[8];
    snprintf(quarter, sizeof quarter, "%04dQ%d", w->q.year, w->q.q);
    half_t h = {t2, w->node, w->q.cut, &sh, NULL, LX_OK};
    pthread_t th;
    bool started = false;
    if (!walk_new(w->node, quarter, NULL, &w2, NULL)) {
        h.w = w2;
        started = pthread_create(&th, NULL, half_main, &h) == 0;
    }
    /* Without the second thread this one takes every record. */
    rc = store_each_packed_asof_shared(t, w->node, w->q.cut, &sh, false, packed_cb, w);
    if (started) {
        pthread_join(th, NULL);
        if (!rc)
            rc = h.rc;
        if (!rc)
            rc = walk_merge(w, w2);
    }
    walk_destroy(&w2);
    store_abort(&t2);
    return rc;
}

int report_compute_walkers(stxn_t *t, code_t node, const char *quarter, const divs_t *divs,
                           int walkers, report_t **out, why_t *why)
{
    *out = NULL;
    code_t own = store_code_of(t);
    if (!node)
        node = own;
    char a[CODE_STRLEN + 1], b[CODE_STRLEN + 1];
    if (!code_contains(own, node))
        return why_set(why, LX_EINVAL, "unit %s is outside this node's subtree (%s)",
                       code_fmt(node, a), code_fmt(own, b));
    walk_t *w;
    int rc = walk_new(node, quarter, divs, &w, why);
    if (rc)
        return rc;
    /* The one place that reads the store: the records as of the cut. */
    rc = walk_store(t, w, walkers);
    if (rc) {
        walk_destroy(&w);
        return why_set(why, rc, "report: reading the store: %s", err_str(rc));
    }
    return walk_finish(&w, divs, out);
}

int report_compute(stxn_t *t, code_t node, const char *quarter, const divs_t *divs,
                   report_t **out, why_t *why)
{
    /* The processors this process may run on, not the machine's. */
    cpu_set_t cpus;
    store_share_t sh;
    int walkers = 1;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 1
        && !store_share_init(t, &sh) && atomic_load(&sh.left) >= SPLIT_MIN)
        walkers = 2;
    return report_compute_walkers(t, node, quarter, divs, walkers, out, why);
}
