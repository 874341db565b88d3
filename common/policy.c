#include "policy.h"
#include "polbody.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mp.h"
#include "schema.h"

static const char *const kind_names[POLICY_NKINDS] = {
    "schema", "classification", "alerts", "reporting", "access", "retention",
};

const char *policy_kind_name(policy_kind_t k)
{
    return (unsigned)k < POLICY_NKINDS ? kind_names[k] : "unknown";
}

int policy_kind_parse(const char *name)
{
    for (int k = 0; name && k < POLICY_NKINDS; k++)
        if (strcmp(kind_names[k], name) == 0)
            return k;
    return -1;
}

void policy_free(policy_t *p)
{
    if (!p)
        return;
    json_decref(p->doc);
    free(p->json);
    memset(p, 0, sizeof *p);
}

void policy_today(uint64_t now_ms, char out[11])
{
    time_t s = (time_t)(now_ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* ---- the document ---- */

static int top_date(const json_t *doc, const char *key, bool need, char out[11],
                    const char *name, why_t *why)
{
    const json_t *j = json_object_get(doc, key);
    out[0] = '\0';
    if (!j)
        return need ? why_set(why, LX_EINVAL, "%s: %s: required", name, key) : LX_OK;
    if (!json_is_string(j) || !date_valid(json_string_value(j)))
        return why_set(why, LX_EINVAL, "%s: %s: expected a date YYYY-MM-DD", name, key);
    snprintf(out, 11, "%s", json_string_value(j));
    return LX_OK;
}

/* The envelope of the document: issuer, kind, version, dates; the body
 * is checked by its kind (polbody.c). */
static int check_top(policy_t *p, const char *name, why_t *why)
{
    static const char *const keys[] = {"issuer", "kind", "version", "effective",
                                       "expires", "body", NULL};
    const json_t *doc = p->doc;
    if (!json_is_object(doc))
        return why_set(why, LX_EINVAL, "%s: expected a JSON object", name);
    int rc = pb_keys(doc, keys, name, "", why);
    if (rc)
        return rc;
    const json_t *j = json_object_get(doc, "issuer");
    if (!json_is_string(j) || code_parse(json_string_value(j), &p->issuer))
        return why_set(why, LX_EINVAL, "%s: issuer: expected a 12-digit division code", name);
    j = json_object_get(doc, "kind");
    int k = json_is_string(j) ? policy_kind_parse(json_string_value(j)) : -1;
    if (k < 0)
        return why_set(why, LX_EINVAL, "%s: kind: expected schema, classification, alerts, "
                       "reporting, access or retention", name);
    p->kind = (policy_kind_t)k;
    j = json_object_get(doc, "version");
    if (!json_is_integer(j) || json_integer_value(j) < 1
        || json_integer_value(j) > (json_int_t)UINT32_MAX)
        return why_set(why, LX_EINVAL, "%s: version: expected an integer >= 1", name);
    p->version = (uint32_t)json_integer_value(j);
    if ((rc = top_date(doc, "effective", true, p->effective, name, why))
        || (rc = top_date(doc, "expires", false, p->expires, name, why)))
        return rc;
    if (p->expires[0] && strcmp(p->expires, p->effective) <= 0)
        return why_set(why, LX_EINVAL, "%s: expires: must be after effective", name);
    p->body = json_object_get(doc, "body");
    if (!json_is_object(p->body))
        return why_set(why, LX_EINVAL, "%s: body: expected an object", name);
    return pb_check(p->kind, p->body, name, why);
}

int policy_parse(const void *json, size_t len, const char *name, policy_t *out,
                 why_t *why)
{
    memset(out, 0, sizeof *out);
    if (len > POLICY_MAX_JSON)
        return why_set(why, LX_EINVAL, "%s: larger than %u bytes", name, POLICY_MAX_JSON);
    json_error_t e;
    out->doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
    if (!out->doc) {
        /* jansson quotes the token near the error: keep only the reason. */
        char *near = strstr(e.text, " near ");
        if (near)
            *near = '\0';
        return why_set(why, LX_EINVAL, "%s: line %d column %d: %s", name, e.line, e.column,
                       e.text);
    }
    int rc = check_top(out, name, why);
    if (!rc && !(out->json = malloc(len ? len : 1)))
        rc = LX_ENOMEM;
    if (rc) {
        policy_free(out);
        return rc;
    }
    memcpy(out->json, json, len);
    out->json_len = len;
    return LX_OK;
}

/* ---- signatures and envelopes ---- */

static void sig_init(crypto_sign_state *st, const void *json, size_t len)
{
    crypto_sign_init(st);
    crypto_sign_update(st, (const unsigned char *)POLICY_DOMAIN, sizeof POLICY_DOMAIN);
    crypto_sign_update(st, json, len);
}

int policy_sign(const void *json, size_t len, const unsigned char sk[POLICY_SECLEN],
                unsigned char **env, size_t *envlen)
{
    if (sodium_init() < 0)
        return LX_EIO;
    unsigned char sig[POLICY_SIGLEN];
    crypto_sign_state st;
    sig_init(&st, json, len);
    crypto_sign_final_create(&st, sig, NULL, sk);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, json, len);
    msgpack_pack_bin(&pk, sizeof sig);
    msgpack_pack_bin_body(&pk, sig, sizeof sig);
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return LX_ENOMEM;
    }
    *envlen = sb.size;
    *env = (unsigned char *)msgpack_sbuffer_release(&sb);
    return LX_OK;
}

int policy_open(const void *env, size_t len, policy_t *out, why_t *why)
{
    memset(out, 0, sizeof *out);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(env, len, &u, why);
    const msgpack_object *a = rc ? NULL : u.data.via.array.ptr;
    if (!rc && (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 2
                || a[0].type != MSGPACK_OBJECT_BIN || a[1].type != MSGPACK_OBJECT_BIN
                || a[1].via.bin.size != POLICY_SIGLEN))
        rc = why_set(why, LX_ECORRUPT, "policy envelope: expected [json, signature]");
    else if (rc)
        why_prefix(why, rc, "policy envelope");
    if (!rc)
        rc = policy_parse(a[0].via.bin.ptr, a[0].via.bin.size, "policy", out, why);
    if (!rc)
        memcpy(out->sig, a[1].via.bin.ptr, POLICY_SIGLEN);
    msgpack_unpacked_destroy(&u);
    return rc;
}

int policy_verify(const policy_t *p, const unsigned char pub[POLICY_PUBLEN], why_t *why)
{
    if (sodium_init() < 0)
        return why_set(why, LX_EIO, "libsodium failed to initialise");
    crypto_sign_state st;
    sig_init(&st, p->json, p->json_len);
    if (crypto_sign_final_verify(&st, (unsigned char *)p->sig, pub) != 0) {
        char c[CODE_STRLEN + 1];
        return why_set(why, LX_EINVAL, "bad signature (not signed by %s, or altered)",
                       code_fmt(p->issuer, c));
    }
    return LX_OK;
}

/* ---- the store ---- */

static void pol_key(char *out, size_t n, const char *pre, code_t issuer, policy_kind_t k)
{
    char c[CODE_STRLEN + 1];
    snprintf(out, n, "%s/%s/%s", pre, code_fmt(issuer, c), policy_kind_name(k));
}

int policy_pin_key(stxn_t *t, code_t code, const unsigned char pub[POLICY_PUBLEN])
{
    char key[32], c[CODE_STRLEN + 1];
    snprintf(key, sizeof key, "key/%s", code_fmt(code, c));
    return store_blob_put(t, key, pub, POLICY_PUBLEN);
}

int policy_pinned_key(stxn_t *t, code_t code, unsigned char pub[POLICY_PUBLEN])
{
    char key[32], c[CODE_STRLEN + 1];
    snprintf(key, sizeof key, "key/%s", code_fmt(code, c));
    void *d = NULL;
    size_t n = 0;
    int rc = store_blob_get(t, key, &d, &n);
    if (!rc && n != POLICY_PUBLEN)
        rc = LX_ECORRUPT;
    if (!rc)
        memcpy(pub, d, POLICY_PUBLEN);
    free(d);
    return rc;
}

int policy_get(stxn_t *t, code_t issuer, policy_kind_t kind, void **env, size_t *len)
{
    char key[64];
    pol_key(key, sizeof key, "pol", issuer, kind);
    return store_blob_get(t, key, env, len);
}

/* Why a policy is refused, prefixed with its identity. */
static int refuse(const policy_t *p, why_t *why, int rc, const char *reason)
{
    char c[CODE_STRLEN + 1];
    return why_set(why, rc, "policy %s/%s v%u refused: %s", code_fmt(p->issuer, c),
                   policy_kind_name(p->kind), p->version, reason);
}

/* Against what is held for (issuer, kind): LX_EEXIST for the same bytes,
 * LX_EINVAL for a version not newer. */
static int check_newer(stxn_t *t, const policy_t *p, const void *env, size_t len, why_t *why)
{
    void *old = NULL;
    size_t olen = 0;
    int rc = policy_get(t, p->issuer, p->kind, &old, &olen);
    if (rc == LX_ENOTFOUND)
        return LX_OK;
    if (rc)
        return rc;
    policy_t h;
    char msg[200];
    if (olen == len && memcmp(old, env, len) == 0) {
        rc = refuse(p, why, LX_EEXIST, "already held");
    } else if (policy_open(old, olen, &h, NULL) == LX_OK) {
        if (h.version >= p->version) {
            snprintf(msg, sizeof msg, "version %u is not newer than version %u held",
                     p->version, h.version);
            rc = refuse(p, why, LX_EINVAL, msg);
        }
        policy_free(&h);
    }
    /* A held envelope that no longer opens is replaced by a good one. */
    free(old);
    return rc;
}

int policy_accept(stxn_t *t, const void *env, size_t len, unsigned how,
                  uint64_t now_ms, policy_ver_t *held, why_t *why)
{
    policy_t p;
    char today[11], c[CODE_STRLEN + 1], msg[200];
    int rc = policy_open(env, len, &p, why);
    if (rc) {
        if (how == POLICY_FROM_CHILD)
            return why_set(why, LX_ESCOPE, "policy refused: a policy arriving from a child");
        return rc;
    }
    code_t node = store_code_of(t);
    unsigned char pub[POLICY_PUBLEN];
    policy_today(now_ms, today);
    if (how == POLICY_FROM_CHILD) {
        rc = refuse(&p, why, LX_ESCOPE, "a policy arriving from a child");
    } else if (!code_contains(p.issuer, node)) {
        snprintf(msg, sizeof msg, "the issuer is neither this node (%s) nor one of its ancestors",
                 code_fmt(node, c));
        rc = refuse(&p, why, LX_ESCOPE, msg);
    } else if ((rc = policy_pinned_key(t, p.issuer, pub)) != LX_OK) {
        if (rc == LX_ENOTFOUND)
            rc = refuse(&p, why, LX_ESCOPE, "no signing key is pinned for the issuer");
    } else if (policy_verify(&p, pub, NULL) != LX_OK) {
        rc = refuse(&p, why, LX_EINVAL, "bad signature (not signed by the issuer's pinned "
                    "key, or altered)");
    } else if (p.expires[0] && strcmp(p.expires, today) <= 0) {
        snprintf(msg, sizeof msg, "expired on %s", p.expires);
        rc = refuse(&p, why, LX_EINVAL, msg);
    } else {
        rc = check_newer(t, &p, env, len, why);
    }
    char key[64];
    if (!rc) {
        pol_key(key, sizeof key, "pol", p.issuer, p.kind);
        rc = store_blob_put(t, key, env, len);
    }
    if (!rc) {
        pol_key(key, sizeof key, "pola", p.issuer, p.kind);
        rc = store_meta_put(t, key, now_ms);
    }
    if (!rc && held)
        *held = (policy_ver_t){p.issuer, p.kind, p.version};
    policy_free(&p);
    return rc;
}

typedef struct {
    stxn_t *t;
    policy_cb cb;
    void *arg;
} each_t;

static int each_cb(void *arg, const char *key, const void *data, size_t len)
{
    each_t *x = arg;
    policy_t p;
    /* A stored envelope was accepted by this code; one that no longer
     * parses (an older program's) is skipped rather than stopping all. */
    if (policy_open(data, len, &p, NULL) != LX_OK)
        return 0;
    char akey[64];
    uint64_t at = 0;
    snprintf(akey, sizeof akey, "pola/%s", key + 4);
    if (store_meta_get(x->t, akey, &at) != LX_OK)
        at = 0;
    int rc = x->cb(x->arg, data, len, &p, at);
    policy_free(&p);
    return rc;
}

int policy_each(stxn_t *t, policy_cb cb, void *arg)
{
    each_t x = {t, cb, arg};
    return store_blob_each(t, "pol/", each_cb, &x);
}

typedef struct {
    policy_ver_t *v;
    size_t n, cap;
} vers_t;

static int vers_cb(void *arg, const void *env, size_t len, const policy_t *p, uint64_t at)
{
    (void)env, (void)len, (void)at;
    vers_t *x = arg;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        policy_ver_t *nv = realloc(x->v, cap * sizeof *nv);
        if (!nv)
            return LX_ENOMEM;
        x->v = nv;
        x->cap = cap;
    }
    x->v[x->n++] = (policy_ver_t){p->issuer, p->kind, p->version};
    return 0;
}

int policy_versions(stxn_t *t, policy_ver_t **out, size_t *n)
{
    vers_t x = {0};
    int rc = policy_each(t, vers_cb, &x);
    if (rc) {
        free(x.v);
        return rc;
    }
    *out = x.v;
    *n = x.n;
    return LX_OK;
}

/* ---- acknowledgements ---- */

int policy_ack_put(stxn_t *t, code_t node, const policy_ver_t *vers, size_t n,
                   uint64_t when_ms)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, when_ms);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, vers[i].issuer);
        msgpack_pack_uint32(&pk, (uint32_t)vers[i].kind);
        msgpack_pack_uint32(&pk, vers[i].version);
    }
    char key[32], c[CODE_STRLEN + 1];
    snprintf(key, sizeof key, "polack/%s", code_fmt(node, c));
    int rc = sb.data ? store_blob_put(t, key, sb.data, sb.size) : LX_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

typedef struct {
    policy_ack_cb cb;
    void *arg;
} ackx_t;

static int ack_decode(const msgpack_object *o, uint64_t *when, policy_ver_t **vers, size_t *n)
{
    if (mp_array(o, "ack", 2, 2, NULL) || mp_u64(&o->via.array.ptr[0], "when", when, NULL)
        || mp_array(&o->via.array.ptr[1], "versions", 0, 4096, NULL))
        return LX_ECORRUPT;
    const msgpack_object_array *a = &o->via.array.ptr[1].via.array;
    *vers = calloc(a->size ? a->size : 1, sizeof **vers);
    if (!*vers)
        return LX_ENOMEM;
    for (uint32_t i = 0; i < a->size; i++) {
        uint64_t is, k, v;
        const msgpack_object *e = &a->ptr[i];
        if (mp_array(e, "version", 3, 3, NULL) || mp_u64(&e->via.array.ptr[0], "", &is, NULL)
            || mp_u64(&e->via.array.ptr[1], "", &k, NULL)
            || mp_u64(&e->via.array.ptr[2], "", &v, NULL) || k >= POLICY_NKINDS
            || v > UINT32_MAX) {
            free(*vers);
            *vers = NULL;
            return LX_ECORRUPT;
        }
        (*vers)[i] = (policy_ver_t){is, (policy_kind_t)k, (uint32_t)v};
    }
    *n = a->size;
    return LX_OK;
}

static int ack_cb(void *arg, const char *key, const void *data, size_t len)
{
    ackx_t *x = arg;
    code_t node;
    if (code_parse(key + 7, &node))
        return 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    uint64_t when = 0;
    policy_ver_t *vers = NULL;
    size_t n = 0;
    int rc = mp_unpack(data, len, &u, NULL);
    if (!rc)
        rc = ack_decode(&u.data, &when, &vers, &n);
    msgpack_unpacked_destroy(&u);
    if (rc == LX_ECORRUPT)
        return 0; /* one bad entry does not hide the others */
    if (!rc)
        rc = x->cb(x->arg, node, vers, n, when);
    free(vers);
    return rc;
}

int policy_ack_each(stxn_t *t, policy_ack_cb cb, void *arg)
{
    ackx_t x = {cb, arg};
    return store_blob_each(t, "polack/", ack_cb, &x);
}
