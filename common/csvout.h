/* csvout: the rows of `lianxin export --format csv`, the header of
 * `lianxin import`: the record id, every field of the default schema in
 * display order, then the node's local (x_) columns; lists joined with
 * ';'. A row is written from a decoded record, or straight from the
 * record's stored bytes (record_pack form) without decoding it: decoding
 * was most of the time of a province's export. */
#ifndef LX_CSVOUT_H
#define LX_CSVOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "record.h"

typedef struct csvout csvout_t;

/* Columns for the local names given (each a local field name, sorted by
 * strcmp, no duplicates; copied). NULL when out of memory. */
csvout_t *csvout_new(const char *const *local, size_t nlocal);
void csvout_destroy(csvout_t **self_p);

/* The header line. */
void csvout_header(const csvout_t *o, FILE *f);

/* One value as a cell (nothing for null). */
void csvout_val(FILE *f, const val_t *v);

/* One row from a decoded record. */
void csvout_record(const csvout_t *o, FILE *f, const record_t *r);

/* One row from stored bytes. False, with nothing written, for bytes the
 * reader does not take (a shape it does not know, a NUL inside a string,
 * anything malformed): the caller decodes them and writes the record. */
bool csvout_packed(const csvout_t *o, FILE *f, const void *buf, size_t len);

/* Calls cb for each local field name among stored bytes' fields (NUL-
 * terminated, valid during the call). False when the reader does not
 * take the bytes (as above): the caller decodes them. */
bool csvout_packed_locals(const void *buf, size_t len, void (*cb)(void *arg, const char *name),
                          void *arg);

#endif
