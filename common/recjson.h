/* recjson: child records to and from JSON (jansson), as CONTRACT.md
 * shows them: {"id": ..., "field": value, ...}. */
#ifndef LX_RECJSON_H
#define LX_RECJSON_H

#include <jansson.h>
#include <stdbool.h>

#include "record.h"

/* A new JSON object for r; with versions, "_versions" maps each field to
 * {"hlc", "origin", "author"}. NULL on allocation failure. */
json_t *recjson_from_record(const record_t *r, bool versions);

/* A value as JSON (new reference). */
json_t *recjson_value(const val_t *v);

/* Fills r's fields from a JSON object, each stamped with ver. "id" is
 * taken as r->id when present (it must be a well-formed id). Values may be
 * strings, booleans, null, integers (kept as their decimal text) or arrays
 * of strings; anything else is refused naming the field. Field names and
 * values are checked by the caller against the schema. */
int recjson_to_record(const json_t *obj, const ver_t *ver, record_t *r,
                      why_t *why);

/* Parses text into an object; why names the line and column. */
json_t *recjson_parse(const char *text, size_t len, why_t *why);

#endif
