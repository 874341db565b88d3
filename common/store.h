/* store: the node's LMDB store. One environment holds the child records
 * with their field versions, the numbered change log (written in the same
 * transaction as the change), the indexes by village and by ID number,
 * the per-village digest sums, the conflict log and the duplicate flags.
 * The whole key layout is described at the top of store.c.
 *
 * Any number of processes may read while one writes (LMDB's own locking):
 * an operator's command can write while the node runs. */
#ifndef LX_STORE_H
#define LX_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "hlc.h"
#include "record.h"

typedef struct store store_t;
typedef struct stxn stxn_t;

#define STORE_DIGEST_LEN 32

enum {
    STORE_RDONLY = 1 << 0,  /* open read-only */
    STORE_NOSYNC = 1 << 1,  /* commits are not flushed (tests, benches) */
    STORE_NOPOKE = 1 << 2,  /* the node itself: do not poke the FIFO */
    STORE_RESERVER = 1 << 3,/* the node itself: it keeps the log reservation */
    STORE_FILTER_IDLE = 1 << 4, /* the node itself: see store_idn_filter */
};

/* Creates an empty store for the node `code` in dir (created if absent).
 * LX_EEXIST when dir already holds a store. */
int store_create(const char *dir, code_t code, why_t *why);

/* Writes a consistent copy of the store as it stands to dir/data.mdb (dir
 * must exist), while writers go on: compacted, so that pages the store no
 * longer uses (where retention's removed values may linger) stay behind;
 * mode 0600; flushed, and under its name only once whole. The copy is a
 * store: `--data dir` reads it, and a node started on it converges with
 * its parent. LX_EEXIST when dir already holds a store, or the part file
 * of another backup (data.mdb.part, which a backup cut short leaves). */
int store_backup(store_t *s, const char *dir, why_t *why);

/* Opens an existing store. *out owned by the caller (store_close). */
int store_open(const char *dir, unsigned flags, store_t **out, why_t *why);
void store_close(store_t **self_p);

code_t store_code(const store_t *s);
code_t store_code_of(const stxn_t *t); /* the node code, from a transaction */
/* Remote timestamps further ahead than this are refused (default 5 min). */
void store_set_skew(store_t *s, uint64_t max_skew_ms);

/* Makes room for a write of about `bytes` (an import) before its
 * transaction begins. */
void store_reserve(store_t *s, size_t bytes);

/* Transactions. A write transaction is exclusive across processes; its
 * HLC continues from the last one committed by any process. *out is NULL
 * when it fails, so store_abort(out) is always safe. */
int store_begin(store_t *s, bool write, stxn_t **out);
int store_commit(stxn_t **txn_p);  /* durable unless STORE_NOSYNC */
/* A commit for what may be lost in a system crash but must not damage
 * the store (link state, index upkeep): one flush instead of two, the
 * transaction made durable by the next ordinary commit; a crash before
 * that may undo it, never more. */
int store_commit_lazy(stxn_t **txn_p);
void store_abort(stxn_t **txn_p);

/* A fresh timestamp for a local write (write transactions only). */
hlc_t store_tick(stxn_t *t);
/* The wall clock the transaction uses; tests may pin it. */
void store_set_wall(store_t *s, uint64_t (*wall_ms)(void));

/* The record, decoded; LX_ENOTFOUND when absent. *out owned by caller. */
int store_get(stxn_t *t, const char *id, record_t **out, why_t *why);

typedef struct {
    bool created;        /* the record did not exist before */
    uint32_t changed;    /* writes that won (and were logged) */
    uint32_t conflicts;  /* concurrent writes sent to the conflict log */
    uint64_t seq;        /* log sequence of the change; 0 when nothing won */
} apply_t;

/* Merges n field writes into record `id` (creating it), logs the writes
 * that won as one change with sender `from` (0: made here), and keeps the
 * indexes, digests, conflict log and duplicate flags in step. Remote
 * writes (from != 0) ahead of the clock beyond the skew bound give
 * LX_ESKEW and change nothing. Validation against the schema is the
 * caller's job. */
int store_apply(stxn_t *t, const char *id, const field_t *w, uint32_t n,
                code_t from, apply_t *res, why_t *why);

/* store_apply for changes from a peer. */
typedef struct {
    code_t from;    /* the sender; 0 when made here */
    code_t within;  /* 0, or the subtree the change must lie in */
    bool either;    /* within must hold the record before OR after the change
                       (a parent's writes, moves in and out included);
                       otherwise before (if it existed) AND after (a child) */
    const void *packed;  /* NULL, or the writes as record_pack encodes them
                            (change_t.packed): a new record that takes them
                            all is stored as these bytes, not encoded again */
    size_t packedlen;
} apply_opts_t;

/* Refused with LX_ESCOPE when the change falls outside `within`. */
int store_apply_ex(stxn_t *t, const char *id, const field_t *w, uint32_t n,
                   const apply_opts_t *o, apply_t *res, why_t *why);

/* Calls cb for every live record whose village lies under `under` (0: all
 * the node holds), in village then id order. A non-zero return from cb
 * stops the walk and is returned. */
typedef int (*store_record_cb)(void *arg, const record_t *r);
int store_each_record(stxn_t *t, code_t under, store_record_cb cb, void *arg);
/* The same for the villages in [lo, hi). */
int store_each_record_range(stxn_t *t, code_t lo, code_t hi, store_record_cb cb, void *arg);

/* The same over the records as they stood at the HLC cut: each field the
 * newest version at or before cut (from the history table when it has
 * been replaced or removed since), records created after the cut left
 * out, and the village the one the record had at the cut (so a child
 * moved away since still counts where it was). In record id order. */
int store_each_record_asof(stxn_t *t, code_t under, hlc_t cut, store_record_cb cb, void *arg);

/* The same, handing over each record's encoded bytes (record_pack form)
 * for readers that decode only what they need (reports): the stored bytes
 * as they are when nothing changed since the cut, else the record as it
 * stood then, packed anew. Records passed as they are may lie outside
 * `under`: the caller checks the village. */
typedef int (*store_packed_cb)(void *arg, const void *buf, size_t len);
int store_each_packed_asof(stxn_t *t, code_t under, hlc_t cut, store_packed_cb cb, void *arg);
/* store_each_record's walk, handing over each record's stored bytes
 * (record_pack form, valid during the call) instead of decoding it. */
int store_each_packed(stxn_t *t, code_t under, store_packed_cb cb, void *arg);

/* The same walk split between two threads, each in its own transaction
 * on one snapshot: one walker takes the records from the first forwards,
 * the other from the last backwards, each a batch at a time off a shared
 * count of the records left, so that between them they hand over every
 * record once (what each is handed depends on the timing; a sum over
 * them does not). A walker that fails takes the rest, so the other stops. */
typedef struct {
    _Atomic uint64_t left;  /* records no walker has taken yet */
} store_share_t;

/* A read transaction on t's snapshot, for another thread: begun and ended
 * (store_abort) by t's thread, used in between by the other only. LX_EBUSY
 * when t writes (its changes are its own) or the store changed since t
 * began; LMDB errors. */
int store_begin_twin(stxn_t *t, stxn_t **out);
/* Sets the share to every record of t's snapshot. */
int store_share_init(stxn_t *t, store_share_t *sh);
int store_each_packed_asof_shared(stxn_t *t, code_t under, hlc_t cut, store_share_t *sh,
                                  bool backward, store_packed_cb cb, void *arg);

/* Numbers kept in the store's meta table (link positions and the like),
 * and opaque blobs. Keys are short ASCII strings. */
int store_meta_get(stxn_t *t, const char *key, uint64_t *v);  /* LX_ENOTFOUND */
int store_meta_put(stxn_t *t, const char *key, uint64_t v);
int store_blob_get(stxn_t *t, const char *key, void **data, size_t *len); /* copy; caller frees */
int store_blob_put(stxn_t *t, const char *key, const void *data, size_t len);
int store_blob_del(stxn_t *t, const char *key);  /* LX_ENOTFOUND when absent */
/* Calls cb for every blob whose key starts with prefix, in key order (keys
 * of 255 bytes or more are skipped); data is valid during the callback
 * only. A non-zero return from cb stops the walk and is returned. */
typedef int (*store_blob_cb)(void *arg, const char *key, const void *data, size_t len);
int store_blob_each(stxn_t *t, const char *prefix, store_blob_cb cb, void *arg);

/* The last log sequence; and making sure the next one is above at_least
 * (a store restored from a backup must not reuse numbers its peers saw). */
uint64_t store_last_seq(const stxn_t *t);
void store_bump_seq(stxn_t *t, uint64_t at_least);

/* The log numbers a running node has reserved (0: none): it sends its
 * entries on before they are committed (node/repl.c), so a peer may hold
 * numbers our log lost in a crash. Every writer opened without
 * STORE_RESERVER numbers its entries after the reservation (a command
 * while the node is down, or racing a failed commit), and the node does
 * too when it starts; the gap this leaves in the log is harmless. */
uint64_t store_seq_reserved(stxn_t *t);
int store_set_seq_reserved(stxn_t *t, uint64_t upto);

/* A log entry's header, for deciding where it goes without reading the
 * record. priv is valid during the callback only. */
typedef struct {
    uint64_t seq;
    const char *id;       /* NUL-terminated copy, valid during the callback */
    code_t village;       /* the record's village after the change */
    code_t prev;          /* before it, when the change moved the record */
    code_t from;          /* the peer it came from; 0 when made here */
    const void *priv;
} loghdr_t;
typedef int (*store_loghdr_cb)(void *arg, const loghdr_t *h);
/* Walks headers from sequence `from` on; a cb return of 1 stops the walk
 * (and is not an error). */
int store_each_log_hdr(stxn_t *t, uint64_t from, store_loghdr_cb cb, void *arg);
/* The change of a header: the current state of the fields it changed, or
 * with full, of every field of the record. */
int store_log_change(stxn_t *t, const loghdr_t *h, bool full, change_t *out, why_t *why);

/* The same, appended to pk in the wire form of change_pack, copying the
 * stored record's bytes instead of decoding them when the whole record
 * goes. LX_ENOTFOUND when the record is gone. */
int store_log_pack(stxn_t *t, const loghdr_t *h, bool full, msgpack_packer *pk, why_t *why);

/* The record's current state as a change of all its fields. */
int store_record_change(stxn_t *t, const record_t *r, change_t *out);

/* The digests of the units one level below node that hold records (for a
 * village node, the village itself). *out owned by the caller. */
int store_unit_digests(stxn_t *t, code_t node, code_t **units,
                       unsigned char (**digests)[STORE_DIGEST_LEN], uint32_t *n);


/* The digest of the live state under `under` (0: the node's subtree):
 * equal sets of records with equal field versions give equal digests,
 * whatever the order of writes. Built from per-village sums so a parent
 * can compare it unit by unit. */
int store_digest(stxn_t *t, code_t under, unsigned char out[STORE_DIGEST_LEN]);

/* Recomputes every village's digest sum and count from the records and
 * compares them with the stored ones, and checks that the village index
 * lists exactly the live records. LX_ECORRUPT with why naming the first
 * village or record that differs. */
int store_verify(stxn_t *t, why_t *why);

typedef struct {
    uint64_t records;    /* live records */
    uint64_t villages;   /* villages holding at least one record */
    uint64_t last_seq;   /* the last log sequence */
    uint64_t conflicts;  /* conflict log entries */
    uint64_t duplicates; /* records sharing an ID number with another */
    uint64_t idn_pending;/* ID-number changes not yet folded into the index */
    hlc_t hlc;           /* the last timestamp committed */
    uint64_t bytes;      /* store file size */
} store_stats_t;

int store_stats(stxn_t *t, store_stats_t *st);

/* Conflict log entries: the field both writes touched, the write that was
 * kept and the one that was overwritten (or lost). */
typedef struct {
    uint64_t seq;
    const char *id;
    const field_t *kept;
    const field_t *lost;
} conflict_t;
typedef int (*store_conflict_cb)(void *arg, const conflict_t *c);
int store_each_conflict(stxn_t *t, store_conflict_cb cb, void *arg);
/* From conflict sequence `from` on; a cb return of 1 stops (no error). */
int store_each_conflict_from(stxn_t *t, uint64_t from, store_conflict_cb cb, void *arg);
/* Moved-out stubs (records that left this node's subtree, holding their
 * village alone): each as it stood when it left (its other fields from the
 * history), with the village it went to. A cb result other than 0 stops
 * the walk and is returned. */
int store_each_stub(stxn_t *t, store_record_cb cb, void *arg);
/* Removes from the history every version of the fields of stub id that
 * retention of the kind `marker` (SCHEMA_NAME_ANONYMISED or _PURGED)
 * removes, adding how many to *removed (may be NULL): no later write
 * reaches a stub, so its node applies retention itself. A record that is
 * not (or no longer) a stub here is left alone. */
int store_scrub_history(stxn_t *t, const char *id, const char *marker, uint64_t *removed);
/* Retention reaches the conflict log: the entries of a record whose name
 * is a retention marker, about a field that kind of retention removes
 * (schema_retention_removes), keep their versions and lose both values;
 * and so do those of the records in stubs (nstubs ids in strcmp order,
 * moved-out stubs, which hold no name), as if they held stub_marker.
 * Adds the number rewritten to *scrubbed; in write transaction t. */
int store_scrub_conflicts(stxn_t *t, const char (*stubs)[65], size_t nstubs,
                          const char *stub_marker, uint64_t *scrubbed);
/* Adds a conflict reported by a child, once: a pair already logged here
 * (found by this node or reported before) is not added again. */
int store_add_conflict(stxn_t *t, const char *id, const field_t *kept,
                       const field_t *lost, bool *added);
uint64_t store_last_cseq(const stxn_t *t);

/* Duplicates: records that share an ID number, grouped by number. */
typedef int (*store_dup_cb)(void *arg, const char *idnum, const char *id);
int store_each_duplicate(stxn_t *t, store_dup_cb cb, void *arg);

/* The ids of the records holding an ID number (up to max); *n the count. */
int store_find_idnum(stxn_t *t, const char *idnum, char ids[][65],
                     uint32_t max, uint32_t *n);

/* The ID-number index takes a write's changes at once in a small table
 * keyed by record id and folds them into the index proper when at least
 * n are pending (0, the default: at every commit). A long-running writer
 * (the node) sets a large n and folds when idle: an index keyed by number
 * takes a random page per insert, which a fold of many writes once. What
 * readers see does not depend on it. */
void store_set_idn_defer(store_t *s, size_t n);
/* The changes this process knows to be pending (0 before its first write). */
size_t store_idn_pending(const store_t *s);
/* Folds pending changes now, in a write transaction of its own (a lazy
 * commit): all of them when max is 0, else at most max. */
int store_idn_fold(store_t *s, size_t max);
/* A writer keeps a filter over the ID numbers it holds, so that a number
 * new to the store (nearly every new child) needs no search for other
 * holders. It is built by reading the whole index (0.3 s at 800k
 * children): at a writer's first number, again when one of its writes
 * finds that another process changed the index, and when it fills up. A
 * store opened STORE_FILTER_IDLE never builds it inside a write: its
 * writes search, and store_idn_filter_due says so, until
 * store_idn_filter, called in a pause, builds it (with room for 131,072
 * more numbers; it is due from the start too). store_idn_filter does
 * nothing unless it is due; false when a build failed. */
bool store_idn_filter_due(const store_t *s);
bool store_idn_filter(store_t *s);
/* Whether the filter is ready, as far as this process knows (another
 * process may have changed the index since: the next write finds out). */
bool store_idn_filter_ready(const store_t *s);

/* The audit table: raw keys and values, whose form and hash chain are
 * common/audit.c's. Values are borrowed from LMDB: valid until the
 * transaction ends or writes. */
int store_audit_get(stxn_t *t, const void *key, size_t klen, const void **val,
                    size_t *vlen);  /* LX_ENOTFOUND */
int store_audit_put(stxn_t *t, const void *key, size_t klen, const void *val, size_t vlen);
/* Calls cb for each entry from the first key at or after `from` onward,
 * or with backward from the last key at or before it back. A cb return
 * of 1 stops the walk (no error); another non-zero one is returned. */
typedef int (*store_kv_cb)(void *arg, const void *key, size_t klen, const void *val,
                           size_t vlen);
int store_audit_each(stxn_t *t, const void *from, size_t flen, bool backward,
                     store_kv_cb cb, void *arg);
/* The number of entries in the table: cheap, to notice that it grew. */
uint64_t store_audit_count(stxn_t *t);

#endif
