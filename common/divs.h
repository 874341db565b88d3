/* divs: the codes and Chinese names of division units, read from the
 * statistical code tables in data/divisions (Sichuan, 2022 edition). */
#ifndef LX_DIVS_H
#define LX_DIVS_H

#include <stdbool.h>
#include <stddef.h>

#include "code.h"
#include "err.h"

typedef struct divs divs_t;

/* Loads provinces.csv, cities.csv, counties.csv, townships.csv and
 * villages.csv from dir (short codes are padded to 12 digits). */
int divs_load(const char *dir, divs_t **out, why_t *why);
/* The same, keeping only the units in under's subtree and its ancestors
 * (a node's own reports name nothing else): a village holds a handful of
 * names instead of Sichuan's 37,000. under 0 keeps every unit. */
int divs_load_under(const char *dir, code_t under, divs_t **out, why_t *why);
void divs_destroy(divs_t **self_p);

/* The directory to load from: $LIANXIN_DIVISIONS, else data/divisions
 * beside the program's build directory. Never NULL. */
const char *divs_default_dir(char *buf, size_t n);

/* The names a node's reports use, loaded from divs_default_dir the first
 * time they are asked for (divs_load_under its code), shared by whoever
 * holds the slot; NULL when they cannot be loaded (codes stand for names),
 * and the load is not tried again. */
typedef struct {
    divs_t *d;
    bool tried;
} divs_once_t;
const divs_t *divs_once(divs_once_t *o, code_t under);

/* The unit's name, or NULL when unknown. */
const char *divs_name(const divs_t *d, code_t c);

/* Village codes under node, in code order: up to max into out; returns
 * how many there are in all. */
size_t divs_villages(const divs_t *d, code_t node, code_t *out, size_t max);

#endif
