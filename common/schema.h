/* schema: the default child schema of CONTRACT.md (fields, types, enums,
 * zh/en labels) and the validation of values and whole records against
 * it, including the GB 11643 citizen ID number. */
#ifndef LX_SCHEMA_H
#define LX_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "record.h"

typedef enum {
    FT_STR,    /* free UTF-8 text, at most max_len bytes */
    FT_ENUM,   /* one of enums */
    FT_SET,    /* list of distinct values from enums (categories) */
    FT_BOOL,
    FT_DATE,   /* YYYY-MM-DD, a real calendar date */
    FT_CODE,   /* a 12-digit village code */
    FT_IDNUM,  /* 18-character GB 11643 citizen ID number */
    FT_PHONE,  /* digits, spaces, '+' and '-', 5..20 characters */
} ftype_t;

typedef struct {
    const char *value;  /* ASCII value stored in records */
    const char *zh;     /* Chinese label */
    const char *en;     /* English label */
} enum_def_t;

typedef struct {
    const char *name;   /* ASCII snake_case */
    ftype_t type;
    bool required;
    bool personal;      /* personal data: never logged, masked by role */
    const enum_def_t *enums; /* FT_ENUM/FT_SET: terminated by {NULL} */
    const char *zh, *en;     /* labels */
    unsigned max_len;        /* FT_STR: byte limit */
} field_def_t;

/* The names retention writes in place of a child's (common/classify.c):
 * a record holding one has had its personal data removed, and the store
 * keeps no history of what was removed (store_apply_ex). */
#define SCHEMA_NAME_ANONYMISED "已匿名"
#define SCHEMA_NAME_PURGED "已清除"
bool schema_retention_marker(const val_t *name);
/* Whether retention of the kind `marker` names (a name value
 * schema_retention_marker accepts) removes field `field`, its value and
 * every earlier version: anonymising, the name and what identifies or
 * reaches the child (ID number, phones, guardian's name, addresses, work
 * places); purging, everything but the village, gender, birth date,
 * status and the exit. */
bool schema_retention_removes(const val_t *marker, const char *field);

/* The definition of a field, or NULL when the schema does not know it. */
const field_def_t *schema_field(const char *name);
/* Field numbers: a field of the default schema is stored and sent under
 * its number (its place in display order: new fields are appended), any
 * other by name. schema_num gives the number or -1; schema_num_name the
 * interned name of a number (NULL out of range), the one copy every record
 * shares; schema_intern the interned copy of a schema name or NULL;
 * schema_interned whether p is such a copy (a field_t never frees one).
 * schema_name_cmp orders names as strcmp does, without reading two
 * interned ones. */
int schema_num(const char *name);
const char *schema_num_name(uint64_t num);
const char *schema_intern(const char *name);
bool schema_interned(const char *p);
int schema_name_cmp(const char *a, const char *b);

/* Fields in display order (identity first, as in CONTRACT.md). */
size_t schema_count(void);
const field_def_t *schema_at(size_t i);

/* Checks one value against its definition. VAL_NIL is accepted for any
 * field that is not required. why names the field and the problem. */
int schema_check_value(const field_def_t *d, const val_t *v, why_t *why);

/* Converts operator text (a CSV cell, a --set argument) to a checked
 * value. Empty text gives VAL_NIL. FT_SET items are separated by ';' or
 * '|'. FT_BOOL accepts true/false, 1/0, yes/no, 是/否. */
int schema_parse_text(const field_def_t *d, const char *text, val_t *out,
                      why_t *why);

/* Checks a whole record: every field known and valid, required fields
 * present, village_code a village inside node's subtree, and the ID
 * number's embedded birth date and sex consistent with birth_date and
 * gender. */
int schema_check_record(const record_t *r, code_t node, why_t *why);

/* The same with the field definitions of another schema (a node's
 * effective schema): lookup gives a field's definition or NULL. Local
 * fields (x_...) that lookup does not know pass schema_check_local. */
typedef const field_def_t *(*schema_lookup_fn)(const void *ctx, const char *name);
int schema_check_record_in(const record_t *r, code_t node, schema_lookup_fn lookup,
                           const void *ctx, why_t *why);

/* Checks a change from a peer or a bundle field by field: known fields,
 * right types and enums, valid text, required fields not cleared. Local
 * fields (x_...) are defined by policies the receiver may not hold, and
 * pass schema_check_local. (The whole-record rules are checked where the
 * record is written.) */
int schema_check_change(const change_t *c, why_t *why);

/* Local fields: "x_" and snake_case, at most 64 bytes, so that they never
 * collide with the default schema. Any of them may hold null, a boolean,
 * single-line UTF-8 text of at most SCHEMA_LOCAL_MAX bytes, or a list of
 * at most SCHEMA_LOCAL_ITEMS such texts. */
#define SCHEMA_LOCAL_MAX 512
#define SCHEMA_LOCAL_ITEMS 32
bool schema_local_name(const char *name);

/* Journal fields: the events (home visits, calls, help given) and the
 * steps of the cases of a child's file, each a field written once under
 * a name no other write uses ("ev_..." and "case_..."), so concurrent
 * additions at any levels merge as a union. The value is a JSON object as
 * single-line text of at most SCHEMA_JOURNAL_MAX bytes. */
#define SCHEMA_JOURNAL_MAX 2048
bool schema_journal_name(const char *name);
int schema_check_journal(const char *name, const val_t *v, why_t *why);
int schema_check_local(const char *name, const val_t *v, why_t *why);

/* Label of an enum value, or NULL when unknown. */
const char *schema_enum_label(const field_def_t *d, const char *value,
                              bool zh);

/* GB 11643-1999: the check character ('0'..'9' or 'X') for 17 digits. */
char idnum_check_char(const char *first17);
/* 17 digits, a valid embedded date, and the right check character
 * (an upper-case 'X' only). why names the problem. */
int idnum_check(const char *s, why_t *why);

bool utf8_valid(const char *s, size_t n);
/* YYYY-MM-DD with a real day of a real month, year 1900..2199. */
bool date_valid(const char *s);

#endif
