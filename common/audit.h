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

/* Limits on one entry (audit_append refuses more with LX_EINVAL naming
 * the field): text fields in bytes, record ids in number. */
#define AUDIT_MAX_TEXT 256
#define AUDIT_MAX_IDS 4096

/* Appends n entries to this node's own chain inside write transaction t
 * (the caller commits; a record write and its audit entry share one
 * transaction). A time_ms of 0 is taken as now; a NULL role as "".
 * LX_EINVAL when principal, action or result is missing or a field is
 * over the limits above. */
int audit_append(stxn_t *t, const audit_entry_t *e, uint32_t n, why_t *why);

/* One stored entry as read back: strings point into the store (valid
 * during the callback only). */
typedef struct {
    code_t node;             /* whose chain */
    uint64_t seq;            /* its position in the chain, from 1 */
    audit_entry_t e;
    unsigned char hash[AUDIT_HASH_LEN];
} audit_rec_t;

typedef int (*audit_cb)(void *arg, const audit_rec_t *r);

/* Which entries audit_list passes on; zero fields match everything. */
typedef struct {
    code_t node;             /* the chains of node and of its subtree */
    const char *principal;   /* exactly this principal */
    const char *record;      /* naming this record id */
    uint64_t since_ms;       /* time_ms >= since_ms */
    uint64_t until_ms;       /* time_ms < until_ms (0: no bound) */
} audit_filter_t;

/* Calls cb for the entries matching f, chain by chain (in code order),
 * each chain in seq order. A cb return of 1 stops (no error), another
 * non-zero one is returned. An entry that does not decode gives
 * LX_ECORRUPT with why naming the chain and seq (audit_verify says more). */
int audit_list(stxn_t *t, const audit_filter_t *f, audit_cb cb, void *arg, why_t *why);

/* A chain and the result of checking it. */
typedef struct {
    code_t node;
    uint64_t entries;        /* entries held */
    uint64_t last_seq;       /* the last seq held */
    unsigned char last_hash[AUDIT_HASH_LEN];  /* the stored hash of that entry */
    uint64_t bad_seq;        /* 0: verifies; else its first broken entry */
    char bad[160];           /* why: "bad hash", "missing (...)", "undecodable: ..." */
} audit_chain_t;

typedef int (*audit_chain_cb)(void *arg, const audit_chain_t *c);

/* Checks the chains of node and its subtree (0: every chain held): each
 * entry decodes, names the chain and position its key gives, follows the
 * one before without a gap, and its hash is BLAKE2b-256(previous hash ||
 * its bytes). Calls cb (may be NULL) for every chain with its result.
 * LX_OK when all verify; LX_ECORRUPT when one does not, with why naming
 * the first broken chain's code and the seq of its first broken entry. */
int audit_verify(stxn_t *t, code_t node, audit_chain_cb cb, void *arg, why_t *why);

/* The last seq of node's chain held here and its hash (0 and 32 zero
 * bytes when none is held). */
int audit_last(stxn_t *t, code_t node, uint64_t *seq, unsigned char hash[AUDIT_HASH_LEN]);

/* Replication. An entry travels in its stored form (the entry's msgpack
 * bytes followed by its 32-byte hash), so the receiver checks the very
 * bytes the sender chained. */

/* Calls cb for every chain held with its last seq, in code order (a cb
 * return of 1 stops). */
typedef int (*audit_tail_cb)(void *arg, code_t node, uint64_t last_seq);
int audit_chains(stxn_t *t, audit_tail_cb cb, void *arg);

/* Calls cb with the stored form of node's entries from seq `from` on
 * (bytes valid during the callback only; a cb return of 1 stops). */
typedef int (*audit_raw_cb)(void *arg, uint64_t seq, const void *val, size_t len);
int audit_raw_each(stxn_t *t, code_t node, uint64_t from, audit_raw_cb cb, void *arg);

/* Stores an entry of node's chain (stored form) received from child
 * `from`. It must continue the chain held here: the next seq, and a hash
 * that is BLAKE2b-256(the held last hash || its bytes); so a child cannot
 * rewrite history already held above. Returns LX_OK (stored), LX_EEXIST
 * (already held, the same bytes: a resend), LX_ESCOPE (node outside the
 * sender's subtree), LX_ENOTFOUND (an earlier entry is missing here: send
 * from audit_last + 1), LX_ECORRUPT (undecodable, or naming another chain
 * or position), LX_EINVAL (does not continue the chain held here, or
 * differs from the entry held at its seq). why names node and seq. */
int audit_receive(stxn_t *t, code_t from, code_t node, const void *val, size_t len,
                  why_t *why);

/* Entries held, every chain: cheap, to notice that the table grew. */
uint64_t audit_count(stxn_t *t);

#endif
