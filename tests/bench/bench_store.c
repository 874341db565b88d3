/* Store benchmark: durable ingest of generated children next to raw LMDB
 * puts of 1 KiB values (ordered and random keys) in the same run, then
 * the digest and `child get` rates. Prints "name value unit" lines that
 * tests/bench/run turns into a table. */
#include <lmdb.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/gen.h"
#include "common/schema.h"
#include "common/store.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* N puts of 1 KiB values in one transaction, durable (synced at commit)
 * or not (MDB_NOSYNC); *walk gets the rate of a cursor walk over them
 * that reads every value. */
static double raw_lmdb(const char *dir, size_t n, int random, int durable, double *walk)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    char val[1024];
    memset(val, 'x', sizeof val);
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, 8ULL << 30)
        || mdb_env_open(env, dir, MDB_NOTLS | (durable ? 0 : MDB_NOSYNC), 0600)) {
        fprintf(stderr, "raw lmdb: cannot open %s\n", dir);
        exit(1);
    }
    double t0 = now();
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    for (size_t i = 0; i < n; i++) {
        unsigned char k[8];
        uint64_t v = random ? xorshift() : i;
        for (int b = 7; b >= 0; b--, v >>= 8)
            k[b] = (unsigned char)v;
        MDB_val key = {8, k}, d = {sizeof val, val};
        if (mdb_put(txn, dbi, &key, &d, 0)) {
            fprintf(stderr, "raw lmdb: put failed\n");
            exit(1);
        }
    }
    if (mdb_txn_commit(txn)) {
        fprintf(stderr, "raw lmdb: commit failed\n");
        exit(1);
    }
    double dt = now() - t0;
    if (walk) {
        MDB_cursor *cur;
        MDB_val key, d;
        size_t seen = 0, sum = 0;
        double w0 = now();
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
        mdb_cursor_open(txn, dbi, &cur);
        while (mdb_cursor_get(cur, &key, &d, MDB_NEXT) == 0) {
            sum += ((const unsigned char *)d.mv_data)[d.mv_size - 1];
            seen++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        *walk = (double)seen / (now() - w0);
        if (sum == 0)
            fprintf(stderr, "raw lmdb: empty walk\n");
    }
    mdb_env_close(env);
    return (double)n / dt;
}

static int collect(void *arg, const record_t *r)
{
    char ***ids = arg;
    **ids = strdup(r->id);
    (*ids)++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_store DIR N\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t n = strtoull(argv[2], NULL, 10);
    /* As `lianxin import` does for a bulk load. */
    mallopt(M_TOP_PAD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    char path[4096];

    snprintf(path, sizeof path, "mkdir -p %s/raw-o %s/raw-r %s/raw-on %s/raw-rn", dir, dir, dir, dir);
    if (system(path))
        return 1;
    double walk = 0;
    snprintf(path, sizeof path, "%s/raw-o", dir);
    printf("lmdb_put_ordered %.0f puts/s\n", raw_lmdb(path, n, 0, 1, &walk));
    printf("lmdb_walk %.0f values/s\n", walk);
    snprintf(path, sizeof path, "%s/raw-r", dir);
    printf("lmdb_put_random %.0f puts/s\n", raw_lmdb(path, n, 1, 1, NULL));
    snprintf(path, sizeof path, "%s/raw-on", dir);
    printf("lmdb_put_ordered_nosync %.0f puts/s\n", raw_lmdb(path, n, 0, 0, NULL));
    snprintf(path, sizeof path, "%s/raw-rn", dir);
    printf("lmdb_put_random_nosync %.0f puts/s\n", raw_lmdb(path, n, 1, 0, NULL));

    /* The children, generated before the clock starts. */
    code_t county = 510104000000ULL;
    code_t villages[60];
    for (int i = 0; i < 60; i++)
        villages[i] = county + (uint64_t)(1 + i / 6) * 1000 + 201 + (uint64_t)(i % 6);
    gen_t *g = gen_new(1, villages, 60, 20261123);
    record_t **recs = malloc(n * sizeof *recs);
    for (size_t i = 0; i < n; i++)
        if (gen_child(g, &recs[i]))
            return 1;
    gen_destroy(&g);

    snprintf(path, sizeof path, "%s/lx", dir);
    why_t why = {""};
    store_t *s;
    if (store_create(path, county, &why) || store_open(path, 0, &s, &why)) {
        fprintf(stderr, "store: %s\n", why.msg);
        return 1;
    }
    const char *author = "510104000000/local/bench";
    store_reserve(s, n * 2048);
    double t0 = now(), t_check = 0, t_apply = 0;
    stxn_t *t;
    store_begin(s, true, &t);
    for (size_t i = 0; i < n; i++) {
        record_t *r = recs[i];
        hlc_t h = store_tick(t);
        char id[32];
        record_id_make(county, h, id);
        r->id = strdup(id);
        for (uint32_t k = 0; k < r->n; k++)
            r->f[k].ver = (ver_t){.hlc = h, .origin = county, .author = strdup(author)};
        apply_t res;
        double a0 = now();
        int bad = schema_check_record(r, county, &why);
        double a1 = now();
        t_check += a1 - a0;
        if (bad || store_apply(t, r->id, r->f, r->n, 0, &res, &why)) {
            fprintf(stderr, "ingest: %s\n", why.msg);
            return 1;
        }
        t_apply += now() - a1;
    }
    double c0 = now();
    if (store_commit(&t))
        return 1;
    fprintf(stderr, "check %.2fs apply %.2fs commit %.2fs\n", t_check, t_apply, now() - c0);
    double ingest = (double)n / (now() - t0);
    printf("ingest_durable %.0f children/s\n", ingest);
    for (size_t i = 0; i < n; i++)
        record_destroy(&recs[i]);
    free(recs);

    unsigned char d[32];
    store_begin(s, false, &t);
    t0 = now();
    int reps = 20;
    for (int i = 0; i < reps; i++)
        store_digest(t, 0, d);
    printf("digest_ms %.3f ms\n", (now() - t0) * 1000 / reps);
    char **ids = malloc(n * sizeof *ids), **p = ids;
    t0 = now();
    store_each_record(t, 0, collect, &p);
    printf("walk_decode %.0f records/s\n", (double)n / (now() - t0));
    store_abort(&t);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = xorshift() % (i + 1);
        char *x = ids[i];
        ids[i] = ids[j];
        ids[j] = x;
    }
    t0 = now();
    store_begin(s, false, &t);
    for (size_t i = 0; i < n; i++) {
        record_t *r;
        if (store_get(t, ids[i], &r, NULL))
            return 1;
        record_destroy(&r);
    }
    store_abort(&t);
    printf("child_get %.0f gets/s\n", (double)n / (now() - t0));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    store_stats_t st;
    store_begin(s, false, &t);
    store_stats(t, &st);
    store_abort(&t);
    printf("store_bytes_per_child %.0f bytes\n", (double)st.bytes / (double)n);
    store_close(&s);
    return 0;
}
