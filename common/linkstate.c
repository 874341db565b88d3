#include "linkstate.h"
#include "mp.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

int links_save(stxn_t *t, const links_t *l)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint64(&pk, l->updated_ms);
    msgpack_pack_int(&pk, l->pid);
    msgpack_pack_array(&pk, l->n);
    for (uint32_t i = 0; i < l->n; i++) {
        const linkstate_t *s = &l->links[i];
        size_t rl = strlen(s->reason);
        msgpack_pack_array(&pk, 9);
        msgpack_pack_uint64(&pk, s->code);
        msgpack_pack_int(&pk, s->is_parent);
        msgpack_pack_int(&pk, s->up);
        msgpack_pack_uint64(&pk, s->acked);
        msgpack_pack_uint64(&pk, s->applied);
        msgpack_pack_uint64(&pk, s->refusals);
        msgpack_pack_str(&pk, rl);
        msgpack_pack_str_body(&pk, s->reason, rl);
        msgpack_pack_uint64(&pk, s->sent);
        msgpack_pack_uint64(&pk, s->received);
    }
    msgpack_pack_uint64(&pk, l->refusals);
    msgpack_pack_uint64(&pk, l->skew);
    msgpack_pack_uint64(&pk, l->malformed);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, l->denied);
    msgpack_pack_uint64(&pk, l->heartbeat_ms);
    int rc = store_blob_put(t, "links", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static uint64_t u64_of(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

int links_load(stxn_t *t, links_t *l)
{
    memset(l, 0, sizeof *l);
    void *data;
    size_t len;
    int rc = store_blob_get(t, "links", &data, &len);
    if (rc)
        return rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    rc = mp_unpack(data, len, &u, NULL);
    const msgpack_object *a = u.data.via.array.ptr;
    if (!rc && (mp_array(&u.data, "links", 7, 7, NULL) || a[2].type != MSGPACK_OBJECT_ARRAY
                || a[6].type != MSGPACK_OBJECT_ARRAY || a[6].via.array.size != 2))
        rc = LX_ECORRUPT;
    if (!rc) {
        l->updated_ms = u64_of(&a[0]);
        l->pid = (int)u64_of(&a[1]);
        l->refusals = u64_of(&a[3]);
        l->skew = u64_of(&a[4]);
        l->malformed = u64_of(&a[5]);
        l->denied = u64_of(&a[6].via.array.ptr[0]);
        l->heartbeat_ms = u64_of(&a[6].via.array.ptr[1]);
        uint32_t n = a[2].via.array.size;
        l->links = calloc(n ? n : 1, sizeof *l->links);
        if (!l->links)
            rc = LX_ENOMEM;
        for (uint32_t i = 0; !rc && i < n; i++) {
            const msgpack_object *e = &a[2].via.array.ptr[i];
            if (mp_array(e, "link", 9, 9, NULL)) {
                rc = LX_ECORRUPT;
                break;
            }
            const msgpack_object *f = e->via.array.ptr;
            linkstate_t *s = &l->links[l->n++];
            s->code = u64_of(&f[0]);
            s->is_parent = u64_of(&f[1]) != 0;
            s->up = u64_of(&f[2]) != 0;
            s->acked = u64_of(&f[3]);
            s->applied = u64_of(&f[4]);
            s->refusals = u64_of(&f[5]);
            if (f[6].type == MSGPACK_OBJECT_STR && f[6].via.str.size)
                snprintf(s->reason, sizeof s->reason, "%.*s",
                         (int)(f[6].via.str.size < 159 ? f[6].via.str.size : 159), f[6].via.str.ptr);
            s->sent = u64_of(&f[7]);
            s->received = u64_of(&f[8]);
        }
    }
    msgpack_unpacked_destroy(&u);
    free(data);
    if (rc)
        links_free(l);
    return rc;
}

void links_free(links_t *l)
{
    free(l->links);
    memset(l, 0, sizeof *l);
}

int node_lock(const char *data, int *fd, why_t *why)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/node.lock", data);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return why_set(why, LX_EIO, "%s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
        return LX_OK;
    int e = errno;
    close(*fd);
    *fd = -1;
    return e == EWOULDBLOCK ? why_set(why, LX_EBUSY, "%s: another node runs on this store", data)
                            : why_set(why, LX_EIO, "%s: %s", path, strerror(e));
}

bool node_running(const char *data)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/node.lock", data);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

typedef struct {
    const linkstate_t *ls;
    uint64_t n, cap;
} count_t;

static int count_cb(void *arg, const loghdr_t *h)
{
    count_t *c = arg;
    bool full;
    if (wire_routes(c->ls->code, c->ls->is_parent, h->village, h->prev, h->from, &full))
        c->n++;
    return c->n >= c->cap ? 1 : 0;
}

uint64_t links_unacked(stxn_t *t, const linkstate_t *ls, uint64_t cap)
{
    count_t c = {ls, 0, cap};
    store_each_log_hdr(t, ls->acked + 1, count_cb, &c);
    return c.n;
}

static void bundle_key(char *buf, size_t n, const char *what, code_t child)
{
    char c[CODE_STRLEN + 1];
    snprintf(buf, n, "bundle-%s/%s", what, code_fmt(child, c));
}

static int meta_add(stxn_t *t, const char *key, uint64_t n)
{
    uint64_t v = 0;
    int rc = store_meta_get(t, key, &v);
    if (rc && rc != LX_ENOTFOUND)
        return rc;
    return store_meta_put(t, key, v + n);
}

int links_note_bundle(stxn_t *t, code_t child, const char *id, hlc_t hlc, bool skew,
                      const char *reason)
{
    char key[128], c[CODE_STRLEN + 1];
    snprintf(key, sizeof key, "bundle-seen/%s/%.64s/%016" PRIx64, code_fmt(child, c), id, hlc);
    uint64_t seen;
    int rc = store_meta_get(t, key, &seen);
    if (rc != LX_ENOTFOUND)
        return rc; /* counted when a bundle first carried it (or a failure) */
    rc = store_meta_put(t, key, 1);
    bundle_key(key, sizeof key, "refused", child);
    if (!rc)
        rc = meta_add(t, key, 1);
    if (!rc && skew)
        rc = meta_add(t, "bundle-skew", 1);
    bundle_key(key, sizeof key, "reason", child);
    if (!rc)
        rc = store_blob_put(t, key, reason, strnlen(reason, sizeof ((linkstate_t *)0)->reason - 1));
    return rc;
}

/* What bundle imports refused, counted into the links as loaded. */
static void fold_bundles(stxn_t *t, links_t *lk)
{
    char key[64];
    uint64_t v;
    if (store_meta_get(t, "bundle-skew", &v) == LX_OK)
        lk->skew += v;
    for (uint32_t i = 0; i < lk->n; i++) {
        linkstate_t *l = &lk->links[i];
        bundle_key(key, sizeof key, "refused", l->code);
        if (l->is_parent || store_meta_get(t, key, &v) != LX_OK)
            continue;
        l->refusals += v;
        lk->refusals += v;
        void *why = NULL;
        size_t len = 0;
        bundle_key(key, sizeof key, "reason", l->code);
        if (!l->reason[0] && store_blob_get(t, key, &why, &len) == LX_OK && len < sizeof l->reason) {
            memcpy(l->reason, why, len);
            l->reason[len] = '\0';
        }
        free(why);
    }
}

int nodestate_load(stxn_t *t, nodestate_t *ns)
{
    memset(ns, 0, sizeof *ns);
    int rc = store_stats(t, &ns->st);
    if (rc)
        return rc;
    ns->have_links = links_load(t, &ns->lk) == LX_OK;
    if (ns->have_links)
        fold_bundles(t, &ns->lk);
    if (ns->have_links && (ns->unacked = calloc(ns->lk.n ? ns->lk.n : 1, sizeof *ns->unacked)))
        for (uint32_t i = 0; i < ns->lk.n; i++)
            ns->unacked[i] = links_unacked(t, &ns->lk.links[i], 10000000);
    return LX_OK;
}

void nodestate_free(nodestate_t *ns)
{
    links_free(&ns->lk);
    free(ns->unacked);
    ns->unacked = NULL;
}

json_t *nodestate_json(const nodestate_t *ns, code_t code, bool alive)
{
    char c[CODE_STRLEN + 1], when[48], lc[CODE_STRLEN + 1];
    const links_t *lk = &ns->lk;
    json_t *parent = json_null(), *children = json_array();
    for (uint32_t i = 0; ns->have_links && i < lk->n; i++) {
        const linkstate_t *l = &lk->links[i];
        json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:s, s:I, s:I}",
            "code", code_fmt(l->code, lc), "connected", alive && l->up,
            "unacked", (json_int_t)(ns->unacked ? ns->unacked[i] : 0),
            "acked", (json_int_t)l->acked, "refused", (json_int_t)l->refusals,
            "last_refusal", l->reason, "sent", (json_int_t)l->sent,
            "received", (json_int_t)l->received);
        if (l->is_parent) {
            json_decref(parent);
            parent = j;
        } else {
            json_array_append_new(children, j);
        }
    }
    const store_stats_t *st = &ns->st;
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:b, s:o, s:o, s:I, "
                     "s:{s:I, s:I, s:I}}",
        "code", code_fmt(code, c), "level", level_name(code_level(code)),
        "records", (json_int_t)st->records, "villages", (json_int_t)st->villages,
        "last_seq", (json_int_t)st->last_seq, "conflicts", (json_int_t)st->conflicts,
        "duplicates", (json_int_t)st->duplicates,
        "id_numbers_pending", (json_int_t)st->idn_pending,
        "hlc", hlc_fmt(st->hlc, when, sizeof when), "store_bytes", (json_int_t)st->bytes,
        "running", alive, "parent", parent, "children", children,
        "refused", (json_int_t)lk->refusals,
        "refusals", "clock_skew", (json_int_t)lk->skew, "malformed", (json_int_t)lk->malformed,
        "denied_connections", (json_int_t)lk->denied);
}
