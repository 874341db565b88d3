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

typedef struct {
    char id[IDNMAP_ID_MAX + 1];
    char old[IDNMAP_NUM_MAX + 1];
    char now[IDNMAP_NUM_MAX + 1];
    unsigned next_id, next_now; /* chains, 1-based; 0 ends */
    uint64_t hid, hnow;         /* idnmap_hash of id and of now */
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

/* The entry of record id, or NULL. Valid until the next change. */
const idnmap_ent_t *idnmap_get(const idnmap_t *m, const char *id);
/* Records that id now holds `now` ("" for none). A record not yet in the
 * map is entered with `old` as the number the index holds for it; for one
 * already in the map `old` is ignored (the index has not moved). Refuses
 * (LX_EINVAL) an id or number longer than the limits; LX_ENOMEM. */
int idnmap_set(idnmap_t *m, const char *id, const char *old, const char *now);
/* The same, pointing *ent at the entry (valid until the next change). */
int idnmap_set_ent(idnmap_t *m, const char *id, const char *old, const char *now,
                   const idnmap_ent_t **ent);

/* Forgets the last entry (idnmap_at(m, count - 1)); nothing when empty. */
void idnmap_pop(idnmap_t *m);

/* The i-th entry, i < idnmap_count (any order). */
const idnmap_ent_t *idnmap_at(const idnmap_t *m, size_t i);

/* Calls cb for each record whose number is now `num`; stops and returns
 * the first nonzero cb result. */
typedef int (*idnmap_cb)(void *arg, const char *id);
int idnmap_each_holder(const idnmap_t *m, const char *num, idnmap_cb cb, void *arg);

#endif
