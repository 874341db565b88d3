#include "access.h"

#include <string.h>

#include "recjson.h"
#include "schema.h"

/* The roles in force while no access policy is: the same as the example
 * policy config/policies/access.json (a unit test keeps them equal). */
static const char default_roles_json[] =
    "{\"operator\":{\"read\":[\"*\"],\"write\":[\"*\"]},"
    "\"civil_affairs\":{\"read\":[\"*\"],\"write\":[\"*\"]},"
    "\"education\":{\"read\":[\"*\"],\"write\":[\"school_name\",\"grade\",\"school_status\"],\"masked\":[\"id_number\",\"guardian_phone\",\"father_phone\",\"mother_phone\"]},"
    "\"public_security\":{\"read\":[\"*\"],\"write\":[\"id_number\",\"household_address\",\"cases\"]},"
    "\"justice\":{\"read\":[\"*\"],\"write\":[\"cases\"],\"masked\":[\"guardian_phone\",\"father_phone\",\"mother_phone\"]},"
    "\"health\":{\"read\":[\"*\"],\"write\":[\"health_status\",\"disability_type\",\"disability_level\"],\"masked\":[\"id_number\",\"guardian_phone\",\"father_phone\",\"mother_phone\"]},"
    "\"womens_federation\":{\"read\":[\"*\"],\"write\":[\"help_pairing\",\"proxy_parent\"],\"masked\":[\"id_number\",\"guardian_phone\",\"father_phone\",\"mother_phone\"]},"
    "\"youth_league\":{\"read\":[\"*\"],\"write\":[\"help_pairing\"],\"masked\":[\"id_number\",\"guardian_phone\",\"father_phone\",\"mother_phone\"]},"
    "\"disabled_persons_federation\":{\"read\":[\"*\"],\"write\":[\"disability_type\",\"disability_level\"],\"masked\":[\"id_number\",\"guardian_phone\",\"father_phone\",\"mother_phone\"]}}";

static const json_t *default_roles(void)
{
    static json_t *roles;
    if (!roles)
        roles = json_loads(default_roles_json, 0, NULL);
    return roles;
}

bool access_personal(const char *f)
{
    static const char *const personal[] = {
        "name", "id_number", "birth_date", "ethnicity", "household_address",
        "guardian_name", "guardian_phone", "father_phone", "mother_phone",
        "father_work_place", "mother_work_place", "health_status", "disability_type",
        "disability_level", NULL,
    };
    for (size_t i = 0; personal[i]; i++)
        if (strcmp(personal[i], f) == 0)
            return true;
    return schema_journal_name(f) || schema_local_name(f);
}

unsigned access_rights(const effective_t *e, const char *role, const char *field)
{
    const json_t *roles = e && e->roles ? e->roles : default_roles();
    if (strncmp(field, "ev_", 3) == 0 && schema_journal_name(field))
        field = "events";
    else if (strncmp(field, "case_", 5) == 0 && schema_journal_name(field))
        field = "cases";
    return policy_access_in(roles, role, field);
}

bool access_role_known(const effective_t *e, const char *role)
{
    const json_t *roles = e && e->roles ? e->roles : default_roles();
    return json_object_get(roles, role) != NULL;
}

void access_mask(const char *field, const char *value, char *out, size_t n)
{
    size_t len = strlen(value), keep_head = 0, keep_tail = 0;
    if (strcmp(field, "id_number") == 0)
        keep_head = 4, keep_tail = 4;
    else if (strstr(field, "phone"))
        keep_tail = 4;
    if (!n)
        return;
    if ((!keep_head && !keep_tail) || len <= keep_head + keep_tail) {
        snprintf(out, n, "***");
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < n; i++)
        out[o++] = i < keep_head || i >= len - keep_tail ? value[i] : '*';
    out[o] = '\0';
}

static bool wanted(const char *const *fields, size_t n, const char *name)
{
    if (!fields)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i], name) == 0)
            return true;
    return false;
}

int access_view(const effective_t *e, const char *role, const record_t *r,
                const char *const *fields, size_t n, bool purpose, json_t **out, why_t *why)
{
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return LX_ENOMEM;
    json_object_set_new(o, "id", json_string(r->id));
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        if (f->val.kind == VAL_NIL || schema_journal_name(f->name) || !wanted(fields, n, f->name))
            continue;
        unsigned a = access_rights(e, role, f->name);
        if (!(a & ACCESS_READ))
            continue;
        if (!purpose && access_personal(f->name)) {
            json_decref(o);
            return why_set(why, LX_EDENIED, "field %s is personal data: state the purpose "
                           "of the read in the X-Purpose header", f->name);
        }
        json_t *v;
        if ((a & ACCESS_MASKED) && f->val.kind == VAL_STR) {
            char m[256];
            access_mask(f->name, f->val.s, m, sizeof m);
            v = json_string(m);
        } else if (a & ACCESS_MASKED) {
            v = json_string("***");
        } else {
            v = recjson_value(&f->val);
        }
        if (!v || json_object_set_new(o, f->name, v)) {
            json_decref(o);
            return LX_ENOMEM;
        }
    }
    *out = o;
    return LX_OK;
}

json_t *access_parse_object(const char *body, size_t len, why_t *why)
{
    if (!body || !len) {
        why_set(why, LX_EINVAL, "the request body is empty: expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        why_set(why, LX_EINVAL, "body line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        why_set(why, LX_EINVAL, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

int access_parse_write(const char *body, size_t len, const effective_t *e, const char *role,
                       record_t *out, why_t *why)
{
    json_t *j = access_parse_object(body, len, why);
    if (!j)
        return LX_EINVAL;
    int rc = LX_OK;
    const char *key;
    json_t *v;
    if (json_object_size(j) > ACCESS_BODY_FIELDS)
        rc = why_set(why, LX_EINVAL, "more than %d fields in one write", ACCESS_BODY_FIELDS);
    json_object_foreach(j, key, v) {
        if (rc)
            break;
        char shown[72];
        snprintf(shown, sizeof shown, "%.64s", key);
        const field_def_t *d = strlen(key) <= 64 ? eff_field(e, key) : NULL;
        if (strcmp(key, "id") == 0)
            rc = why_set(why, LX_EINVAL, "field id: a record's id cannot be written");
        else if (!d)
            rc = why_set(why, LX_EINVAL, "field %s: unknown field", shown);
        else if (!(access_rights(e, role, key) & ACCESS_WRITE))
            rc = why_set(why, LX_EDENIED, "field %s: the role %s may not write it", key, role);
    }
    if (!rc) {
        ver_t none = {0};
        rc = recjson_to_record(j, &none, out, why);
    }
    json_object_foreach(j, key, v) {
        if (rc)
            break;
        const field_t *f = record_field(out, key);
        rc = f ? schema_check_value(eff_field(e, key), &f->val, why) : LX_EINVAL;
    }
    json_decref(j);
    return rc;
}
