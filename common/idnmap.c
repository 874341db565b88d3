/* idnmap: see idnmap.h. Entries live in one array; two chained hash
 * tables of 1-based indices find them by record id and by current number. */
#include "idnmap.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct idnmap {
    idnmap_ent_t *e;
    size_t n, cap;
    unsigned *by_id, *by_now; /* nb buckets each */
    size_t nb;
    size_t hint;              /* entries to make room for at once */
};

uint64_t idnmap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ^ (h >> 29);
}

#define hash idnmap_hash

idnmap_t *idnmap_new(void) { return calloc(1, sizeof(idnmap_t)); }

void idnmap_clear(idnmap_t *m)
{
    if (m->nb) {
        memset(m->by_id, 0, m->nb * sizeof *m->by_id);
        memset(m->by_now, 0, m->nb * sizeof *m->by_now);
    }
    m->n = 0;
}

void idnmap_release(idnmap_t *m)
{
    size_t hint = m->hint;
    free(m->e);
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

const idnmap_ent_t *idnmap_at(const idnmap_t *m, size_t i)
{
    return i < m->n ? &m->e[i] : NULL;
}

static void link_now(idnmap_t *m, unsigned i)
{
    idnmap_ent_t *x = &m->e[i - 1];
    if (!x->now[0])
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
    idnmap_ent_t *x = &m->e[i - 1];
    if (x->now[0])
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
        idnmap_ent_t *x = &m->e[i - 1];
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
    while (i && (m->e[i - 1].hid != h || strcmp(m->e[i - 1].id, id) != 0))
        i = m->e[i - 1].next_id;
    return i;
}

void idnmap_pop(idnmap_t *m)
{
    if (!m->n)
        return;
    unsigned i = (unsigned)m->n;
    idnmap_ent_t *x = &m->e[i - 1];
    unlink_now(m, i);
    unlink_from(m, &m->by_id[x->hid & (m->nb - 1)], i, false);
    m->n--;
}

const idnmap_ent_t *idnmap_get(const idnmap_t *m, const char *id)
{
    unsigned i = find(m, id, hash(id));
    return i ? &m->e[i - 1] : NULL;
}

int idnmap_set(idnmap_t *m, const char *id, const char *old, const char *now)
{
    return idnmap_set_ent(m, id, old, now, NULL);
}

int idnmap_set_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   const idnmap_ent_t **ent)
{
    if (!old)
        old = "";
    if (!now)
        now = "";
    size_t nl = strlen(now);
    if (strlen(id) > IDNMAP_ID_MAX || strlen(old) > IDNMAP_NUM_MAX || nl > IDNMAP_NUM_MAX)
        return LX_EINVAL;
    uint64_t hid = hash(id), hnow = hash(now);
    unsigned i = find(m, id, hid);
    if (i) {
        unlink_now(m, i);
        memcpy(m->e[i - 1].now, now, nl + 1);
        m->e[i - 1].hnow = hnow;
        link_now(m, i);
        if (ent)
            *ent = &m->e[i - 1];
        return LX_OK;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        if (cap < m->hint)
            cap = m->hint; /* one allocation: no copies, no pages touched twice */
        idnmap_ent_t *e = realloc(m->e, cap * sizeof *e);
        if (!e)
            return LX_ENOMEM;
        m->e = e;
        m->cap = cap;
    }
    if (m->n + 1 > m->nb / 4 * 3) {
        size_t nb = m->nb ? m->nb * 2 : 512;
        while (nb / 4 * 3 < m->hint)
            nb *= 2;
        if (rehash(m, nb))
            return LX_ENOMEM;
    }
    idnmap_ent_t *x = &m->e[m->n++];
    memset(x, 0, sizeof *x);
    strcpy(x->id, id);
    strcpy(x->old, old);
    memcpy(x->now, now, nl + 1);
    x->hid = hid;
    x->hnow = hnow;
    i = (unsigned)m->n;
    size_t h = hid & (m->nb - 1);
    x->next_id = m->by_id[h];
    m->by_id[h] = i;
    link_now(m, i);
    if (ent)
        *ent = x;
    return LX_OK;
}

int idnmap_each_holder(const idnmap_t *m, const char *num, idnmap_cb cb, void *arg)
{
    if (!m->nb || !num[0])
        return 0;
    uint64_t h = hash(num);
    for (unsigned i = m->by_now[h & (m->nb - 1)]; i; i = m->e[i - 1].next_now) {
        if (m->e[i - 1].hnow == h && strcmp(m->e[i - 1].now, num) == 0) {
            int rc = cb(arg, m->e[i - 1].id);
            if (rc)
                return rc;
        }
    }
    return 0;
}
