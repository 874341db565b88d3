/* lianxin import | export | gen: many children at once. */
#include "cli.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/csv.h"
#include "common/csvout.h"
#include "common/divs.h"
#include "common/effective.h"
#include "common/gen.h"
#include "common/recjson.h"

#define OPT_HELP {"help", no_argument, 0, 'h'}
#define MAX_REPORTED 50      /* bad rows listed before "and N more" */
#define SKIP_BATCH 20000     /* rows per transaction with --skip-bad */

/* ---- import ---- */

static const char *IMPORT_USAGE =
    "lianxin import --data DIR --csv FILE [--skip-bad] [--author A] [--quiet]";

typedef struct {
    const char *path;
    const effective_t *eff;   /* the schema of the columns */
    const field_def_t **cols; /* per column; NULL for the id column */
    uint32_t ncols;
    int idcol;
} header_t;

static int read_header(header_t *h, const csv_row_t *row, why_t *why)
{
    h->ncols = row->n;
    h->idcol = -1;
    h->cols = calloc(row->n, sizeof *h->cols);
    if (!h->cols)
        return LX_ENOMEM;
    for (uint32_t i = 0; i < row->n; i++) {
        const char *name = row->cells[i];
        if (strcmp(name, "id") == 0) {
            h->idcol = (int)i;
            continue;
        }
        if (!(h->cols[i] = eff_field(h->eff, name)))
            return why_set(why, LX_EINVAL, "%s line %llu: column %u: unknown field '%.64s'",
                           h->path, (unsigned long long)row->line, i + 1, name);
        for (uint32_t j = 0; j < i; j++)
            if (h->cols[j] == h->cols[i])
                return why_set(why, LX_EINVAL, "%s line %llu: column %u: field %s appears twice",
                               h->path, (unsigned long long)row->line, i + 1, name);
    }
    return LX_OK;
}

/* Turns one row into a record of unstamped fields. */
static int row_record(const header_t *h, const csv_row_t *row, record_t **out,
                      why_t *why)
{
    if (row->n != h->ncols)
        return why_set(why, LX_EINVAL, "%s line %llu: %u cells, the header has %u",
                       h->path, (unsigned long long)row->line, row->n, h->ncols);
    record_t *r = record_new(NULL);
    if (!r)
        return LX_ENOMEM;
    int rc = LX_OK;
    for (uint32_t i = 0; i < row->n && !rc; i++) {
        const char *cell = row->cells[i];
        if ((int)i == h->idcol) {
            if (*cell && !record_id_valid(cell))
                rc = why_set(why, LX_EINVAL, "field id: expected 1-64 characters of A-Z a-z 0-9 _ -");
            else if (*cell && !(r->id = strdup(cell)))
                rc = LX_ENOMEM;
            continue;
        }
        if (!*cell)
            continue; /* an empty cell leaves the field absent */
        field_t f = {0};
        if (!(rc = schema_parse_text(h->cols[i], cell, &f.val, why))) {
            if ((f.name = strdup(h->cols[i]->name)))
                rc = record_take(r, &f);
            else
                rc = LX_ENOMEM;
            field_free(&f);
        }
    }
    if (rc) {
        record_destroy(&r);
        return why_prefix(why, rc, "%s line %llu", h->path, (unsigned long long)row->line);
    }
    *out = r;
    return LX_OK;
}

/* The import runs as a pipeline on two threads: a reader parses and
 * checks rows (CSV, field values, the whole record when it stands alone)
 * while the main thread merges them into the store, in file order. */
#define BATCH_ROWS 512
#define QUEUE_BATCHES 8

typedef struct {
    record_t *rec;     /* NULL for a bad row */
    uint64_t rec_line; /* the row's line */
    bool checked;      /* rec passed the schema on its own */
    char *msg;         /* why a row is bad */
} item_t;

typedef struct {
    item_t it[BATCH_ROWS];
    size_t n;
    size_t offset;     /* bytes of the file read, for progress */
} batch_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch_t *q[QUEUE_BATCHES];
    size_t head, count;
    bool done, stop;
    csv_t *c;
    const header_t *h;
    code_t node;
} reader_t;

static void batch_free(batch_t *b)
{
    for (size_t i = 0; b && i < b->n; i++) {
        record_destroy(&b->it[i].rec);
        free(b->it[i].msg);
    }
    free(b);
}

static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    bool eof = false;
    while (!eof) {
        batch_t *b = calloc(1, sizeof *b);
        while (b && b->n < BATCH_ROWS) {
            why_t why = {""};
            csv_row_t row;
            int r = csv_next(rd->c, &row, &why);
            if (r == 0) {
                eof = true;
                break;
            }
            item_t *it = &b->it[b->n++];
            it->rec_line = row.line;
            if (r < 0)
                why_prefix(&why, r, "%s", rd->h->path);
            else if ((r = row_record(rd->h, &row, &it->rec, &why)) == LX_OK)
                it->checked = schema_check_record(it->rec, rd->node, NULL) == LX_OK;
            if (r && !(it->msg = strdup(why.msg[0] ? why.msg : err_str(r))))
                eof = true;
        }
        if (b)
            b->offset = csv_offset(rd->c);
        pthread_mutex_lock(&rd->mu);
        while (rd->count == QUEUE_BATCHES && !rd->stop)
            pthread_cond_wait(&rd->cv, &rd->mu);
        if (rd->stop || !b) {
            pthread_mutex_unlock(&rd->mu);
            batch_free(b);
            break;
        }
        rd->q[(rd->head + rd->count++) % QUEUE_BATCHES] = b;
        pthread_cond_broadcast(&rd->cv);
        pthread_mutex_unlock(&rd->mu);
    }
    pthread_mutex_lock(&rd->mu);
    rd->done = true;
    pthread_cond_broadcast(&rd->cv);
    pthread_mutex_unlock(&rd->mu);
    return NULL;
}

/* The next batch in file order, or NULL when the reader is done. */
static batch_t *reader_next(reader_t *rd)
{
    pthread_mutex_lock(&rd->mu);
    while (rd->count == 0 && !rd->done)
        pthread_cond_wait(&rd->cv, &rd->mu);
    batch_t *b = NULL;
    if (rd->count) {
        b = rd->q[rd->head];
        rd->head = (rd->head + 1) % QUEUE_BATCHES;
        rd->count--;
        pthread_cond_broadcast(&rd->cv);
    }
    pthread_mutex_unlock(&rd->mu);
    return b;
}

static void reader_stop(reader_t *rd, pthread_t th)
{
    pthread_mutex_lock(&rd->mu);
    rd->stop = true;
    pthread_cond_broadcast(&rd->cv);
    pthread_mutex_unlock(&rd->mu);
    pthread_join(th, NULL);
    while (rd->count) {
        batch_free(rd->q[rd->head]);
        rd->head = (rd->head + 1) % QUEUE_BATCHES;
        rd->count--;
    }
}

int cmd_import(int argc, char **argv)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"csv", required_argument, 0, 'c'},
        {"skip-bad", no_argument, 0, 's'}, {"author", required_argument, 0, 'a'},
        {"quiet", no_argument, 0, 'q'}, OPT_HELP, {0}};
    const char *data = NULL, *path = NULL, *author_opt = NULL;
    bool skip = false, quiet = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:c:sa:qh", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'c': path = optarg; break;
        case 's': skip = true; break;
        case 'a': author_opt = optarg; break;
        case 'q': quiet = true; break;
        case 'h':
            printf("usage: %s\nImports rows whose header names the fields. Nothing is "
                   "stored if any row is bad,\nunless --skip-bad, which stores the good "
                   "rows and reports each bad one by line.\n", IMPORT_USAGE);
            return 0;
        default: return cli_usage("import", IMPORT_USAGE, "bad option");
        }
    }
    if (!data || !path)
        return cli_usage("import", IMPORT_USAGE, "--data and --csv are required");

    /* A bulk load makes LMDB malloc a dirty page per 4 KiB it writes:
     * grow the heap in large steps and keep it, instead of a brk and a
     * trim for every few pages (measured: a third off the merge time). */
    mallopt(M_TOP_PAD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    why_t why = {""};
    size_t len;
    char *buf = cli_slurp(path, &len, &why);
    if (!buf)
        return cli_fail("import", "%s", why.msg);
    store_t *s = cli_open("import", data, 0);
    if (!s) {
        free(buf);
        return 1;
    }
    char author[160];
    cli_author(author, sizeof author, store_code(s), author_opt);

    csv_t *c = csv_new(buf, len);
    header_t h = {.path = path};
    csv_row_t row;
    stxn_t *t = NULL;
    uint64_t good = 0, bad = 0, changed = 0, in_txn = 0;
    bool progress = !quiet && len > (4u << 20);
    time_t last = time(NULL);
    effective_t *eff = NULL;
    char today[11];
    policy_today(hlc_wall_ms(), today);
    int rc = c ? csv_next(c, &row, &why) : LX_ENOMEM;
    if (rc == 0)
        rc = why_set(&why, LX_EINVAL, "%s: empty file, expected a header row", path);
    else if (rc < 0)
        why_prefix(&why, rc, "%s", path);
    /* A stored child takes about five times its CSV row. */
    store_reserve(s, len * 6);
    /* The columns are the effective schema's: local fields too. */
    if (rc == 1)
        rc = store_begin(s, true, &t);
    if (!rc)
        rc = policy_effective(t, today, &eff, &why);
    if (!rc) {
        h.eff = eff;
        rc = read_header(&h, &row, &why);
    }

    reader_t rd = {.c = c, .h = &h, .node = store_code(s)};
    pthread_t th;
    bool started = false;
    if (!rc) {
        pthread_mutex_init(&rd.mu, NULL);
        pthread_cond_init(&rd.cv, NULL);
        if (pthread_create(&th, NULL, reader_main, &rd))
            rc = why_set(&why, LX_ENOMEM, "cannot start the reader thread");
        else
            started = true;
    }
    batch_t *b;
    while (!rc && (b = reader_next(&rd))) {
        for (size_t i = 0; i < b->n && !rc; i++) {
            item_t *it = &b->it[i];
            apply_t res;
            int r = LX_EINVAL;
            if (it->rec) {
                r = cli_write(t, it->rec, author, WRITE_UPSERT, it->checked, eff, &res, &why);
                if (r == LX_ENOMEM || r == LX_EIO || r == LX_EFULL || r == LX_ECORRUPT) {
                    rc = r; /* the store failed: stop, whatever the mode */
                    break;
                }
            }
            if (r) {
                bad++;
                const char *msg = it->msg ? it->msg : why.msg;
                if (bad <= MAX_REPORTED || skip) {
                    if (it->msg)
                        fprintf(stderr, "lianxin import: %s\n", msg);
                    else
                        fprintf(stderr, "lianxin import: %s line %llu: %s\n", path,
                                (unsigned long long)it->rec_line, msg);
                }
                why.msg[0] = '\0';
                continue;
            }
            good++;
            changed += res.changed ? 1 : 0;
            if (skip && ++in_txn >= SKIP_BATCH) {
                in_txn = 0;
                if (!(rc = store_commit(&t)))
                    rc = store_begin(s, true, &t);
            }
        }
        if (progress && time(NULL) != last) {
            last = time(NULL);
            fprintf(stderr, "import: %llu rows, %.0f%%\n",
                    (unsigned long long)(good + bad), 100.0 * (double)b->offset / (double)len);
        }
        batch_free(b);
    }
    if (started) {
        reader_stop(&rd, th);
        pthread_cond_destroy(&rd.cv);
        pthread_mutex_destroy(&rd.mu);
    }
    if (!rc && bad && !skip) {
        if (bad > MAX_REPORTED)
            fprintf(stderr, "lianxin import: ... and %llu more bad rows\n",
                    (unsigned long long)(bad - MAX_REPORTED));
        rc = why_set(&why, LX_EINVAL, "%s: %llu bad row%s, nothing imported "
                     "(fix them, or use --skip-bad)", path, (unsigned long long)bad,
                     bad == 1 ? "" : "s");
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    effective_free(&eff);
    csv_destroy(&c);
    free(h.cols);
    free(buf);
    if (rc)
        return cli_fail("import", "%s", why.msg[0] ? why.msg : err_str(rc));
    printf("imported %llu rows (%llu changed records)", (unsigned long long)good,
           (unsigned long long)changed);
    if (bad)
        printf(", skipped %llu bad rows", (unsigned long long)bad);
    printf("\n");
    return 0;
}

/* ---- export ---- */

static const char *EXPORT_USAGE =
    "lianxin export --data DIR --format csv|json [--out FILE] [--subtree CODE]";

typedef struct {
    FILE *f;
    uint64_t n;       /* records written */
    csvout_t *csv;    /* CSV: the columns */
    char *jbuf;       /* JSON: one record's text */
    size_t jcap;
} exportctx_t;

/* Local fields held in records, for the CSV columns: those this node's
 * schema defines and those that came from below. Read from the stored
 * bytes; a record the reader does not take is decoded. */
static void local_add(void *arg, const char *name)
{
    json_t *names = arg;
    if (!json_object_get(names, name))
        json_object_set_new(names, name, json_true());
}

static int local_cb(void *arg, const void *buf, size_t len)
{
    if (csvout_packed_locals(buf, len, local_add, arg))
        return 0;
    record_t *r;
    int rc = record_decode(buf, len, &r, NULL);
    for (uint32_t i = 0; !rc && i < r->n; i++)
        if (schema_local_name(r->f[i].name))
            local_add(arg, r->f[i].name);
    if (!rc)
        record_destroy(&r);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The CSV's columns: the local names sorted after the schema's. */
static int columns(stxn_t *t, code_t under, const effective_t *eff, csvout_t **out)
{
    json_t *names = json_object();
    if (!names)
        return LX_ENOMEM;
    for (size_t i = schema_count(); eff && i < eff->nfields; i++)
        json_object_set_new(names, eff->fields[i].def.name, json_true());
    int rc = store_each_packed(t, under, local_cb, names);
    size_t n = json_object_size(names), k = 0;
    const char **local = rc ? NULL : malloc((n ? n : 1) * sizeof *local);
    if (local) {
        const char *name;
        json_t *v;
        json_object_foreach(names, name, v)
            local[k++] = name;
        qsort(local, k, sizeof *local, by_name);
        *out = csvout_new(local, k);
    }
    if (!rc && !*out)
        rc = LX_ENOMEM;
    free(local);
    json_decref(names);
    return rc;
}

static int export_json(void *arg, const record_t *r)
{
    exportctx_t *x = arg;
    json_t *j = recjson_from_record(r, false);
    if (!j)
        return LX_ENOMEM;
    /* Dumped into a buffer and written at once: json_dumpf makes an
     * fwrite of every token, which took a fifth of the export. */
    size_t n = json_dumpb(j, x->jbuf, x->jcap, JSON_COMPACT);
    if (n > x->jcap) {
        char *nb = realloc(x->jbuf, n);
        if (nb) {
            x->jbuf = nb;
            x->jcap = n;
            n = json_dumpb(j, x->jbuf, x->jcap, JSON_COMPACT);
        } else {
            n = 0;
        }
    }
    json_decref(j);
    if (n == 0 || n > x->jcap)
        return LX_ENOMEM;
    fputs(x->n ? ",\n" : "[\n", x->f);
    fwrite(x->jbuf, 1, n, x->f);
    x->n++;
    return ferror(x->f) ? LX_EIO : 0;
}

static int export_csv(void *arg, const void *buf, size_t len)
{
    exportctx_t *x = arg;
    if (!csvout_packed(x->csv, x->f, buf, len)) {
        record_t *r;
        int rc = record_decode(buf, len, &r, NULL);
        if (rc)
            return rc;
        csvout_record(x->csv, x->f, r);
        record_destroy(&r);
    }
    x->n++;
    return ferror(x->f) ? LX_EIO : 0;
}

int cmd_export(int argc, char **argv)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'o'}, {"subtree", required_argument, 0, 's'},
        OPT_HELP, {0}};
    const char *data = NULL, *format = NULL, *out = NULL, *sub = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:f:o:s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 's': sub = optarg; break;
        case 'h':
            printf("usage: %s\nWrites every live record this node holds. CSV has the "
                   "header of `lianxin import`;\nlists are joined with ';'.\n", EXPORT_USAGE);
            return 0;
        default: return cli_usage("export", EXPORT_USAGE, "bad option");
        }
    }
    if (!data || !format)
        return cli_usage("export", EXPORT_USAGE, "--data and --format are required");
    bool json = strcmp(format, "json") == 0;
    if (!json && strcmp(format, "csv") != 0)
        return cli_usage("export", EXPORT_USAGE, "--format must be csv or json");
    code_t under = 0;
    if (sub && code_parse(sub, &under))
        return cli_fail("export", "--subtree %s: not a 12-digit division code", sub);
    store_t *s = cli_open("export", data, STORE_RDONLY);
    if (!s)
        return 1;
    why_t why = {""};
    /* Write to a temporary file and rename, so a failed export never
     * leaves a partial file that looks complete. */
    char tmp[4096];
    FILE *f;
    if (out && strcmp(out, "-") != 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
        f = cli_out(tmp, &why);
    } else {
        f = stdout;
    }
    if (!f) {
        store_close(&s);
        return cli_fail("export", "%s", why.msg);
    }
    exportctx_t x = {f, 0, NULL, NULL, 0};
    stxn_t *t = NULL;
    effective_t *eff = NULL;
    char today[11];
    policy_today(hlc_wall_ms(), today);
    int rc = store_begin(s, false, &t);
    if (!rc && !json && !(rc = policy_effective(t, today, &eff, &why)))
        rc = columns(t, under, eff, &x.csv);
    if (!rc && !json)
        csvout_header(x.csv, f);
    if (!rc)
        rc = json ? store_each_record(t, under, export_json, &x)
                  : store_each_packed(t, under, export_csv, &x);
    effective_free(&eff);
    csvout_destroy(&x.csv);
    free(x.jbuf);
    store_abort(&t);
    store_close(&s);
    if (json)
        fputs(x.n ? "\n]\n" : "[]\n", f);
    if (fflush(f) || ferror(f))
        rc = LX_EIO;
    if (f != stdout) {
        if (fclose(f))
            rc = LX_EIO;
        if (rc || rename(tmp, out)) {
            unlink(tmp);
            return cli_fail("export", "%s: %s", out, err_str(rc ? rc : LX_EIO));
        }
    }
    if (rc)
        return cli_fail("export", "%s", err_str(rc));
    return 0;
}

/* ---- gen ---- */

static const char *GEN_USAGE =
    "lianxin gen --subtree CODE --count N [--seed S] [--today YYYYMMDD] "
    "[--villages K] [--out FILE]";

int cmd_gen(int argc, char **argv)
{
    static struct option opts[] = {
        {"subtree", required_argument, 0, 's'}, {"count", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 'S'}, {"today", required_argument, 0, 't'},
        {"villages", required_argument, 0, 'v'}, {"out", required_argument, 0, 'o'},
        OPT_HELP, {0}};
    const char *sub = NULL, *out = NULL;
    unsigned long long count = 0, seed = 1, today = 0, maxvil = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "s:n:S:t:v:o:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': sub = optarg; break;
        case 'n': count = strtoull(optarg, NULL, 10); break;
        case 'S': seed = strtoull(optarg, NULL, 10); break;
        case 't': today = strtoull(optarg, NULL, 10); break;
        case 'v': maxvil = strtoull(optarg, NULL, 10); break;
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: %s\nWrites N synthetic children (deterministic by seed) as "
                   "CSV for `lianxin import`,\nspread over the real villages under CODE "
                   "(data/divisions), at most K of them.\n", GEN_USAGE);
            return 0;
        default: return cli_usage("gen", GEN_USAGE, "bad option");
        }
    }
    code_t node;
    if (!sub || code_parse(sub, &node))
        return cli_usage("gen", GEN_USAGE, "--subtree must be a 12-digit division code");
    if (today == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        today = (unsigned long long)(tm.tm_year + 1900) * 10000 + (unsigned)(tm.tm_mon + 1) * 100
                + (unsigned)tm.tm_mday;
    }
    /* The villages: the node itself, the real ones under it, or (for codes
     * the tables do not know) made-up village committees 201, 202, ... */
    code_t *vil = NULL;
    size_t nvil = 0;
    if (code_level(node) == LEVEL_VILLAGE) {
        vil = malloc(sizeof *vil);
        vil[nvil++] = node;
    } else {
        char dir[4096];
        divs_t *d = NULL;
        why_t why = {""};
        if (divs_load(divs_default_dir(dir, sizeof dir), &d, &why) == LX_OK) {
            size_t all = divs_villages(d, node, NULL, 0);
            vil = malloc((all ? all : 1) * sizeof *vil);
            nvil = divs_villages(d, node, vil, all);
            divs_destroy(&d);
        }
        if (nvil == 0 && code_level(node) == LEVEL_TOWNSHIP) {
            free(vil);
            size_t k = maxvil ? maxvil : 5;
            vil = malloc(k * sizeof *vil);
            for (size_t i = 0; i < k && i < 199; i++)
                vil[nvil++] = node + 201 + i;
        }
    }
    if (nvil == 0) {
        free(vil);
        return cli_fail("gen", "--subtree %s: no villages known under it", sub);
    }
    if (maxvil && nvil > maxvil) {
        /* Spread the chosen villages over the whole subtree. */
        for (size_t i = 0; i < maxvil; i++)
            vil[i] = vil[i * nvil / maxvil];
        nvil = maxvil;
    }
    gen_t *g = gen_new(seed, vil, nvil, (uint32_t)today);
    free(vil);
    if (!g)
        return cli_fail("gen", "cannot start the generator");
    why_t why = {""};
    FILE *f = cli_out(out, &why);
    if (!f) {
        gen_destroy(&g);
        return cli_fail("gen", "%s", why.msg);
    }
    for (size_t i = 0; i < schema_count(); i++)
        fprintf(f, "%s%s", i ? "," : "", schema_at(i)->name);
    fputs("\r\n", f);
    int rc = LX_OK;
    for (unsigned long long i = 0; i < count && !rc; i++) {
        record_t *r;
        if ((rc = gen_child(g, &r)))
            break;
        for (size_t k = 0; k < schema_count(); k++) {
            const field_t *fl = record_field(r, schema_at(k)->name);
            if (k)
                fputc(',', f);
            if (fl)
                csvout_val(f, &fl->val);
        }
        fputs("\r\n", f);
        record_destroy(&r);
    }
    gen_destroy(&g);
    if (fflush(f) || ferror(f))
        rc = LX_EIO;
    if (f != stdout)
        fclose(f);
    return rc ? cli_fail("gen", "%s", err_str(rc)) : 0;
}
