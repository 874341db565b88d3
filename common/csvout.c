/* csvout: see csvout.h. */
#include "csvout.h"
#include "csv.h"
#include "mp.h"
#include "schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct csvout {
    char **local;                 /* sorted */
    size_t nlocal;
    size_t nschema;
    const unsigned char **at;     /* a row's values in the stored bytes, by column */
};

csvout_t *csvout_new(const char *const *local, size_t nlocal)
{
    csvout_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->nschema = schema_count();
    o->local = calloc(nlocal ? nlocal : 1, sizeof *o->local);
    o->at = calloc(o->nschema + nlocal, sizeof *o->at);
    if (!o->local || !o->at) {
        csvout_destroy(&o);
        return NULL;
    }
    for (; o->nlocal < nlocal; o->nlocal++)
        if (!(o->local[o->nlocal] = strdup(local[o->nlocal]))) {
            csvout_destroy(&o);
            return NULL;
        }
    return o;
}

void csvout_destroy(csvout_t **self_p)
{
    csvout_t *o = *self_p;
    if (!o)
        return;
    for (size_t i = 0; o->local && i < o->nlocal; i++)
        free(o->local[i]);
    free(o->local);
    free(o->at);
    free(o);
    *self_p = NULL;
}

void csvout_header(const csvout_t *o, FILE *f)
{
    fputs("id", f);
    for (size_t i = 0; i < o->nschema; i++) {
        fputc(',', f);
        fputs(schema_at(i)->name, f);
    }
    for (size_t i = 0; i < o->nlocal; i++) {
        fputc(',', f);
        fputs(o->local[i], f);
    }
    fputs("\r\n", f);
}

void csvout_val(FILE *f, const val_t *v)
{
    switch (v->kind) {
    case VAL_NIL: break;
    case VAL_BOOL: fputs(v->b ? "true" : "false", f); break;
    case VAL_STR: csv_put_cell(f, v->s); break;
    case VAL_LIST: csv_put_joined(f, (const char *const *)v->items, NULL, v->n); break;
    }
}

void csvout_record(const csvout_t *o, FILE *f, const record_t *r)
{
    csv_put_cell(f, r->id);
    for (size_t i = 0; i < o->nschema; i++) {
        const field_t *fl = record_field(r, schema_at(i)->name);
        fputc(',', f);
        if (fl)
            csvout_val(f, &fl->val);
    }
    for (size_t i = 0; i < o->nlocal; i++) {
        const field_t *fl = record_field(r, o->local[i]);
        fputc(',', f);
        if (fl)
            csvout_val(f, &fl->val);
    }
    fputs("\r\n", f);
}

/* ---- from the stored bytes ----
 *
 * record_pack writes [id, [[hlc, origin, author]...], [[name, value,
 * version index, base]...]], a name a field number (the default schema's)
 * or text, a value nil, a boolean, a string or an array of strings. The
 * reader takes exactly that, within the decoder's limits (record.h); on
 * anything else it gives up and the caller decodes, so that a row is the
 * same whichever way it was written, and what the decoder refuses (a NUL
 * in a string, an unknown field number) stays refused. */

static bool sv_ok(mp_sv_t s) { return s.p && !memchr(s.p, '\0', s.n); }

/* Copies a name (NUL-terminated) into buf of n bytes; false if too long. */
static bool sv_copy(mp_sv_t s, char *buf, size_t n)
{
    if (s.n >= n)
        return false;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    return true;
}

/* Passes over one value; false for a kind a value does not have. */
static bool skip_value(mp_rd_t *r)
{
    unsigned b = mp_rd_byte(r);
    if (b == 0xc0 || b == 0xc2 || b == 0xc3)
        return !r->bad;
    if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
        r->p--;
        uint32_t n = mp_rd_array(r);
        if (n > RECORD_MAX_ITEMS)
            return false;
        for (uint32_t i = 0; i < n && !r->bad; i++)
            if (!sv_ok(mp_rd_str(r)))
                return false;
        return !r->bad;
    }
    return sv_ok(mp_rd_str_body(r, b));
}

/* Writes the value at p, which skip_value took. */
static void put_stored(FILE *f, const unsigned char *p, const unsigned char *end)
{
    mp_rd_t r = {p, end, false};
    unsigned b = mp_rd_byte(&r);
    if (b == 0xc0)
        return;
    if (b == 0xc2 || b == 0xc3) {
        fputs(b == 0xc3 ? "true" : "false", f);
        return;
    }
    if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
        r.p--;
        uint32_t n = mp_rd_array(&r);
        const char *items[RECORD_MAX_ITEMS];
        uint32_t lens[RECORD_MAX_ITEMS];
        for (uint32_t i = 0; i < n && i < RECORD_MAX_ITEMS; i++) {
            mp_sv_t s = mp_rd_str(&r);
            items[i] = s.p;
            lens[i] = s.n;
        }
        csv_put_joined(f, items, lens, n < RECORD_MAX_ITEMS ? n : RECORD_MAX_ITEMS);
        return;
    }
    mp_sv_t s = mp_rd_str_body(&r, b);
    csv_put_celln(f, s.p, s.n);
}

static int local_cmp(const void *key, const void *elem)
{
    const mp_sv_t *k = key;
    const char *name = *(char *const *)elem;
    int c = strncmp(k->p, name, k->n);
    return c ? c : name[k->n] ? -1 : 0;
}

/* The column of a field kept by name: a local one of ours, or a schema
 * field (as an older writer may have kept it); -1 for none. */
static long named_column(const csvout_t *o, mp_sv_t name)
{
    char buf[RECORD_NAME_MAX + 1];
    if (!sv_copy(name, buf, sizeof buf))
        return -1;
    int num = schema_num(buf);
    if (num >= 0)
        return (size_t)num < o->nschema ? num : -1;
    char *const *hit = o->nlocal ? bsearch(&name, o->local, o->nlocal, sizeof *o->local, local_cmp)
                                 : NULL;
    return hit ? (long)(o->nschema + (size_t)(hit - o->local)) : -1;
}

/* strcmp's order over names that hold no NUL (the fields' order). */
static int sv_cmp(mp_sv_t a, mp_sv_t b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

/* Reads stored bytes, calling each(arg, name, value) for every field: the
 * number or -1 (then name holds the text). False when not taken. */
typedef bool (*field_fn)(void *arg, int num, mp_sv_t name, const unsigned char *value);

static bool read_stored(const void *buf, size_t len, mp_sv_t *id, field_fn each, void *arg)
{
    mp_rd_t r = {buf, (const unsigned char *)buf + len, false};
    char idbuf[RECORD_ID_MAX + 1];
    if (mp_rd_array(&r) != 3)
        return false;
    *id = mp_rd_str(&r);
    if (!sv_ok(*id) || !sv_copy(*id, idbuf, sizeof idbuf) || !record_id_valid(idbuf))
        return false;
    uint32_t nv = mp_rd_array(&r);
    if (nv > RECORD_MAX_FIELDS)
        return false;
    for (uint32_t i = 0; i < nv && !r.bad; i++) {
        if (mp_rd_array(&r) != 3)
            return false;
        mp_rd_uint(&r);
        mp_rd_uint(&r);
        mp_sv_t author = mp_rd_str(&r);
        if (!sv_ok(author) || author.n > RECORD_AUTHOR_MAX)
            return false;
    }
    uint32_t nf = mp_rd_array(&r);
    if (nf > RECORD_MAX_FIELDS)
        return false;
    mp_sv_t prev = {NULL, 0};
    for (uint32_t i = 0; i < nf && !r.bad; i++) {
        if (mp_rd_array(&r) != 4)
            return false;
        unsigned b = r.p < r.end ? *r.p : 0xc1;
        int num = -1;
        mp_sv_t name = {NULL, 0}, key;
        if (b <= 0x7f) {
            r.p++;
            num = (int)b;
            const char *in = schema_num_name(b);
            if (!in)
                return false;
            key = (mp_sv_t){in, (uint32_t)strlen(in)};
        } else if (!sv_ok(name = mp_rd_str(&r)) || !name.n || name.n > RECORD_NAME_MAX) {
            return false;
        } else {
            key = name;
        }
        /* In order and once each, as the decoder has them. */
        if (prev.p && sv_cmp(prev, key) >= 0)
            return false;
        prev = key;
        const unsigned char *v = r.p;
        if (!skip_value(&r))
            return false;
        uint64_t vi = mp_rd_uint(&r);
        mp_rd_uint(&r);
        if (r.bad || vi >= nv || !each(arg, num, name, v))
            return false;
    }
    return !r.bad && r.p == r.end;
}

typedef struct {
    const csvout_t *o;
    const unsigned char **at;
} row_t;

static bool row_field(void *arg, int num, mp_sv_t name, const unsigned char *value)
{
    row_t *x = arg;
    long col = num >= 0 ? ((size_t)num < x->o->nschema ? num : -1) : named_column(x->o, name);
    if (col >= 0)
        x->at[col] = value;
    return true;
}

/* Notes where each column's value lies in o->at: one row at a time per
 * csvout_t (the export's one thread). */
bool csvout_packed(const csvout_t *o, FILE *f, const void *buf, size_t len)
{
    size_t ncol = o->nschema + o->nlocal;
    row_t x = {o, o->at};
    mp_sv_t id;
    memset(o->at, 0, ncol * sizeof *o->at);
    if (!read_stored(buf, len, &id, row_field, &x))
        return false;
    const unsigned char *end = (const unsigned char *)buf + len;
    csv_put_celln(f, id.p, id.n);
    for (size_t c = 0; c < ncol; c++) {
        fputc(',', f);
        if (o->at[c])
            put_stored(f, o->at[c], end);
    }
    fputs("\r\n", f);
    return true;
}

typedef struct {
    void (*cb)(void *arg, const char *name);
    void *arg;
} locals_t;

static bool local_field(void *arg, int num, mp_sv_t name, const unsigned char *value)
{
    (void)value;
    locals_t *x = arg;
    char buf[RECORD_NAME_MAX + 1];
    if (num < 0 && sv_copy(name, buf, sizeof buf) && schema_local_name(buf))
        x->cb(x->arg, buf);
    return true;
}

bool csvout_packed_locals(const void *buf, size_t len, void (*cb)(void *arg, const char *name),
                          void *arg)
{
    locals_t x = {cb, arg};
    mp_sv_t id;
    return read_stored(buf, len, &id, local_field, &x);
}
