/* csv: an RFC 4180 reader for untrusted files (operators' imports) that
 * reports the line each row starts on, and a cell writer. */
#ifndef LX_CSV_H
#define LX_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef struct csv csv_t;

typedef struct {
    uint32_t n;        /* number of cells */
    char **cells;      /* NUL-terminated, owned by the reader, valid until
                          the next csv_next or csv_destroy */
    uint64_t line;     /* 1-based line where the row starts */
} csv_row_t;

/* Reads from buf[0..len) which must outlive the reader (no copy). A UTF-8
 * BOM at the start is skipped. NULL on allocation failure. */
csv_t *csv_new(const char *buf, size_t len);
void csv_destroy(csv_t **self_p);

/* Reads the next row. Returns 1 with *row filled, 0 at the end, or
 * LX_EINVAL with why naming the line ("line 7: ...") for a row that is
 * malformed (a quote inside an unquoted cell, an unterminated quote, a
 * NUL byte, broken UTF-8, more than 1024 cells or a cell over 64 KiB).
 * After an error the reader has skipped to the start of the next line, so
 * a caller may report the row and go on. Blank lines are skipped. */
int csv_next(csv_t *c, csv_row_t *row, why_t *why);

/* Bytes consumed so far (for progress reports). */
size_t csv_offset(const csv_t *c);

/* Writes one cell, quoted when it holds a comma, quote, CR or LF. */
void csv_put_cell(FILE *f, const char *s);
/* The same for n bytes at s (NUL bytes written as they are). */
void csv_put_celln(FILE *f, const char *s, size_t n);
/* One cell of n items joined by ';' (a list), quoted as csv_put_cell
 * would quote the joined text; lens NULL for NUL-terminated items. */
void csv_put_joined(FILE *f, const char *const *items, const uint32_t *lens, size_t n);

#endif
