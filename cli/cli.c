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

void cli_beside(const char *data, const char *name, char *out, size_t n)
{
    char d[4096];
    snprintf(d, sizeof d, "%s", data);
    size_t len = strlen(d);
    while (len > 1 && d[len - 1] == '/')
        d[--len] = '\0';
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(d, sizeof d, ".");
    snprintf(out, n, "%s/%s", d, name);
}

int cli_write(stxn_t *t, record_t *r, const char *author, write_mode_t mode,
              bool checked, const effective_t *eff, apply_t *res, why_t *why)
{
    write_opts_t o = {.author = author, .mode = mode, .checked = checked, .eff = eff};
    return policy_write(t, r, &o, res, why);
}
