/* audit: the append-only, hash-chained record of every look at and every
 * change of a child's file made through a node's API (PIPL art. 51, 55-56;
 * MLPS level 3). Each node keeps its own chain and the chains of its
 * subtree, which replicate upward so a parent can verify its children's.
 *
 * An entry never holds a personal value: only who (principal, role), what
 * (action, record ids), why (purpose), when, and the result.
 *
 * Entry i of a chain stores hash_i = BLAKE2b-256(hash_{i-1} || bytes_i),
 * where bytes_i is the entry's msgpack encoding and hash_0 is 32 zero
 * bytes; changing, dropping or reordering any entry breaks every hash
 * after it, and verification names the first entry that does not match. */
#ifndef LX_AUDIT_H
#define LX_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "store.h"

#define AUDIT_HASH_LEN 32

typedef struct {
    uint64_t time_ms;        /* wall clock, ms since the epoch */
    const char *principal;   /* the token's name, e.g. "jintang-education" */
    const char *role;        /* department role, e.g. "education" */
    const char *action;      /* "read", "list", "create", "patch", "event",
                                "case", "resolve", "report", ... */
    const char *const *ids;  /* record ids concerned (may be 0 of them) */
    uint32_t nids;
    const char *purpose;     /* X-Purpose, or NULL */
    const char *result;      /* "ok", "denied", "not_found", "invalid", ... */
} audit_entry_t;

/* Appends n entries to this node's own chain inside write transaction t
 * (the caller commits; a record write and its audit entry share one
 * transaction). */
int audit_append(stxn_t *t, const audit_entry_t *e, uint32_t n, why_t *why);

#endif
