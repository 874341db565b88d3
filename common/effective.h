/* effective: the policy in force at a node, folded from the province down
 * to the node itself, with where each rule comes from.
 *
 * Each kind folds the same way: the highest level's rule wins, unless
 * that rule lets lower levels refine it. The refinements a rule can allow
 * (its "refine" list) only ever add or tighten:
 *   schema          "fields" (add local fields), "required" (make more
 *                   fields required); per field "enum" (add values) and
 *                   "required" (make it required)
 *   classification  "rules" (add rules), "age_limits" (change them)
 *   alerts          "rules" (add rules)
 *   reporting       "deadline" (an earlier deadline)
 *   access          "narrow" (read or write less, mask more)
 *   retention       "after_years" (keep files for a shorter time)
 * A lower level's rule that is not allowed is left out of the fold and
 * listed as overridden, naming the level whose rule stands. When no
 * policy of a kind is in force the built-in defaults apply (issuer 0,
 * shown as "default"). */
#ifndef LX_EFFECTIVE_H
#define LX_EFFECTIVE_H

#include <jansson.h>
#include <stdbool.h>

#include "policy.h"
#include "schema.h"
#include "store.h"

#define EFF_MAX_REFINED 5

/* Where a rule comes from: the level that set it (0: the defaults) and
 * the levels that refined it. */
typedef struct {
    code_t set_by;
    code_t refined[EFF_MAX_REFINED];
    unsigned nrefined;
} prov_t;

enum { REF_ENUM = 1, REF_REQUIRED = 2 };

typedef struct {
    field_def_t def;        /* strings borrowed from the documents held */
    enum_def_t *enums;      /* owned copy when refined or local; else NULL */
    unsigned refine;        /* REF_* lower levels may still apply */
    prov_t prov;
} eff_field_t;

typedef struct {
    const json_t *rule;     /* {"id", ..., "when"}: borrowed */
    prov_t prov;
} eff_rule_t;

typedef struct effective {
    code_t node;
    char today[11];
    json_t *docs;           /* the bodies folded, kept alive for borrowers */
    json_t *in_force;       /* [{"issuer", "kind", "version"}] */
    json_t *overridden;     /* [{"issuer", "kind", "rule", "reason", "by"}] */
    /* schema: the default fields in schema order, then local fields */
    eff_field_t *fields;
    size_t nfields;
    bool schema_policy;     /* a schema policy is in force */
    /* classification */
    eff_rule_t *class_rules;
    size_t nclass;
    json_t *age_limits;     /* {"category"|"*": years} */
    prov_t age_prov;
    json_t *authoritative;  /* categories the rules alone decide */
    /* alerts */
    eff_rule_t *alerts;
    size_t nalerts;
    /* reporting */
    int deadline_days;
    json_t *deadline_levels; /* {"level": days} */
    prov_t deadline_prov;
    /* access */
    json_t *roles;          /* {"role": {"read", "write", "masked"}} */
    prov_t access_prov;
    /* retention: 0 years when none */
    int retention_years;
    char retention_action[16];
    prov_t retention_prov;
} effective_t;

/* Folds the policies held in t that are in force today (effective <=
 * today < expires) and issued by the node or an ancestor. *out owned by
 * the caller (effective_free). */
int policy_effective(stxn_t *t, const char *today, effective_t **out, why_t *why);
void effective_free(effective_t **self_p);

/* The field of the effective schema, or NULL. */
const field_def_t *eff_field(const effective_t *e, const char *name);

/* Checks a whole record against the effective schema: the default rules
 * (schema_check_record), fields made required, local fields with their
 * types. Fields named x_ that this node's schema does not know (a
 * descendant's) pass the generic check of schema_check_change. */
int eff_check_record(const effective_t *e, const record_t *r, code_t node, why_t *why);

/* The reporting deadline of quarter "YYYYQn" at this node's level:
 * quarter end + days, as YYYY-MM-DD. */
int policy_report_deadline(const effective_t *e, const char *quarter, char out[11],
                           why_t *why);

/* What a department role may do with a field: ACCESS_* bits; masked is
 * set when the role reads the field only masked. */
enum { ACCESS_READ = 1, ACCESS_WRITE = 2, ACCESS_MASKED = 4 };
unsigned policy_access(const effective_t *e, const char *role, const char *field);
/* The same over an access policy body's "roles" object. */
unsigned policy_access_in(const json_t *roles, const char *role, const char *field);

/* The whole effective policy with its provenance, for `policy show
 * --effective`. New reference. */
json_t *effective_json(const effective_t *e);

/* "510000000000", or "default" for 0. */
const char *prov_code(code_t c, char buf[CODE_STRLEN + 1]);

/* Days since 1970-01-01 of a valid date, and back. */
long date_days(const char *date);
void days_date(long days, char out[11]);

#endif
