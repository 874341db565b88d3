#include "csv.h"
#include "err.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Limits that bound what one hostile row can make us allocate: at most
 * CSV_MAX_CELLS * (CSV_MAX_CELL + 1) bytes of cell data. */
#define CSV_MAX_CELLS 1024
#define CSV_MAX_CELL 65536

struct csv {
    const unsigned char *buf;   /* borrowed input */
    size_t len;
    size_t pos;                 /* next unread byte */
    uint64_t line;              /* physical line of buf[pos], 1-based */

    /* The current row's unescaped cells, each NUL-terminated, back to
     * back. Cells are kept as offsets while the row is read because the
     * buffer may move when it grows; pointers are made at the end. */
    char *data;
    size_t used;
    size_t cap;
    size_t offs[CSV_MAX_CELLS];
    char *cells[CSV_MAX_CELLS];
    uint32_t n;                 /* cells recorded in the current row */

    /* Per-row state. Once rc is set the row is bad: the rest of it is
     * still scanned (so that quotes are tracked and the reader stops at
     * a real record end) but nothing more is copied or checked. */
    uint64_t row_line;
    size_t col;                 /* 1-based number of the current cell */
    uint64_t cell_line;         /* line where the current cell starts */
    int rc;
};

csv_t *csv_new(const char *buf, size_t len)
{
    assert(buf || len == 0);
    csv_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->buf = (const unsigned char *)buf;
    c->len = len;
    c->line = 1;
    /* Spreadsheet programs put a BOM in front of "UTF-8 CSV"; it is not
     * part of the first cell. */
    if (len >= 3 && c->buf[0] == 0xEF && c->buf[1] == 0xBB && c->buf[2] == 0xBF)
        c->pos = 3;
    return c;
}

void csv_destroy(csv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

size_t csv_offset(const csv_t *c)
{
    return c->pos;
}

/* Records the row's first failure; later ones are consequences of it or
 * would only bury it. The message names lines and cells, never contents,
 * since imports hold personal data. */
static void fail(csv_t *c, int rc, uint64_t line, const char *what,
                 why_t *why)
{
    if (c->rc)
        return;
    c->rc = rc;
    if (!why)
        return;
    unsigned long long l = line, rl = c->row_line;
    if (line == c->row_line)
        why_set(why, rc, "line %llu: column %zu: %s", l, c->col, what);
    else
        why_set(why, rc, "line %llu: column %zu: %s (row starts on line %llu)",
                l, c->col, what, rl);
}

static int at_eol(const csv_t *c)
{
    return c->pos < c->len && (c->buf[c->pos] == '\n' || c->buf[c->pos] == '\r');
}

/* Consumes one line break: LF, CRLF or a bare CR. The caller has checked
 * at_eol(). */
static void eat_eol(csv_t *c)
{
    if (c->buf[c->pos] == '\r' && c->pos + 1 < c->len && c->buf[c->pos + 1] == '\n')
        c->pos++;
    c->pos++;
    c->line++;
}

static int grow(csv_t *c, size_t need)
{
    size_t cap = c->cap ? c->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(c->data, cap);
    if (!p)
        return LX_ENOMEM;
    c->data = p;
    c->cap = cap;
    return LX_OK;
}

/* Appends bytes of the current cell unless the row is already bad. */
static void put(csv_t *c, const unsigned char *s, size_t n, why_t *why)
{
    if (c->rc)
        return;
    if (c->used - c->offs[c->n] + n > CSV_MAX_CELL) {
        fail(c, LX_EINVAL, c->cell_line, "cell longer than 65536 bytes", why);
        return;
    }
    /* +1 keeps room for the cell's terminating NUL. */
    if (c->used + n + 1 > c->cap && grow(c, c->used + n + 1) != LX_OK) {
        fail(c, LX_ENOMEM, c->line, "out of memory", why);
        return;
    }
    memcpy(c->data + c->used, s, n);
    c->used += n;
}

/* Reads a quoted cell's body from just after the opening quote through
 * the closing one. Line breaks inside are data, kept as they are. */
static void scan_quoted(csv_t *c, why_t *why)
{
    c->pos++;
    for (;;) {
        if (c->pos >= c->len) {
            /* Reported where the quote opened: that is where the operator
             * must look, not at the end of the file. */
            fail(c, LX_EINVAL, c->cell_line, "unterminated quoted cell", why);
            return;
        }
        const unsigned char *p = c->buf + c->pos;
        if (*p == '"') {
            if (c->pos + 1 < c->len && p[1] == '"') {
                put(c, p, 1, why);
                c->pos += 2;
                continue;
            }
            c->pos++;
            return;
        }
        if (*p == '\r' || *p == '\n') {
            eat_eol(c);
            put(c, p, (size_t)(c->buf + c->pos - p), why);
            continue;
        }
        /* Copy the run of plain bytes in one go. */
        size_t n = 1;
        while (c->pos + n < c->len && p[n] != '"' && p[n] != '\r' && p[n] != '\n')
            n++;
        put(c, p, n, why);
        c->pos += n;
    }
}

/* Reads up to the next separator, line break or end of input. After a
 * closing quote nothing may follow; in an unquoted cell a quote may not
 * appear. In a bad row these bytes are skipped as plain text, so a stray
 * quote cannot swallow the rest of the file. */
static void scan_unquoted(csv_t *c, int after_quote, why_t *why)
{
    size_t start = c->pos;
    while (c->pos < c->len) {
        unsigned char ch = c->buf[c->pos];
        if (ch == ',' || ch == '\r' || ch == '\n')
            break;
        if (after_quote)
            fail(c, LX_EINVAL, c->line, "text after a closing quote", why);
        else if (ch == '"')
            fail(c, LX_EINVAL, c->line, "quote inside an unquoted cell", why);
        c->pos++;
    }
    put(c, c->buf + start, c->pos - start, why);
}

/* Returns the offset of the first byte of s[0..n) that is not part of
 * strict UTF-8 (no overlongs, surrogates, or code points past U+10FFFF,
 * no truncated sequences), or of the first NUL; n when all is well. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b == 0)
            return i;
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;   /* range of the second byte */
        if (b >= 0xC2 && b <= 0xDF)
            len = 2;
        else if (b >= 0xE0 && b <= 0xEF) {
            len = 3;
            if (b == 0xE0)
                lo = 0xA0;                   /* overlong below U+0800 */
            else if (b == 0xED)
                hi = 0x9F;                   /* surrogates U+D800.. */
        } else if (b >= 0xF0 && b <= 0xF4) {
            len = 4;
            if (b == 0xF0)
                lo = 0x90;                   /* overlong below U+10000 */
            else if (b == 0xF4)
                hi = 0x8F;                   /* past U+10FFFF */
        } else
            return i;                        /* C0, C1, F5..FF, or a stray
                                                continuation byte */
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        i += len;
    }
    return n;
}

/* The physical line of byte `at` of a cell that started on `line`. */
static uint64_t line_within(const char *s, size_t at, uint64_t line)
{
    for (size_t i = 0; i < at; i++)
        if (s[i] == '\n' || (s[i] == '\r' && s[i + 1] != '\n'))
            line++;
    return line;
}

/* Terminates the current cell and checks its encoding. Validation is per
 * cell so a multi-byte character cut by a separator counts as broken. */
static void end_cell(csv_t *c, why_t *why)
{
    if (c->rc)
        return;
    const char *s = c->data + c->offs[c->n];
    size_t len = c->used - c->offs[c->n];
    size_t bad = utf8_check((const unsigned char *)s, len);
    if (bad < len) {
        fail(c, LX_EINVAL, line_within(s, bad, c->cell_line),
             s[bad] ? "invalid UTF-8" : "NUL byte", why);
        return;
    }
    c->data[c->used++] = '\0';
    c->n++;
}

static void begin_cell(csv_t *c, why_t *why)
{
    c->col++;
    c->cell_line = c->line;
    if (c->rc)
        return;
    if (c->n == CSV_MAX_CELLS) {
        fail(c, LX_EINVAL, c->line, "more than 1024 cells", why);
        return;
    }
    /* An empty cell still needs room for its NUL. */
    if (c->used + 1 > c->cap && grow(c, c->used + 1) != LX_OK) {
        fail(c, LX_ENOMEM, c->line, "out of memory", why);
        return;
    }
    c->offs[c->n] = c->used;
}

int csv_next(csv_t *c, csv_row_t *row, why_t *why)
{
    row->n = 0;
    row->cells = NULL;
    row->line = 0;

    while (at_eol(c))
        eat_eol(c);
    if (c->pos >= c->len)
        return 0;

    c->row_line = c->line;
    c->used = 0;
    c->n = 0;
    c->col = 0;
    c->rc = 0;
    for (;;) {
        begin_cell(c, why);
        int quoted = c->buf[c->pos] == '"';
        if (quoted)
            scan_quoted(c, why);
        scan_unquoted(c, quoted, why);
        end_cell(c, why);
        if (c->pos >= c->len)
            break;
        if (c->buf[c->pos] == ',') {
            c->pos++;
            /* A separator at the very end still opens an empty cell. */
            if (c->pos < c->len)
                continue;
            begin_cell(c, why);
            end_cell(c, why);
            break;
        }
        eat_eol(c);
        break;
    }

    row->line = c->row_line;
    if (c->rc)
        return c->rc;
    for (uint32_t i = 0; i < c->n; i++)
        c->cells[i] = c->data + c->offs[i];
    row->n = c->n;
    row->cells = c->cells;
    return 1;
}

void csv_put_cell(FILE *f, const char *s)
{
    assert(s);
    csv_put_celln(f, s, strlen(s));
}

static bool needs_quotes(const char *s, size_t n)
{
    const char *end = s + n;
    while (s < end && *s != ',' && *s != '"' && *s != '\r' && *s != '\n')
        s++;
    return s < end;
}

/* n bytes at s with each quote doubled: the runs between quotes at once. */
static void put_doubled(FILE *f, const char *s, size_t n)
{
    const char *end = s + n;
    for (const char *q; s < end; s = q + 1) {
        q = memchr(s, '"', (size_t)(end - s));
        if (!q) {
            fwrite_unlocked(s, 1, (size_t)(end - s), f);
            break;
        }
        fwrite_unlocked(s, 1, (size_t)(q - s) + 1, f);
        putc_unlocked('"', f);
    }
}

void csv_put_celln(FILE *f, const char *s, size_t n)
{
    if (!needs_quotes(s, n)) {
        fwrite_unlocked(s, 1, n, f);
        return;
    }
    putc_unlocked('"', f);
    put_doubled(f, s, n);
    putc_unlocked('"', f);
}

void csv_put_joined(FILE *f, const char *const *items, const uint32_t *lens, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = needs_quotes(items[i], lens ? lens[i] : strlen(items[i]));
    if (quote)
        putc_unlocked('"', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            putc_unlocked(';', f);
        put_doubled(f, items[i], lens ? lens[i] : strlen(items[i]));
    }
    if (quote)
        putc_unlocked('"', f);
}
