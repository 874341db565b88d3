/* The LMDB layout of a node's store. All integers big-endian so that key
 * order is numeric order.
 *
 *   meta     "code" -> u64 node code, "hlc" -> u64 last HLC committed,
 *            "seq" -> u64 last change log sequence, "cseq" -> u64 last
 *            conflict sequence, "layout" -> u64 layout version, "idng" ->
 *            u64 generation of idnp (one more per change to it), "resv" ->
 *            u64 log numbers reserved by the running node, "hscrub" ->
 *            1 once the history of records retention marked before it
 *            reached the history has been scrubbed (hist_scrub_all); and the
 *            callers' keys, one prefix each: "in/", "ack/", "cfack/" (link
 *            positions), "links" (link state), "pol/", "pola/", "key/",
 *            "polack/" (policies)
 *   rec      record id -> record (msgpack, record_pack); ids made here sort
 *            by creation time, so bulk inserts append
 *   log      u64 seq -> [id, village, previous village, sender, names
 *            (, values)]: the fields a change set, by name (nil: every
 *            field of a new record); values only when the record is a
 *            stub here (an edit that crossed a move), which keeps none. Readers send the fields' current state, which under
 *            last-writer-wins carries the change or a later one; so the log
 *            never holds the values twice.
 *   byvil    u64 village || id -> "" for live records (the village lies in
 *            the node's subtree)
 *   byidn    id_number || 0 || id -> "" for live records holding one, as
 *            of the last fold: a record listed in idnp holds what idnp says
 *   idnp     id -> old || 0 || now: the records whose number changed since
 *            the ID-number index was last folded (idn_fold), with the
 *            number byidn holds for them and the one they hold now ("" for
 *            none); ids sort by time, so these writes append where byidn's
 *            would land on a random page each (see common/idnmap.h)
 *   dup      id_number || 0 || id -> "" for those sharing their number
 *   vdig     u64 village -> u64 count || 32-byte sum (mod 2^256) of the
 *            BLAKE2b-256 hashes of the village's live records
 *   conflict u64 cseq -> [id, kept field, lost field]
 *   cfseen   BLAKE2b of (id, field, both versions) -> "" for every conflict
 *            logged here, so one pair reported by two nodes is kept once
 *   hist     id || 0 || field name || 0 || u64 hlc -> the field as it was
 *            (a one-field record, record_pack) before a newer write
 *            replaced it or a move out of the subtree removed it; so a
 *            record can be read as it stood at any cut (reports). Not
 *            what retention removed: in a record whose name is a
 *            retention marker (a stub: whose node's retention fell due),
 *            every version of the fields that kind of retention removes
 *            goes (hist_scrub, schema_retention_removes)
 *   audit    u64 node || u64 seq -> an audit entry; the entries' form and
 *            the hash chain are common/audit.c's (this file only stores
 *            and walks the bytes)
 *
 * The per-village sums make the digest independent of write order (a sum
 * of hashes of a set) and let a parent compare any unit's digest by
 * hashing the sums of the villages under it. */
#include "store.h"
#include "bloom.h"
#include "schema.h"
#include "idnmap.h"
#include "merge.h"
#include "mp.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2: a record's share of its village's digest sum is SipHash-2-4 (128
 * bits) of its bytes, not BLAKE2b-256; a store of layout 1 is brought
 * to 2 when a writer opens it (vdig_rebuild). */
#define LAYOUT_VERSION 2
/* The map grows in steps as the store fills (see map_fit); it is only
 * address space: the file grows with the data. */
#define MAP_MIN (1ULL << 30)
#define MAP_STEP (256ULL << 20)
#define IDNUM_MAX 32

struct store {
    MDB_env *env;
    char poke[4200];  /* DIR/poke: a FIFO the running node reads */
    size_t mapsize;
    int active;       /* transactions open in this process */
    bool was_full;    /* a write failed on a full map: grow before the next */
    MDB_dbi meta, rec, log, byvil, byidn, dup, vdig, conf, cfseen, hist;
    bool has_hist;    /* false only when a reader opens a store from before it */
    MDB_dbi audit;
    bool has_audit;   /* the same for the audit table */
    MDB_dbi idnp;
    bool has_idnp;    /* the same for the pending ID-number changes */
    idnmap_t *pend;   /* idnp in memory, at generation pend_gen */
    uint64_t pend_gen;
    bool pend_ok;
    /* Every number byidn or s->pend holds, and maybe some no longer
     * held (a writer's, rebuilt when another process changed either). */
    bloom_t nf;
    bool nf_ok;
    bool nf_due;      /* STORE_FILTER_IDLE: a write went without it (or none was built) */
    size_t idn_defer; /* fold when this many are pending (0: every commit) */
    code_t code;
    unsigned flags;
    uint64_t skew_ms;
    uint64_t (*wall)(void);
};

typedef struct vdelta vdelta_t;
static int vdig_flush(stxn_t *t);
static int vdig_rebuild(store_t *s, MDB_txn *txn);

struct stxn {
    store_t *s;
    MDB_txn *txn;
    bool write;
    hlc_clock_t clock;
    hlc_t hlc0;
    uint64_t seq, seq0, cseq, cseq0;
    msgpack_sbuffer buf;
    MDB_cursor *idn_cursor; /* write transactions: reused across applies */
    bool idn_touched;       /* s->pend changed: an abort must reload it */
    bool pend_synced;       /* s->pend is idnp as this transaction sees it */
    bool nf_build;          /* store_idn_filter's: it may build the filter */
    bool nf_built;          /* built from this transaction's view: void if it is not committed */
    vdelta_t *vd;           /* pending per-village sum changes */
    size_t nvd, capvd;
};

static int lmdb_err(int rc, why_t *why, const char *what)
{
    if (rc == 0)
        return LX_OK;
    if (rc == MDB_NOTFOUND)
        return LX_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        return why_set(why, LX_EFULL, "%s: store map full", what);
    if (rc == ENOMEM)
        return LX_ENOMEM;
    if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
        return why_set(why, LX_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
    return why_set(why, LX_EIO, "%s: %s", what, mdb_strerror(rc));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ---- meta ---- */

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(txn, dbi, &k, &d);
    if (rc)
        return rc;
    if (d.mv_size != 8)
        return MDB_CORRUPTED;
    *v = get_u64(d.mv_data);
    return 0;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    MDB_val k = {strlen(key), (void *)key}, d = {8, b};
    return mdb_put(txn, dbi, &k, &d, 0);
}

/* ---- open and create ---- */

static int env_open(const char *dir, unsigned flags, bool create,
                    store_t **out, why_t *why)
{
    /* Picks libsodium's fast BLAKE2b for this CPU (idempotent); without it
     * the digest hashing runs the portable code at a sixth of the speed. */
    if (sodium_init() < 0)
        return why_set(why, LX_EIO, "libsodium failed to initialise");
    store_t *s = calloc(1, sizeof *s);
    if (!s)
        return LX_ENOMEM;
    s->flags = flags;
    s->nf_due = true; /* the first pause builds it */
    snprintf(s->poke, sizeof s->poke, "%s/poke", dir);
    s->skew_ms = HLC_DEFAULT_SKEW_MS;
    s->wall = hlc_wall_ms;
    /* Not MDB_WRITEMAP: it halves the cost of a bulk import's commit, but
     * its durable commit msyncs the whole map, 2.3 ms for a 300 MB store
     * against 0.35 ms for a small transaction without it; replication
     * commits small batches all the time. */
    unsigned envflags = MDB_NOTLS;
    if (flags & STORE_RDONLY)
        envflags |= MDB_RDONLY;
    if (flags & STORE_NOSYNC)
        envflags |= MDB_NOSYNC;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&s->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(s->env, 16);
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    s->mapsize = MAP_MIN;
    if (stat(path, &st) == 0 && (size_t)st.st_size > s->mapsize)
        s->mapsize = (size_t)st.st_size;
    if (!rc)
        rc = mdb_env_set_mapsize(s->env, s->mapsize);
    if (!rc)
        rc = mdb_env_open(s->env, dir, envflags, 0600);
    if (rc) {
        int r = rc == ENOENT ? why_set(why, LX_ENOTFOUND, "%s: no store here", dir)
                             : lmdb_err(rc, why, dir);
        mdb_env_close(s->env);
        free(s);
        return r;
    }
    rc = mdb_txn_begin(s->env, NULL, (flags & STORE_RDONLY) ? MDB_RDONLY : 0, &txn);
    /* Tables added by later versions appear when a writer opens the store. */
    unsigned dbflags = create || !(flags & STORE_RDONLY) ? MDB_CREATE : 0;
    struct { const char *name; MDB_dbi *dbi; } dbs[] = {
        {"meta", &s->meta}, {"rec", &s->rec}, {"log", &s->log},
        {"byvil", &s->byvil}, {"byidn", &s->byidn}, {"dup", &s->dup},
        {"vdig", &s->vdig}, {"conflict", &s->conf}, {"cfseen", &s->cfseen},
    };
    for (size_t i = 0; !rc && i < sizeof dbs / sizeof dbs[0]; i++)
        rc = mdb_dbi_open(txn, dbs[i].name, dbflags, dbs[i].dbi);
    if (!rc) {
        int hrc = mdb_dbi_open(txn, "hist", dbflags, &s->hist);
        s->has_hist = hrc == 0;
        if (hrc && hrc != MDB_NOTFOUND)
            rc = hrc;
    }
    if (!rc) {
        int arc = mdb_dbi_open(txn, "audit", dbflags, &s->audit);
        s->has_audit = arc == 0;
        if (arc && arc != MDB_NOTFOUND)
            rc = arc;
    }
    if (!rc) {
        int prc = mdb_dbi_open(txn, "idnp", dbflags, &s->idnp);
        s->has_idnp = prc == 0;
        if (prc && prc != MDB_NOTFOUND)
            rc = prc;
    }
    uint64_t layout = 0;
    if (!rc && !create) {
        rc = meta_get(txn, s->meta, "code", &s->code);
        if (!rc)
            rc = meta_get(txn, s->meta, "layout", &layout);
        if (!rc && layout == 1 && !(flags & STORE_RDONLY)) {
            /* The digests' hash changed with layout 2. */
            rc = vdig_rebuild(s, txn);
            if (!rc)
                rc = meta_put(txn, s->meta, "layout", LAYOUT_VERSION);
            layout = LAYOUT_VERSION;
        }
        if (!rc && layout != LAYOUT_VERSION) {
            mdb_txn_abort(txn);
            mdb_env_close(s->env);
            free(s);
            return why_set(why, LX_ECORRUPT, "%s: store layout %llu, this "
                           "program reads layout %d%s", dir,
                           (unsigned long long)layout, LAYOUT_VERSION,
                           layout == 1 ? " (the node, or any command that writes, brings "
                                         "it to layout 2 when it opens it)" : "");
        }
    }
    if (!rc)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        int r = rc == MDB_NOTFOUND
                    ? why_set(why, LX_ENOTFOUND, "%s: not a Lianxin store (run lianxin init)", dir)
                    : lmdb_err(rc, why, dir);
        mdb_env_close(s->env);
        free(s);
        return r;
    }
    *out = s;
    return LX_OK;
}

int store_create(const char *dir, code_t code, why_t *why)
{
    if (code_level(code) == LEVEL_NONE)
        return why_set(why, LX_EINVAL, "code: not a division code");
    if (mkdir(dir, 0700) && errno != EEXIST)
        return why_set(why, LX_EIO, "%s: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    if (stat(path, &st) == 0)
        return why_set(why, LX_EEXIST, "%s: already holds a store", dir);
    store_t *s;
    int rc = env_open(dir, 0, true, &s, why);
    if (rc)
        return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc) {
        rc = meta_put(txn, s->meta, "code", code);
        if (!rc)
            rc = meta_put(txn, s->meta, "layout", LAYOUT_VERSION);
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    store_close(&s);
    return lmdb_err(rc, why, dir);
}

int store_backup(store_t *s, const char *dir, why_t *why)
{
    char part[4200], dst[4200];
    snprintf(part, sizeof part, "%s/data.mdb.part", dir);
    snprintf(dst, sizeof dst, "%s/data.mdb", dir);
    /* Before copying a whole store for nothing; link() below decides. */
    if (access(dst, F_OK) == 0)
        return why_set(why, LX_EEXIST, "%s: already holds a store", dir);
    /* Exclusive: a second backup into the same directory, or a link put
     * there in its place, is refused rather than written through. */
    int fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return why_set(why, LX_EEXIST, "%s: exists (a backup running, or one cut short: "
                       "remove it)", part);
    if (fd < 0)
        return why_set(why, LX_EIO, "%s: %s", part, strerror(errno));
    /* A read transaction's snapshot: writers go on meanwhile. */
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (!rc && fdatasync(fd))
        rc = errno;
    if (close(fd) && !rc)
        rc = errno;
    /* link() never replaces: a store that appeared meanwhile stays. */
    if (!rc && link(part, dst))
        rc = errno;
    unlink(part);
    if (rc == EEXIST)
        return why_set(why, LX_EEXIST, "%s: already holds a store", dir);
    if (rc)
        return lmdb_err(rc, why, dst);
    /* The name too, or a crash could leave the directory without it. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd))
        rc = why_set(why, LX_EIO, "%s: written, but not made durable: %s", dir,
                     strerror(errno));
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static void hist_scrub_all(store_t *s);

int store_open(const char *dir, unsigned flags, store_t **out, why_t *why)
{
    int rc = env_open(dir, flags, false, out, why);
    if (!rc && !(flags & STORE_RDONLY))
        hist_scrub_all(*out);
    return rc;
}

void store_close(store_t **self_p)
{
    store_t *s = *self_p;
    if (!s)
        return;
    mdb_env_close(s->env);
    idnmap_destroy(&s->pend);
    bloom_free(&s->nf);
    free(s);
    *self_p = NULL;
}

code_t store_code(const store_t *s) { return s->code; }
code_t store_code_of(const stxn_t *t) { return t->s->code; }
void store_set_skew(store_t *s, uint64_t ms) { s->skew_ms = ms; }
void store_set_wall(store_t *s, uint64_t (*wall_ms)(void)) { s->wall = wall_ms; }

/* ---- transactions ---- */

/* Grows the map so that `more` bytes beyond what is used (and a quarter of
 * the map) fit. LMDB allows this only with no transaction open in this
 * process; otherwise the map stays and a full map fails the write with
 * LX_EFULL. */
static void map_fit(store_t *s, size_t more)
{
    MDB_envinfo info;
    MDB_stat st;
    if (s->active || (s->flags & STORE_RDONLY) || mdb_env_info(s->env, &info)
        || mdb_env_stat(s->env, &st))
        return;
    s->mapsize = info.me_mapsize;
    size_t used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    size_t need = used + more + s->mapsize / 4;
    if (s->was_full && need < s->mapsize * 2)
        need = s->mapsize * 2;
    if (need <= s->mapsize)
        return;
    size_t grow = s->mapsize * 2 > need ? s->mapsize * 2 : need;
    grow = (grow + MAP_STEP - 1) / MAP_STEP * MAP_STEP;
    if (mdb_env_set_mapsize(s->env, grow) == 0) {
        s->mapsize = grow;
        s->was_full = false;
    }
}

void store_reserve(store_t *s, size_t bytes)
{
    map_fit(s, bytes);
}

/* Reads idnp into m. */
static int pend_read(MDB_txn *txn, store_t *s, idnmap_t *m)
{
    idnmap_clear(m);
    if (!s->has_idnp)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->idnp, &c);
    if (rc)
        return rc;
    MDB_val k, d;
    char id[IDNMAP_ID_MAX + 1], v[2 * (IDNMAP_NUM_MAX + 1)];
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        const char *z = d.mv_size ? memchr(d.mv_data, 0, d.mv_size) : NULL;
        if (k.mv_size > IDNMAP_ID_MAX || d.mv_size >= sizeof v || !z) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(id, k.mv_data, k.mv_size);
        id[k.mv_size] = 0;
        memcpy(v, d.mv_data, d.mv_size);
        v[d.mv_size] = 0;
        if ((rc = idnmap_set(m, id, v, v + (z - (const char *)d.mv_data) + 1))) {
            rc = rc == LX_ENOMEM ? ENOMEM : MDB_CORRUPTED;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int pend_sync(store_t *s, MDB_txn *txn);

/* s->pend made current for write transaction t, the first time one of its
 * writes needs it: a transaction that touches no ID number (link state, a
 * report) does not read the map back after another process wrote. */
static int pend_ready(stxn_t *t)
{
    if (!t->write || t->pend_synced)
        return 0;
    int rc = pend_sync(t->s, t->txn);
    t->pend_synced = rc == 0;
    return rc;
}

/* Makes s->pend what idnp holds in write transaction txn: kept while the
 * table's generation (meta "idng", moved by every transaction that
 * changes it) is the one it was read or left at, read again otherwise
 * (another process changed it, or a transaction of ours was aborted). */
static int pend_sync(store_t *s, MDB_txn *txn)
{
    uint64_t gen = 0;
    int rc = meta_get(txn, s->meta, "idng", &gen);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (s->pend && s->pend_ok && s->pend_gen == gen)
        return 0;
    if (s->pend_gen != gen)
        s->nf_ok = false; /* another process changed the index */
    if (!s->pend && !(s->pend = idnmap_new()))
        return ENOMEM;
    /* A store that defers takes up to idn_defer before it folds, and what
     * the transaction that crosses it adds (capped:
     * the room is only address space until used). */
    idnmap_reserve(s->pend, (s->idn_defer < 131072 ? s->idn_defer : 131072) * 5 / 4);
    rc = pend_read(txn, s, s->pend);
    s->pend_ok = rc == 0;
    s->pend_gen = gen;
    return rc;
}

int store_begin(store_t *s, bool write, stxn_t **out)
{
    *out = NULL; /* callers may store_abort it whatever the outcome */
    stxn_t *t = calloc(1, sizeof *t);
    if (!t)
        return LX_ENOMEM;
    t->s = s;
    t->write = write;
    if (write)
        map_fit(s, 0);
    int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == MDB_MAP_RESIZED && s->active == 0) {
        /* Another process grew the map: adopt its size. */
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (!rc)
        s->active++;
    hlc_t last = 0;
    if (!rc) {
        /* Inside a write transaction these are the latest any process
         * committed, since LMDB serialises writers. */
        int r1 = meta_get(t->txn, s->meta, "hlc", &last);
        int r2 = meta_get(t->txn, s->meta, "seq", &t->seq);
        int r3 = meta_get(t->txn, s->meta, "cseq", &t->cseq);
        rc = (r1 && r1 != MDB_NOTFOUND) ? r1
           : (r2 && r2 != MDB_NOTFOUND) ? r2
           : (r3 && r3 != MDB_NOTFOUND) ? r3 : 0;
    }
    if (rc) {
        if (t->txn) {
            mdb_txn_abort(t->txn);
            s->active--;
        }
        free(t);
        return lmdb_err(rc, NULL, "begin");
    }
    hlc_init(&t->clock, last, s->skew_ms);
    t->hlc0 = last;
    t->seq0 = t->seq;
    t->cseq0 = t->cseq;
    uint64_t resv;
    if (write && !(s->flags & STORE_RESERVER) && meta_get(t->txn, s->meta, "resv", &resv) == 0
        && resv > t->seq)
        t->seq = resv; /* written at commit: numbering moves past the reservation */
    msgpack_sbuffer_init(&t->buf);
    *out = t;
    return LX_OK;
}

static void txn_free(stxn_t *t)
{
    t->s->active--;
    free(t->vd);
    msgpack_sbuffer_destroy(&t->buf);
    free(t);
}

static int idn_fold(stxn_t *t, size_t max);
static void pend_ended(store_t *s, bool committed);

static int commit(stxn_t **txn_p, bool lazy);

int store_commit(stxn_t **txn_p) { return commit(txn_p, false); }

int store_commit_lazy(stxn_t **txn_p) { return commit(txn_p, true); }

static int commit(stxn_t **txn_p, bool lazy)
{
    stxn_t *t = *txn_p;
    if (!t)
        return LX_EINVAL;
    *txn_p = NULL;
    int rc = 0;
    if (t->write) {
        store_t *s = t->s;
        size_t np = t->pend_synced && s->pend ? idnmap_count(s->pend) : 0;
        rc = np && np >= s->idn_defer ? idn_fold(t, 0) : 0;
        if (!rc && t->idn_touched)
            rc = meta_put(t->txn, s->meta, "idng", s->pend_gen + 1);
        if (!rc)
            rc = vdig_flush(t);
        if (!rc && t->clock.last != t->hlc0)
            rc = meta_put(t->txn, t->s->meta, "hlc", t->clock.last);
        if (!rc && t->seq != t->seq0)
            rc = meta_put(t->txn, t->s->meta, "seq", t->seq);
        if (!rc && t->cseq != t->cseq0)
            rc = meta_put(t->txn, t->s->meta, "cseq", t->cseq);
        if (rc) {
            store_abort(&t);
            return lmdb_err(rc, NULL, "commit");
        }
    }
    /* Lazy: LMDB flushes the pages but writes the root without waiting for
     * it, which the next commit's flush covers. */
    bool meta_async = lazy && t->write && !(t->s->flags & STORE_NOSYNC);
    if (meta_async)
        mdb_env_set_flags(t->s->env, MDB_NOMETASYNC, 1);
    rc = mdb_txn_commit(t->txn);
    if (meta_async)
        mdb_env_set_flags(t->s->env, MDB_NOMETASYNC, 0);
    if (rc == MDB_MAP_FULL)
        t->s->was_full = true;
    if (t->write && t->idn_touched)
        pend_ended(t->s, rc == 0);
    if (rc && t->nf_built)
        t->s->nf_ok = false;
    if (!rc && t->write && t->seq != t->seq0 && !(t->s->flags & STORE_NOPOKE)) {
        /* Tell a node running on this store that its log grew, so it
         * sends the change at once (it also looks every 50 ms). */
        int fd = open(t->s->poke, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            if (write(fd, "!", 1) < 0) {
                /* A full FIFO already holds a poke. */
            }
            close(fd);
        }
    }
    txn_free(t);
    return lmdb_err(rc, NULL, "commit");
}

/* A write transaction that changed s->pend ended: committed, the map is
 * the table at the next generation; otherwise it is read again. */
static void pend_ended(store_t *s, bool committed)
{
    if (committed) {
        s->pend_gen++;
    } else {
        s->pend_ok = false;
        idnmap_clear(s->pend);
    }
}

void store_abort(stxn_t **txn_p)
{
    stxn_t *t = *txn_p;
    if (!t)
        return;
    if (t->write && t->idn_touched)
        pend_ended(t->s, false);
    if (t->nf_built)
        t->s->nf_ok = false; /* it holds what this transaction's view lacked */
    mdb_txn_abort(t->txn);
    txn_free(t);
    *txn_p = NULL;
}

hlc_t store_tick(stxn_t *t)
{
    return hlc_now(&t->clock, t->s->wall());
}

/* ---- records ---- */

int store_get(stxn_t *t, const char *id, record_t **out, why_t *why)
{
    MDB_val k = {strlen(id), (void *)id}, d;
    int rc = mdb_get(t->txn, t->s->rec, &k, &d);
    if (rc)
        return lmdb_err(rc, why, "get");
    rc = record_decode(d.mv_data, d.mv_size, out, why);
    return rc ? why_prefix(why, LX_ECORRUPT, "stored record") : LX_OK;
}

/* The village a record lies in, and whether it is live at this node. */
static code_t record_village(const record_t *r)
{
    const char *v = record_str(r, "village_code");
    code_t c = 0;
    if (v && code_parse(v, &c) == LX_OK && code_level(c) == LEVEL_VILLAGE)
        return c;
    return 0;
}

static bool is_live(const store_t *s, code_t village)
{
    return village && code_contains(s->code, village);
}

/* ---- per-village digest sums ---- */

static void sum_add(unsigned char sum[32], const unsigned char h[32], bool sub)
{
    /* Little-endian 256-bit addition or subtraction, carry across bytes. */
    int carry = 0;
    for (int i = 0; i < 32; i++) {
        int v = sub ? sum[i] - h[i] - carry : sum[i] + h[i] + carry;
        carry = sub ? (v < 0) : (v > 255);
        sum[i] = (unsigned char)(v & 0xff);
    }
}

/* What a record adds to its village's sum: SipHash-2-4 with a 128-bit
 * output under a fixed, published key, in the low half of the 256-bit
 * summand. The digests find replicas that differ, which needs a hash
 * that spreads well, not one an adversary cannot collide (a node that
 * writes can change the sums themselves); it is five times as fast as
 * BLAKE2b, and every node hashes every record it stores. */
static void rec_hash(const void *p, size_t n, unsigned char h[32])
{
    static const unsigned char key[crypto_shorthash_siphashx24_KEYBYTES] = "lianxin/vdig/v2";
    memset(h + crypto_shorthash_siphashx24_BYTES, 0, 32 - crypto_shorthash_siphashx24_BYTES);
    crypto_shorthash_siphashx24(h, p, n, key);
}

/* Changes to the per-village sums are gathered in the transaction and
 * written once per village when it commits (or before it is read): an
 * import touches each village thousands of times. */
struct vdelta {
    code_t village;    /* 0: empty slot */
    int64_t count;
    unsigned char sum[32];
};

static int vdig_update(stxn_t *t, code_t village, const unsigned char h[32],
                       bool sub)
{
    if (t->nvd * 2 >= t->capvd) {
        size_t cap = t->capvd ? t->capvd * 2 : 64;
        vdelta_t *nv = calloc(cap, sizeof *nv);
        if (!nv)
            return ENOMEM;
        for (size_t i = 0; i < t->capvd; i++) {
            if (!t->vd[i].village)
                continue;
            size_t j = (size_t)(t->vd[i].village * 0x9e3779b97f4a7c15ULL) & (cap - 1);
            while (nv[j].village)
                j = (j + 1) & (cap - 1);
            nv[j] = t->vd[i];
        }
        free(t->vd);
        t->vd = nv;
        t->capvd = cap;
    }
    size_t j = (size_t)(village * 0x9e3779b97f4a7c15ULL) & (t->capvd - 1);
    while (t->vd[j].village && t->vd[j].village != village)
        j = (j + 1) & (t->capvd - 1);
    if (!t->vd[j].village) {
        t->vd[j].village = village;
        t->nvd++;
    }
    t->vd[j].count += sub ? -1 : 1;
    sum_add(t->vd[j].sum, h, sub);
    return 0;
}

/* Writes the gathered sums: count and sum added to what is stored; a
 * village left empty is removed, as if it had never held a record. */
static int vdig_flush(stxn_t *t)
{
    int rc = 0;
    for (size_t i = 0; i < t->capvd && !rc; i++) {
        vdelta_t *v = &t->vd[i];
        if (!v->village)
            continue;
        unsigned char key[8], val[40] = {0};
        put_u64(key, v->village);
        MDB_val k = {8, key}, d;
        rc = mdb_get(t->txn, t->s->vdig, &k, &d);
        if (rc && rc != MDB_NOTFOUND)
            break;
        if (!rc) {
            if (d.mv_size != 40) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy(val, d.mv_data, 40);
        }
        int64_t count = (int64_t)get_u64(val) + v->count;
        if (count < 0) {
            rc = MDB_CORRUPTED;
            break;
        }
        sum_add(val + 8, v->sum, false);
        if (count == 0) {
            rc = mdb_del(t->txn, t->s->vdig, &k, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        } else {
            put_u64(val, (uint64_t)count);
            d.mv_size = 40;
            d.mv_data = val;
            rc = mdb_put(t->txn, t->s->vdig, &k, &d, 0);
        }
    }
    if (t->vd)
        memset(t->vd, 0, t->capvd * sizeof *t->vd);
    t->nvd = 0;
    return rc;
}

/* Every village's sum made anew from the live records (a store of an
 * older layout hashed them otherwise), in write transaction txn. */
static int vdig_rebuild(store_t *s, MDB_txn *txn)
{
    stxn_t t = {.s = s, .txn = txn, .write = true};
    MDB_cursor *c;
    int rc = mdb_drop(txn, s->vdig, 0);
    if (!rc)
        rc = mdb_cursor_open(txn, s->rec, &c);
    if (rc)
        return rc;
    MDB_val k, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        record_t *r;
        if (record_decode(d.mv_data, d.mv_size, &r, NULL)) {
            rc = MDB_CORRUPTED;
            break;
        }
        code_t v = record_village(r);
        record_destroy(&r);
        if (is_live(s, v)) {
            unsigned char h[32];
            rec_hash(d.mv_data, d.mv_size, h);
            if ((rc = vdig_update(&t, v, h, false)))
                break;
        }
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = vdig_flush(&t);
    free(t.vd);
    return rc;
}

/* ---- indexes ---- */

static size_t vil_key(unsigned char *key, code_t village, const char *id)
{
    size_t n = strlen(id);
    put_u64(key, village);
    memcpy(key + 8, id, n);
    return 8 + n;
}

static size_t idn_key(unsigned char *key, const char *idn, const char *id)
{
    size_t a = strlen(idn), b = strlen(id);
    memcpy(key, idn, a);
    key[a] = 0;
    memcpy(key + a + 1, id, b);
    return a + 1 + b;
}

#define HIST_KEY_MAX (64 + 1 + 64 + 1 + 8)

/* Writes into key the history prefix of field `name` of record id (id 0
 * name 0), or of the whole record when name is NULL (id 0). Returns its
 * length, or 0 when a part is too long for a key of HIST_KEY_MAX. */
static size_t hist_prefix(unsigned char *key, const void *id, size_t il, const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    if (il > 64 || nl > 64)
        return 0;
    memcpy(key, id, il);
    key[il] = 0;
    if (!name)
        return il + 1;
    memcpy(key + il + 1, name, nl);
    key[il + 1 + nl] = 0;
    return il + nl + 2;
}

/* Keeps f, about to be replaced or removed, in the history table. */
static int hist_put(stxn_t *t, const char *id, const field_t *f)
{
    unsigned char key[HIST_KEY_MAX];
    size_t plen = hist_prefix(key, id, strlen(id), f->name);
    if (!plen)
        return MDB_BAD_VALSIZE;
    put_u64(key + plen, f->ver.hlc);
    record_t one = {.id = (char *)id, .n = 1, .cap = 1, .f = (field_t *)f};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = record_pack(&one, &pk) ? MDB_BAD_VALSIZE : 0;
    MDB_val k = {plen + 8, key}, d = {sb.size, sb.data};
    if (!rc)
        rc = mdb_put(t->txn, t->s->hist, &k, &d, 0);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Retention reaches the history: removes every version of record id's
 * fields that retention of the kind `marker` removes (the hist table
 * above; store_apply_ex), adding how many to *removed (may be NULL). */
static int hist_scrub(store_t *s, MDB_txn *txn, const char *id, const val_t *marker,
                      uint64_t *removed)
{
    unsigned char pre[HIST_KEY_MAX];
    size_t plen = s->has_hist ? hist_prefix(pre, id, strlen(id), NULL) : 0;
    if (!plen)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->hist, &c);
    if (rc)
        return rc;
    MDB_val k = {plen, pre}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size < plen + 10 || memcmp(k.mv_data, pre, plen) != 0)
            break;
        /* id 0 name 0 hlc: the name is what lies between. */
        char name[65];
        size_t nl = k.mv_size - plen - 9;
        if (nl == 0 || nl >= sizeof name)
            continue;
        memcpy(name, (const char *)k.mv_data + plen, nl);
        name[nl] = 0;
        /* After a delete the cursor stands on the next entry, which
         * MDB_NEXT then returns (LMDB's C_DEL). */
        if (!schema_retention_removes(marker, name))
            continue;
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        if (removed)
            ++*removed;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Whether stored record bytes may hold a retention marker (the name's
 * value is stored as its bytes): false rules a record out undecoded. */
static bool marker_bytes(const MDB_val *d)
{
    static const char *const marks[] = {SCHEMA_NAME_ANONYMISED, SCHEMA_NAME_PURGED};
    for (int i = 0; i < 2; i++)
        if (memmem(d->mv_data, d->mv_size, marks[i], strlen(marks[i])))
            return true;
    return false;
}

/* Records a history sweep takes per transaction: a store's first writer
 * scrubs what an older program left in steps that each stay small. */
#define SCRUB_STEP 1000

/* Once per store (meta "hscrub"), by its first writer: the history of
 * records retention marked before it reached the history, scrubbed as
 * the marker's write now scrubs it; in steps of SCRUB_STEP marked records,
 * each its own transaction. A step that fails leaves the sweep to the
 * next open. */
static void hist_scrub_all(store_t *s)
{
    char from[65] = ""; /* the last record a step read */
    for (bool more = true; more;) {
        stxn_t *t;
        uint64_t done;
        if (store_begin(s, true, &t))
            return;
        int rc = s->has_hist ? meta_get(t->txn, s->meta, "hscrub", &done) : 0;
        MDB_cursor *c;
        if (rc != MDB_NOTFOUND || mdb_cursor_open(t->txn, s->rec, &c)) {
            store_abort(&t); /* done before (or nothing to do), or failed */
            return;
        }
        MDB_val k = {strlen(from), from}, d;
        rc = mdb_cursor_get(c, &k, &d, from[0] ? MDB_SET_RANGE : MDB_FIRST);
        if (!rc && from[0] && k.mv_size == strlen(from) && !memcmp(k.mv_data, from, k.mv_size))
            rc = mdb_cursor_get(c, &k, &d, MDB_NEXT); /* the step before took it */
        for (size_t n = 0; !rc && n < SCRUB_STEP; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
            if (k.mv_size > 64)
                continue;
            memcpy(from, k.mv_data, k.mv_size);
            from[k.mv_size] = 0;
            record_t *r;
            if (!marker_bytes(&d) || record_decode(d.mv_data, d.mv_size, &r, NULL))
                continue;
            const val_t *name = record_val(r, "name");
            if (schema_retention_marker(name)) {
                rc = hist_scrub(s, t->txn, from, name, NULL);
                n++;
            }
            record_destroy(&r);
            if (rc)
                break;
        }
        mdb_cursor_close(c);
        more = rc == 0;
        if (rc == MDB_NOTFOUND)
            rc = meta_put(t->txn, s->meta, "hscrub", 1);
        if (rc || store_commit(&t)) {
            store_abort(&t);
            return;
        }
    }
}

/* ---- the ID-number index ----
 *
 * Who holds a number: the byidn entries with its prefix whose record is
 * not pending, and the pending records (s->pend) that hold it now. A
 * write puts the record's change in idnp and s->pend; the duplicate flags
 * are kept right at once; idn_fold moves the pending changes into byidn
 * when enough have gathered (every commit unless the store was told to
 * defer, as the node does) or when asked. */

typedef int (*holder_cb)(void *arg, const char *id);

static int holders(stxn_t *t, const idnmap_t *pend, const char *num, holder_cb cb, void *arg)
{
    size_t pn = strlen(num) + 1;
    unsigned char pre[IDNUM_MAX + 1];
    if (pn > sizeof pre)
        return 0;
    memcpy(pre, num, pn);
    MDB_cursor *c = t->idn_cursor;
    int rc = 0;
    if (!c && (rc = mdb_cursor_open(t->txn, t->s->byidn, &c)))
        return rc;
    if (t->write)
        t->idn_cursor = c; /* closed by LMDB when the write transaction ends */
    MDB_val k = {pn, pre}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
         !rc && k.mv_size > pn && memcmp(k.mv_data, pre, pn) == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        char id[IDNMAP_ID_MAX + 1];
        size_t il = k.mv_size - pn;
        if (il > IDNMAP_ID_MAX)
            continue;
        memcpy(id, (const char *)k.mv_data + pn, il);
        id[il] = 0;
        if (pend && idnmap_get(pend, id, NULL))
            continue; /* its pending entry says what it holds */
        if ((rc = cb(arg, id)))
            break;
    }
    if (!t->write)
        mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    return pend ? idnmap_each_holder(pend, num, cb, arg) : 0;
}

typedef struct {
    char ids[2][IDNMAP_ID_MAX + 1];
    unsigned n;
} two_t;

static int count_two(void *arg, const char *id)
{
    two_t *x = arg;
    if (x->n < 2)
        strcpy(x->ids[x->n], id);
    return ++x->n >= 2 ? -1 : 0;
}

typedef struct {
    stxn_t *t;
    const char *num;
} flag_t;

static int flag_one(void *arg, const char *id)
{
    flag_t *x = arg;
    unsigned char key[IDNUM_MAX + 1 + IDNMAP_ID_MAX];
    MDB_val k = {idn_key(key, x->num, id), key}, e = {0, ""};
    return mdb_put(x->t->txn, x->t->s->dup, &k, &e, 0);
}

static int idn_flags(stxn_t *t, const char *id, const char *oldi, const char *ni);

/* Puts byidn's entry for record id under number num, or with del removes
 * it (one that is not there is no error). */
static int byidn_set(stxn_t *t, const char *num, const char *id, bool del)
{
    unsigned char key[IDNUM_MAX + 1 + IDNMAP_ID_MAX];
    MDB_val k = {idn_key(key, num, id), key}, e = {0, ""};
    int rc = del ? mdb_del(t->txn, t->s->byidn, &k, NULL) : mdb_put(t->txn, t->s->byidn, &k, &e, 0);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Numbers a filter built in a pause has room for beyond those it holds:
 * a busy stretch of new children does not fill it before the next pause. */
#define NF_ROOM_IDLE 131072

/* A filter over every number byidn and the pending map hold as write
 * transaction t sees them, built into *out; false when it cannot be had
 * (no memory, or the index cannot be read). */
static bool nf_build(stxn_t *t, bloom_t *out)
{
    store_t *s = t->s;
    bool idle = s->flags & STORE_FILTER_IDLE;
    MDB_stat st;
    MDB_cursor *c;
    bloom_t nf = {0};
    if (!t->write || mdb_stat(t->txn, s->byidn, &st)
        || !bloom_init(&nf, 2 * (st.ms_entries + idnmap_count(s->pend))
                                + (idle ? NF_ROOM_IDLE : 1024)))
        return false;
    if (mdb_cursor_open(t->txn, s->byidn, &c)) {
        bloom_free(&nf);
        return false;
    }
    MDB_val k, d;
    int rc;
    char num[IDNUM_MAX + 1];
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        const char *z = memchr(k.mv_data, 0, k.mv_size);
        size_t nl = z ? (size_t)(z - (const char *)k.mv_data) : 0;
        if (nl && nl <= IDNUM_MAX) {
            memcpy(num, k.mv_data, nl);
            num[nl] = 0;
            bloom_add(&nf, idnmap_hash(num));
        }
    }
    mdb_cursor_close(c);
    for (size_t i = 0; rc == MDB_NOTFOUND && i < idnmap_count(s->pend); i++) {
        idnmap_ent_t e;
        idnmap_at(s->pend, i, &e);
        if (e.now[0])
            bloom_add(&nf, e.hnow);
    }
    if (rc != MDB_NOTFOUND || nf.full) {
        bloom_free(&nf);
        return false;
    }
    bloom_free(out);
    *out = nf;
    return true;
}

/* The number filter (s->nf) made ready for write transaction t: built
 * from byidn and the pending map when it is not. False when it cannot be
 * had (no memory): callers search instead. */
static bool nf_ready(stxn_t *t)
{
    store_t *s = t->s;
    if (s->nf_ok)
        return true;
    if ((s->flags & STORE_FILTER_IDLE) && !t->nf_build) {
        s->nf_due = true; /* built in a pause (store_idn_filter), not in this write */
        return false;
    }
    s->nf_ok = nf_build(t, &s->nf);
    t->nf_built = s->nf_ok && !t->nf_build; /* store_idn_filter's writes nothing */
    return s->nf_ok;
}

/* Due: none is held, or the one held grew stages (it answers on, but a
 * single stage asks fewer questions and errs less). */
bool store_idn_filter_due(const store_t *s)
{
    return s->nf_due && (!s->nf_ok || s->nf.nst > 1);
}

bool store_idn_filter(store_t *s)
{
    if (!store_idn_filter_due(s))
        return true;
    if (s->flags & STORE_RDONLY)
        return false;
    stxn_t *t;
    if (store_begin(s, true, &t))
        return false;
    t->nf_build = true;
    /* The filter covers the index and the pending map as this
     * transaction sees them; it writes nothing, so its abort keeps the
     * map (and what pend_sync read for it). A grown filter that is built
     * again stays in use until the new one is whole. */
    bool ok = pend_ready(t) == 0 && nf_build(t, &s->nf);
    if (ok)
        s->nf_ok = true;
    store_abort(&t);
    s->nf_due = !ok;
    return ok;
}

bool store_idn_filter_ready(const store_t *s) { return s->nf_ok; }

/* Whether no record held number ni before this write (the filter says
 * so); and the filter takes ni, so that it knows it from now on. */
static bool nf_fresh(stxn_t *t, const char *ni)
{
    store_t *s = t->s;
    if (!nf_ready(t))
        return false;
    uint64_t h = idnmap_hash(ni);
    bool fresh = !bloom_maybe(&s->nf, h);
    bloom_add(&s->nf, h);
    if (s->nf.full)
        s->nf_ok = false; /* it could grow no more: built again when next needed
                             (or, STORE_FILTER_IDLE, at the next pause) */
    else if (s->nf.nst > 1)
        s->nf_due = true; /* it grew: built again as one stage at a pause */
    return fresh;
}

/* Record id held `oldi` (or none) and holds `ni` (or none) now: notes it
 * as pending (or, when the store folds at every commit and nothing is
 * pending, writes the index itself) and keeps every holder's duplicate
 * flag right. created: the record is new to the store, so the pending map
 * holds nothing for it (it holds only records the store holds). */
static int idn_move(stxn_t *t, const char *id, const char *oldi, const char *ni, bool created)
{
    store_t *s = t->s;
    int prc = pend_ready(t);
    if (prc)
        return prc;
    if (!s->has_idnp || !s->pend)
        return MDB_INCOMPATIBLE; /* a write transaction always has both */
    if (strlen(id) > IDNMAP_ID_MAX)
        return MDB_BAD_VALSIZE;
    if (oldi && strlen(oldi) > IDNUM_MAX)
        oldi = NULL; /* not a valid number: never indexed */
    if (ni && (!ni[0] || strlen(ni) > IDNUM_MAX))
        ni = NULL;
    if (!oldi && !ni)
        return 0;
    /* Other processes notice the change by idng (pend_sync). */
    t->idn_touched = true;
    bool fresh = ni && nf_fresh(t, ni);
    int rc;
    if (s->idn_defer == 0 && idnmap_count(s->pend) == 0) {
        /* Nothing deferred: the index itself takes the change. */
        if ((oldi && (rc = byidn_set(t, oldi, id, true)))
            || (ni && (rc = byidn_set(t, ni, id, false))))
            return rc;
        return idn_flags(t, id, oldi, fresh ? NULL : ni);
    }
    idnmap_ent_t pe;
    rc = created ? idnmap_add_ent(s->pend, id, oldi, ni, &pe)
                 : idnmap_set_ent(s->pend, id, oldi, ni, &pe);
    if (rc)
        return rc == LX_ENOMEM ? ENOMEM : MDB_BAD_VALSIZE;
    /* What byidn holds for the record: oldi when it was not pending. */
    char v[2 * (IDNUM_MAX + 1)];
    size_t bl = strlen(pe.old), nl = ni ? strlen(ni) : 0;
    memcpy(v, pe.old, bl + 1);
    memcpy(v + bl + 1, ni ? ni : "", nl);
    MDB_val k = {strlen(id), (void *)id}, d = {bl + 1 + nl, v};
    if ((rc = mdb_put(t->txn, s->idnp, &k, &d, 0)))
        return rc;
    /* A number no record held before has no other holder to flag. */
    return idn_flags(t, id, oldi, fresh ? NULL : ni);
}

/* Record id moved from number oldi to ni (either may be NULL): every
 * holder's duplicate flag made right (flagged when two or more hold a
 * number). */
static int idn_flags(stxn_t *t, const char *id, const char *oldi, const char *ni)
{
    store_t *s = t->s;
    unsigned char key[IDNUM_MAX + 1 + IDNMAP_ID_MAX];
    int rc;
    if (oldi) {
        MDB_val dk = {idn_key(key, oldi, id), key};
        rc = mdb_del(t->txn, s->dup, &dk, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        /* A lone remaining holder is no duplicate any more. */
        two_t two = {.n = 0};
        rc = holders(t, s->pend, oldi, count_two, &two);
        if (rc && rc != -1)
            return rc;
        if (two.n == 1) {
            MDB_val lk = {idn_key(key, oldi, two.ids[0]), key};
            rc = mdb_del(t->txn, s->dup, &lk, NULL);
            if (rc && rc != MDB_NOTFOUND)
                return rc;
        }
    }
    if (ni) {
        two_t two = {.n = 0};
        rc = holders(t, s->pend, ni, count_two, &two);
        if (rc && rc != -1)
            return rc;
        flag_t f = {t, ni};
        if (two.n >= 2 && (rc = holders(t, s->pend, ni, flag_one, &f)))
            return rc;
    }
    return 0;
}

typedef struct {
    uint64_t key;  /* the number as an integer when it is one (numkey) */
    const char *num, *id;
    bool del;
} fold_t;

/* An 18-character number of 17 digits and a check character (0-9 or X)
 * as an integer that orders as the text does (X after 9); 0 for any
 * other text, which is compared as text. */
static uint64_t numkey(const char *n)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 17; i++) {
        if (n[i] < '0' || n[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(n[i] - '0');
    }
    if (n[17] == 'X')
        v = v * 11 + 10;
    else if (n[17] >= '0' && n[17] <= '9')
        v = v * 11 + (uint64_t)(n[17] - '0');
    else
        return 0;
    return n[18] ? 0 : v + 1;
}

/* byidn's key order: number, then record id. */
static int cmp_fold(const void *a, const void *b)
{
    const fold_t *x = a, *y = b;
    int c = x->key && y->key ? (x->key > y->key) - (x->key < y->key) : strcmp(x->num, y->num);
    return c ? c : strcmp(x->id, y->id);
}

/* Puts f in nearly byidn's order: a radix sort on the numbers' integer
 * keys (qsort's comparisons took a third of a fold of 131,072 numbers),
 * then each run of one key (text numbers, key 0, which come first instead
 * of among the others; a number two records hold) by qsort. The order only
 * spares LMDB page visits: no two entries are the same (number, id) pair,
 * so any order writes the same index. */
static void fold_sort(fold_t *f, size_t m)
{
    fold_t *tmp = m > 1 ? malloc(m * sizeof *tmp) : NULL;
    if (!tmp) {
        qsort(f, m, sizeof *f, cmp_fold);
        return;
    }
    fold_t *a = f, *b = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t at[256] = {0}, sum = 0;
        for (size_t i = 0; i < m; i++)
            at[(a[i].key >> shift) & 255]++;
        if (at[(a[0].key >> shift) & 255] == m)
            continue; /* one digit for all: nothing moves */
        for (unsigned d = 0; d < 256; d++) {
            size_t c = at[d];
            at[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < m; i++)
            b[at[(a[i].key >> shift) & 255]++] = a[i];
        fold_t *x = a;
        a = b;
        b = x;
    }
    if (a != f)
        memcpy(f, a, m * sizeof *f);
    free(tmp);
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i + 1; j < m && f[j].key == f[i].key; j++)
            ;
        if (j - i > 1)
            qsort(f + i, j - i, sizeof *f, cmp_fold);
    }
}

#define FOLD_AHEAD 16

/* Moves pending changes into byidn (in key order, so each page is
 * visited once) and out of idnp: every one when max is 0, else at most
 * max (the latest entered), so that an idle node folds in short steps
 * and gives the map's memory back after the last. */
static int idn_fold(stxn_t *t, size_t max)
{
    store_t *s = t->s;
    size_t n = idnmap_count(s->pend), m = 0;
    size_t take = max && max < n ? max : n;
    fold_t *f = malloc((2 * take + 1) * sizeof *f);
    if (!f)
        return ENOMEM;
    for (size_t i = n - take; i < n; i++) {
        idnmap_ent_t e;
        idnmap_at(s->pend, i, &e);
        if (strcmp(e.old, e.now) == 0)
            continue;
        if (e.old[0])
            f[m++] = (fold_t){numkey(e.old), e.old, e.id, true};
        if (e.now[0])
            f[m++] = (fold_t){numkey(e.now), e.now, e.id, false};
    }
    fold_sort(f, m);
    t->idn_touched = true;
    /* One cursor for the whole walk: LMDB finds a key that falls within
     * the leaf the cursor is on without descending from the root, and
     * sorted keys fall mostly on the page of the one before. */
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->txn, s->byidn, &c);
    for (size_t i = 0; !rc && i < m; i++) {
        /* The strings lie all over the map's pool once sorted: ask for
         * them ahead, or each put waits on memory twice. */
        if (i + FOLD_AHEAD < m) {
            __builtin_prefetch(f[i + FOLD_AHEAD].num);
            __builtin_prefetch(f[i + FOLD_AHEAD].id);
        }
        unsigned char key[IDNUM_MAX + 1 + IDNMAP_ID_MAX];
        MDB_val k = {idn_key(key, f[i].num, f[i].id), key}, e = {0, ""};
        if (!f[i].del)
            rc = mdb_cursor_put(c, &k, &e, 0);
        else if (!(rc = mdb_cursor_get(c, &k, NULL, MDB_SET)))
            rc = mdb_cursor_del(c, 0);
        else if (rc == MDB_NOTFOUND)
            rc = 0; /* one that is not there is no error (byidn_set) */
    }
    if (c)
        mdb_cursor_close(c);
    free(f);
    if (!rc && take == n) {
        rc = mdb_drop(t->txn, s->idnp, 0);
        if (!rc && max)
            idnmap_release(s->pend);
        else if (!rc)
            idnmap_clear(s->pend);
        return rc;
    }
    for (size_t i = n; !rc && i-- > n - take;) {
        idnmap_ent_t e;
        idnmap_at(s->pend, i, &e);
        MDB_val k = {strlen(e.id), (void *)e.id};
        rc = mdb_del(t->txn, s->idnp, &k, NULL);
        if (!rc)
            idnmap_pop(s->pend);
    }
    return rc;
}

/* ---- apply ---- */

static int cmp_field_ptr(const void *a, const void *b)
{
    const field_t *x = *(const field_t *const *)a, *y = *(const field_t *const *)b;
    return schema_name_cmp(x->name, y->name);
}

/* Appends a conflict log entry, [id, kept field, lost field], to sb;
 * nonzero when memory ran out. */
static int conflict_pack(msgpack_sbuffer *sb, const char *id, const field_t *kept,
                         const field_t *lost)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = strlen(id);
    return msgpack_pack_array(&pk, 3) || msgpack_pack_str(&pk, n)
           || msgpack_pack_str_body(&pk, id, n) || field_pack(kept, &pk)
           || field_pack(lost, &pk);
}

/* Logs a conflict unless this pair is already in the log; *added says
 * which. */
static int log_conflict_once(stxn_t *t, const char *id, const field_t *kept,
                             const field_t *lost, bool *added)
{
    unsigned char h[32], v[8 * 4];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)kept->name, strlen(kept->name) + 1);
    put_u64(v, kept->ver.hlc);
    put_u64(v + 8, kept->ver.origin);
    put_u64(v + 16, lost->ver.hlc);
    put_u64(v + 24, lost->ver.origin);
    crypto_generichash_update(&st, v, sizeof v);
    crypto_generichash_final(&st, h, 32);
    MDB_val hk = {32, h}, e = {0, ""};
    *added = false;
    int rc = mdb_put(t->txn, t->s->cfseen, &hk, &e, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc)
        return rc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (conflict_pack(&sb, id, kept, lost)) {
        msgpack_sbuffer_destroy(&sb);
        return ENOMEM;
    }
    unsigned char key[8];
    put_u64(key, ++t->cseq);
    MDB_val k = {8, key}, d = {sb.size, sb.data};
    rc = mdb_put(t->txn, t->s->conf, &k, &d, MDB_APPEND);
    msgpack_sbuffer_destroy(&sb);
    *added = rc == 0;
    return rc;
}

static int log_conflict(stxn_t *t, const char *id, const field_t *kept,
                        const field_t *lost)
{
    bool added;
    return log_conflict_once(t, id, kept, lost, &added);
}

typedef struct {
    stxn_t *t;
    const char (*stubs)[65]; /* sorted; these records take stub_marker */
    size_t nstubs;
    val_t stub_marker;
    msgpack_sbuffer sb;   /* the scrubbed entries, one after another */
    uint64_t *seq;
    size_t *end;          /* where each ends in sb */
    size_t n, cap;
} cscrub_t;

static int cmp_stub(const void *key, const void *el)
{
    return strcmp(key, el);
}

static int cscrub_cb(void *arg, const conflict_t *c)
{
    cscrub_t *x = arg;
    if (c->kept->val.kind == VAL_NIL && c->lost->val.kind == VAL_NIL)
        return 0;
    bool hit = x->nstubs && bsearch(c->id, x->stubs, x->nstubs, sizeof *x->stubs, cmp_stub)
               && schema_retention_removes(&x->stub_marker, c->kept->name);
    if (!hit) {
        /* Most records hold no marker: their bytes say so, undecoded. */
        MDB_val k = {strlen(c->id), (void *)c->id}, d;
        int rc = mdb_get(x->t->txn, x->t->s->rec, &k, &d);
        if (rc)
            return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc, NULL, "conflict log");
        record_t *r;
        if (!marker_bytes(&d) || record_decode(d.mv_data, d.mv_size, &r, NULL))
            return 0;
        hit = schema_retention_removes(record_val(r, "name"), c->kept->name);
        record_destroy(&r);
    }
    if (!hit)
        return 0;
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        uint64_t *sq = realloc(x->seq, cap * sizeof *sq);
        if (sq)
            x->seq = sq;
        size_t *e = sq ? realloc(x->end, cap * sizeof *e) : NULL;
        if (!e)
            return LX_ENOMEM;
        x->end = e;
        x->cap = cap;
    }
    /* The versions stay: that two writes met, and whose, is no child's
     * personal data; the values go. */
    field_t kept = *c->kept, lost = *c->lost;
    kept.val = lost.val = (val_t){0};
    if (conflict_pack(&x->sb, c->id, &kept, &lost))
        return LX_ENOMEM;
    x->seq[x->n] = c->seq;
    x->end[x->n++] = x->sb.size;
    return 0;
}

int store_scrub_conflicts(stxn_t *t, const char (*stubs)[65], size_t nstubs,
                          const char *stub_marker, uint64_t *scrubbed)
{
    if (!t->write)
        return LX_EINVAL;
    cscrub_t x = {.t = t, .stubs = stubs, .nstubs = stub_marker ? nstubs : 0,
                  .stub_marker = {.kind = VAL_STR, .s = (char *)stub_marker}};
    msgpack_sbuffer_init(&x.sb);
    int rc = store_each_conflict(t, cscrub_cb, &x);
    for (size_t i = 0, at = 0; !rc && i < x.n; at = x.end[i++]) {
        unsigned char key[8];
        put_u64(key, x.seq[i]);
        MDB_val k = {8, key}, d = {x.end[i] - at, x.sb.data + at};
        rc = lmdb_err(mdb_put(t->txn, t->s->conf, &k, &d, 0), NULL, "conflict log");
    }
    if (!rc && scrubbed)
        *scrubbed += x.n;
    msgpack_sbuffer_destroy(&x.sb);
    free(x.seq);
    free(x.end);
    return rc;
}

int store_add_conflict(stxn_t *t, const char *id, const field_t *kept,
                       const field_t *lost, bool *added)
{
    if (!t->write || !record_id_valid(id) || !field_encodable(kept) || !field_encodable(lost)
        || strcmp(kept->name, lost->name) != 0)
        return LX_EINVAL;
    return lmdb_err(log_conflict_once(t, id, kept, lost, added), NULL, "conflict log");
}

uint64_t store_last_cseq(const stxn_t *t) { return t->cseq; }

int store_apply(stxn_t *t, const char *id, const field_t *w, uint32_t n,
                code_t from, apply_t *res, why_t *why)
{
    apply_opts_t o = {.from = from};
    return store_apply_ex(t, id, w, n, &o, res, why);
}

/* The village a change puts the record in: its village_code write, or
 * where the record already is. */
static code_t change_village(const field_t *const *ws, uint32_t n, code_t cur)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(ws[i]->name, "village_code") == 0) {
            code_t v = 0;
            if (ws[i]->val.kind == VAL_STR && code_parse(ws[i]->val.s, &v) == LX_OK
                && code_level(v) == LEVEL_VILLAGE)
                return v;
            return 0;
        }
    }
    return cur;
}

/* How long after a record left a child that child's edits made before it
 * heard of the move are still taken: a village offline for weeks keeps
 * its work. */
#define MOVED_GRACE_MS (30ULL * 24 * 3600 * 1000)

/* A child's edit of a record that has since moved out of the child (the
 * move and the edit crossed): taken when it leaves village_code alone,
 * the record lived in the child before (the history of its village_code
 * says so) and no write is later than MOVED_GRACE_MS after it left. */
static bool edit_crossed_move(stxn_t *t, const char *id, const record_t *r,
                              const field_t *const *ws, uint32_t n, code_t within)
{
    const field_t *cur = record_field(r, "village_code");
    if (!cur || !t->s->has_hist)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(ws[i]->name, "village_code") == 0)
            return false;
    unsigned char pre[HIST_KEY_MAX];
    size_t plen = hist_prefix(pre, id, strlen(id), "village_code");
    MDB_cursor *c;
    if (!plen || mdb_cursor_open(t->txn, t->s->hist, &c))
        return false;
    MDB_val k = {plen, pre}, d;
    /* Versions in time order: each inside value lasts until the next. */
    hlc_t left = 0;
    bool inside = false;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp(k.mv_data, pre, plen) != 0)
            break;
        hlc_t h = get_u64((unsigned char *)k.mv_data + plen);
        if (inside)
            left = h;
        record_t *one;
        inside = false;
        if (record_decode(d.mv_data, d.mv_size, &one, NULL) == LX_OK) {
            code_t v;
            const char *vs = one->n == 1 && one->f[0].val.kind == VAL_STR ? one->f[0].val.s : NULL;
            inside = vs && code_parse(vs, &v) == LX_OK && code_contains(within, v);
            record_destroy(&one);
        }
    }
    mdb_cursor_close(c);
    if (inside)
        left = cur->ver.hlc;
    if (!left)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (hlc_ms(ws[i]->ver.hlc) > hlc_ms(left) + MOVED_GRACE_MS)
            return false;
    return true;
}

/* Work arrays of store_apply_ex up to this many writes live on its stack. */
#define APPLY_STACK 64

/* What store_apply_ex allocated: the record (a view of the writes, or
 * decoded) and, beyond APPLY_STACK writes, its arrays. */
static void apply_free(record_t *r, bool view, bool small, const field_t **ws,
                       const field_t **won)
{
    if (view) {
        if (!small)
            free(r->f);
    } else {
        record_destroy(&r);
    }
    if (!small) {
        free(ws);
        free(won);
    }
}

int store_apply_ex(stxn_t *t, const char *id, const field_t *w, uint32_t n,
                   const apply_opts_t *o, apply_t *res, why_t *why)
{
    code_t from = o->from;
    memset(res, 0, sizeof *res);
    if (!t->write)
        return why_set(why, LX_EINVAL, "apply: read-only transaction");
    if (!record_id_valid(id))
        return why_set(why, LX_EINVAL, "id: malformed record id");
    if (n == 0)
        return LX_OK;
    store_t *s = t->s;
    uint64_t wall = s->wall();

    /* Refuse the whole change before touching anything. Work arrays on
     * the stack for the usual sizes: a malloc per change here took fresh
     * heap pages (a fault each) whenever callers' own allocations had
     * split the chunks freed by the last call. */
    const field_t *ws_s[APPLY_STACK], *won_s[APPLY_STACK];
    field_t view_s[APPLY_STACK];
    bool small = n <= APPLY_STACK;
    const field_t **ws = small ? ws_s : malloc(n * sizeof *ws);
    if (!ws)
        return LX_ENOMEM;
    /* Writes from the wire come sorted and unique already. */
    bool sorted = true;
    for (uint32_t i = 0; i < n; i++) {
        ws[i] = &w[i];
        sorted = sorted && (i == 0 || schema_name_cmp(w[i - 1].name, w[i].name) < 0);
    }
    if (!sorted)
        qsort(ws, n, sizeof *ws, cmp_field_ptr);
    int rc = LX_OK;
    for (uint32_t i = 0; i < n && !rc; i++) {
        if (!sorted && i > 0 && schema_name_cmp(ws[i - 1]->name, ws[i]->name) == 0)
            rc = why_set(why, LX_EINVAL, "field %s: written twice in one change", ws[i]->name);
        else if (ws[i]->ver.hlc == 0 || ws[i]->ver.origin == 0)
            rc = why_set(why, LX_EINVAL, "field %s: write without a version", ws[i]->name);
        else if (!field_encodable(ws[i]))
            rc = why_set(why, LX_EINVAL, "field %.64s: name, author or list too long", ws[i]->name);
        else if (from && hlc_ms(ws[i]->ver.hlc) > wall + s->skew_ms)
            rc = why_set(why, LX_ESKEW, "field %s: timestamp %llu ms ahead of the local clock",
                         ws[i]->name, (unsigned long long)(hlc_ms(ws[i]->ver.hlc) - wall));
    }
    if (rc) {
        if (!small)
            free(ws);
        return rc;
    }

    MDB_val k = {strlen(id), (void *)id}, d;
    record_t *r = NULL, view_r = {0};
    bool view = false;
    unsigned char old_hash[32];
    int mrc = mdb_get(t->txn, s->rec, &k, &d);
    if (mrc == 0) {
        rec_hash(d.mv_data, d.mv_size, old_hash);
        if ((rc = record_decode(d.mv_data, d.mv_size, &r, why))) {
            if (!small)
                free(ws);
            return why_prefix(why, LX_ECORRUPT, "stored record");
        }
    } else if (mrc == MDB_NOTFOUND) {
        /* A new record is a view of the writes themselves, which are
         * sorted and unique: no copies (the import path). */
        r = &view_r;
        if (!(r->f = small ? view_s : malloc(n * sizeof *r->f))) {
            free(ws);
            return LX_ENOMEM;
        }
        r->id = (char *)id;
        view = true;
        res->created = true;
    } else {
        if (!small)
            free(ws);
        return lmdb_err(mrc, why, "get");
    }
    code_t old_vil = record_village(r);
    bool old_live = !res->created && is_live(s, old_vil);
    char old_idn[IDNUM_MAX + 1] = "";
    const char *oi = record_str(r, "id_number");
    if (oi && strlen(oi) <= IDNUM_MAX)
        strcpy(old_idn, oi);

    /* The sender's scope: a child writes only records that are and stay
     * in its subtree; a parent only records that are or come into ours. */
    if (o->within) {
        code_t nv = change_village(ws, n, old_vil);
        bool in_cur = !res->created && code_contains(o->within, old_vil);
        bool in_new = nv && code_contains(o->within, nv);
        bool ok = o->either ? (in_cur || in_new)
                            : (in_new && (res->created || in_cur));
        if (!ok && !o->either && !res->created)
            ok = edit_crossed_move(t, id, r, ws, n, o->within);
        /* From a parent, the stub of a child who moved out of our subtree
         * (a restore sends them): a new record of its village alone. */
        if (!ok && o->either && res->created && n == 1 && nv
            && strcmp(ws[0]->name, "village_code") == 0)
            ok = true;
        if (!ok) {
            char a[CODE_STRLEN + 1], b[CODE_STRLEN + 1];
            rc = why_set(why, LX_ESCOPE, "record in village %s (to %s) is outside %s",
                         res->created ? "-" : code_fmt(old_vil, a),
                         nv ? code_fmt(nv, b) : "-", o->either ? "this node" : "the sender");
            apply_free(r, view, small, ws, NULL);
            return rc;
        }
    }

    uint32_t nwon = 0;
    const field_t **won = small ? won_s : malloc(n * sizeof *won); /* the writes that won */
    if (!won) {
        apply_free(r, view, small, ws, NULL);
        return LX_ENOMEM;
    }
    for (uint32_t i = 0; i < n && !rc; i++) {
        bool conflict;
        /* A new record holds only the writes before this one, all with
         * other names. */
        const field_t *cur = view ? NULL : record_field(r, ws[i]->name);
        merge_t m = merge_decide(cur, ws[i], &conflict);
        if (conflict) {
            res->conflicts++;
            rc = lmdb_err(m == MERGE_WON ? log_conflict(t, id, ws[i], cur)
                                         : log_conflict(t, id, cur, ws[i]),
                          why, "conflict log");
        }
        if (!rc && m == MERGE_WON && cur && s->has_hist)
            rc = lmdb_err(hist_put(t, id, cur), why, "history");
        if (!rc && m == MERGE_WON) {
            won[nwon++] = ws[i];
            if (view)
                r->f[r->n++] = *ws[i];
            else
                rc = record_put(r, ws[i]);
        }
        if (!rc && from)
            hlc_recv(&t->clock, ws[i]->ver.hlc, wall);
        else if (!rc && ws[i]->ver.hlc > t->clock.last)
            t->clock.last = ws[i]->ver.hlc;
    }
    if (!small)
        free(ws);
    ws = NULL;
    if (rc || nwon == 0)
        goto done;

    /* A record that left the node's subtree stays as a moved-out stub: its
     * village and nothing personal (minimum necessary, PIPL art. 6). */
    code_t new_vil = record_village(r);
    bool new_live = is_live(s, new_vil);
    if (new_vil && !new_live) {
        uint32_t keep = 0;
        for (uint32_t i = 0; i < r->n; i++) {
            if (strcmp(r->f[i].name, "village_code") == 0) {
                field_t f = r->f[i];
                r->f[i] = r->f[0];
                r->f[0] = f;
                keep = 1;
                break;
            }
        }
        for (uint32_t i = keep; i < r->n && s->has_hist; i++)
            if ((mrc = hist_put(t, id, &r->f[i])))
                goto lmdb_fail;
        if (!view)
            for (uint32_t i = keep; i < r->n; i++)
                field_free(&r->f[i]);
        r->n = keep;
    }

    /* Retention reaches the history (hist_scrub): in a record that holds
     * a marker after this change (a stub: that this change wrote), when
     * the change writes the marker or a field retention removes (a value
     * entered again, or its clearing: it put a version into the history). */
    if (s->has_hist && !res->created) {
        const val_t *marker = new_live ? record_val(r, "name") : NULL;
        for (uint32_t i = 0; !new_live && i < nwon; i++)
            if (strcmp(won[i]->name, "name") == 0)
                marker = &won[i]->val;
        bool due = false;
        for (uint32_t i = 0; i < nwon && !due && schema_retention_marker(marker); i++)
            due = schema_retention_removes(marker, won[i]->name);
        if (due && (mrc = hist_scrub(s, t->txn, id, marker, NULL)))
            goto lmdb_fail;
    }

    /* Store the record and hash its canonical bytes: for a new record
     * that took every write, the writes' own bytes when the caller has
     * them in that form. */
    msgpack_packer pk;
    t->buf.size = 0;
    msgpack_packer_init(&pk, &t->buf, msgpack_sbuffer_write);
    if (view && nwon == n && r->n == n && o->packed) {
        size_t idn = strlen(id);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str(&pk, idn);
        msgpack_pack_str_body(&pk, id, idn);
        msgpack_sbuffer_write(&t->buf, o->packed, o->packedlen);
    } else if (record_pack(r, &pk)) {
        rc = why_set(why, LX_EINVAL, "record %s: more fields than a record may hold", id);
        goto done;
    }
    unsigned char new_hash[32];
    rec_hash(t->buf.data, t->buf.size, new_hash);
    d.mv_size = t->buf.size;
    d.mv_data = t->buf.data;
    if ((mrc = mdb_put(t->txn, s->rec, &k, &d, 0)))
        goto lmdb_fail;

    unsigned char vk[8 + 65];
    if (old_live) {
        if (old_vil != new_vil || !new_live) {
            MDB_val key = {vil_key(vk, old_vil, id), vk};
            if ((mrc = mdb_del(t->txn, s->byvil, &key, NULL)))
                goto lmdb_fail;
        }
        if ((mrc = vdig_update(t, old_vil, old_hash, true)))
            goto lmdb_fail;
    }
    if (new_live) {
        if (!old_live || old_vil != new_vil) {
            MDB_val key = {vil_key(vk, new_vil, id), vk}, e = {0, ""};
            if ((mrc = mdb_put(t->txn, s->byvil, &key, &e, 0)))
                goto lmdb_fail;
        }
        if ((mrc = vdig_update(t, new_vil, new_hash, false)))
            goto lmdb_fail;
    }
    const char *ni = new_live ? record_str(r, "id_number") : NULL;
    const char *oldi = old_live && old_idn[0] ? old_idn : NULL;
    if (!(oldi && ni && strcmp(oldi, ni) == 0) && (oldi || ni)
        && (mrc = idn_move(t, id, oldi, ni, res->created)))
        goto lmdb_fail;

    /* The change joins the log in the same transaction. */
    t->buf.size = 0;
    size_t idn = strlen(id);
    bool whole = res->created && nwon == n;
    /* A stub keeps no values: an edit that reached it (it crossed a move)
     * carries its values in the entry, so it still goes up. */
    bool carry = !new_live && !whole;
    msgpack_pack_array(&pk, carry ? 6 : 5);
    msgpack_pack_str(&pk, idn);
    msgpack_pack_str_body(&pk, id, idn);
    msgpack_pack_uint64(&pk, new_vil);
    msgpack_pack_uint64(&pk, old_vil != new_vil ? old_vil : 0);
    msgpack_pack_uint64(&pk, from);
    if (whole) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_array(&pk, nwon);
        for (uint32_t i = 0; i < nwon; i++) {
            size_t nn = strlen(won[i]->name);
            msgpack_pack_str(&pk, nn);
            msgpack_pack_str_body(&pk, won[i]->name, nn);
        }
    }
    if (carry) {
        msgpack_pack_array(&pk, nwon);
        for (uint32_t i = 0; i < nwon; i++)
            if (field_pack(won[i], &pk)) {
                rc = why_set(why, LX_EINVAL, "record %s: a field that cannot be logged", id);
                goto done;
            }
    }
    unsigned char sk[8];
    put_u64(sk, ++t->seq);
    MDB_val lk = {8, sk};
    d.mv_size = t->buf.size;
    d.mv_data = t->buf.data;
    if ((mrc = mdb_put(t->txn, s->log, &lk, &d, MDB_APPEND)))
        goto lmdb_fail;
    res->changed = nwon;
    res->seq = t->seq;
    goto done;

lmdb_fail:
    if (mrc == MDB_MAP_FULL)
        s->was_full = true;
    rc = lmdb_err(mrc, why, "apply");
done:
    apply_free(r, view, small, ws, won);
    return rc;
}

/* ---- meta ---- */

int store_meta_get(stxn_t *t, const char *key, uint64_t *v)
{
    int rc = meta_get(t->txn, t->s->meta, key, v);
    return rc == MDB_NOTFOUND ? LX_ENOTFOUND : lmdb_err(rc, NULL, "meta");
}

int store_meta_put(stxn_t *t, const char *key, uint64_t v)
{
    return lmdb_err(meta_put(t->txn, t->s->meta, key, v), NULL, "meta");
}

int store_blob_get(stxn_t *t, const char *key, void **data, size_t *len)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(t->txn, t->s->meta, &k, &d);
    if (rc)
        return lmdb_err(rc, NULL, "meta");
    if (!(*data = malloc(d.mv_size ? d.mv_size : 1)))
        return LX_ENOMEM;
    memcpy(*data, d.mv_data, d.mv_size);
    *len = d.mv_size;
    return LX_OK;
}

int store_blob_put(stxn_t *t, const char *key, const void *data, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, d = {len, (void *)data};
    return lmdb_err(mdb_put(t->txn, t->s->meta, &k, &d, 0), NULL, "meta");
}

int store_blob_del(stxn_t *t, const char *key)
{
    MDB_val k = {strlen(key), (void *)key};
    return lmdb_err(mdb_del(t->txn, t->s->meta, &k, NULL), NULL, "meta");
}

int store_blob_each(stxn_t *t, const char *prefix, store_blob_cb cb, void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->meta, &c);
    if (rc)
        return lmdb_err(rc, NULL, "meta");
    size_t plen = strlen(prefix);
    MDB_val k = {plen, (void *)prefix}, d;
    int ret = LX_OK;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        char key[256];
        if (k.mv_size >= sizeof key)
            continue;
        memcpy(key, k.mv_data, k.mv_size);
        key[k.mv_size] = 0;
        if ((ret = cb(arg, key, d.mv_data, d.mv_size)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = lmdb_err(rc, NULL, "meta");
    return ret;
}

uint64_t store_last_seq(const stxn_t *t) { return t->seq; }

void store_bump_seq(stxn_t *t, uint64_t at_least)
{
    if (t->write && t->seq < at_least)
        t->seq = at_least;
}

uint64_t store_seq_reserved(stxn_t *t)
{
    uint64_t v = 0;
    return meta_get(t->txn, t->s->meta, "resv", &v) == 0 ? v : 0;
}

int store_set_seq_reserved(stxn_t *t, uint64_t upto)
{
    return lmdb_err(meta_put(t->txn, t->s->meta, "resv", upto), NULL, "reserve");
}

/* ---- log headers ---- */

/* What loghdr_t.priv points at: the entry's names, and its values when
 * it carries them (an edit that reached a stub). */
typedef struct {
    const msgpack_object *names, *vals;
} logpriv_t;

/* The entry of a new record taken whole, [id, village, previous, sender,
 * nil], the bulk of a log, read without unpacking; false for any other
 * shape, which the general path below reads (and judges). */
static bool log_hdr_whole(const void *buf, size_t len, loghdr_t *h, char id[65])
{
    mp_rd_t r = {buf, (const unsigned char *)buf + len, false};
    if (mp_rd_byte(&r) != 0x95)
        return false;
    mp_sv_t s = mp_rd_str(&r);
    h->village = mp_rd_uint(&r);
    h->prev = mp_rd_uint(&r);
    h->from = mp_rd_uint(&r);
    if (r.bad || s.n == 0 || s.n > 64 || mp_rd_byte(&r) != 0xc0 || r.bad || r.p != r.end)
        return false;
    memcpy(id, s.p, s.n);
    id[s.n] = '\0';
    h->id = id;
    return true;
}

int store_each_log_hdr(stxn_t *t, uint64_t from, store_loghdr_cb cb, void *arg)
{
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->log, &c);
    if (rc)
        return lmdb_err(rc, NULL, "log");
    unsigned char sk[8];
    put_u64(sk, from);
    MDB_val k = {8, sk}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        loghdr_t h = {.seq = k.mv_size == 8 ? get_u64(k.mv_data) : 0};
        char id[65];
        if (k.mv_size == 8 && log_hdr_whole(d.mv_data, d.mv_size, &h, id)) {
            logpriv_t lp = {&nil, NULL};
            h.priv = &lp;
            if ((rc = cb(arg, &h)))
                break;
            continue;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *a = u.data.via.array.ptr;
        rc = k.mv_size == 8 ? mp_unpack(d.mv_data, d.mv_size, &u, NULL) : LX_ECORRUPT;
        a = u.data.via.array.ptr;
        if (!rc && (mp_array(&u.data, "log", 5, 6, NULL) || a[0].type != MSGPACK_OBJECT_STR
                    || a[0].via.str.size == 0 || a[0].via.str.size > 64
                    || mp_u64(&a[1], "v", &h.village, NULL) || mp_u64(&a[2], "p", &h.prev, NULL)
                    || mp_u64(&a[3], "f", &h.from, NULL)))
            rc = LX_ECORRUPT;
        if (!rc) {
            memcpy(id, a[0].via.str.ptr, a[0].via.str.size);
            id[a[0].via.str.size] = '\0';
            h.id = id;
            logpriv_t lp = {&a[4], u.data.via.array.size == 6 ? &a[5] : NULL};
            h.priv = &lp;
            rc = cb(arg, &h);
        }
        msgpack_unpacked_destroy(&u);
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == 1 ? LX_OK : rc;
}

int store_record_change(stxn_t *t, const record_t *r, change_t *out)
{
    (void)t;
    memset(out, 0, sizeof *out);
    if (!(out->id = strdup(r->id)) || !(out->w = calloc(r->n ? r->n : 1, sizeof *out->w))) {
        change_free(out);
        return LX_ENOMEM;
    }
    out->village = record_village(r);
    for (uint32_t i = 0; i < r->n; i++) {
        if (field_copy(&out->w[i], &r->f[i])) {
            change_free(out);
            return LX_ENOMEM;
        }
        out->n++;
    }
    return LX_OK;
}

/* The newest version of a field kept in the history; LX_ENOTFOUND. */
static int hist_latest(stxn_t *t, const char *id, const char *name, field_t *out)
{
    unsigned char key[HIST_KEY_MAX];
    size_t plen = t->s->has_hist ? hist_prefix(key, id, strlen(id), name) : 0;
    if (!plen)
        return LX_ENOTFOUND;
    memset(key + plen, 0xff, 8);
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->hist, &c);
    if (rc)
        return lmdb_err(rc, NULL, "history");
    MDB_val k = {plen + 8, key}, d;
    /* The first key after every version of the field, then one back. */
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    rc = rc == MDB_NOTFOUND ? mdb_cursor_get(c, &k, &d, MDB_LAST)
                            : rc ? rc : mdb_cursor_get(c, &k, &d, MDB_PREV);
    int ret = LX_ENOTFOUND;
    if (!rc && k.mv_size == plen + 8 && memcmp(k.mv_data, key, plen) == 0) {
        record_t *one;
        ret = record_decode(d.mv_data, d.mv_size, &one, NULL);
        if (!ret) {
            ret = one->n == 1 ? field_copy(out, &one->f[0]) : LX_ECORRUPT;
            record_destroy(&one);
        }
    }
    mdb_cursor_close(c);
    return ret;
}

/* The change of an entry that carries its values. */
static int log_carried(const loghdr_t *h, const msgpack_object *vals, change_t *out, why_t *why)
{
    if (vals->type != MSGPACK_OBJECT_ARRAY)
        return why_set(why, LX_ECORRUPT, "log values: expected a list");
    uint32_t n = vals->via.array.size;
    out->id = strdup(h->id);
    out->w = calloc(n ? n : 1, sizeof *out->w);
    int rc = out->id && out->w ? LX_OK : LX_ENOMEM;
    for (uint32_t i = 0; !rc && i < n; i++)
        if (!(rc = field_from_obj(&vals->via.array.ptr[i], &out->w[i], why)))
            out->n++;
    out->village = h->village;
    out->prev_village = h->prev;
    out->from = h->from;
    if (rc)
        change_free(out);
    return rc;
}

int store_log_change(stxn_t *t, const loghdr_t *h, bool full, change_t *out, why_t *why)
{
    const logpriv_t *lp = h->priv;
    const msgpack_object *names = lp->names;
    record_t *r = NULL;
    memset(out, 0, sizeof *out);
    if (lp->vals && !full)
        return log_carried(h, lp->vals, out, why);
    int rc = store_get(t, h->id, &r, why);
    if (rc)
        return rc;
    bool all = full || names->type == MSGPACK_OBJECT_NIL;
    if (all) {
        rc = store_record_change(t, r, out);
    } else if (names->type != MSGPACK_OBJECT_ARRAY) {
        rc = why_set(why, LX_ECORRUPT, "log names: expected a list");
    } else {
        uint32_t want = names->via.array.size;
        out->id = strdup(h->id);
        out->w = calloc(want ? want : 1, sizeof *out->w);
        rc = out->id && out->w ? LX_OK : LX_ENOMEM;
        for (uint32_t i = 0; !rc && i < want; i++) {
            const msgpack_object *o = &names->via.array.ptr[i];
            char name[65];
            if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0
                || o->via.str.size >= sizeof name) {
                rc = why_set(why, LX_ECORRUPT, "log names: bad name");
                break;
            }
            memcpy(name, o->via.str.ptr, o->via.str.size);
            name[o->via.str.size] = '\0';
            /* A stub that moved away no longer holds its fields: an entry
             * written before the move (and not yet sent) takes the value
             * the move put into the history. */
            const field_t *f = record_field(r, name);
            if (f) {
                if (!(rc = field_copy(&out->w[out->n], f)))
                    out->n++;
            } else if (!(rc = hist_latest(t, h->id, name, &out->w[out->n]))) {
                out->n++;
            } else if (rc == LX_ENOTFOUND) {
                rc = LX_OK;
            }
        }
    }
    out->village = h->village;
    out->prev_village = h->prev;
    out->from = h->from;
    record_destroy(&r);
    if (rc)
        change_free(out);
    return rc;
}

/* Where a stored record's [versions, fields] begin: after the array
 * header and the id string (record_pack wrote both). */
static size_t record_body_at(const unsigned char *p, size_t n)
{
    if (n < 2 || p[0] != 0x93)
        return 0;
    size_t at = 1, len;
    unsigned char t = p[at++];
    if (t >= 0xa0 && t <= 0xbf)
        len = t & 0x1f;
    else if (t == 0xd9 && n > at)
        len = p[at++];
    else
        return 0;
    return at + len < n ? at + len : 0;
}

int store_log_pack(stxn_t *t, const loghdr_t *h, bool full, msgpack_packer *pk, why_t *why)
{
    const logpriv_t *lp = h->priv;
    const msgpack_object *names = lp->names;
    if (!full && names->type != MSGPACK_OBJECT_NIL) {
        change_t c;
        int rc = store_log_change(t, h, false, &c, why);
        if (rc)
            return rc;
        c.from = 0;
        rc = change_pack(&c, pk);
        change_free(&c);
        return rc ? LX_EINVAL : LX_OK;
    }
    MDB_val k = {strlen(h->id), (void *)h->id}, d;
    int rc = mdb_get(t->txn, t->s->rec, &k, &d);
    if (rc)
        return lmdb_err(rc, why, "log");
    size_t at = record_body_at(d.mv_data, d.mv_size);
    if (!at)
        return why_set(why, LX_ECORRUPT, "stored record %s: unexpected layout", h->id);
    size_t idn = strlen(h->id);
    msgpack_pack_array(pk, 6);
    msgpack_pack_str(pk, idn);
    msgpack_pack_str_body(pk, h->id, idn);
    msgpack_pack_uint64(pk, h->village);
    msgpack_pack_uint64(pk, h->prev);
    msgpack_pack_uint64(pk, 0);
    /* The versions and fields arrays, byte for byte as stored. */
    return pk->callback(pk->data, (const char *)d.mv_data + at, d.mv_size - at) ? LX_ENOMEM : LX_OK;
}

int store_unit_digests(stxn_t *t, code_t node, code_t **units,
                       unsigned char (**digests)[STORE_DIGEST_LEN], uint32_t *n)
{
    *units = NULL;
    *digests = NULL;
    *n = 0;
    if (t->nvd) {
        int frc = vdig_flush(t);
        if (frc)
            return lmdb_err(frc, NULL, "digest");
    }
    code_t lo, hi;
    code_range(node, &lo, &hi);
    bool village = code_level(node) == LEVEL_VILLAGE;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->vdig, &c);
    if (rc)
        return lmdb_err(rc, NULL, "digest");
    unsigned char lk[8];
    put_u64(lk, lo);
    MDB_val k = {8, lk}, d;
    crypto_generichash_state st;
    code_t cur = 0;
    uint32_t cap = 0;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        bool end = rc || k.mv_size != 8 || d.mv_size != 40 || get_u64(k.mv_data) >= hi;
        code_t v = end ? 0 : get_u64(k.mv_data);
        code_t unit = end ? 0 : village ? v : code_child_under(node, v);
        if (cur && unit != cur) {
            /* Close the unit, hashed like store_digest hashes a subtree. */
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                code_t *nu = realloc(*units, cap * sizeof *nu);
                unsigned char (*nd)[STORE_DIGEST_LEN] = nu ? realloc(*digests, cap * sizeof *nd) : NULL;
                if (nu)
                    *units = nu;
                if (nd)
                    *digests = nd;
                if (!nu || !nd) {
                    rc = ENOMEM;
                    break;
                }
            }
            (*units)[*n] = cur;
            crypto_generichash_final(&st, (*digests)[*n], STORE_DIGEST_LEN);
            (*n)++;
        }
        if (end)
            break;
        if (unit != cur) {
            crypto_generichash_init(&st, NULL, 0, STORE_DIGEST_LEN);
            cur = unit;
        }
        crypto_generichash_update(&st, k.mv_data, 8);
        crypto_generichash_update(&st, d.mv_data, 40);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        free(*units);
        free(*digests);
        *units = NULL;
        *digests = NULL;
        *n = 0;
        return lmdb_err(rc, NULL, "digest");
    }
    return LX_OK;
}

/* ---- walks ---- */

int store_each_record(stxn_t *t, code_t under, store_record_cb cb, void *arg)
{
    code_t lo, hi;
    code_range(under ? under : t->s->code, &lo, &hi);
    return store_each_record_range(t, lo, hi, cb, arg);
}

/* The stored bytes of every live record whose village lies in [lo, hi),
 * in village then id order. */
static int each_live(stxn_t *t, code_t lo, code_t hi, store_packed_cb cb, void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->byvil, &c);
    if (rc)
        return lmdb_err(rc, NULL, "walk");
    unsigned char lk[8];
    put_u64(lk, lo);
    MDB_val k = {8, lk}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size <= 8 || get_u64(k.mv_data) >= hi)
            break;
        MDB_val rk = {k.mv_size - 8, (char *)k.mv_data + 8}, rd;
        if ((rc = mdb_get(t->txn, t->s->rec, &rk, &rd))) {
            rc = lmdb_err(rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc, NULL, "walk");
            break;
        }
        if ((rc = cb(arg, rd.mv_data, rd.mv_size)))
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

typedef struct {
    store_record_cb cb;
    void *arg;
} decoding_t;

static int decode_cb(void *arg, const void *buf, size_t len)
{
    decoding_t *x = arg;
    record_t *r;
    int rc = record_decode(buf, len, &r, NULL);
    if (rc)
        return rc;
    rc = x->cb(x->arg, r);
    record_destroy(&r);
    return rc;
}

int store_each_record_range(stxn_t *t, code_t lo, code_t hi, store_record_cb cb, void *arg)
{
    decoding_t x = {cb, arg};
    return each_live(t, lo, hi, decode_cb, &x);
}

int store_each_packed(stxn_t *t, code_t under, store_packed_cb cb, void *arg)
{
    code_t lo, hi;
    code_range(under ? under : t->s->code, &lo, &hi);
    return each_live(t, lo, hi, cb, arg);
}

/* Fills r (holding the fields of the current record whose versions are at
 * or before cut) from the history: for each field name, the newest kept
 * version at or before cut, unless the current one already is. */
static int asof_fill(stxn_t *t, MDB_cursor *c, const char *id, hlc_t cut, record_t *r)
{
    unsigned char pre[HIST_KEY_MAX];
    size_t plen = hist_prefix(pre, id, strlen(id), NULL);
    if (!plen)
        return LX_OK;
    MDB_val k = {plen, pre}, d;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size < plen + 10 || memcmp(k.mv_data, pre, plen) != 0)
            break;
        hlc_t h = get_u64((unsigned char *)k.mv_data + k.mv_size - 8);
        if (h > cut)
            continue;
        record_t *one;
        if ((rc = record_decode(d.mv_data, d.mv_size, &one, NULL)))
            return rc;
        int prc = LX_OK;
        if (one->n == 1) {
            const field_t *cur = record_field(r, one->f[0].name);
            if (!cur || cur->ver.hlc < h)
                prc = record_put(r, &one->f[0]);
        }
        record_destroy(&one);
        if (prc)
            return prc;
    }
    (void)t;
    return rc == MDB_NOTFOUND || rc == 0 ? LX_OK : lmdb_err(rc, NULL, "history");
}

/* Cursors over the records and over the history (NULL when the store
 * has none), for the walks as of a cut. */
static int asof_cursors(stxn_t *t, MDB_cursor **c, MDB_cursor **hc)
{
    *c = *hc = NULL;
    int rc = mdb_cursor_open(t->txn, t->s->rec, c);
    if (!rc && t->s->has_hist && (rc = mdb_cursor_open(t->txn, t->s->hist, hc)))
        mdb_cursor_close(*c);
    return rc ? lmdb_err(rc, NULL, "walk") : LX_OK;
}

/* Turns r into the record as it stood at cut. */
static int asof_apply(stxn_t *t, MDB_cursor *hc, hlc_t cut, record_t *r)
{
    /* Keep the fields already as they were at the cut; look in the
     * history only when something is newer (or the record is a stub whose
     * other fields went to the history when it moved away). */
    uint32_t keep = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->f[i].ver.hlc <= cut)
            r->f[keep++] = r->f[i];
        else
            field_free(&r->f[i]);
    }
    bool older = keep < r->n || r->n == 1;
    r->n = keep;
    return older && hc ? asof_fill(t, hc, r->id, cut, r) : LX_OK;
}

/* What stored record bytes are at a cut, from their versions alone. */
enum { PK_SLOW, PK_CURRENT, PK_NEWER };

/* From stored record bytes, undecoded: how many versions they list, how
 * many of those are after cut, and how many fields follow. False when
 * the bytes are not in record_pack's form. */
static bool packed_head(const unsigned char *p, size_t n, hlc_t cut, uint32_t *nv,
                        uint32_t *after, uint32_t *nf)
{
    mp_rd_t r = {p, p + n, false};
    if (mp_rd_array(&r) != 3)
        return false;
    mp_rd_str(&r);  /* the id */
    *nv = mp_rd_array(&r);
    *after = 0;
    for (uint32_t i = 0; i < *nv && !r.bad; i++) {
        if (mp_rd_array(&r) != 3)
            return false;
        *after += mp_rd_uint(&r) > cut;
        mp_rd_uint(&r);  /* origin */
        mp_rd_str(&r);   /* author */
    }
    *nf = mp_rd_array(&r);
    return !r.bad;
}

/* PK_CURRENT: no version after cut and not a stub: the bytes are the
 * record as of cut. PK_NEWER: every version is after the cut (created
 * since, unless the history says otherwise). PK_SLOW: decode it. */
static int packed_at(const unsigned char *p, size_t n, hlc_t cut)
{
    uint32_t nv, after, nf;
    if (!packed_head(p, n, cut, &nv, &after, &nf) || nv == 0 || nf <= 1)
        return PK_SLOW;
    return after == 0 ? PK_CURRENT : after == nv ? PK_NEWER : PK_SLOW;
}

/* Whether the history holds anything of record id. */
static bool hist_has(MDB_cursor *hc, const MDB_val *id)
{
    unsigned char pre[HIST_KEY_MAX];
    size_t plen = hc ? hist_prefix(pre, id->mv_data, id->mv_size, NULL) : 0;
    if (!plen)
        return hc != NULL;  /* no history at all; or an odd id: read it whole */
    MDB_val k = {plen, pre}, d;
    return mdb_cursor_get(hc, &k, &d, MDB_SET_RANGE) == 0 && k.mv_size > plen
           && memcmp(k.mv_data, pre, plen) == 0;
}

/* One record of a walk as of cut: handed to cb as stored, or as it stood
 * at the cut (packed anew into sb), or left out. */
static int packed_one(stxn_t *t, MDB_cursor *hc, const MDB_val *k, const MDB_val *d, hlc_t cut,
                      code_t lo, code_t hi, msgpack_sbuffer *sb, store_packed_cb cb, void *arg)
{
    int at = packed_at(d->mv_data, d->mv_size, cut);
    if (at == PK_CURRENT)
        return cb(arg, d->mv_data, d->mv_size);
    if (at == PK_NEWER && !hist_has(hc, k))
        return LX_OK;  /* created after the cut */
    /* Something changed since the cut: the record as it stood then. */
    record_t *r;
    int rc = record_decode(d->mv_data, d->mv_size, &r, NULL);
    if (rc)
        return rc;
    rc = asof_apply(t, hc, cut, r);
    code_t v = rc ? 0 : record_village(r);
    if (!rc && v >= lo && v < hi && r->n > 1) {
        msgpack_packer pk;
        msgpack_sbuffer_clear(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        rc = record_pack(r, &pk) ? LX_EINVAL : cb(arg, sb->data, sb->size);
    }
    record_destroy(&r);
    return rc;
}

#define SHARE_BATCH 256

/* Up to SHARE_BATCH records off the share; 0 when none are left. */
static uint64_t share_take(store_share_t *sh)
{
    uint64_t left = atomic_load(&sh->left), take;
    do {
        take = left < SHARE_BATCH ? left : SHARE_BATCH;
    } while (take && !atomic_compare_exchange_weak(&sh->left, &left, left - take));
    return take;
}

/* The walk as of cut, the whole table (sh NULL) or the records taken off
 * the share, from the last record backwards when `backward`. */
static int each_packed(stxn_t *t, code_t under, hlc_t cut, store_share_t *sh, bool backward,
                       store_packed_cb cb, void *arg)
{
    code_t lo, hi;
    code_range(under ? under : t->s->code, &lo, &hi);
    MDB_cursor *c, *hc;
    int rc = asof_cursors(t, &c, &hc);
    if (rc)
        return rc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    MDB_val k, d, nk, nd;
    MDB_cursor_op step = backward ? MDB_PREV : MDB_NEXT;
    uint64_t mine = 0;  /* records taken off the share, not yet walked */
    rc = mdb_cursor_get(c, &k, &d, backward ? MDB_LAST : MDB_FIRST);
    while (!rc) {
        if (sh && !mine && !(mine = share_take(sh)))
            break;
        mine -= sh != NULL;
        /* The next record on its way into the cache while this one is
         * read: the walk waits on memory more than it computes. Stored
         * bytes stay put until the transaction ends. */
        int nrc = mdb_cursor_get(c, &nk, &nd, step);
        for (size_t off = 0; !nrc && off < nd.mv_size; off += 64)
            __builtin_prefetch((const char *)nd.mv_data + off);
        if ((rc = packed_one(t, hc, &k, &d, cut, lo, hi, &sb, cb, arg)))
            break;
        rc = nrc;
        k = nk;
        d = nd;
    }
    /* A failed walker takes the rest off the share, so the other stops. */
    if (sh && rc && rc != MDB_NOTFOUND)
        atomic_store(&sh->left, 0);
    msgpack_sbuffer_destroy(&sb);
    if (hc)
        mdb_cursor_close(hc);
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

int store_each_packed_asof(stxn_t *t, code_t under, hlc_t cut, store_packed_cb cb, void *arg)
{
    return each_packed(t, under, cut, NULL, false, cb, arg);
}

int store_begin_twin(stxn_t *t, stxn_t **out)
{
    *out = NULL;
    if (t->write)
        return LX_EBUSY;
    int rc = store_begin(t->s, false, out);
    if (!rc && mdb_txn_id((*out)->txn) != mdb_txn_id(t->txn)) {
        store_abort(out);
        rc = LX_EBUSY;
    }
    return rc;
}

int store_share_init(stxn_t *t, store_share_t *sh)
{
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->s->rec, &st);
    atomic_init(&sh->left, rc ? 0 : (uint64_t)st.ms_entries);
    return lmdb_err(rc, NULL, "walk");
}

int store_each_packed_asof_shared(stxn_t *t, code_t under, hlc_t cut, store_share_t *sh,
                                  bool backward, store_packed_cb cb, void *arg)
{
    return each_packed(t, under, cut, sh, backward, cb, arg);
}

int store_each_record_asof(stxn_t *t, code_t under, hlc_t cut, store_record_cb cb, void *arg)
{
    code_t lo, hi;
    code_range(under ? under : t->s->code, &lo, &hi);
    MDB_cursor *c, *hc;
    int rc = asof_cursors(t, &c, &hc);
    if (rc)
        return rc;
    MDB_val k, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        record_t *r;
        if ((rc = record_decode(d.mv_data, d.mv_size, &r, NULL)))
            break;
        rc = asof_apply(t, hc, cut, r);
        code_t v = rc ? 0 : record_village(r);
        if (!rc && v >= lo && v < hi && r->n > 1)
            rc = cb(arg, r);
        record_destroy(&r);
        if (rc)
            break;
    }
    if (hc)
        mdb_cursor_close(hc);
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

int store_each_stub(stxn_t *t, store_record_cb cb, void *arg)
{
    MDB_cursor *c, *hc;
    int rc = asof_cursors(t, &c, &hc);
    if (rc)
        return rc;
    MDB_val k, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        record_t *r;
        uint32_t nv, after, nf;
        /* A stub holds its village alone (store_apply_ex): any other
         * record is passed over undecoded. */
        if (k.mv_size > 64 || (packed_head(d.mv_data, d.mv_size, 0, &nv, &after, &nf) && nf != 1)
            || record_decode(d.mv_data, d.mv_size, &r, NULL))
            continue;
        code_t v = record_village(r);
        bool stub = r->n == 1 && v && !is_live(t->s, v);
        int crc = stub && hc ? asof_fill(t, hc, r->id, UINT64_MAX, r) : LX_OK;
        if (!crc && stub)
            crc = cb(arg, r);
        record_destroy(&r);
        if (crc) {
            rc = crc;
            break;
        }
    }
    mdb_cursor_close(c);
    if (hc)
        mdb_cursor_close(hc);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

int store_scrub_history(stxn_t *t, const char *id, const char *marker, uint64_t *removed)
{
    val_t m = {.kind = VAL_STR, .s = (char *)marker};
    if (!t->write || !record_id_valid(id) || !schema_retention_marker(&m))
        return LX_EINVAL;
    /* Still a stub: it may have come back since the caller found it. */
    record_t *r = NULL;
    int rc = store_get(t, id, &r, NULL);
    code_t v = rc ? 0 : record_village(r);
    bool stub = !rc && r->n == 1 && v && !is_live(t->s, v);
    record_destroy(&r);
    if (rc || !stub)
        return rc == LX_ENOTFOUND ? LX_OK : rc;
    return lmdb_err(hist_scrub(t->s, t->txn, id, &m, removed), NULL, "history");
}

int store_digest(stxn_t *t, code_t under, unsigned char out[STORE_DIGEST_LEN])
{
    if (t->nvd) {
        int frc = vdig_flush(t);
        if (frc)
            return lmdb_err(frc, NULL, "digest");
    }
    code_t lo, hi;
    code_range(under ? under : t->s->code, &lo, &hi);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, STORE_DIGEST_LEN);
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->vdig, &c);
    if (rc)
        return lmdb_err(rc, NULL, "digest");
    unsigned char lk[8];
    put_u64(lk, lo);
    MDB_val k = {8, lk}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size != 40) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (get_u64(k.mv_data) >= hi)
            break;
        crypto_generichash_update(&st, k.mv_data, 8);
        crypto_generichash_update(&st, d.mv_data, 40);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(rc, NULL, "digest");
    crypto_generichash_final(&st, out, STORE_DIGEST_LEN);
    return LX_OK;
}

int store_verify(stxn_t *t, why_t *why)
{
    if (t->nvd && vdig_flush(t))
        return LX_EIO;
    /* Walk every record; recompute the sums of the live ones. */
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->rec, &c);
    if (rc)
        return lmdb_err(rc, why, "verify");
    vdelta_t *save = t->vd;
    size_t savecap = t->capvd, saven = t->nvd;
    t->vd = NULL;
    t->capvd = t->nvd = 0;
    uint64_t live = 0;
    MDB_val k, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        record_t *r;
        if ((rc = record_decode(d.mv_data, d.mv_size, &r, why)))
            break;
        code_t v = record_village(r);
        if (is_live(t->s, v)) {
            unsigned char h[32], vk[8 + 65];
            rec_hash(d.mv_data, d.mv_size, h);
            MDB_val key = {vil_key(vk, v, r->id), vk}, e;
            if (mdb_get(t->txn, t->s->byvil, &key, &e)) {
                rc = why_set(why, LX_ECORRUPT, "record %s: missing from the village index", r->id);
                record_destroy(&r);
                break;
            }
            rc = vdig_update(t, v, h, false);
            live++;
        }
        record_destroy(&r);
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    MDB_stat ms;
    if (!rc && !mdb_stat(t->txn, t->s->byvil, &ms) && ms.ms_entries != live)
        rc = why_set(why, LX_ECORRUPT, "village index lists %zu records, %llu are live",
                     (size_t)ms.ms_entries, (unsigned long long)live);
    /* Compare the recomputed sums with the stored ones, both ways. */
    size_t found = 0;
    for (size_t i = 0; !rc && i < t->capvd; i++) {
        vdelta_t *v = &t->vd[i];
        if (!v->village)
            continue;
        found++;
        unsigned char key[8];
        put_u64(key, v->village);
        MDB_val vk = {8, key}, vd;
        char cs[CODE_STRLEN + 1];
        if (mdb_get(t->txn, t->s->vdig, &vk, &vd) || vd.mv_size != 40
            || get_u64(vd.mv_data) != (uint64_t)v->count
            || memcmp((char *)vd.mv_data + 8, v->sum, 32) != 0)
            rc = why_set(why, LX_ECORRUPT, "village %s: stored digest sum differs",
                         code_fmt(v->village, cs));
    }
    if (!rc && !mdb_stat(t->txn, t->s->vdig, &ms) && ms.ms_entries != found)
        rc = why_set(why, LX_ECORRUPT, "%zu villages have digest sums, %zu hold records",
                     (size_t)ms.ms_entries, found);
    free(t->vd);
    t->vd = save;
    t->capvd = savecap;
    t->nvd = saven;
    return rc > 0 ? lmdb_err(rc, why, "verify") : rc;
}

int store_stats(stxn_t *t, store_stats_t *st)
{
    memset(st, 0, sizeof *st);
    if (t->nvd && vdig_flush(t))
        return LX_EIO;
    MDB_stat ms;
    int rc;
    if ((rc = mdb_stat(t->txn, t->s->byvil, &ms)))
        return lmdb_err(rc, NULL, "stats");
    st->records = ms.ms_entries;
    if ((rc = mdb_stat(t->txn, t->s->vdig, &ms)))
        return lmdb_err(rc, NULL, "stats");
    st->villages = ms.ms_entries;
    if ((rc = mdb_stat(t->txn, t->s->conf, &ms)))
        return lmdb_err(rc, NULL, "stats");
    st->conflicts = ms.ms_entries;
    if ((rc = mdb_stat(t->txn, t->s->dup, &ms)))
        return lmdb_err(rc, NULL, "stats");
    st->duplicates = ms.ms_entries;
    if (t->s->has_idnp) {
        if ((rc = mdb_stat(t->txn, t->s->idnp, &ms)))
            return lmdb_err(rc, NULL, "stats");
        st->idn_pending = ms.ms_entries;
    }
    st->last_seq = t->seq;
    st->hlc = t->clock.last;
    MDB_envinfo info;
    mdb_env_info(t->s->env, &info);
    if ((rc = mdb_env_stat(t->s->env, &ms)))
        return lmdb_err(rc, NULL, "stats");
    st->bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    return LX_OK;
}

int store_each_conflict(stxn_t *t, store_conflict_cb cb, void *arg)
{
    return store_each_conflict_from(t, 1, cb, arg);
}

int store_each_conflict_from(stxn_t *t, uint64_t from, store_conflict_cb cb, void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->conf, &c);
    if (rc)
        return lmdb_err(rc, NULL, "conflicts");
    unsigned char sk[8];
    put_u64(sk, from);
    MDB_val k = {8, sk}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        field_t kept = {0}, lost = {0};
        char *id = NULL;
        rc = mp_unpack(d.mv_data, d.mv_size, &u, NULL);
        if (!rc)
            rc = mp_array(&u.data, "conflict", 3, 3, NULL);
        if (!rc)
            rc = mp_str(&u.data.via.array.ptr[0], "id", &id, NULL);
        if (!rc)
            rc = field_from_obj(&u.data.via.array.ptr[1], &kept, NULL);
        if (!rc)
            rc = field_from_obj(&u.data.via.array.ptr[2], &lost, NULL);
        if (!rc) {
            conflict_t cf = {get_u64(k.mv_data), id, &kept, &lost};
            rc = cb(arg, &cf);
        }
        field_free(&kept);
        field_free(&lost);
        free(id);
        msgpack_unpacked_destroy(&u);
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

int store_each_duplicate(stxn_t *t, store_dup_cb cb, void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dup, &c);
    if (rc)
        return lmdb_err(rc, NULL, "duplicates");
    MDB_val k, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        const char *p = k.mv_data;
        const char *z = memchr(p, 0, k.mv_size);
        if (!z) {
            rc = LX_ECORRUPT;
            break;
        }
        char idn[IDNUM_MAX + 1], id[65];
        size_t a = (size_t)(z - p), b = k.mv_size - a - 1;
        if (a > IDNUM_MAX || b > 64) {
            rc = LX_ECORRUPT;
            break;
        }
        memcpy(idn, p, a);
        idn[a] = 0;
        memcpy(id, z + 1, b);
        id[b] = 0;
        if ((rc = cb(arg, idn, id)))
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? LX_OK : rc;
}

typedef struct {
    char (*ids)[65];
    uint32_t max, n;
} found_t;

static int found_one(void *arg, const char *id)
{
    found_t *x = arg;
    if (x->n < x->max)
        snprintf(x->ids[x->n], 65, "%s", id);
    x->n++;
    return 0;
}

int store_find_idnum(stxn_t *t, const char *idnum, char ids[][65],
                     uint32_t max, uint32_t *n)
{
    *n = 0;
    if (strlen(idnum) > IDNUM_MAX || !idnum[0])
        return LX_OK;
    /* A writer's pending map is current; a reader reads idnp. */
    idnmap_t *own = NULL;
    int rc = pend_ready(t);
    if (rc)
        return lmdb_err(rc, NULL, "find");
    const idnmap_t *pend = t->write ? t->s->pend : NULL;
    if (!pend && t->s->has_idnp) {
        if (!(own = idnmap_new()))
            return LX_ENOMEM;
        rc = pend_read(t->txn, t->s, own);
        pend = own;
    }
    found_t f = {ids, max, 0};
    if (!rc)
        rc = holders(t, pend, idnum, found_one, &f);
    idnmap_destroy(&own);
    *n = f.n;
    return lmdb_err(rc, NULL, "find");
}

void store_set_idn_defer(store_t *s, size_t n) { s->idn_defer = n; }

size_t store_idn_pending(const store_t *s) { return s->pend ? idnmap_count(s->pend) : 0; }

int store_idn_fold(store_t *s, size_t max)
{
    stxn_t *t;
    int rc = store_begin(s, true, &t);
    if (rc)
        return rc;
    if ((rc = pend_ready(t))) {
        store_abort(&t);
        return lmdb_err(rc, NULL, "fold");
    }
    if (idnmap_count(s->pend) && (rc = idn_fold(t, max))) {
        store_abort(&t);
        return lmdb_err(rc, NULL, "fold");
    }
    /* Index upkeep: a fold undone by a crash leaves the changes pending,
     * which is as right. */
    return store_commit_lazy(&t);
}

/* ---- the audit table (its layout is common/audit.c's) ---- */

int store_audit_get(stxn_t *t, const void *key, size_t klen, const void **val, size_t *vlen)
{
    if (!t->s->has_audit)
        return LX_ENOTFOUND;
    MDB_val k = {klen, (void *)key}, d;
    int rc = mdb_get(t->txn, t->s->audit, &k, &d);
    if (rc)
        return lmdb_err(rc, NULL, "audit");
    *val = d.mv_data;
    *vlen = d.mv_size;
    return LX_OK;
}

int store_audit_put(stxn_t *t, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!t->s->has_audit)
        return LX_EIO;
    MDB_val k = {klen, (void *)key}, d = {vlen, (void *)val};
    return lmdb_err(mdb_put(t->txn, t->s->audit, &k, &d, 0), NULL, "audit");
}

int store_audit_each(stxn_t *t, const void *from, size_t flen, bool backward,
                     store_kv_cb cb, void *arg)
{
    if (!t->s->has_audit)
        return LX_OK;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->audit, &c);
    if (rc)
        return lmdb_err(rc, NULL, "audit");
    MDB_val k = {flen, (void *)from}, d;
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    if (backward) {
        /* The last key at or before `from`. */
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
        else if (!rc && (k.mv_size != flen || memcmp(k.mv_data, from, flen) != 0))
            rc = mdb_cursor_get(c, &k, &d, MDB_PREV);
    }
    int ret = LX_OK;
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &d, backward ? MDB_PREV : MDB_NEXT))
        if ((ret = cb(arg, k.mv_data, k.mv_size, d.mv_data, d.mv_size)) != 0)
            break;
    mdb_cursor_close(c);
    if (ret == 1)
        ret = LX_OK;
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = lmdb_err(rc, NULL, "audit");
    return ret;
}

uint64_t store_audit_count(stxn_t *t)
{
    MDB_stat st;
    if (!t->s->has_audit || mdb_stat(t->txn, t->s->audit, &st))
        return 0;
    return st.ms_entries;
}
