/* classify: the policies that act on records. Conditions over a record
 * and the date; the derivation of categories, left_behind_type and exits
 * (classification); alerts; the local write path every command takes
 * (stamp, derive, validate against the effective schema, apply); the
 * daily pass and retention.
 *
 * Conditions are three-valued: a field the record does not hold makes
 * the condition unknown, and only a definite answer changes a record. A
 * rule adds its category when it holds; a category listed as
 * "authoritative" is also removed when every rule for it is definitely
 * false (parents who came home). Every category leaves at its age limit
 * (left_behind 16, others 18 by default); a child whose last category
 * leaves is exited with the reason and the date. */
#ifndef LX_CLASSIFY_H
#define LX_CLASSIFY_H

#include <jansson.h>

#include "effective.h"
#include "record.h"
#include "store.h"

/* 1 true, 0 false, -1 unknown. */
int cond_eval(const json_t *cond, const record_t *r, const char *today);

/* Completed years on today of a child born on birth (both YYYY-MM-DD). */
int age_on(const char *birth, const char *today);

/* The field writes (unstamped) that bring r in line with the effective
 * classification on e->today, added to out (a record used as a list of
 * writes); none when r is exited or already in line. */
int policy_derive(const effective_t *e, const record_t *r, record_t *out);

/* How a local write treats a record that already exists. */
typedef enum { WRITE_NEW, WRITE_UPSERT, WRITE_EXISTING } write_mode_t;

typedef struct {
    const char *author;         /* "CODE/DEPT/USER", borrowed */
    write_mode_t mode;
    bool checked;               /* r passed schema_check_record on its own */
    bool system;                /* a derivation (daily, retention): checked
                                   against the default schema only, so a
                                   field made required since cannot stop it */
    const effective_t *eff;     /* NULL: folded here for today */
} write_opts_t;

/* A write made at this node: stamps r's fields as local writes (one fresh
 * HLC, each based on the version it replaces; unchanged fields dropped),
 * assigns an id when r has none, adds the derived fields to the same
 * change, checks the resulting record against the effective schema (why
 * names the field) and applies it. */
int policy_write(stxn_t *t, record_t *r, const write_opts_t *o, apply_t *res, why_t *why);

/* Calls cb for every alert rule that holds for an active record. Returns
 * the number that held, or cb's non-zero return. */
typedef int (*alert_cb)(void *arg, const record_t *r, const eff_rule_t *rule);
int policy_alerts(const effective_t *e, const record_t *r, alert_cb cb, void *arg);

typedef struct {
    uint64_t seen;        /* records looked at */
    uint64_t changed;     /* records written */
    uint64_t exited;      /* of which exited */
    uint64_t anonymised;  /* retention */
    uint64_t purged;
    uint64_t scrubbed;    /* conflict log entries retention reached */
    uint64_t stubs;       /* moved-out stubs whose history it reached */
} policy_stats_t;

/* The daily pass: derives every record this node is responsible for (the
 * records not under one of its children's subtrees: each record is
 * derived by the deepest node that holds it) and writes what changed, as
 * ordinary local writes that replicate. Running it twice on one day
 * changes nothing the second time. */
int policy_daily(store_t *s, const char *today, policy_stats_t *st, why_t *why);

/* Retention: the files of children past the age limit (exited on
 * reaching it, or 18) for the effective after_years are anonymised (name
 * replaced, ID number, phones, guardian's name, addresses and work places
 * cleared) or purged (every field cleared but village, gender, birth
 * date and the exit), as ordinary writes. Nothing when no retention
 * policy is in force. The same dates apply to the history of the
 * children who moved out of this node's subtree (store_each_stub), which
 * no later write reaches. Then, policy or not, the conflict log entries of
 * every record holding a retention marker (and of those stubs) lose
 * what retention removed (store_scrub_conflicts). */
int policy_retention(store_t *s, const char *today, policy_stats_t *st, why_t *why);

#endif
