/* The audit chains in the store's `audit` table (common/store.c keeps the
 * bytes; their form is this file's).
 *
 *   key    u64 node || u64 seq (big-endian): one chain per node, in code
 *          order, each in seq order from 1; a node holds its own chain
 *          and those of its descendants (received from its children)
 *   value  bytes || hash, where bytes is the entry's msgpack encoding
 *            [seq, node, time_ms, principal, role, action, [id...],
 *             purpose | nil, result]
 *          and hash (the last 32 bytes) is BLAKE2b-256(previous hash ||
 *          bytes), the previous hash of seq 1 being 32 zero bytes.
 *
 * The hash covers the stored bytes as they are (never a re-encoding), and
 * the bytes name their own chain and seq, so an entry copied to another
 * position or chain does not verify there. This form is also the wire
 * form (WM_AUDIT): a parent checks that the very bytes a child chained
 * continue the chain it holds. */
#include "audit.h"
#include "hlc.h"
#include "mp.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 16
/* The fields of an entry's encoding. */
#define NFIELDS 9

static void key_of(unsigned char k[KEY_LEN], code_t node, uint64_t seq)
{
    code_put_be(node, k);
    code_put_be(seq, k + 8);
}

static void chain_hash(const unsigned char prev[AUDIT_HASH_LEN], const void *bytes, size_t n,
                       unsigned char out[AUDIT_HASH_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_LEN);
    crypto_generichash_update(&st, prev, AUDIT_HASH_LEN);
    crypto_generichash_update(&st, bytes, n);
    crypto_generichash_final(&st, out, AUDIT_HASH_LEN);
}

/* ---- decoding ---- */

/* An entry decoded, its strings copied into one block. */
typedef struct {
    audit_rec_t r;
    char *text;
    const char **ids;
} dec_t;

static void dec_free(dec_t *d)
{
    free(d->text);
    free(d->ids);
    memset(d, 0, sizeof *d);
}

static int str_into(const msgpack_object *o, const char *what, char **at, const char **out,
                    why_t *why)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > AUDIT_MAX_TEXT)
        return why_set(why, LX_ECORRUPT, "%s is not a string of at most %d bytes", what,
                       AUDIT_MAX_TEXT);
    memcpy(*at, o->via.str.ptr, o->via.str.size);
    (*at)[o->via.str.size] = '\0';
    *out = *at;
    *at += o->via.str.size + 1;
    return LX_OK;
}

/* Decodes a stored value; the key's node and seq must be the entry's. */
static int decode(const void *val, size_t len, code_t knode, uint64_t kseq, dec_t *d,
                  why_t *why)
{
    memset(d, 0, sizeof *d);
    if (len <= AUDIT_HASH_LEN)
        return why_set(why, LX_ECORRUPT, "undecodable: %zu bytes", len);
    size_t n = len - AUDIT_HASH_LEN;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    why_t w = {""};
    int rc = mp_unpack(val, n, &u, &w);
    const msgpack_object *a = u.data.via.array.ptr;
    if (!rc && (rc = mp_array(&u.data, "entry", NFIELDS, NFIELDS, &w)) == LX_OK)
        a = u.data.via.array.ptr;
    uint64_t seq = 0, node = 0;
    if (!rc && !(rc = mp_u64(&a[0], "seq", &seq, &w)) && !(rc = mp_u64(&a[1], "node", &node, &w))
        && !(rc = mp_u64(&a[2], "time", &d->r.e.time_ms, &w))
        && !(rc = mp_array(&a[6], "ids", 0, AUDIT_MAX_IDS, &w))) {
        if (seq != kseq || node != knode)
            rc = why_set(&w, LX_ECORRUPT, "names another position");
        else if (a[7].type != MSGPACK_OBJECT_NIL && a[7].type != MSGPACK_OBJECT_STR)
            rc = why_set(&w, LX_ECORRUPT, "purpose is neither a string nor nil");
    }
    uint32_t nids = rc ? 0 : a[6].via.array.size;
    if (!rc && (!(d->text = malloc(n + NFIELDS + nids))
                || !(d->ids = calloc(nids ? nids : 1, sizeof *d->ids))))
        rc = LX_ENOMEM;
    if (!rc) {
        char *at = d->text;
        d->r.node = node;
        d->r.seq = seq;
        if (!(rc = str_into(&a[3], "principal", &at, &d->r.e.principal, &w))
            && !(rc = str_into(&a[4], "role", &at, &d->r.e.role, &w))
            && !(rc = str_into(&a[5], "action", &at, &d->r.e.action, &w))
            && !(rc = str_into(&a[8], "result", &at, &d->r.e.result, &w))
            && a[7].type == MSGPACK_OBJECT_STR)
            rc = str_into(&a[7], "purpose", &at, &d->r.e.purpose, &w);
        for (uint32_t i = 0; !rc && i < nids; i++)
            rc = str_into(&a[6].via.array.ptr[i], "a record id", &at, &d->ids[i], &w);
        d->r.e.ids = d->ids;
        d->r.e.nids = nids;
        memcpy(d->r.hash, (const unsigned char *)val + n, AUDIT_HASH_LEN);
    }
    msgpack_unpacked_destroy(&u);
    if (rc) {
        dec_free(d);
        if (rc == LX_ENOMEM)
            return rc;
        return why_set(why, LX_ECORRUPT, "undecodable: %s", w.msg[0] ? w.msg : err_str(rc));
    }
    return LX_OK;
}

/* ---- appending ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int check_text(const char *s, const char *what, bool need, why_t *why)
{
    if (!s)
        return need ? why_set(why, LX_EINVAL, "audit entry: %s is missing", what) : LX_OK;
    if (need && !*s)
        return why_set(why, LX_EINVAL, "audit entry: %s is empty", what);
    if (strlen(s) > AUDIT_MAX_TEXT)
        return why_set(why, LX_EINVAL, "audit entry: %s is longer than %d bytes", what,
                       AUDIT_MAX_TEXT);
    return LX_OK;
}

static int check_entry(const audit_entry_t *e, why_t *why)
{
    int rc;
    if ((rc = check_text(e->principal, "principal", true, why))
        || (rc = check_text(e->role, "role", false, why))
        || (rc = check_text(e->action, "action", true, why))
        || (rc = check_text(e->purpose, "purpose", false, why))
        || (rc = check_text(e->result, "result", true, why)))
        return rc;
    if (e->nids > AUDIT_MAX_IDS)
        return why_set(why, LX_EINVAL, "audit entry: %u record ids, at most %d", e->nids,
                       AUDIT_MAX_IDS);
    for (uint32_t i = 0; i < e->nids; i++)
        if ((rc = check_text(e->ids[i], "a record id", true, why)))
            return rc;
    return LX_OK;
}

int audit_append(stxn_t *t, const audit_entry_t *e, uint32_t n, why_t *why)
{
    code_t node = store_code_of(t);
    uint64_t seq;
    unsigned char prev[AUDIT_HASH_LEN];
    int rc = audit_last(t, node, &seq, prev);
    if (rc)
        return why_set(why, rc, "audit chain: %s", err_str(rc));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; !rc && i < n; i++) {
        if ((rc = check_entry(&e[i], why)))
            break;
        msgpack_packer pk;
        msgpack_sbuffer_clear(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, NFIELDS);
        msgpack_pack_uint64(&pk, ++seq);
        msgpack_pack_uint64(&pk, node);
        msgpack_pack_uint64(&pk, e[i].time_ms ? e[i].time_ms : hlc_wall_ms());
        pack_str(&pk, e[i].principal);
        pack_str(&pk, e[i].role ? e[i].role : "");
        pack_str(&pk, e[i].action);
        msgpack_pack_array(&pk, e[i].nids);
        for (uint32_t k = 0; k < e[i].nids; k++)
            pack_str(&pk, e[i].ids[k]);
        if (e[i].purpose)
            pack_str(&pk, e[i].purpose);
        else
            msgpack_pack_nil(&pk);
        pack_str(&pk, e[i].result);
        unsigned char h[AUDIT_HASH_LEN], key[KEY_LEN];
        chain_hash(prev, sb.data, sb.size, h);
        msgpack_sbuffer_write(&sb, (const char *)h, AUDIT_HASH_LEN);
        if (!sb.data) {
            rc = LX_ENOMEM;
            break;
        }
        key_of(key, node, seq);
        if ((rc = store_audit_put(t, key, KEY_LEN, sb.data, sb.size)))
            why_set(why, rc, "audit entry %llu: %s", (unsigned long long)seq, err_str(rc));
        memcpy(prev, h, AUDIT_HASH_LEN);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- walking ---- */

/* Takes the first key a walk meets and stops. */
typedef struct {
    bool found;
    code_t node;
    uint64_t seq;
    unsigned char hash[AUDIT_HASH_LEN];
    bool short_value;
} first_t;

static int first_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    first_t *f = arg;
    if (klen != KEY_LEN)
        return 0;  /* not ours: skip */
    f->found = true;
    f->node = code_get_be(key);
    f->seq = code_get_be((const unsigned char *)key + 8);
    f->short_value = vlen < AUDIT_HASH_LEN;
    if (!f->short_value)
        memcpy(f->hash, (const unsigned char *)val + vlen - AUDIT_HASH_LEN, AUDIT_HASH_LEN);
    return 1;
}

int audit_last(stxn_t *t, code_t node, uint64_t *seq, unsigned char hash[AUDIT_HASH_LEN])
{
    unsigned char k[KEY_LEN];
    key_of(k, node, UINT64_MAX);
    first_t f = {0};
    int rc = store_audit_each(t, k, KEY_LEN, true, first_cb, &f);
    if (rc)
        return rc;
    *seq = 0;
    memset(hash, 0, AUDIT_HASH_LEN);
    if (!f.found || f.node != node)
        return LX_OK;
    if (f.short_value)
        return LX_ECORRUPT;
    *seq = f.seq;
    memcpy(hash, f.hash, AUDIT_HASH_LEN);
    return LX_OK;
}

int audit_chains(stxn_t *t, audit_tail_cb cb, void *arg)
{
    code_t next = 0;
    for (;;) {
        unsigned char k[KEY_LEN];
        key_of(k, next, 0);
        first_t f = {0};
        int rc = store_audit_each(t, k, KEY_LEN, false, first_cb, &f);
        if (rc || !f.found)
            return rc;
        uint64_t last;
        unsigned char h[AUDIT_HASH_LEN];
        if ((rc = audit_last(t, f.node, &last, h)) && rc != LX_ECORRUPT)
            return rc;
        if (rc == LX_ECORRUPT) {
            key_of(k, f.node, UINT64_MAX);
            first_t g = {0};
            store_audit_each(t, k, KEY_LEN, true, first_cb, &g);
            last = g.seq;
        }
        if ((rc = cb(arg, f.node, last)) != 0)
            return rc == 1 ? LX_OK : rc;
        if (f.node == UINT64_MAX)
            return LX_OK;
        next = f.node + 1;
    }
}

typedef struct {
    code_t node;
    audit_raw_cb cb;
    void *arg;
} raw_t;

static int raw_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    raw_t *x = arg;
    if (klen != KEY_LEN || code_get_be(key) != x->node)
        return 1;
    return x->cb(x->arg, code_get_be((const unsigned char *)key + 8), val, vlen);
}

int audit_raw_each(stxn_t *t, code_t node, uint64_t from, audit_raw_cb cb, void *arg)
{
    unsigned char k[KEY_LEN];
    key_of(k, node, from);
    raw_t x = {node, cb, arg};
    return store_audit_each(t, k, KEY_LEN, false, raw_cb, &x);
}

uint64_t audit_count(stxn_t *t)
{
    return store_audit_count(t);
}

/* The chains of a subtree as a key range. */
static void range_of(code_t node, code_t *lo, code_t *hi)
{
    if (node == 0) {
        *lo = 0;
        *hi = UINT64_MAX;
    } else {
        code_range(node, lo, hi);
    }
}

typedef struct {
    const audit_filter_t *f;
    code_t hi;
    audit_cb cb;
    void *arg;
    why_t *why;
} list_t;

static bool names_record(const audit_entry_t *e, const char *id)
{
    for (uint32_t i = 0; i < e->nids; i++)
        if (strcmp(e->ids[i], id) == 0)
            return true;
    return false;
}

static int list_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    list_t *x = arg;
    if (klen != KEY_LEN)
        return 0;
    code_t node = code_get_be(key);
    uint64_t seq = code_get_be((const unsigned char *)key + 8);
    if (node >= x->hi)
        return 1;
    dec_t d;
    char c[CODE_STRLEN + 1];
    int rc = decode(val, vlen, node, seq, &d, x->why);
    if (rc)
        return why_prefix(x->why, rc, "audit chain %s entry %llu", code_fmt(node, c),
                          (unsigned long long)seq);
    const audit_filter_t *f = x->f;
    bool ok = (!f->principal || strcmp(d.r.e.principal, f->principal) == 0)
              && (!f->record || names_record(&d.r.e, f->record))
              && d.r.e.time_ms >= f->since_ms && (!f->until_ms || d.r.e.time_ms < f->until_ms);
    rc = ok ? x->cb(x->arg, &d.r) : 0;
    dec_free(&d);
    return rc;
}

int audit_list(stxn_t *t, const audit_filter_t *f, audit_cb cb, void *arg, why_t *why)
{
    code_t lo, hi;
    range_of(f->node, &lo, &hi);
    unsigned char k[KEY_LEN];
    key_of(k, lo, 0);
    list_t x = {f, hi, cb, arg, why};
    return store_audit_each(t, k, KEY_LEN, false, list_cb, &x);
}

/* ---- verifying ---- */

typedef struct {
    code_t hi;
    audit_chain_cb cb;
    void *arg;
    bool open;               /* a chain is being checked */
    audit_chain_t c;
    unsigned char prev[AUDIT_HASH_LEN];
    audit_chain_t first_bad; /* the first broken chain */
    bool any_bad;
} verify_t;

static int chain_done(verify_t *v)
{
    if (!v->open)
        return 0;
    v->open = false;
    if (v->c.bad_seq && !v->any_bad) {
        v->any_bad = true;
        v->first_bad = v->c;
    }
    return v->cb ? v->cb(v->arg, &v->c) : 0;
}

static void broken(verify_t *v, uint64_t seq, const char *fmt, const char *detail)
{
    if (v->c.bad_seq)
        return;
    v->c.bad_seq = seq;
    snprintf(v->c.bad, sizeof v->c.bad, fmt, detail);
}

static int verify_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    verify_t *v = arg;
    if (klen != KEY_LEN)
        return 0;
    code_t node = code_get_be(key);
    uint64_t seq = code_get_be((const unsigned char *)key + 8);
    if (node >= v->hi)
        return 1;
    if (!v->open || v->c.node != node) {
        int rc = chain_done(v);
        if (rc)
            return rc;
        memset(&v->c, 0, sizeof v->c);
        memset(v->prev, 0, sizeof v->prev);
        v->c.node = node;
        v->open = true;
    }
    uint64_t want = v->c.last_seq + 1;
    v->c.entries++;
    v->c.last_seq = seq;
    if (vlen >= AUDIT_HASH_LEN)
        memcpy(v->c.last_hash, (const unsigned char *)val + vlen - AUDIT_HASH_LEN,
               AUDIT_HASH_LEN);
    if (v->c.bad_seq)
        return 0;  /* counted; the chain is already broken */
    if (seq != want) {
        char d[64];
        snprintf(d, sizeof d, "the next entry held is %llu", (unsigned long long)seq);
        broken(v, want, "missing (%s)", d);
        return 0;
    }
    dec_t dec;
    why_t w = {""};
    int rc = decode(val, vlen, node, seq, &dec, &w);
    if (rc == LX_ENOMEM)
        return rc;
    if (rc) {
        broken(v, seq, "%s", w.msg);
        return 0;
    }
    dec_free(&dec);
    unsigned char h[AUDIT_HASH_LEN];
    chain_hash(v->prev, val, vlen - AUDIT_HASH_LEN, h);
    if (memcmp(h, (const unsigned char *)val + vlen - AUDIT_HASH_LEN, AUDIT_HASH_LEN) != 0) {
        broken(v, seq, "%s", "bad hash (not the hash of the previous hash and this entry)");
        return 0;
    }
    memcpy(v->prev, h, AUDIT_HASH_LEN);
    return 0;
}

int audit_verify(stxn_t *t, code_t node, audit_chain_cb cb, void *arg, why_t *why)
{
    code_t lo, hi;
    range_of(node, &lo, &hi);
    unsigned char k[KEY_LEN];
    key_of(k, lo, 0);
    verify_t v = {.hi = hi, .cb = cb, .arg = arg};
    int rc = store_audit_each(t, k, KEY_LEN, false, verify_cb, &v);
    if (!rc)
        rc = chain_done(&v);
    if (rc)
        return why_set(why, rc, "audit: %s", err_str(rc));
    if (v.any_bad) {
        char c[CODE_STRLEN + 1];
        return why_set(why, LX_ECORRUPT, "audit chain %s broken at entry %llu: %s",
                       code_fmt(v.first_bad.node, c), (unsigned long long)v.first_bad.bad_seq,
                       v.first_bad.bad);
    }
    return LX_OK;
}

/* ---- receiving ---- */

int audit_receive(stxn_t *t, code_t from, code_t node, const void *val, size_t len,
                  why_t *why)
{
    char c[CODE_STRLEN + 1];
    code_fmt(node, c);
    if (!code_contains(from, node))
        return why_set(why, LX_ESCOPE, "audit chain %s lies outside the sender", c);
    /* The seq is the entry's own: read it before the full check. */
    if (len <= AUDIT_HASH_LEN)
        return why_set(why, LX_ECORRUPT, "audit chain %s: an entry of %zu bytes", c, len);
    mp_rd_t r = {val, (const unsigned char *)val + len - AUDIT_HASH_LEN, false};
    uint64_t seq = mp_rd_array(&r) == NFIELDS ? mp_rd_uint(&r) : 0;
    if (r.bad || seq == 0)
        return why_set(why, LX_ECORRUPT, "audit chain %s: an undecodable entry", c);
    dec_t d;
    why_t w = {""};
    int rc = decode(val, len, node, seq, &d, &w);
    if (rc)
        return why_set(why, rc, "audit chain %s entry %llu: %s", c, (unsigned long long)seq,
                       w.msg);
    dec_free(&d);
    uint64_t last;
    unsigned char prev[AUDIT_HASH_LEN], h[AUDIT_HASH_LEN], key[KEY_LEN];
    if ((rc = audit_last(t, node, &last, prev)))
        return why_set(why, rc, "audit chain %s: %s here", c, err_str(rc));
    if (seq <= last) {
        const void *held;
        size_t hl;
        key_of(key, node, seq);
        rc = store_audit_get(t, key, KEY_LEN, &held, &hl);
        if (rc == LX_OK && hl == len && memcmp(held, val, len) == 0)
            return LX_EEXIST;
        if (rc && rc != LX_ENOTFOUND)
            return rc;
        return why_set(why, LX_EINVAL, "audit chain %s entry %llu differs from the one held "
                       "here (history cannot be rewritten)", c, (unsigned long long)seq);
    }
    if (seq > last + 1)
        return why_set(why, LX_ENOTFOUND, "audit chain %s entry %llu: entries from %llu are "
                       "missing here", c, (unsigned long long)seq,
                       (unsigned long long)(last + 1));
    chain_hash(prev, val, len - AUDIT_HASH_LEN, h);
    if (memcmp(h, (const unsigned char *)val + len - AUDIT_HASH_LEN, AUDIT_HASH_LEN) != 0)
        return why_set(why, LX_EINVAL, "audit chain %s entry %llu does not continue the chain "
                       "held here (bad hash)", c, (unsigned long long)seq);
    key_of(key, node, seq);
    if ((rc = store_audit_put(t, key, KEY_LEN, val, len)))
        return why_set(why, rc, "audit chain %s entry %llu: %s", c, (unsigned long long)seq,
                       err_str(rc));
    return LX_OK;
}
