#include "divs.h"
#include "csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    code_t code;
    char *name;
} unit_t;

struct divs {
    unit_t *u;
    size_t n, cap;
    code_t under;   /* 0: every unit; else only under's subtree and ancestors */
};

static int cmp_unit(const void *a, const void *b)
{
    const unit_t *x = a, *y = b;
    return x->code < y->code ? -1 : x->code > y->code;
}

/* Pads a short code (2, 4, 6, 9 or 12 digits) to 12 digits. */
static int pad_code(const char *s, code_t *out)
{
    size_t n = strlen(s);
    if (n != 2 && n != 4 && n != 6 && n != 9 && n != 12)
        return LX_EINVAL;
    char buf[CODE_STRLEN + 1];
    memset(buf, '0', CODE_STRLEN);
    memcpy(buf, s, n);
    buf[CODE_STRLEN] = '\0';
    return code_parse(buf, out);
}

static int load_file(divs_t *d, const char *dir, const char *file, why_t *why)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return why_set(why, LX_ENOTFOUND, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return why_set(why, LX_EIO, "%s: cannot read", path);
    }
    fclose(f);
    csv_t *c = csv_new(buf, (size_t)len);
    csv_row_t row;
    int rc = c ? LX_OK : LX_ENOMEM;
    bool header = true;
    while (!rc && (rc = csv_next(c, &row, why)) == 1) {
        rc = LX_OK;
        if (header) {
            header = false;
            continue;
        }
        code_t code;
        if (row.n < 2 || pad_code(row.cells[0], &code)) {
            rc = why_set(why, LX_EINVAL, "%s line %llu: bad code", path,
                         (unsigned long long)row.line);
            break;
        }
        if (d->n == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 1024;
            unit_t *nu = realloc(d->u, cap * sizeof *nu);
            if (!nu) {
                rc = LX_ENOMEM;
                break;
            }
            d->u = nu;
            d->cap = cap;
        }
        if (d->under && !code_contains(d->under, code) && !code_contains(code, d->under))
            continue;
        d->u[d->n].code = code;
        if (!(d->u[d->n].name = strdup(row.cells[1]))) {
            rc = LX_ENOMEM;
            break;
        }
        d->n++;
    }
    if (rc < 0 && why && strstr(why->msg, path) == NULL)
        why_prefix(why, rc, "%s", path);
    csv_destroy(&c);
    free(buf);
    return rc < 0 ? rc : LX_OK;
}

int divs_load(const char *dir, divs_t **out, why_t *why)
{
    return divs_load_under(dir, 0, out, why);
}

int divs_load_under(const char *dir, code_t under, divs_t **out, why_t *why)
{
    static const char *files[] = {"provinces.csv", "cities.csv", "counties.csv",
                                  "townships.csv", "villages.csv"};
    divs_t *d = calloc(1, sizeof *d);
    if (!d)
        return LX_ENOMEM;
    d->under = under;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int rc = load_file(d, dir, files[i], why);
        if (rc) {
            divs_destroy(&d);
            return rc;
        }
    }
    qsort(d->u, d->n, sizeof *d->u, cmp_unit);
    *out = d;
    return LX_OK;
}

const divs_t *divs_once(divs_once_t *o, code_t under)
{
    if (!o->tried) {
        char dir[4096];
        o->tried = true;
        if (divs_load_under(divs_default_dir(dir, sizeof dir), under, &o->d, NULL))
            o->d = NULL;
    }
    return o->d;
}

void divs_destroy(divs_t **self_p)
{
    divs_t *d = *self_p;
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->u[i].name);
    free(d->u);
    free(d);
    *self_p = NULL;
}

const char *divs_default_dir(char *buf, size_t n)
{
    const char *env = getenv("LIANXIN_DIVISIONS");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return buf;
    }
    /* build/lianxin -> data/divisions in the source tree. */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        for (int up = 0; up < 3; up++) {
            snprintf(buf, n, "%s/data/divisions", exe);
            if (access(buf, R_OK) == 0)
                return buf;
            slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
    }
    snprintf(buf, n, "data/divisions");
    return buf;
}

static size_t lower_bound(const divs_t *d, code_t c)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->u[mid].code < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *divs_name(const divs_t *d, code_t c)
{
    size_t i = lower_bound(d, c);
    return i < d->n && d->u[i].code == c ? d->u[i].name : NULL;
}

size_t divs_villages(const divs_t *d, code_t node, code_t *out, size_t max)
{
    code_t lo, hi;
    code_range(node, &lo, &hi);
    size_t count = 0;
    for (size_t i = lower_bound(d, lo); i < d->n && d->u[i].code < hi; i++) {
        if (code_level(d->u[i].code) != LEVEL_VILLAGE)
            continue;
        if (count < max)
            out[count] = d->u[i].code;
        count++;
    }
    return count;
}
