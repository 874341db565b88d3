#include "wire.h"
#include "mp.h"

#include <string.h>

const char *wire_type_name(int type)
{
    static const char *names[] = {"?", "hello", "welcome", "refuse", "batch", "ack",
                                  "ping", "pong", "digests", "pull", "repair",
                                  "restore", "restored", "nack", "reset", "conflicts",
                                  "cfack", "policies", "polack", "report", "rptack",
                                  "answer", "ansack", "rstates", "rstack", "audit", "audack"};
    return type >= 1 && type <= WM_AUDACK ? names[type] : "unknown";
}

static void start(msgpack_sbuffer *sb, msgpack_packer *pk, msg_type_t type, uint32_t n)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(pk, n);
    msgpack_pack_int(pk, type);
}

void wire_handshake(msgpack_sbuffer *sb, msg_type_t type, code_t code,
                    uint64_t applied, uint64_t last_seq)
{
    msgpack_packer pk;
    start(sb, &pk, type, 5);
    msgpack_pack_uint32(&pk, WIRE_VERSION);
    msgpack_pack_uint64(&pk, code);
    msgpack_pack_uint64(&pk, applied);
    msgpack_pack_uint64(&pk, last_seq);
}

void wire_refuse(msgpack_sbuffer *sb, const char *reason)
{
    msgpack_packer pk;
    size_t n = strlen(reason);
    start(sb, &pk, WM_REFUSE, 2);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, reason, n);
}

void wire_ack(msgpack_sbuffer *sb, msg_type_t type, uint64_t seq)
{
    msgpack_packer pk;
    start(sb, &pk, type, 2);
    msgpack_pack_uint64(&pk, seq);
}

void wire_simple(msgpack_sbuffer *sb, msg_type_t type)
{
    msgpack_packer pk;
    start(sb, &pk, type, 1);
}

void wire_pull(msgpack_sbuffer *sb, code_t unit)
{
    msgpack_packer pk;
    start(sb, &pk, WM_PULL, 2);
    msgpack_pack_uint64(&pk, unit);
}

void wire_restored(msgpack_sbuffer *sb, uint64_t applied, uint64_t last_seq)
{
    msgpack_packer pk;
    start(sb, &pk, WM_RESTORED, 3);
    msgpack_pack_uint64(&pk, applied);
    msgpack_pack_uint64(&pk, last_seq);
}

void wire_digests(msgpack_sbuffer *sb, const unit_digest_t *d, uint32_t n)
{
    msgpack_packer pk;
    start(sb, &pk, WM_DIGESTS, 2);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, d[i].unit);
        msgpack_pack_bin(&pk, 32);
        msgpack_pack_bin_body(&pk, d[i].d, 32);
    }
}

/* A batch's change count is not known up front: the array header is
 * written as array32 and patched at the end. */
void wire_batch_begin(wire_batch_t *b, msgpack_sbuffer *sb, msg_type_t type, uint64_t first)
{
    b->sb = sb;
    b->n = 0;
    start(sb, &b->pk, type, type == WM_BATCH ? 4 : 2);
    if (type == WM_BATCH) {
        msgpack_pack_uint64(&b->pk, first);
        uint64_t upto = first;
        /* Full width, so wire_batch_end can patch it in place. */
        unsigned char u[9] = {0xcf};
        for (int i = 0; i < 8; i++)
            u[1 + i] = (unsigned char)(upto >> (56 - 8 * i));
        msgpack_sbuffer_write(sb, (const char *)u, 9);
    }
    b->count_at = sb->size;
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    msgpack_sbuffer_write(sb, hdr, 5);
}

int wire_batch_add(wire_batch_t *b, const change_t *c)
{
    if (b->n >= WIRE_MAX_CHANGES)
        return LX_EFULL;
    int rc = change_pack(c, &b->pk);
    if (rc == 0)
        b->n++;
    return rc;
}

void wire_conflicts_begin(wire_batch_t *b, msgpack_sbuffer *sb)
{
    /* Like a batch without `from`: [15, upto, [...]]. */
    b->sb = sb;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&b->pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&b->pk, 3);
    msgpack_pack_int(&b->pk, WM_CONFLICTS);
    static const char up[9] = {(char)0xcf};
    msgpack_sbuffer_write(sb, up, 9);
    b->count_at = sb->size;
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    msgpack_sbuffer_write(sb, hdr, 5);
    b->n = 0;
}

void wire_conflicts_add(wire_batch_t *b, const char *id, const field_t *kept, const field_t *lost)
{
    size_t n = strlen(id);
    msgpack_pack_array(&b->pk, 3);
    msgpack_pack_str(&b->pk, n);
    msgpack_pack_str_body(&b->pk, id, n);
    field_pack(kept, &b->pk);
    field_pack(lost, &b->pk);
    b->n++;
}

void wire_conflicts_end(wire_batch_t *b, uint64_t upto)
{
    unsigned char *p = (unsigned char *)b->sb->data + b->count_at;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (unsigned char)(b->n >> (24 - 8 * i));
    unsigned char *u = p - 9;
    for (int i = 0; i < 8; i++)
        u[1 + i] = (unsigned char)(upto >> (56 - 8 * i));
}

/* [type, [...]] with the count patched at the end. */
static void list_begin(wire_batch_t *b, msgpack_sbuffer *sb, msg_type_t type)
{
    b->sb = sb;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&b->pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&b->pk, 2);
    msgpack_pack_int(&b->pk, type);
    b->count_at = sb->size;
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    msgpack_sbuffer_write(sb, hdr, 5);
    b->n = 0;
}

void wire_policies_begin(wire_batch_t *b, msgpack_sbuffer *sb)
{
    list_begin(b, sb, WM_POLICIES);
}

void wire_policies_add(wire_batch_t *b, const void *env, size_t len)
{
    msgpack_pack_bin(&b->pk, len);
    msgpack_pack_bin_body(&b->pk, env, len);
    b->n++;
}

void wire_polack_begin(wire_batch_t *b, msgpack_sbuffer *sb)
{
    list_begin(b, sb, WM_POLACK);
}

void wire_polack_add(wire_batch_t *b, code_t node, uint64_t when_ms,
                     const wpolver_t *v, uint32_t n)
{
    msgpack_pack_array(&b->pk, 3);
    msgpack_pack_uint64(&b->pk, node);
    msgpack_pack_uint64(&b->pk, when_ms);
    msgpack_pack_array(&b->pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&b->pk, 3);
        msgpack_pack_uint64(&b->pk, v[i].issuer);
        msgpack_pack_uint32(&b->pk, v[i].kind);
        msgpack_pack_uint32(&b->pk, v[i].version);
    }
    b->n++;
}

void wire_list_end(wire_batch_t *b)
{
    unsigned char *p = (unsigned char *)b->sb->data + b->count_at;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (unsigned char)(b->n >> (24 - 8 * i));
}

static void pack_s(msgpack_packer *pk, const char *str)
{
    size_t n = strlen(str);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, str, n);
}

void wire_report(msgpack_sbuffer *sb, const char *quarter, uint32_t rev, const void *packed,
                 size_t len)
{
    msgpack_packer pk;
    start(sb, &pk, WM_REPORT, 4);
    pack_s(&pk, quarter);
    msgpack_pack_uint32(&pk, rev);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, packed, len);
}

void wire_rptack(msgpack_sbuffer *sb, msg_type_t type, const char *quarter, uint32_t rev)
{
    msgpack_packer pk;
    start(sb, &pk, type, 3);
    pack_s(&pk, quarter);
    msgpack_pack_uint32(&pk, rev);
}

void wire_answer(msgpack_sbuffer *sb, const char *quarter, uint32_t rev, uint32_t state,
                 uint64_t when_ms, const char *reason)
{
    msgpack_packer pk;
    start(sb, &pk, WM_ANSWER, 6);
    pack_s(&pk, quarter);
    msgpack_pack_uint32(&pk, rev);
    msgpack_pack_uint32(&pk, state);
    msgpack_pack_uint64(&pk, when_ms);
    pack_s(&pk, reason);
}

void wire_rstates_begin(wire_batch_t *b, msgpack_sbuffer *sb)
{
    wire_conflicts_begin(b, sb);
    b->sb->data[1] = WM_RSTATES;  /* the same shape: [type, upto, [...]] */
}

void wire_rstates_add(wire_batch_t *b, const struct wrstate *e)
{
    msgpack_pack_array(&b->pk, 6);
    msgpack_pack_uint64(&b->pk, e->node);
    pack_s(&b->pk, e->quarter);
    msgpack_pack_uint32(&b->pk, e->rev);
    msgpack_pack_uint32(&b->pk, e->state);
    msgpack_pack_uint64(&b->pk, e->when_ms);
    pack_s(&b->pk, e->reason);
    b->n++;
}

void wire_rstates_end(wire_batch_t *b, uint64_t upto)
{
    wire_conflicts_end(b, upto);
}

void wire_audit_begin(wire_batch_t *b, msgpack_sbuffer *sb)
{
    list_begin(b, sb, WM_AUDIT);
}

size_t wire_audit_chain(wire_batch_t *b, code_t node)
{
    msgpack_pack_array(&b->pk, 2);
    msgpack_pack_uint64(&b->pk, node);
    size_t at = b->sb->size;
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    msgpack_sbuffer_write(b->sb, hdr, 5);
    b->n++;
    return at;
}

void wire_audit_entry(wire_batch_t *b, const void *val, size_t len)
{
    msgpack_pack_bin(&b->pk, len);
    msgpack_pack_bin_body(&b->pk, val, len);
}

void wire_audit_chain_end(wire_batch_t *b, size_t at, uint32_t n)
{
    unsigned char *p = (unsigned char *)b->sb->data + at;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (unsigned char)(n >> (24 - 8 * i));
}

void wire_audack(msgpack_sbuffer *sb, const struct waudack *a, uint32_t n)
{
    msgpack_packer pk;
    start(sb, &pk, WM_AUDACK, 2);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, a[i].node);
        msgpack_pack_uint64(&pk, a[i].seq);
    }
}

void wire_batch_added(wire_batch_t *b)
{
    b->n++;
}

void wire_batch_end(wire_batch_t *b, uint64_t upto)
{
    unsigned char *p = (unsigned char *)b->sb->data + b->count_at;
    p[1] = (unsigned char)(b->n >> 24);
    p[2] = (unsigned char)(b->n >> 16);
    p[3] = (unsigned char)(b->n >> 8);
    p[4] = (unsigned char)b->n;
    /* In a batch, upto is the 9 bytes (0xcf and 8) before the array. */
    unsigned char *u = (unsigned char *)b->sb->data + b->count_at - 9;
    if (b->sb->data[1] == WM_BATCH && u[0] == 0xcf)
        for (int i = 0; i < 8; i++)
            u[1 + i] = (unsigned char)(upto >> (56 - 8 * i));
}

void wmsg_free(wmsg_t *m)
{
    for (uint32_t i = 0; i < m->nconflicts; i++) {
        free(m->conflicts[i].id);
        field_free(&m->conflicts[i].kept);
        field_free(&m->conflicts[i].lost);
    }
    free(m->conflicts);
    for (uint32_t i = 0; !m->arena && i < m->nchanges; i++)
        change_free(&m->changes[i]);
    free(m->changes);
    arena_destroy(&m->arena);
    free(m->digests);
    for (uint32_t i = 0; i < m->npolicies; i++)
        free(m->policies[i].env);
    free(m->policies);
    for (uint32_t i = 0; i < m->npolacks; i++)
        free(m->polacks[i].v);
    free(m->polacks);
    free(m->blob);
    free(m->rstates);
    for (uint32_t i = 0; i < m->naudits; i++) {
        for (uint32_t k = 0; k < m->audits[i].n; k++)
            free(m->audits[i].e[k].p);
        free(m->audits[i].e);
    }
    free(m->audits);
    free(m->audacks);
    memset(m, 0, sizeof *m);
}

static int changes_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "changes", 0, WIRE_MAX_CHANGES, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size;
    m->changes = calloc(n ? n : 1, sizeof *m->changes);
    if (!m->changes)
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = change_from_obj(&o->via.array.ptr[i], &m->changes[i], why)))
            return why_prefix(why, rc, "change %u", i + 1);
        m->nchanges++;
    }
    return LX_OK;
}

static int policies_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "policies", 0, WIRE_MAX_POLICIES, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size;
    if (!(m->policies = calloc(n ? n : 1, sizeof *m->policies)))
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_BIN || e->via.bin.size == 0)
            return why_set(why, LX_EINVAL, "policies: entry %u is not an envelope", i + 1);
        if (!(m->policies[i].env = malloc(e->via.bin.size)))
            return LX_ENOMEM;
        memcpy(m->policies[i].env, e->via.bin.ptr, e->via.bin.size);
        m->policies[i].len = e->via.bin.size;
        m->npolicies++;
    }
    return LX_OK;
}

static int polack_from(const msgpack_object *e, struct wpolack *pa, uint32_t i, why_t *why)
{
    int rc;
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3)
        return why_set(why, LX_EINVAL, "polack: entry %u malformed", i + 1);
    const msgpack_object *x = e->via.array.ptr;
    if ((rc = mp_u64(&x[0], "polack node", &pa->node, why))
        || (rc = mp_u64(&x[1], "polack when", &pa->when_ms, why))
        || (rc = mp_array(&x[2], "polack versions", 0, WIRE_MAX_POLVERS, why)))
        return rc;
    if (code_level(pa->node) == LEVEL_NONE)
        return why_set(why, LX_EINVAL, "polack: entry %u: not a division code", i + 1);
    uint32_t nv = x[2].via.array.size;
    if (!(pa->v = calloc(nv ? nv : 1, sizeof *pa->v)))
        return LX_ENOMEM;
    for (uint32_t k = 0; k < nv; k++) {
        const msgpack_object *v = &x[2].via.array.ptr[k];
        uint64_t kind, ver;
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 3
            || (rc = mp_u64(&v->via.array.ptr[0], "issuer", &pa->v[k].issuer, why))
            || (rc = mp_u64(&v->via.array.ptr[1], "kind", &kind, why))
            || (rc = mp_u64(&v->via.array.ptr[2], "version", &ver, why))
            || kind > 255 || ver > UINT32_MAX)
            return rc ? rc : why_set(why, LX_EINVAL, "polack: entry %u version %u malformed",
                                     i + 1, k + 1);
        pa->v[k].kind = (uint32_t)kind;
        pa->v[k].version = (uint32_t)ver;
        pa->n++;
    }
    return LX_OK;
}

static int polacks_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "polacks", 0, WIRE_MAX_POLACKS, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size;
    if (!(m->polacks = calloc(n ? n : 1, sizeof *m->polacks)))
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        m->npolacks++;
        if ((rc = polack_from(&o->via.array.ptr[i], &m->polacks[i], i, why)))
            return rc;
    }
    return LX_OK;
}

/* "YYYYQn": the shape only; the receiver parses it. */
static int quarter_from(const msgpack_object *o, const char *what, char out[8], why_t *why)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != 6)
        return why_set(why, LX_EINVAL, "%s: quarter is not YYYYQn", what);
    const char *p = o->via.str.ptr;
    for (int i = 0; i < 4; i++)
        if (p[i] < '0' || p[i] > '9')
            return why_set(why, LX_EINVAL, "%s: quarter is not YYYYQn", what);
    if (p[4] != 'Q' || p[5] < '1' || p[5] > '4')
        return why_set(why, LX_EINVAL, "%s: quarter is not YYYYQn", what);
    memcpy(out, p, 6);
    out[6] = '\0';
    return LX_OK;
}

static int u32_from(const msgpack_object *o, const char *what, uint32_t *out, why_t *why)
{
    uint64_t v;
    int rc = mp_u64(o, what, &v, why);
    if (!rc && v > UINT32_MAX)
        rc = why_set(why, LX_EINVAL, "%s: out of range", what);
    if (!rc)
        *out = (uint32_t)v;
    return rc;
}

/* A reason is shown to operators: at most WIRE_MAX_REASON bytes, no
 * control characters. */
static int reason_from(const msgpack_object *o, const char *what, char *out, why_t *why)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > WIRE_MAX_REASON)
        return why_set(why, LX_EINVAL, "%s: reason is not a string of at most %d bytes", what,
                       WIRE_MAX_REASON);
    uint32_t k;
    for (k = 0; k < o->via.str.size; k++) {
        unsigned char ch = (unsigned char)o->via.str.ptr[k];
        out[k] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    out[k] = '\0';
    return LX_OK;
}

static int rstates_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "rstates", 0, WIRE_MAX_RSTATES, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size;
    if (!(m->rstates = calloc(n ? n : 1, sizeof *m->rstates)))
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct wrstate *s = &m->rstates[i];
        if ((rc = mp_array(e, "rstates entry", 6, 6, why)))
            return rc;
        const msgpack_object *x = e->via.array.ptr;
        if ((rc = mp_u64(&x[0], "rstates node", &s->node, why))
            || (rc = quarter_from(&x[1], "rstates", s->quarter, why))
            || (rc = u32_from(&x[2], "rstates rev", &s->rev, why))
            || (rc = u32_from(&x[3], "rstates state", &s->state, why))
            || (rc = mp_u64(&x[4], "rstates when", &s->when_ms, why))
            || (rc = reason_from(&x[5], "rstates", s->reason, why)))
            return rc;
        if (code_level(s->node) == LEVEL_NONE)
            return why_set(why, LX_EINVAL, "rstates: entry %u: not a division code", i + 1);
        m->nrstates++;
    }
    return LX_OK;
}

/* [[node, [entry(bin)...]]...]: entries copied; at most WIRE_MAX_AUDIT in
 * all. Whether they chain is the receiver's check (audit_receive). */
static int audits_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "audit", 0, WIRE_MAX_AUDIT_CHAINS, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size, total = 0;
    if (!(m->audits = calloc(n ? n : 1, sizeof *m->audits)))
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *c = &o->via.array.ptr[i];
        struct waudit *a = &m->audits[i];
        if ((rc = mp_array(c, "audit chain", 2, 2, why))
            || (rc = mp_u64(&c->via.array.ptr[0], "audit node", &a->node, why))
            || (rc = mp_array(&c->via.array.ptr[1], "audit entries", 0, WIRE_MAX_AUDIT, why)))
            return rc;
        if (code_level(a->node) == LEVEL_NONE)
            return why_set(why, LX_EINVAL, "audit: chain %u: not a division code", i + 1);
        const msgpack_object *es = &c->via.array.ptr[1];
        if ((total += es->via.array.size) > WIRE_MAX_AUDIT)
            return why_set(why, LX_EINVAL, "audit: more than %d entries", WIRE_MAX_AUDIT);
        m->naudits++;
        if (!(a->e = calloc(es->via.array.size ? es->via.array.size : 1, sizeof *a->e)))
            return LX_ENOMEM;
        for (uint32_t k = 0; k < es->via.array.size; k++) {
            const msgpack_object *e = &es->via.array.ptr[k];
            if (e->type != MSGPACK_OBJECT_BIN || e->via.bin.size == 0)
                return why_set(why, LX_EINVAL, "audit: chain %u entry %u is not bytes", i + 1,
                               k + 1);
            if (!(a->e[k].p = malloc(e->via.bin.size)))
                return LX_ENOMEM;
            memcpy(a->e[k].p, e->via.bin.ptr, e->via.bin.size);
            a->e[k].len = e->via.bin.size;
            a->n++;
        }
    }
    return LX_OK;
}

static int audacks_from(const msgpack_object *o, wmsg_t *m, why_t *why)
{
    int rc = mp_array(o, "audack", 0, WIRE_MAX_AUDIT_CHAINS, why);
    if (rc)
        return rc;
    uint32_t n = o->via.array.size;
    if (!(m->audacks = calloc(n ? n : 1, sizeof *m->audacks)))
        return LX_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct waudack *a = &m->audacks[i];
        if ((rc = mp_array(e, "audack entry", 2, 2, why))
            || (rc = mp_u64(&e->via.array.ptr[0], "audack node", &a->node, why))
            || (rc = mp_u64(&e->via.array.ptr[1], "audack seq", &a->seq, why)))
            return rc;
        m->naudacks++;
    }
    return LX_OK;
}

/* Batches and repairs, the bulk of the traffic, straight from the bytes
 * into an arena (change_read). False: not exactly the usual shape, and
 * the general decoder below takes the frame (and names what is wrong). */
static bool changes_read(const void *buf, size_t len, wmsg_t *m)
{
    mp_rd_t r = {buf, (const unsigned char *)buf + len, false};
    uint32_t n = mp_rd_array(&r);
    uint64_t type = mp_rd_uint(&r);
    if (r.bad || !((type == WM_BATCH && n == 4) || (type == WM_REPAIR && n == 2)))
        return false;
    if (type == WM_BATCH) {
        m->first = mp_rd_uint(&r);
        m->last_seq = mp_rd_uint(&r);
    }
    uint32_t nc = mp_rd_array(&r);
    if (r.bad || nc > WIRE_MAX_CHANGES || nc > (size_t)(r.end - r.p)
        || (type == WM_BATCH && m->first > m->last_seq + 1))
        return false;
    /* Decoded fields take about twice the bytes they came in. */
    m->arena = arena_new(2 * len);
    m->changes = calloc(nc ? nc : 1, sizeof *m->changes);
    for (uint32_t i = 0; m->arena && m->changes && i < nc && !r.bad; i++)
        if (change_read(&r, m->arena, &m->changes[i]))
            m->nchanges++;
    if (!m->arena || !m->changes || r.bad || m->nchanges != nc || r.p != r.end) {
        wmsg_free(m);
        return false;
    }
    m->type = (msg_type_t)type;
    return true;
}

int wire_decode(const void *buf, size_t len, wmsg_t *m, why_t *why)
{
    memset(m, 0, sizeof *m);
    if (len > WIRE_MAX_FRAME)
        return why_set(why, LX_EINVAL, "frame of %zu bytes is over the limit", len);
    if (changes_read(buf, len, m))
        return LX_OK;
    memset(m, 0, sizeof *m);  /* whatever the fast path read on the way */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = mp_unpack(buf, len, &u, why);
    const msgpack_object *o = &u.data;
    if (!rc && (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1
                || o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER))
        rc = why_set(why, LX_EINVAL, "frame: expected [type, ...]");
    if (rc) {
        msgpack_unpacked_destroy(&u);
        return rc;
    }
    const msgpack_object *a = o->via.array.ptr;
    uint32_t n = o->via.array.size;
    uint64_t type = a[0].via.u64, v = 0;
    m->type = (msg_type_t)type;
    const char *name = wire_type_name((int)type);
    switch (type) {
    case WM_HELLO:
    case WM_WELCOME:
        if (n != 5)
            rc = why_set(why, LX_EINVAL, "%s: expected 5 elements", name);
        else if (!(rc = mp_u64(&a[1], "version", &v, why))
                 && !(rc = mp_u64(&a[2], "code", &m->code, why))
                 && !(rc = mp_u64(&a[3], "applied", &m->applied, why)))
            rc = mp_u64(&a[4], "last_seq", &m->last_seq, why);
        m->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        if (!rc && code_level(m->code) == LEVEL_NONE)
            rc = why_set(why, LX_EINVAL, "%s: not a division code", name);
        break;
    case WM_REFUSE:
        if (n != 2 || a[1].type != MSGPACK_OBJECT_STR)
            rc = why_set(why, LX_EINVAL, "refuse: expected [3, reason]");
        else
        {
            /* Shown in logs and status: no control characters. */
            uint32_t k, rl = a[1].via.str.size < 255 ? a[1].via.str.size : 255;
            for (k = 0; k < rl; k++) {
                unsigned char ch = (unsigned char)a[1].via.str.ptr[k];
                m->reason[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
            }
            m->reason[k] = '\0';
        }
        break;
    case WM_BATCH:
        if (n != 4)
            rc = why_set(why, LX_EINVAL, "batch: expected 4 elements");
        else if (!(rc = mp_u64(&a[1], "batch from", &m->first, why))
                 && !(rc = mp_u64(&a[2], "batch upto", &m->last_seq, why)))
            rc = changes_from(&a[3], m, why);
        if (!rc && m->first > m->last_seq + 1)
            rc = why_set(why, LX_EINVAL, "batch: from after upto");
        break;
    case WM_REPAIR:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "repair: expected 2 elements");
        else
            rc = changes_from(&a[1], m, why);
        break;
    case WM_REPORT:
        if (n != 4 || a[3].type != MSGPACK_OBJECT_BIN || a[3].via.bin.size == 0)
            rc = why_set(why, LX_EINVAL, "report: expected [19, quarter, rev, report]");
        else if (!(rc = quarter_from(&a[1], name, m->quarter, why))
                 && !(rc = u32_from(&a[2], "report rev", &m->rev, why))) {
            if ((m->blob = malloc(a[3].via.bin.size))) {
                memcpy(m->blob, a[3].via.bin.ptr, a[3].via.bin.size);
                m->bloblen = a[3].via.bin.size;
            } else {
                rc = LX_ENOMEM;
            }
        }
        break;
    case WM_RPTACK:
    case WM_ANSACK:
        if (n != 3)
            rc = why_set(why, LX_EINVAL, "%s: expected 3 elements", name);
        else if (!(rc = quarter_from(&a[1], name, m->quarter, why)))
            rc = u32_from(&a[2], "rev", &m->rev, why);
        break;
    case WM_ANSWER:
        if (n != 6)
            rc = why_set(why, LX_EINVAL, "answer: expected 6 elements");
        else if (!(rc = quarter_from(&a[1], name, m->quarter, why))
                 && !(rc = u32_from(&a[2], "answer rev", &m->rev, why))
                 && !(rc = u32_from(&a[3], "answer state", &m->state, why))
                 && !(rc = mp_u64(&a[4], "answer when", &m->when_ms, why)))
            rc = reason_from(&a[5], name, m->reason, why);
        break;
    case WM_RSTATES:
        if (n != 3 || (rc = mp_u64(&a[1], "rstates upto", &m->last_seq, why)))
            rc = rc ? rc : why_set(why, LX_EINVAL, "rstates: expected 3 elements");
        else
            rc = rstates_from(&a[2], m, why);
        break;
    case WM_ACK:
    case WM_NACK:
    case WM_CFACK:
    case WM_RSTACK:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "%s: expected 2 elements", name);
        else
            rc = mp_u64(&a[1], "ack seq", &m->applied, why);
        break;
    case WM_PING:
    case WM_PONG:
    case WM_RESTORE:
    case WM_RESET:
        if (n != 1)
            rc = why_set(why, LX_EINVAL, "%s: expected 1 element", name);
        break;
    case WM_PULL:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "pull: expected 2 elements");
        else if (!(rc = mp_u64(&a[1], "unit", &m->code, why)) && code_level(m->code) == LEVEL_NONE)
            rc = why_set(why, LX_EINVAL, "pull: not a division code");
        break;
    case WM_RESTORED:
        if (n != 3)
            rc = why_set(why, LX_EINVAL, "restored: expected 3 elements");
        else if (!(rc = mp_u64(&a[1], "applied", &m->applied, why)))
            rc = mp_u64(&a[2], "last_seq", &m->last_seq, why);
        break;
    case WM_DIGESTS: {
        if (n != 2 || (rc = mp_array(&a[1], "digests", 0, WIRE_MAX_DIGESTS, why))) {
            rc = rc ? rc : why_set(why, LX_EINVAL, "digests: expected 2 elements");
            break;
        }
        uint32_t nd = a[1].via.array.size;
        m->digests = calloc(nd ? nd : 1, sizeof *m->digests);
        if (!m->digests) {
            rc = LX_ENOMEM;
            break;
        }
        for (uint32_t i = 0; i < nd && !rc; i++) {
            const msgpack_object *e = &a[1].via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2
                || e->via.array.ptr[1].type != MSGPACK_OBJECT_BIN
                || e->via.array.ptr[1].via.bin.size != 32
                || (rc = mp_u64(&e->via.array.ptr[0], "unit", &m->digests[i].unit, why))) {
                rc = rc ? rc : why_set(why, LX_EINVAL, "digests: entry %u malformed", i + 1);
                break;
            }
            memcpy(m->digests[i].d, e->via.array.ptr[1].via.bin.ptr, 32);
            m->ndigests++;
        }
        break;
    }
    case WM_POLICIES:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "policies: expected 2 elements");
        else
            rc = policies_from(&a[1], m, why);
        break;
    case WM_POLACK:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "polack: expected 2 elements");
        else
            rc = polacks_from(&a[1], m, why);
        break;
    case WM_CONFLICTS: {
        if (n != 3 || (rc = mp_u64(&a[1], "conflicts upto", &m->last_seq, why))
            || (rc = mp_array(&a[2], "conflicts", 0, WIRE_MAX_CHANGES, why))) {
            rc = rc ? rc : why_set(why, LX_EINVAL, "conflicts: expected 3 elements");
            break;
        }
        uint32_t nc = a[2].via.array.size;
        m->conflicts = calloc(nc ? nc : 1, sizeof *m->conflicts);
        if (!m->conflicts) {
            rc = LX_ENOMEM;
            break;
        }
        for (uint32_t i = 0; i < nc && !rc; i++) {
            const msgpack_object *e = &a[2].via.array.ptr[i];
            struct wconflict *c = &m->conflicts[i];
            if ((rc = mp_array(e, "conflict", 3, 3, why))
                || (rc = mp_str(&e->via.array.ptr[0], "conflict id", &c->id, why))
                || (rc = field_from_obj(&e->via.array.ptr[1], &c->kept, why))
                || (rc = field_from_obj(&e->via.array.ptr[2], &c->lost, why))) {
                m->nconflicts = i + 1; /* free what was decoded */
                break;
            }
            m->nconflicts++;
        }
        break;
    }
    case WM_AUDIT:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "audit: expected 2 elements");
        else
            rc = audits_from(&a[1], m, why);
        break;
    case WM_AUDACK:
        if (n != 2)
            rc = why_set(why, LX_EINVAL, "audack: expected 2 elements");
        else
            rc = audacks_from(&a[1], m, why);
        break;
    default:
        rc = why_set(why, LX_EINVAL, "unknown message type %llu", (unsigned long long)type);
    }
    msgpack_unpacked_destroy(&u);
    if (rc)
        wmsg_free(m);
    return rc;
}

bool wire_routes(code_t peer, bool to_parent, code_t village, code_t prev,
                 code_t from, bool *full)
{
    *full = false;
    if (from == peer)
        return false;    /* never echo a change to where it came from */
    if (to_parent)
        return true;
    bool now = village && code_contains(peer, village);
    bool before = prev && code_contains(peer, prev);
    *full = now && prev && !before;
    return now || before;
}
