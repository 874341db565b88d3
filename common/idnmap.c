/* idnmap: see idnmap.h. Entries live in one array, their strings in one
 * pool beside it (an entry is 32 bytes and its strings about 50, where
 * fixed arrays took 160: a writer holds up to 131,072 of them); two
 * chained hash tables of 1-based indices find them by record id and by
 * current number. */
#include "idnmap.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hid, hnow;          /* idnmap_hash of id and of now */
    uint32_t next_id, next_now;  /* chains, 1-based; 0 ends */
    uint32_t off;                /* pool + off: id, old, now, each with its NUL */
    uint8_t lid, lold, lnow;     /* their lengths */
} ent_t;

struct idnmap {
    ent_t *e;
    size_t n, cap;
    char *pool;
    size_t plen, pcap;
    unsigned *by_id, *by_now; /* nb buckets each */
    size_t nb;
    size_t hint;              /* entries to make room for at once */
};

/* Pool bytes an entry takes on average (a 29-character id, a new
 * record's empty old number, an 18-character one now), for reserving. */
#define POOL_PER_ENT 52

uint64_t idnmap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ^ (h >> 29);
}

#define hash idnmap_hash

static const char *id_of(const idnmap_t *m, const ent_t *x) { return m->pool + x->off; }
static const char *old_of(const idnmap_t *m, const ent_t *x)
{
    return m->pool + x->off + x->lid + 1;
}
static const char *now_of(const idnmap_t *m, const ent_t *x)
{
    return m->pool + x->off + x->lid + 1 + x->lold + 1;
}

static void view(const idnmap_t *m, const ent_t *x, idnmap_ent_t *out)
{
    if (out)
        *out = (idnmap_ent_t){id_of(m, x), old_of(m, x), now_of(m, x), x->hnow};
}

idnmap_t *idnmap_new(void) { return calloc(1, sizeof(idnmap_t)); }

void idnmap_clear(idnmap_t *m)
{
    if (m->nb) {
        memset(m->by_id, 0, m->nb * sizeof *m->by_id);
        memset(m->by_now, 0, m->nb * sizeof *m->by_now);
    }
    m->n = 0;
    m->plen = 0;
}

void idnmap_release(idnmap_t *m)
{
    size_t hint = m->hint;
    free(m->e);
    free(m->pool);
    free(m->by_id);
    free(m->by_now);
    *m = (idnmap_t){.hint = hint};
}

void idnmap_reserve(idnmap_t *m, size_t n) { m->hint = n; }

void idnmap_destroy(idnmap_t **self_p)
{
    if (!*self_p)
        return;
    idnmap_release(*self_p);
    free(*self_p);
    *self_p = NULL;
}

size_t idnmap_count(const idnmap_t *m) { return m->n; }

void idnmap_at(const idnmap_t *m, size_t i, idnmap_ent_t *out)
{
    view(m, &m->e[i], out);
}

static void link_now(idnmap_t *m, unsigned i)
{
    ent_t *x = &m->e[i - 1];
    if (!x->lnow)
        return;
    size_t b = x->hnow & (m->nb - 1);
    x->next_now = m->by_now[b];
    m->by_now[b] = i;
}

/* The link after entry i in one of the two chains. */
static unsigned *next_of(idnmap_t *m, unsigned i, bool by_now)
{
    return by_now ? &m->e[i - 1].next_now : &m->e[i - 1].next_id;
}

/* Takes entry i out of the chain that starts at *p. */
static void unlink_from(idnmap_t *m, unsigned *p, unsigned i, bool by_now)
{
    while (*p && *p != i)
        p = next_of(m, *p, by_now);
    if (*p)
        *p = *next_of(m, i, by_now);
}

static void unlink_now(idnmap_t *m, unsigned i)
{
    ent_t *x = &m->e[i - 1];
    if (x->lnow)
        unlink_from(m, &m->by_now[x->hnow & (m->nb - 1)], i, true);
}

/* Rebuilds both tables with nb buckets. */
static int rehash(idnmap_t *m, size_t nb)
{
    unsigned *a = calloc(nb, sizeof *a), *b = calloc(nb, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return LX_ENOMEM;
    }
    free(m->by_id);
    free(m->by_now);
    m->by_id = a;
    m->by_now = b;
    m->nb = nb;
    for (unsigned i = 1; i <= m->n; i++) {
        ent_t *x = &m->e[i - 1];
        size_t h = x->hid & (nb - 1);
        x->next_id = a[h];
        a[h] = i;
        link_now(m, i);
    }
    return LX_OK;
}

static unsigned find(const idnmap_t *m, const char *id, uint64_t h)
{
    if (!m->nb)
        return 0;
    unsigned i = m->by_id[h & (m->nb - 1)];
    while (i && (m->e[i - 1].hid != h || strcmp(id_of(m, &m->e[i - 1]), id) != 0))
        i = m->e[i - 1].next_id;
    return i;
}

void idnmap_pop(idnmap_t *m)
{
    if (!m->n)
        return;
    unsigned i = (unsigned)m->n;
    ent_t *x = &m->e[i - 1];
    unlink_now(m, i);
    unlink_from(m, &m->by_id[x->hid & (m->nb - 1)], i, false);
    if ((size_t)x->off + x->lid + x->lold + x->lnow + 3 == m->plen)
        m->plen = x->off; /* its strings were the last in the pool */
    m->n--;
}

bool idnmap_get(const idnmap_t *m, const char *id, idnmap_ent_t *out)
{
    unsigned i = find(m, id, hash(id));
    if (i)
        view(m, &m->e[i - 1], out);
    return i != 0;
}

/* Room for `more` bytes at the pool's end; the pool may move. */
static int pool_room(idnmap_t *m, size_t more)
{
    if (m->plen + more <= m->pcap)
        return LX_OK;
    size_t cap = m->pcap ? m->pcap * 2 : 4096;
    if (cap < m->hint * POOL_PER_ENT)
        cap = m->hint * POOL_PER_ENT;
    while (cap < m->plen + more)
        cap *= 2;
    if (cap > UINT32_MAX)
        return LX_ENOMEM; /* offsets are 32-bit */
    char *p = realloc(m->pool, cap);
    if (!p)
        return LX_ENOMEM;
    m->pool = p;
    m->pcap = cap;
    return LX_OK;
}

/* Appends id, old and now to the pool for entry x. */
static void pool_put(idnmap_t *m, ent_t *x, const char *id, size_t lid, const char *old,
                     size_t lold, const char *now, size_t lnow)
{
    char *p = m->pool + m->plen;
    x->off = (uint32_t)m->plen;
    memcpy(p, id, lid + 1);
    memcpy(p + lid + 1, old, lold + 1);
    memcpy(p + lid + 1 + lold + 1, now, lnow + 1);
    x->lid = (uint8_t)lid;
    x->lold = (uint8_t)lold;
    x->lnow = (uint8_t)lnow;
    m->plen += lid + lold + lnow + 3;
}

int idnmap_set(idnmap_t *m, const char *id, const char *old, const char *now)
{
    return idnmap_set_ent(m, id, old, now, NULL);
}

/* A new entry for id (none is held). */
static int insert(idnmap_t *m, const char *id, size_t lid, const char *old, size_t lold,
                  const char *now, size_t lnow, uint64_t hid, uint64_t hnow, idnmap_ent_t *out)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        if (cap < m->hint)
            cap = m->hint; /* one allocation: no copies, no pages touched twice */
        ent_t *e = realloc(m->e, cap * sizeof *e);
        if (!e)
            return LX_ENOMEM;
        m->e = e;
        m->cap = cap;
    }
    if (m->n >= UINT32_MAX - 1 || pool_room(m, lid + lold + lnow + 3))
        return LX_ENOMEM;
    if (m->n + 1 > m->nb / 4 * 3) {
        size_t nb = m->nb ? m->nb * 2 : 512;
        while (nb / 4 * 3 < m->hint)
            nb *= 2;
        if (rehash(m, nb))
            return LX_ENOMEM;
    }
    ent_t *x = &m->e[m->n++];
    memset(x, 0, sizeof *x);
    pool_put(m, x, id, lid, old, lold, now, lnow);
    x->hid = hid;
    x->hnow = hnow;
    unsigned i = (unsigned)m->n;
    size_t h = hid & (m->nb - 1);
    x->next_id = m->by_id[h];
    m->by_id[h] = i;
    link_now(m, i);
    view(m, x, out);
    return LX_OK;
}

/* set_ent and add_ent: with look, an entry the map holds for id is
 * updated; without, the caller knows there is none. */
static int set(idnmap_t *m, const char *id, const char *old, const char *now, bool look,
               idnmap_ent_t *out)
{
    if (!old)
        old = "";
    if (!now)
        now = "";
    size_t lid = strlen(id), lold = strlen(old), lnow = strlen(now);
    if (lid > IDNMAP_ID_MAX || lold > IDNMAP_NUM_MAX || lnow > IDNMAP_NUM_MAX)
        return LX_EINVAL;
    uint64_t hid = hash(id), hnow = hash(now);
    unsigned i = look ? find(m, id, hid) : 0;
    if (i) {
        ent_t *x = &m->e[i - 1];
        unlink_now(m, i);
        if (lnow <= x->lnow) {
            memcpy(m->pool + x->off + x->lid + 1 + x->lold + 1, now, lnow + 1);
            x->lnow = (uint8_t)lnow;
        } else {
            /* Longer than the room it had: all three again at the end
             * (the old copy is garbage until the map is cleared). */
            char keep[IDNMAP_ID_MAX + IDNMAP_NUM_MAX + 2];
            size_t kl = x->lid + 1 + x->lold + 1;
            memcpy(keep, m->pool + x->off, kl);
            if (pool_room(m, kl + lnow + 1))
                return LX_ENOMEM;
            pool_put(m, x, keep, x->lid, keep + x->lid + 1, x->lold, now, lnow);
        }
        x->hnow = hnow;
        link_now(m, i);
        view(m, x, out);
        return LX_OK;
    }
    return insert(m, id, lid, old, lold, now, lnow, hid, hnow, out);
}

int idnmap_set_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   idnmap_ent_t *out)
{
    return set(m, id, old, now, true, out);
}

int idnmap_add_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   idnmap_ent_t *out)
{
    return set(m, id, old, now, false, out);
}

int idnmap_each_holder(const idnmap_t *m, const char *num, idnmap_cb cb, void *arg)
{
    if (!m->nb || !num[0])
        return 0;
    uint64_t h = hash(num);
    for (unsigned i = m->by_now[h & (m->nb - 1)]; i; i = m->e[i - 1].next_now) {
        const ent_t *x = &m->e[i - 1];
        if (x->hnow == h && strcmp(now_of(m, x), num) == 0) {
            int rc = cb(arg, id_of(m, x));
            if (rc)
                return rc;
        }
    }
    return 0;
}
