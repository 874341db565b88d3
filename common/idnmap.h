/* idnmap: the ID-number changes a store has not yet folded into its
 * ID-number index, held in memory by the process that writes.
 *
 * A B-tree keyed by ID number takes a new page for almost every insert
 * (the numbers arrive in random order), and a durable commit writes every
 * page it touched: that cost a relaying node about a third of its time.
 * So a write records the change under the record's id instead (ids made
 * here sort by time, so those inserts append), and this map answers
 * "who holds number N" for the changes not yet folded; the index is
 * brought up to date in one pass now and then (store.c, idn_fold), where
 * each page is written once for many numbers.
 *
 * Per record id: the number the index holds for it (`old`, "" for none)
 * and the number it holds now (`now`, "" for none). */
#ifndef LX_IDNMAP_H
#define LX_IDNMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDNMAP_ID_MAX 64
#define IDNMAP_NUM_MAX 32

/* An entry as the map hands it out: its strings are valid until the map
 * next changes. */
typedef struct {
    const char *id, *old, *now;
    uint64_t hnow;              /* idnmap_hash(now) */
} idnmap_ent_t;

/* The hash the map files strings under (also the store's number filter). */
uint64_t idnmap_hash(const char *s);

typedef struct idnmap idnmap_t;

/* An empty map, or NULL on allocation failure. */
idnmap_t *idnmap_new(void);
/* Frees the map; nulls the caller's pointer; safe to call twice. */
void idnmap_destroy(idnmap_t **self_p);
/* Forgets every entry, keeping the memory for the next ones (a writer
 * fills and empties its map over and over). */
void idnmap_clear(idnmap_t *m);
/* Forgets every entry and gives the memory back. */
void idnmap_release(idnmap_t *m);
/* Makes room for n entries at once when the map next grows (a writer
 * that folds at n pending), instead of doubling its way there. */
void idnmap_reserve(idnmap_t *m, size_t n);
size_t idnmap_count(const idnmap_t *m);

/* Whether record id has an entry, and (out may be NULL) what it is. */
bool idnmap_get(const idnmap_t *m, const char *id, idnmap_ent_t *out);
/* Records that id now holds `now` ("" for none). A record not yet in the
 * map is entered with `old` as the number the index holds for it; for one
 * already in the map `old` is ignored (the index has not moved). Refuses
 * (LX_EINVAL) an id or number longer than the limits; LX_ENOMEM. */
int idnmap_set(idnmap_t *m, const char *id, const char *old, const char *now);
/* The same, and (out may be NULL) the entry as it now is. */
int idnmap_set_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   idnmap_ent_t *out);
/* idnmap_set_ent for an id the caller knows has no entry (a record new
 * to the store: the map holds only records the store holds), without
 * looking for one: a chain of the table less to walk, at memory's pace,
 * for nearly every new child. */
int idnmap_add_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   idnmap_ent_t *out);

/* Forgets the last entry (idnmap_at(m, count - 1)); nothing when empty. */
void idnmap_pop(idnmap_t *m);

/* The i-th entry, i < idnmap_count, in the order they were entered. */
void idnmap_at(const idnmap_t *m, size_t i, idnmap_ent_t *out);

/* Calls cb for each record whose number is now `num`; stops and returns
 * the first nonzero cb result. */
typedef int (*idnmap_cb)(void *arg, const char *id);
int idnmap_each_holder(const idnmap_t *m, const char *num, idnmap_cb cb, void *arg);

#endif
