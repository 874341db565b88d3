#include "record.h"
#include "mp.h"
#include "schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS RECORD_MAX_FIELDS
#define MAX_ITEMS RECORD_MAX_ITEMS
#define MAX_AUTHOR RECORD_AUTHOR_MAX

/* ---- values ---- */

void val_free(val_t *v)
{
    if (v->kind == VAL_STR)
        free(v->s);
    if (v->kind == VAL_LIST) {
        for (uint32_t i = 0; i < v->n; i++)
            free(v->items[i]);
        free(v->items);
    }
    memset(v, 0, sizeof *v);
}

int val_set_strn(val_t *v, const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return LX_ENOMEM;
    memcpy(c, s, n);
    c[n] = '\0';
    val_free(v);
    v->kind = VAL_STR;
    v->s = c;
    return LX_OK;
}

int val_set_str(val_t *v, const char *s)
{
    return val_set_strn(v, s, strlen(s));
}

int val_list_add(val_t *v, const char *s)
{
    if (v->kind == VAL_NIL)
        v->kind = VAL_LIST;
    if (v->kind != VAL_LIST)
        return LX_EINVAL;
    char **items = realloc(v->items, (v->n + 1) * sizeof *items);
    if (!items)
        return LX_ENOMEM;
    v->items = items;
    if (!(items[v->n] = strdup(s)))
        return LX_ENOMEM;
    v->n++;
    return LX_OK;
}

bool val_list_has(const val_t *v, const char *s)
{
    if (v->kind != VAL_LIST)
        return false;
    for (uint32_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i], s) == 0)
            return true;
    return false;
}

int val_copy(val_t *dst, const val_t *src)
{
    val_t t = {.kind = src->kind, .b = src->b};
    if (src->kind == VAL_STR && !(t.s = strdup(src->s)))
        return LX_ENOMEM;
    for (uint32_t i = 0; src->kind == VAL_LIST && i < src->n; i++) {
        if (val_list_add(&t, src->items[i])) {
            val_free(&t);
            return LX_ENOMEM;
        }
    }
    *dst = t;
    return LX_OK;
}

bool val_eq(const val_t *a, const val_t *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case VAL_NIL: return true;
    case VAL_BOOL: return a->b == b->b;
    case VAL_STR: return strcmp(a->s, b->s) == 0;
    case VAL_LIST:
        if (a->n != b->n)
            return false;
        for (uint32_t i = 0; i < a->n; i++)
            if (strcmp(a->items[i], b->items[i]) != 0)
                return false;
        return true;
    }
    return false;
}

int val_pack(const val_t *v, msgpack_packer *pk)
{
    switch (v->kind) {
    case VAL_NIL: return msgpack_pack_nil(pk);
    case VAL_BOOL: return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case VAL_STR: {
        size_t n = strlen(v->s);
        msgpack_pack_str(pk, n);
        return msgpack_pack_str_body(pk, v->s, n);
    }
    case VAL_LIST:
        msgpack_pack_array(pk, v->n);
        for (uint32_t i = 0; i < v->n; i++) {
            size_t n = strlen(v->items[i]);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, v->items[i], n);
        }
        return 0;
    }
    return -1;
}

int val_from_obj(const msgpack_object *o, val_t *out, why_t *why)
{
    val_t v = {0};
    int rc = LX_OK;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        v.kind = VAL_BOOL;
        v.b = o->via.boolean;
        break;
    case MSGPACK_OBJECT_STR:
        v.kind = VAL_STR;
        rc = mp_str(o, "value", &v.s, why);
        if (rc)
            v.kind = VAL_NIL;
        break;
    case MSGPACK_OBJECT_ARRAY:
        if ((rc = mp_array(o, "value", 0, MAX_ITEMS, why)))
            break;
        v.kind = VAL_LIST;
        for (uint32_t i = 0; i < o->via.array.size && !rc; i++) {
            char *s;
            if ((rc = mp_str(&o->via.array.ptr[i], "value item", &s, why)))
                break;
            rc = val_list_add(&v, s);
            free(s);
        }
        break;
    default:
        rc = why_set(why, LX_ECORRUPT, "value: unsupported type");
    }
    if (rc) {
        val_free(&v);
        return rc;
    }
    *out = v;
    return LX_OK;
}

/* ---- versions and fields ---- */

int ver_cmp(const ver_t *a, const ver_t *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->origin != b->origin)
        return a->origin < b->origin ? -1 : 1;
    return 0;
}

void field_free(field_t *f)
{
    if (!schema_interned(f->name))
        free(f->name);
    val_free(&f->val);
    free(f->ver.author);
    memset(f, 0, sizeof *f);
}

int field_init(field_t *f, const char *name, const val_t *val, const ver_t *ver)
{
    memset(f, 0, sizeof *f);
    f->ver = *ver;
    f->ver.author = NULL;
    const char *in = schema_intern(name);
    if (!(f->name = in ? (char *)in : strdup(name))
        || (ver->author && !(f->ver.author = strdup(ver->author)))
        || val_copy(&f->val, val)) {
        field_free(f);
        return LX_ENOMEM;
    }
    return LX_OK;
}

int field_copy(field_t *dst, const field_t *src)
{
    return field_init(dst, src->name, &src->val, &src->ver);
}

/* A field's name as stored and sent: its number in the default schema,
 * else its text (schema.h, field numbers). */
static void name_pack(const char *name, msgpack_packer *pk)
{
    int num = schema_num(name);
    if (num >= 0) {
        msgpack_pack_uint32(pk, (uint32_t)num);
        return;
    }
    size_t n = strlen(name);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, name, n);
}

/* The name of a stored or received field: a number gives the schema's
 * interned name; text is copied, and interned when it names a schema
 * field (the form written before numbers). */
static int name_from_obj(const msgpack_object *o, char **out, why_t *why)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        const char *in = schema_num_name(o->via.u64);
        if (!in)
            return why_set(why, LX_ECORRUPT, "field name: no field number %" PRIu64,
                           o->via.u64);
        *out = (char *)in;
        return LX_OK;
    }
    char *s;
    int rc = mp_str(o, "field name", &s, why);
    if (rc)
        return rc;
    if (s[0] == '\0' || strlen(s) > RECORD_NAME_MAX) {
        free(s);
        return why_set(why, LX_ECORRUPT, "field name: empty or too long");
    }
    const char *in = schema_intern(s);
    if (in) {
        free(s);
        s = (char *)in;
    }
    *out = s;
    return LX_OK;
}

int field_pack(const field_t *f, msgpack_packer *pk)
{
    const char *author = f->ver.author ? f->ver.author : "";
    size_t an = strlen(author);
    msgpack_pack_array(pk, 6);
    name_pack(f->name, pk);
    val_pack(&f->val, pk);
    msgpack_pack_uint64(pk, f->ver.hlc);
    msgpack_pack_uint64(pk, f->ver.origin);
    msgpack_pack_uint64(pk, f->ver.base);
    msgpack_pack_str(pk, an);
    return msgpack_pack_str_body(pk, author, an);
}

int field_from_obj(const msgpack_object *o, field_t *out, why_t *why)
{
    field_t f = {0};
    int rc = mp_array(o, "field", 6, 6, why);
    if (rc)
        return rc;
    const msgpack_object *a = o->via.array.ptr;
    if ((rc = name_from_obj(&a[0], &f.name, why))
        || (rc = val_from_obj(&a[1], &f.val, why))
        || (rc = mp_u64(&a[2], "field hlc", &f.ver.hlc, why))
        || (rc = mp_u64(&a[3], "field origin", &f.ver.origin, why))
        || (rc = mp_u64(&a[4], "field base", &f.ver.base, why))
        || (rc = mp_str(&a[5], "field author", &f.ver.author, why))) {
        field_free(&f);
        return rc;
    }
    *out = f;
    return LX_OK;
}

/* The compact form of a set of fields, shared by records and changes:
 * the distinct versions (hlc, origin, author) once each, in order of first
 * use, then per field [name, value, version index, base], the name a
 * schema field's number or other text (name_pack). Most records and
 * changes carry one or two versions, so this is about half the size of a
 * version per field, and keeps a record under LMDB's overflow size. */
typedef struct {
    hlc_t hlc;
    code_t origin;
    const char *author;
} vent_t;

/* msgpack written straight into a buffer, in the canonical form msgpack-c
 * writes (the smallest header for each integer, string and array), and
 * handed to the packer's writer in large pieces: a record is a hundred
 * or so items, each of which through msgpack-c's packer was a call of its
 * writer (a capacity check and a copy of a few bytes). */
typedef struct {
    msgpack_packer *pk;
    int err;        /* the writer failed (out of memory) */
    size_t n;
    unsigned char buf[2048];
} fastpk_t;

static void fp_flush(fastpk_t *w)
{
    if (w->n && w->pk->callback(w->pk->data, (const char *)w->buf, w->n))
        w->err = -1;
    w->n = 0;
}

/* Room for `need` more bytes (at most sizeof buf). */
static unsigned char *fp_room(fastpk_t *w, size_t need)
{
    if (w->n + need > sizeof w->buf)
        fp_flush(w);
    return w->buf + w->n;
}

static void fp_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void fp_uint(fastpk_t *w, uint64_t v)
{
    unsigned char *p = fp_room(w, 9);
    if (v < 128) {
        p[0] = (unsigned char)v;
        w->n += 1;
    } else if (v < 256) {
        p[0] = 0xcc;
        p[1] = (unsigned char)v;
        w->n += 2;
    } else if (v < 65536) {
        p[0] = 0xcd;
        fp_be(p + 1, v, 2);
        w->n += 3;
    } else if (v <= UINT32_MAX) {
        p[0] = 0xce;
        fp_be(p + 1, v, 4);
        w->n += 5;
    } else {
        p[0] = 0xcf;
        fp_be(p + 1, v, 8);
        w->n += 9;
    }
}

/* An array header, or with str a string's. */
static void fp_head(fastpk_t *w, uint64_t n, bool str)
{
    unsigned char *p = fp_room(w, 5);
    if (str && n < 32) {
        p[0] = (unsigned char)(0xa0 | n);
        w->n += 1;
    } else if (!str && n < 16) {
        p[0] = (unsigned char)(0x90 | n);
        w->n += 1;
    } else if (str && n < 256) {
        p[0] = 0xd9;
        p[1] = (unsigned char)n;
        w->n += 2;
    } else if (n < 65536) {
        p[0] = str ? 0xda : 0xdc;
        fp_be(p + 1, n, 2);
        w->n += 3;
    } else {
        p[0] = str ? 0xdb : 0xdd;
        fp_be(p + 1, n, 4);
        w->n += 5;
    }
}

static void fp_str(fastpk_t *w, const char *s)
{
    size_t n = strlen(s);
    fp_head(w, n, true);
    if (n > sizeof w->buf) {
        fp_flush(w);
        if (w->pk->callback(w->pk->data, s, n))
            w->err = -1;
        return;
    }
    memcpy(fp_room(w, n), s, n);
    w->n += n;
}

static void fp_val(fastpk_t *w, const val_t *v)
{
    switch (v->kind) {
    case VAL_NIL:
        *fp_room(w, 1) = 0xc0;
        w->n++;
        break;
    case VAL_BOOL:
        *fp_room(w, 1) = v->b ? 0xc3 : 0xc2;
        w->n++;
        break;
    case VAL_STR:
        fp_str(w, v->s);
        break;
    case VAL_LIST:
        fp_head(w, v->n, false);
        for (uint32_t i = 0; i < v->n; i++)
            fp_str(w, v->items[i]);
        break;
    }
}

static int fields_pack(const field_t *f, uint32_t n, msgpack_packer *pk)
{
    vent_t vt[MAX_FIELDS];
    uint32_t nv = 0, idx[MAX_FIELDS];
    for (uint32_t i = 0; i < n && i < MAX_FIELDS; i++) {
        const char *a = f[i].ver.author ? f[i].ver.author : "";
        uint32_t j;
        for (j = 0; j < nv; j++)
            if (vt[j].hlc == f[i].ver.hlc && vt[j].origin == f[i].ver.origin
                && (vt[j].author == a || strcmp(vt[j].author, a) == 0))
                break;
        if (j == nv)
            vt[nv++] = (vent_t){f[i].ver.hlc, f[i].ver.origin, a};
        idx[i] = j;
    }
    fastpk_t w = {.pk = pk};
    fp_head(&w, nv, false);
    for (uint32_t j = 0; j < nv; j++) {
        fp_head(&w, 3, false);
        fp_uint(&w, vt[j].hlc);
        fp_uint(&w, vt[j].origin);
        fp_str(&w, vt[j].author);
    }
    fp_head(&w, n, false);
    for (uint32_t i = 0; i < n; i++) {
        fp_head(&w, 4, false);
        int num = schema_num(f[i].name);
        if (num >= 0)
            fp_uint(&w, (uint64_t)num);
        else
            fp_str(&w, f[i].name);
        fp_val(&w, &f[i].val);
        fp_uint(&w, idx[i]);
        fp_uint(&w, f[i].ver.base);
    }
    fp_flush(&w);
    return w.err;
}

/* Decodes the compact form. Field names must be strictly increasing:
 * that refuses duplicates and keeps the encoding canonical. */
static int fields_unpack(const msgpack_object *vo, const msgpack_object *fo,
                         field_t **out, uint32_t *n, why_t *why)
{
    int rc;
    if ((rc = mp_array(vo, "versions", 0, MAX_FIELDS, why))
        || (rc = mp_array(fo, "fields", 0, MAX_FIELDS, why)))
        return rc;
    uint32_t nv = vo->via.array.size, cnt = fo->via.array.size;
    for (uint32_t j = 0; j < nv; j++) {
        const msgpack_object *v = &vo->via.array.ptr[j];
        if ((rc = mp_array(v, "version", 3, 3, why)))
            return rc;
        if (v->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER
            || v->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER
            || v->via.array.ptr[2].type != MSGPACK_OBJECT_STR
            || v->via.array.ptr[2].via.str.size > MAX_AUTHOR)
            return why_set(why, LX_ECORRUPT, "version %u: expected [hlc, origin, author]", j);
    }
    field_t *fs = calloc(cnt ? cnt : 1, sizeof *fs);
    if (!fs)
        return LX_ENOMEM;
    uint32_t i;
    for (i = 0; i < cnt; i++) {
        const msgpack_object *o = &fo->via.array.ptr[i];
        uint64_t vi = 0;
        field_t *f = &fs[i];
        if ((rc = mp_array(o, "field", 4, 4, why))
            || (rc = name_from_obj(&o->via.array.ptr[0], &f->name, why))
            || (rc = val_from_obj(&o->via.array.ptr[1], &f->val, why))
            || (rc = mp_u64(&o->via.array.ptr[2], "field version", &vi, why))
            || (rc = mp_u64(&o->via.array.ptr[3], "field base", &f->ver.base, why))) {
            i++;
            break;
        }
        if (vi >= nv) {
            rc = why_set(why, LX_ECORRUPT, "field version: index out of range");
            i++;
            break;
        }
        const msgpack_object *v = vo->via.array.ptr[vi].via.array.ptr;
        f->ver.hlc = v[0].via.u64;
        f->ver.origin = v[1].via.u64;
        if ((rc = mp_str(&v[2], "author", &f->ver.author, why))) {
            i++;
            break;
        }
        if (i > 0 && schema_name_cmp(fs[i - 1].name, f->name) >= 0) {
            rc = why_set(why, LX_ECORRUPT, "fields: duplicate or unordered field name");
            i++;
            break;
        }
    }
    if (rc) {
        for (uint32_t j = 0; j < i; j++)
            field_free(&fs[j]);
        free(fs);
        return rc;
    }
    *out = fs;
    *n = cnt;
    return LX_OK;
}

/* ---- records ---- */

record_t *record_new(const char *id)
{
    record_t *r = calloc(1, sizeof *r);
    if (r && id && !(r->id = strdup(id))) {
        free(r);
        return NULL;
    }
    return r;
}

void record_destroy(record_t **self_p)
{
    record_t *r = *self_p;
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n; i++)
        field_free(&r->f[i]);
    free(r->f);
    free(r->id);
    free(r);
    *self_p = NULL;
}

/* Binary search; returns the index of name or where it would go. */
static uint32_t find(const record_t *r, const char *name, bool *found)
{
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = schema_name_cmp(r->f[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

const field_t *record_field(const record_t *r, const char *name)
{
    bool found;
    uint32_t i = find(r, name, &found);
    return found ? &r->f[i] : NULL;
}

const val_t *record_val(const record_t *r, const char *name)
{
    const field_t *f = record_field(r, name);
    return f && f->val.kind != VAL_NIL ? &f->val : NULL;
}

const char *record_str(const record_t *r, const char *name)
{
    const val_t *v = record_val(r, name);
    return v && v->kind == VAL_STR ? v->s : NULL;
}

int record_take(record_t *r, field_t *f)
{
    bool found = false;
    uint32_t i;
    if (r->n == 0 || schema_name_cmp(r->f[r->n - 1].name, f->name) < 0)
        i = r->n;
    else
        i = find(r, f->name, &found);
    if (found) {
        field_free(&r->f[i]);
        r->f[i] = *f;
        memset(f, 0, sizeof *f);
        return LX_OK;
    }
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 40;
        field_t *nf = realloc(r->f, cap * sizeof *nf);
        if (!nf) {
            field_free(f);
            return LX_ENOMEM;
        }
        r->f = nf;
        r->cap = cap;
    }
    memmove(&r->f[i + 1], &r->f[i], (r->n - i) * sizeof *r->f);
    r->f[i] = *f;
    r->n++;
    memset(f, 0, sizeof *f);
    return LX_OK;
}

int record_put(record_t *r, const field_t *src)
{
    field_t f;
    int rc = field_copy(&f, src);
    return rc ? rc : record_take(r, &f);
}

int record_pack(const record_t *r, msgpack_packer *pk)
{
    /* fields_pack indexes arrays of MAX_FIELDS, and the decoder refuses
     * more: refuse before writing anything rather than write garbage. */
    if (r->n > MAX_FIELDS)
        return LX_EINVAL;
    const char *id = r->id ? r->id : "";
    size_t n = strlen(id);
    msgpack_pack_array(pk, 3);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, id, n);
    return fields_pack(r->f, r->n, pk);
}

int record_from_obj(const msgpack_object *o, record_t **out, why_t *why)
{
    int rc = mp_array(o, "record", 3, 3, why);
    if (rc)
        return rc;
    record_t *r = record_new(NULL);
    if (!r)
        return LX_ENOMEM;
    if ((rc = mp_str(&o->via.array.ptr[0], "record id", &r->id, why))
        || (rc = fields_unpack(&o->via.array.ptr[1], &o->via.array.ptr[2], &r->f,
                               &r->n, why))) {
        record_destroy(&r);
        return rc;
    }
    r->cap = r->n;
    if (!record_id_valid(r->id)) {
        record_destroy(&r);
        return why_set(why, LX_ECORRUPT, "record id: malformed");
    }
    *out = r;
    return LX_OK;
}

int record_decode(const void *buf, size_t len, record_t **out, why_t *why)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(buf, len, &u, why);
    if (rc == LX_OK)
        rc = record_from_obj(&u.data, out, why);
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- change log entries ---- */

void change_free(change_t *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        field_free(&c->w[i]);
    free(c->w);
    free(c->id);
    memset(c, 0, sizeof *c);
}

int change_pack(const change_t *c, msgpack_packer *pk)
{
    if (c->n > MAX_FIELDS)
        return LX_EINVAL;
    size_t n = strlen(c->id);
    msgpack_pack_array(pk, 6);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, c->id, n);
    msgpack_pack_uint64(pk, c->village);
    msgpack_pack_uint64(pk, c->prev_village);
    msgpack_pack_uint64(pk, c->from);
    return fields_pack(c->w, c->n, pk);
}

int change_from_obj(const msgpack_object *o, change_t *out, why_t *why)
{
    change_t c = {0};
    int rc = mp_array(o, "change", 6, 6, why);
    if (rc)
        return rc;
    const msgpack_object *a = o->via.array.ptr;
    if ((rc = mp_str(&a[0], "change id", &c.id, why))
        || (rc = mp_u64(&a[1], "change village", &c.village, why))
        || (rc = mp_u64(&a[2], "change previous village", &c.prev_village, why))
        || (rc = mp_u64(&a[3], "change sender", &c.from, why))
        || (rc = fields_unpack(&a[4], &a[5], &c.w, &c.n, why))) {
        change_free(&c);
        return rc;
    }
    if (!record_id_valid(c.id)) {
        change_free(&c);
        return why_set(why, LX_ECORRUPT, "change id: malformed");
    }
    *out = c;
    return LX_OK;
}

int change_decode(const void *buf, size_t len, change_t *out, why_t *why)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(buf, len, &u, why);
    if (rc == LX_OK)
        rc = change_from_obj(&u.data, out, why);
    msgpack_unpacked_destroy(&u);
    return rc;
}

bool field_encodable(const field_t *f)
{
    size_t n = f->name ? strlen(f->name) : 0;
    return n >= 1 && n <= 64 && (!f->ver.author || strlen(f->ver.author) <= MAX_AUTHOR)
        && (f->val.kind != VAL_LIST || f->val.n <= MAX_ITEMS);
}

/* ---- ids ---- */

bool record_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > RECORD_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

void record_id_make(code_t origin, hlc_t hlc, char out[32])
{
    char c[CODE_STRLEN + 1];
    snprintf(out, 32, "%s-%016" PRIx64, code_fmt(origin, c), hlc);
}

/* ---- changes straight from bytes ---- */

/* The fewest bytes msgpack-c writes for an unsigned integer, and for the
 * header of a string and of an array of n: the canonical encoding. */
static long uint_size(uint64_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}
static long str_hdr(uint64_t n) { return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5; }
static long arr_hdr(uint64_t n) { return n < 16 ? 1 : n < 65536 ? 3 : 5; }

/* Readers that also note whether what they read was in canonical form;
 * the one-byte forms (most counts and indexes) are read here. */
static uint64_t rd_uint(mp_rd_t *r, bool *canon)
{
    const unsigned char *p = r->p;
    if (!r->bad && p < r->end && *p <= 0x7f) {
        r->p++;
        return *p;
    }
    uint64_t v = mp_rd_uint(r);
    *canon &= r->p - p == uint_size(v);
    return v;
}

static uint32_t rd_array(mp_rd_t *r, bool *canon)
{
    const unsigned char *p = r->p;
    if (!r->bad && p < r->end && *p >= 0x90 && *p <= 0x9f) {
        r->p++;
        return *p & 0x0f;
    }
    uint32_t n = mp_rd_array(r);
    *canon &= r->p - p == arr_hdr(n);
    return n;
}

/* A string copied into the arena: no NUL inside, at most max bytes. The
 * short forms are read here (every name and most values are one). */
static char *rd_str(mp_rd_t *r, arena_t *a, uint32_t max, bool *canon)
{
    const unsigned char *p = r->p;
    unsigned b = !r->bad && p < r->end ? *p : 0xc1;
    size_t n, h;
    if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
        h = 1;
    } else if (b == 0xd9 && r->end - p >= 2) {
        n = p[1];
        h = 2;
    } else {
        mp_sv_t s = mp_rd_str(r);
        n = s.n;
        h = (size_t)((const unsigned char *)s.p - p);
        r->p = p;  /* read again below */
        if (r->bad)
            return NULL;
    }
    char *c;
    if ((size_t)(r->end - p) - h < n || n > max || !(c = arena_bytes(a, n + 1))) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *q = p + h;
    if (n && memchr(q, '\0', n)) {
        r->bad = true;
        return NULL;
    }
    memcpy(c, q, n);
    c[n] = '\0';
    r->p = q + n;
    *canon &= (long)h == str_hdr(n);
    return c;
}

/* A field's name: a schema number as its interned name, or text in the
 * arena (name_from_obj's rules; a schema name as text is not canonical). */
static char *rd_name(mp_rd_t *r, arena_t *a, bool *canon)
{
    unsigned b = !r->bad && r->p < r->end ? *r->p : 0xc1;
    if (b <= 0x7f || b == 0xcc || b == 0xcd || b == 0xce || b == 0xcf) {
        const char *in = schema_num_name(rd_uint(r, canon));
        if (!in)
            r->bad = true;
        return (char *)in;
    }
    char *s = rd_str(r, a, 64, canon);
    if (s && schema_num(s) >= 0)
        *canon = false;
    return s;
}

static bool rd_is_array(unsigned b)
{
    return (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
}

/* A value, as val_from_obj decodes it. */
static void rd_val(mp_rd_t *r, arena_t *a, val_t *v, bool *canon)
{
    unsigned b = r->p < r->end ? *r->p : 0xc1;
    if (b == 0xc0 || b == 0xc2 || b == 0xc3) {
        mp_rd_byte(r);
        v->kind = b == 0xc0 ? VAL_NIL : VAL_BOOL;
        v->b = b == 0xc3;
    } else if (rd_is_array(b)) {
        uint32_t n = rd_array(r, canon);
        if (r->bad || n > MAX_ITEMS) {
            r->bad = true;
            return;
        }
        v->kind = VAL_LIST;
        if (n && !(v->items = arena_alloc(a, n * sizeof *v->items))) {
            r->bad = true;
            return;
        }
        for (uint32_t i = 0; i < n && !r->bad; i++)
            v->items[v->n++] = rd_str(r, a, UINT32_MAX, canon);
    } else {
        v->kind = VAL_STR;
        v->s = rd_str(r, a, UINT32_MAX, canon);
    }
}

bool change_read(mp_rd_t *r, arena_t *a, change_t *out)
{
    bool canon = true, ignored = true;
    memset(out, 0, sizeof *out);
    if (mp_rd_array(r) != 6)
        r->bad = true;
    out->id = rd_str(r, a, 64, &ignored);
    out->village = mp_rd_uint(r);
    out->prev_village = mp_rd_uint(r);
    out->from = mp_rd_uint(r);
    /* Counts past the bytes left would only be refused later, after a
     * large allocation. */
    const unsigned char *body = r->p;
    uint32_t nv = rd_array(r, &canon);
    if (r->bad || nv > MAX_FIELDS || nv > (size_t)(r->end - r->p) || !record_id_valid(out->id))
        return r->bad = true, false;
    vent_t vt[MAX_FIELDS];
    for (uint32_t j = 0; j < nv && !r->bad; j++) {
        if (rd_array(r, &canon) != 3)
            r->bad = true;
        vt[j].hlc = rd_uint(r, &canon);
        vt[j].origin = rd_uint(r, &canon);
        vt[j].author = rd_str(r, a, MAX_AUTHOR, &canon);
    }
    uint32_t cnt = rd_array(r, &canon);
    if (r->bad || cnt > MAX_FIELDS || cnt > (size_t)(r->end - r->p))
        return r->bad = true, false;
    field_t *w = arena_alloc(a, (cnt ? cnt : 1) * sizeof *w);
    if (!w)
        return r->bad = true, false;
    /* fields_pack lists each distinct version once, in order of first
     * use: the next new index is always the count seen so far. */
    uint32_t used = 0;
    for (uint32_t i = 0; i < cnt && !r->bad; i++) {
        field_t *f = &w[i];
        if (rd_array(r, &canon) != 4)
            r->bad = true;
        f->name = rd_name(r, a, &canon);
        rd_val(r, a, &f->val, &canon);
        uint64_t vi = rd_uint(r, &canon);
        f->ver.base = rd_uint(r, &canon);
        if (r->bad || !f->name || !f->name[0] || vi >= nv
            || (i > 0 && schema_name_cmp(w[i - 1].name, f->name) >= 0)) {
            r->bad = true;
            break;
        }
        canon &= vi <= used;
        used += vi == used;
        f->ver.hlc = vt[vi].hlc;
        f->ver.origin = vt[vi].origin;
        f->ver.author = (char *)vt[vi].author;  /* shared, in the arena */
    }
    if (r->bad)
        return false;
    canon &= used == nv;
    for (uint32_t j = 0; canon && j < nv; j++)
        for (uint32_t k = 0; canon && k < j; k++)
            canon = !(vt[j].hlc == vt[k].hlc && vt[j].origin == vt[k].origin
                      && strcmp(vt[j].author, vt[k].author) == 0);
    if (canon) {
        size_t n = (size_t)(r->p - body);
        void *copy = arena_alloc(a, n);
        if (copy && n <= UINT32_MAX) {
            memcpy(copy, body, n);
            out->packed = copy;
            out->packedlen = (uint32_t)n;
        }
    }
    out->w = w;
    out->n = cnt;
    return true;
}
