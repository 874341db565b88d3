/* polbody: the strict check of a policy body for its kind, and the
 * helpers the policy modules share to name a bad field by its path
 * ("policy.json: body.fields[2].type: ..."). Internal to common/. */
#ifndef LX_POLBODY_H
#define LX_POLBODY_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "policy.h"

/* Refuses a key of obj not in allowed (NULL-terminated), naming
 * name: path.key. path "" is the document's top level. */
int pb_keys(const json_t *obj, const char *const *allowed, const char *name,
            const char *path, why_t *why);

/* Checks body for kind k. */
int pb_check(policy_kind_t k, const json_t *body, const char *name, why_t *why);

/* A field a rule may name: a default schema field, or a local x_ field. */
bool pb_field_ok(const char *name);
/* x_ followed by lower-case snake_case, at most 64 bytes. */
bool pb_local_name(const char *name);

/* Whether the string array arr (may be NULL) holds s. */
bool pb_has(const json_t *arr, const char *s);

/* The department roles of access policies. */
extern const char *const pb_roles[];

#endif
