#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lianxin %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_usage(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lianxin %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n", usage);
    return EXIT_USAGE;
}

int cli_exit(int rc)
{
    return rc == LX_OK ? 0 : rc == LX_EUSAGE ? EXIT_USAGE : 1;
}

store_t *cli_open(const char *cmd, const char *dir, unsigned flags)
{
    store_t *s = NULL;
    why_t why = {""};
    int rc = store_open(dir, flags, &s, &why);
    if (rc) {
        cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
        return NULL;
    }
    return s;
}

void cli_author(char *out, size_t n, code_t node, const char *given)
{
    char c[CODE_STRLEN + 1];
    if (given) {
        snprintf(out, n, "%s", given);
        return;
    }
    const char *user = getenv("LOGNAME");
    if (!user || !*user)
        user = "operator";
    snprintf(out, n, "%s/local/%s", code_fmt(node, c), user);
}

char *cli_slurp(const char *path, size_t *len, why_t *why)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        why_set(why, LX_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    bool err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || err) {
        free(buf);
        why_set(why, LX_EIO, "%s: %s", path, buf ? "read error" : "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

FILE *cli_out(const char *path, why_t *why)
{
    if (!path || strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "wb");
    if (!f)
        why_set(why, LX_EIO, "%s: %s", path, strerror(errno));
    return f;
}

int cli_write(stxn_t *t, record_t *r, const char *author, write_mode_t mode,
              bool checked, apply_t *res, why_t *why)
{
    code_t node = store_code_of(t);
    hlc_t now = store_tick(t);
    char idbuf[32];
    if (!r->id) {
        record_id_make(node, now, idbuf);
        if (!(r->id = strdup(idbuf)))
            return LX_ENOMEM;
    }
    record_t *cur = NULL;
    int rc = store_get(t, r->id, &cur, why);
    if (rc == LX_ENOTFOUND) {
        if (mode == WRITE_EXISTING)
            return why_set(why, LX_ENOTFOUND, "no record with id %s", r->id);
        if (!(cur = record_new(r->id)))
            return LX_ENOMEM;
        rc = LX_OK;
    } else if (rc) {
        return rc;
    } else if (mode == WRITE_NEW) {
        record_destroy(&cur);
        return why_set(why, LX_EEXIST, "a record with id %s already exists", r->id);
    }
    /* A field set to the value it already holds is no change: drop it, so
     * that it is neither versioned anew nor logged. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *old = record_field(cur, r->f[i].name);
        if (old && val_eq(&old->val, &r->f[i].val))
            field_free(&r->f[i]);
        else
            r->f[kept++] = r->f[i];
    }
    r->n = kept;
    for (uint32_t i = 0; i < r->n; i++) {
        field_t *f = &r->f[i];
        const field_t *old = record_field(cur, f->name);
        /* The author is borrowed for the apply and handed back below:
         * one string for every field of every row of an import. */
        free(f->ver.author);
        f->ver = (ver_t){.hlc = now, .origin = node, .base = old ? old->ver.hlc : 0,
                         .author = (char *)author};
        if (cur->n && (rc = record_put(cur, f)))
            break;
    }
    /* A new record is checked as it is; an existing one as it will be. */
    if (!rc && (cur->n || !checked))
        rc = schema_check_record(cur->n ? cur : r, node, why);
    record_destroy(&cur);
    if (!rc)
        rc = store_apply(t, r->id, r->f, r->n, 0, res, why);
    for (uint32_t i = 0; i < r->n; i++)
        if (r->f[i].ver.author == author)
            r->f[i].ver.author = NULL;
    return rc;
}
