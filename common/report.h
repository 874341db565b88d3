/* report: the quarterly roll-up (季度报表) of a node's subtree, modelled on
 * the 2016 national summary table: one row per unit of the level below
 * and a total row (合计), counts by sex, age band, category, guardianship,
 * schooling, health, help, visits, cases, entries and exits; the table's
 * equalities; and the report's formats (JSON, CSV, XLSX, HTML).
 *
 * A report is a pure function of the store and a cut: the first
 * millisecond after the quarter in China Standard Time (UTC+8), as an HLC.
 * See README (Reports) for what each column counts. */
#ifndef LX_REPORT_H
#define LX_REPORT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "code.h"
#include "divs.h"
#include "err.h"
#include "hlc.h"
#include "store.h"

typedef struct report report_t;

#define REPORT_DIGEST_LEN 32

/* ---- quarters ---- */

typedef struct {
    int year;          /* 1970..2199 */
    int q;             /* 1..4 */
    char first[11];    /* "2026-07-01": the quarter's first day */
    char last[11];     /* "2026-09-30": its last day, the day ages are taken at */
    hlc_t start;       /* the previous quarter's cut */
    hlc_t cut;         /* hlc_make(first ms after the quarter, UTC+8, 0) */
} quarter_t;

/* Parses "YYYYQn" (n 1-4; 'q' accepted). LX_EINVAL with why naming the
 * text. A moment with hlc h lies in the quarter when start < h <= cut,
 * which matches the as-of rule (a write at or before the cut counts). */
int quarter_parse(const char *s, quarter_t *out, why_t *why);

/* The quarter holding the wall-clock moment ms (UTC+8), as "YYYYQn". */
void quarter_of_ms(uint64_t ms, char out[8]);

/* Completed years at day `on` of someone born on `birth` (both
 * "YYYY-MM-DD"); -1000 when a date does not parse. */
int report_age(const char *birth, const char *on);

/* ---- columns ---- */

typedef struct {
    const char *key;    /* ASCII, stable: JSON keys and msgpack order */
    const char *zh, *en;
    int group;          /* index into report_groups */
} report_col_t;

typedef struct {
    const char *key;    /* "summary", "categories", ... */
    const char *zh, *en; /* sheet names: 总表, 类别, ... */
} report_group_t;

size_t report_ncols(void);
const report_col_t *report_col(size_t i);      /* NULL past the end */
int report_col_index(const char *key);         /* -1 when unknown */
size_t report_ngroups(void);
const report_group_t *report_group(size_t i);

/* ---- computing ---- */

/* Computes node's report for the quarter over the store as of the cut.
 * node must lie in the store's subtree (0: the store's own node). Rows are
 * the units one level below node holding records, plus, when divs is given,
 * every unit the division tables know there (named from them; otherwise
 * the name is the code); a village node has itself as its only row. The
 * last row is the total. *out owned by the caller (report_destroy).
 * A large store is read in two threads when the process may use two
 * processors and t reads (a second transaction sees the same snapshot);
 * the figures and digests are those of one. t stays this thread's.
 * Errors: LX_EINVAL (quarter, node outside the store), store errors. */
int report_compute(stxn_t *t, code_t node, const char *quarter,
                   const divs_t *divs, report_t **out, why_t *why);
void report_destroy(report_t **self_p);

/* Checks the table's equalities on every row: total = the age bands, each
 * band = boys + girls, total = boys + girls = the school states = the
 * guardianship assessments = the guardian types, exits = the exit reasons;
 * and the total row = the sum of the unit rows, column by column. The
 * first failure is named by row (code and name) and column (key and zh
 * label): LX_EINVAL. */
int report_check(const report_t *r, why_t *why);

/* ---- reading ---- */

const char *report_quarter(const report_t *r);    /* "2026Q3" */
code_t report_node(const report_t *r);
/* The node's name from the division tables, else its code. */
const char *report_node_name(const report_t *r);
hlc_t report_cut(const report_t *r);
/* Rows including the total, which is the last (its code is the node's). */
size_t report_nrows(const report_t *r);
code_t report_row_code(const report_t *r, size_t row);
/* The unit's name; for the total row "合计" (zh) or "Total". */
const char *report_row_name(const report_t *r, size_t row, bool zh);
uint64_t report_value(const report_t *r, size_t row, size_t col);
/* For tests: changes one cell. */
void report_set_value(report_t *r, size_t row, size_t col, uint64_t v);
/* The digest of the data behind a row's figures: the sum (mod 2^256) of
 * BLAKE2b-256 over each counted record's id and the versions of the
 * fields the report reads. Equal data gives equal digests; the total's is
 * the sum of the units'. */
const unsigned char *report_row_digest(const report_t *r, size_t row);

/* ---- freezing and formats ---- */

/* msgpack: [quarter, node, cut, [[code, name, digest, [values in column
 * order]]...]] with the total row last. report_unpack takes untrusted
 * bytes; *out owned by the caller. */
int report_pack(const report_t *r, msgpack_packer *pk);
int report_unpack(const void *buf, size_t len, report_t **out, why_t *why);

/* BLAKE2b-256 of the packed report: figures, names, digests, quarter,
 * node and cut. What a frozen report is known by; LX_ENOMEM only. */
int report_hash(const report_t *r, unsigned char out[REPORT_DIGEST_LEN]);

typedef enum { REPORT_JSON, REPORT_CSV, REPORT_XLSX, REPORT_HTML } report_fmt_t;

/* "json" | "csv" | "xlsx" | "html"; -1 when unknown. */
int report_fmt_parse(const char *s);

/* Writes the report in fmt with zh (Chinese) or English labels. XLSX is
 * built in a temporary file (libxlsxwriter writes files) and copied to f.
 * LX_EIO on a write failure, with why naming the format. */
int report_write(const report_t *r, report_fmt_t fmt, bool zh, FILE *f, why_t *why);

#endif
