/* access: what a department's role sees of a child's file and may change,
 * by the effective access policy (common/effective.h), or by the built-in
 * one (config/policies/access.json) while no access policy is in force.
 *
 * Reading: a field the role does not read is left out; a masked one is
 * shown in part (an ID number as its first 4 and last 4 characters,
 * phones as their last 4, anything else as "***"). Personal fields may be
 * read only for a stated purpose. Writing: every field of the write must
 * be one the role writes, or the whole write is refused naming it. */
#ifndef LX_ACCESS_H
#define LX_ACCESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "effective.h"
#include "err.h"
#include "record.h"

/* Whether a field is personal data of the child (PIPL art. 28): reading
 * it needs a purpose. Journal and local fields count as personal. */
bool access_personal(const char *field);

/* The role's rights on a field: ACCESS_* bits (effective.h). Journal
 * fields take the rights of "events" (ev_...) and "cases" (case_...). */
unsigned access_rights(const effective_t *e, const char *role, const char *field);

/* Whether the role is known to the access policy in force. */
bool access_role_known(const effective_t *e, const char *role);

/* Writes the masked form of value into out (n bytes). */
void access_mask(const char *field, const char *value, char *out, size_t n);

/* The record as the role may see it: {"id", readable fields...}, masked
 * where the policy says, journal fields left out. When fields (n names)
 * is given, only those. Without a purpose, a view that would show a
 * personal field is refused (LX_EDENIED, why names the field). */
int access_view(const effective_t *e, const char *role, const record_t *r,
                const char *const *fields, size_t n, bool purpose, json_t **out,
                why_t *why);

/* Parses a request body that sets fields: a JSON object of field names
 * and values, at most ACCESS_BODY_FIELDS of them. Each must be a field of
 * the effective schema (e may be NULL: the default one), of its type,
 * and writable by the role; "id" is refused. The values go into out,
 * unstamped. why names the field, or the line and column of bad JSON. */
#define ACCESS_BODY_FIELDS 64
int access_parse_write(const char *body, size_t len, const effective_t *e,
                       const char *role, record_t *out, why_t *why);

/* Parses a request body as a JSON object (NULL and why on anything
 * else); depth is limited. */
json_t *access_parse_object(const char *body, size_t len, why_t *why);

#endif
