/* record: one child's file (一人一档) as a set of fields, each holding its
 * value and the version of the write that set it; field writes; change
 * log entries; and their msgpack encoding, whose decoder takes untrusted
 * bytes. */
#ifndef LX_RECORD_H
#define LX_RECORD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "code.h"
#include "err.h"
#include "hlc.h"
#include "mp.h"

/* What the decoder takes at most: characters of a record id and of a
 * field name, fields of a record or change, items of a list. */
#define RECORD_ID_MAX 64
#define RECORD_NAME_MAX 64
#define RECORD_MAX_FIELDS 256
#define RECORD_MAX_ITEMS 64
#define RECORD_AUTHOR_MAX 160

/* A field value: null (cleared), bool, UTF-8 string or list of strings. */
typedef enum { VAL_NIL = 0, VAL_BOOL, VAL_STR, VAL_LIST } val_kind_t;

typedef struct {
    val_kind_t kind;
    bool b;        /* VAL_BOOL */
    char *s;       /* VAL_STR: owned, NUL-terminated */
    char **items;  /* VAL_LIST: owned strings */
    uint32_t n;    /* VAL_LIST: number of items */
} val_t;

void val_free(val_t *v);                    /* leaves v as VAL_NIL */
int val_copy(val_t *dst, const val_t *src); /* dst is overwritten */
bool val_eq(const val_t *a, const val_t *b);
int val_set_str(val_t *v, const char *s);   /* copies s */
int val_set_strn(val_t *v, const char *s, size_t n);
int val_list_add(val_t *v, const char *s);  /* v must be VAL_LIST or NIL */
bool val_list_has(const val_t *v, const char *s);

/* The version of a field write: last writer wins on (hlc, origin). */
typedef struct {
    hlc_t hlc;       /* when the write was made */
    code_t origin;   /* the node where it was made */
    hlc_t base;      /* the hlc of the value it replaced there; 0: none */
    char *author;    /* "NODE/department/user", owned */
} ver_t;

/* Orders by (hlc, origin): <0, 0, >0. */
int ver_cmp(const ver_t *a, const ver_t *b);

/* A field of a record, and equally a write of one field. */
typedef struct {
    char *name;      /* owned */
    val_t val;
    ver_t ver;
} field_t;

void field_free(field_t *f);
int field_copy(field_t *dst, const field_t *src);
int field_init(field_t *f, const char *name, const val_t *val,
               const ver_t *ver); /* copies everything */

typedef struct {
    char *id;        /* owned */
    uint32_t n, cap;
    field_t *f;      /* sorted by name, strcmp order, names unique */
} record_t;

/* NULL on allocation failure. */
record_t *record_new(const char *id);
void record_destroy(record_t **self_p);

/* The field, or NULL. */
const field_t *record_field(const record_t *r, const char *name);
/* The value when present and not null, else NULL. */
const val_t *record_val(const record_t *r, const char *name);
/* The string value when the field holds one, else NULL. */
const char *record_str(const record_t *r, const char *name);

/* Inserts or replaces a field, copying f. */
int record_put(record_t *r, const field_t *f);
/* The same, taking ownership of *f's contents (left zeroed), even when it
 * fails. */
int record_take(record_t *r, field_t *f);

/* Canonical encoding: equal records give equal bytes. */
int record_pack(const record_t *r, msgpack_packer *pk);
/* Decodes untrusted bytes; *out owned by the caller. */
int record_decode(const void *buf, size_t len, record_t **out, why_t *why);
int record_from_obj(const msgpack_object *o, record_t **out, why_t *why);

/* A change log entry: the field writes that changed one record. */
typedef struct {
    char *id;          /* owned */
    code_t village;    /* the record's village after the change */
    code_t prev_village; /* before the change, when it moved; else 0 */
    code_t from;       /* the peer it was received from; 0 when made here */
    uint32_t n;
    field_t *w;        /* owned array of n writes, sorted by name */
    /* change_read only: the writes exactly as record_pack encodes them
     * (its versions and fields), when they came in that form; else NULL.
     * In the arena, like the rest of such a change. */
    const void *packed;
    uint32_t packedlen;
} change_t;

void change_free(change_t *c);
int change_pack(const change_t *c, msgpack_packer *pk);
int change_decode(const void *buf, size_t len, change_t *out, why_t *why);
int change_from_obj(const msgpack_object *o, change_t *out, why_t *why);
/* The same form read straight from the bytes at r (a batch's hot path,
 * without msgpack-c's objects): the strings and fields go into arena a,
 * and the change goes with it, never to change_free. Takes what
 * change_from_obj takes and decodes it alike, or fewer shapes: false
 * (r->bad) means "decode with change_from_obj", which names the fault. */
bool change_read(mp_rd_t *r, arena_t *a, change_t *out);

/* Value and field encoders/decoders, shared with the wire protocol. */
int val_pack(const val_t *v, msgpack_packer *pk);
int val_from_obj(const msgpack_object *o, val_t *out, why_t *why);
int field_pack(const field_t *f, msgpack_packer *pk);
int field_from_obj(const msgpack_object *o, field_t *out, why_t *why);

/* Whether the decoder will take f back: a name of 1..64 bytes, an author
 * of at most 160, a list of at most 64 items. */
bool field_encodable(const field_t *f);

/* Record ids: 1..64 characters of [A-Za-z0-9_-]. */
bool record_id_valid(const char *id);
/* A new id "ORIGIN-HLC16HEX" that sorts in creation order at one node. */
void record_id_make(code_t origin, hlc_t hlc, char out[32]);

#endif
