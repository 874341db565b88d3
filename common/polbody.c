/* The bodies of the six kinds, checked strictly: every object's keys are
 * known, every value has its type, every name refers to something real.
 * A rule set that passes here can be folded and evaluated without further
 * checks (effective.c, classify.c rely on it). */
#include "polbody.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"

#define MAX_FIELDS 64
#define MAX_ENUM 64
#define MAX_RULES 64
#define MAX_DEPTH 8
#define MAX_LOCAL_LEN 512

const char *const pb_roles[] = {
    "civil_affairs", "education", "public_security", "justice", "health",
    "womens_federation", "youth_league", "disabled_persons_federation", "operator", NULL,
};

/* One failure: "name: path: message". */
static int bad(why_t *why, const char *name, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(why_t *why, const char *name, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return why_set(why, LX_EINVAL, "%s: %s: %s", name, path, msg);
}

/* A policy's own text, quoted in a message: printable, cut short. */
static const char *echo(const char *s, char buf[40])
{
    size_t i = 0;
    for (; s[i] && i < 32; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
        buf[--i] = '\0'; /* never end inside a character */
    if (i > 0 && (unsigned char)buf[i - 1] >= 0xC0)
        buf[--i] = '\0';
    return buf;
}

static void sub(char *out, size_t n, const char *path, const char *key)
{
    snprintf(out, n, "%s%s%s", path, *path ? "." : "", key);
}

static void idx(char *out, size_t n, const char *path, size_t i)
{
    snprintf(out, n, "%s[%zu]", path, i);
}

int pb_keys(const json_t *obj, const char *const *allowed, const char *name,
            const char *path, why_t *why)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok) {
            char p[200], b[40];
            sub(p, sizeof p, path, echo(key, b));
            return bad(why, name, p, "unknown key");
        }
    }
    return LX_OK;
}

bool pb_has(const json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach((json_t *)arr, i, e)
        if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
            return true;
    return false;
}

static bool snake(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

bool pb_local_name(const char *name)
{
    return schema_local_name(name);
}

bool pb_field_ok(const char *name)
{
    return schema_field(name) || pb_local_name(name);
}

/* ---- small typed readers: each names the path on failure ---- */

static int get_str(const json_t *o, const char *key, bool need, size_t max, const char **out,
                   const char *name, const char *path, why_t *why)
{
    const json_t *j = json_object_get(o, key);
    char p[200];
    sub(p, sizeof p, path, key);
    *out = NULL;
    if (!j)
        return need ? bad(why, name, p, "required") : LX_OK;
    if (!json_is_string(j) || json_string_length(j) == 0 || json_string_length(j) > max
        || strlen(json_string_value(j)) != json_string_length(j))
        return bad(why, name, p, "expected text of 1 to %zu bytes", max);
    *out = json_string_value(j);
    return LX_OK;
}

static int get_int(const json_t *o, const char *key, bool need, long lo, long hi, long *out,
                   const char *name, const char *path, why_t *why)
{
    const json_t *j = json_object_get(o, key);
    char p[200];
    sub(p, sizeof p, path, key);
    if (!j)
        return need ? bad(why, name, p, "required") : LX_OK;
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return bad(why, name, p, "expected an integer %ld..%ld", lo, hi);
    *out = (long)json_integer_value(j);
    return LX_OK;
}

static int get_bool(const json_t *o, const char *key, const char *name, const char *path,
                    why_t *why)
{
    const json_t *j = json_object_get(o, key);
    char p[200];
    sub(p, sizeof p, path, key);
    if (j && !json_is_boolean(j))
        return bad(why, name, p, "expected true or false");
    return LX_OK;
}

/* An array of distinct strings, each passing ok (when given) and listed
 * in `among` (when given). */
static int get_strs(const json_t *o, const char *key, bool need, size_t max,
                    bool (*ok)(const char *), const char *const *among, const char *what,
                    const char *name, const char *path, why_t *why)
{
    const json_t *a = json_object_get(o, key);
    char p[200], pi[220], b[40];
    sub(p, sizeof p, path, key);
    if (!a)
        return need ? bad(why, name, p, "required") : LX_OK;
    if (!json_is_array(a) || json_array_size(a) > max)
        return bad(why, name, p, "expected a list of at most %zu %s", max, what);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        idx(pi, sizeof pi, p, i);
        if (!json_is_string(e) || json_string_length(e) == 0
            || strlen(json_string_value(e)) != json_string_length(e))
            return bad(why, name, pi, "expected %s", what);
        const char *s = json_string_value(e);
        bool known = !ok || ok(s);
        if (known && among) {
            known = false;
            for (size_t k = 0; among[k] && !known; k++)
                known = strcmp(among[k], s) == 0;
        }
        if (!known)
            return bad(why, name, pi, "unknown %s \"%s\"", what, echo(s, b));
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_array_get(a, k)), s) == 0)
                return bad(why, name, pi, "\"%s\" appears twice", echo(s, b));
    }
    return LX_OK;
}

static int refine(const json_t *body, const char *const *allowed, const char *name,
                  why_t *why)
{
    return get_strs(body, "refine", false, 8, NULL, allowed, "refinement", name, "body", why);
}

/* ---- schema ---- */

static const char *const type_names[] = {"str", "enum", "set", "bool", "date", "phone", NULL};

static int check_enum(const json_t *f, const char *name, const char *path, why_t *why)
{
    static const char *const keys[] = {"value", "zh", "en", NULL};
    const json_t *a = json_object_get(f, "enum");
    char p[200], pi[220], b[40];
    sub(p, sizeof p, path, "enum");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_ENUM)
        return bad(why, name, p, "expected a list of 1 to %d values", MAX_ENUM);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        const char *v, *zh, *en;
        idx(pi, sizeof pi, p, i);
        int rc;
        if (!json_is_object(e))
            return bad(why, name, pi, "expected {\"value\", \"zh\", \"en\"}");
        if ((rc = pb_keys(e, keys, name, pi, why))
            || (rc = get_str(e, "value", true, 32, &v, name, pi, why))
            || (rc = get_str(e, "zh", true, 64, &zh, name, pi, why))
            || (rc = get_str(e, "en", true, 64, &en, name, pi, why)))
            return rc;
        if (!snake(v, 32)) {
            sub(p, sizeof p, pi, "value");
            return bad(why, name, p, "\"%s\" is not snake_case ASCII", echo(v, b));
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(a, k), "value")), v) == 0)
                return bad(why, name, pi, "value \"%s\" appears twice", v);
    }
    return LX_OK;
}

static int check_field(const json_t *f, const char *name, const char *path, why_t *why)
{
    static const char *const keys[] = {"name", "type", "label_zh", "label_en", "enum",
                                       "max_len", "required", "refine", NULL};
    static const char *const frefine[] = {"enum", "required", NULL};
    const char *fname, *type, *zh, *en;
    char p[200], b[40];
    long max_len = 0;
    int rc;
    if (!json_is_object(f))
        return bad(why, name, path, "expected a field object");
    if ((rc = pb_keys(f, keys, name, path, why))
        || (rc = get_str(f, "name", true, 64, &fname, name, path, why))
        || (rc = get_str(f, "type", true, 16, &type, name, path, why))
        || (rc = get_str(f, "label_zh", true, 64, &zh, name, path, why))
        || (rc = get_str(f, "label_en", true, 64, &en, name, path, why))
        || (rc = get_int(f, "max_len", false, 1, MAX_LOCAL_LEN, &max_len, name, path, why))
        || (rc = get_bool(f, "required", name, path, why))
        || (rc = get_strs(f, "refine", false, 4, NULL, frefine, "refinement", name, path, why)))
        return rc;
    sub(p, sizeof p, path, "name");
    if (schema_field(fname))
        return bad(why, name, p, "\"%s\" is a default field; local fields are named x_...",
                   fname);
    if (!pb_local_name(fname))
        return bad(why, name, p, "\"%s\" must be x_ followed by snake_case", echo(fname, b));
    int t = -1;
    for (int i = 0; type_names[i]; i++)
        if (strcmp(type_names[i], type) == 0)
            t = i;
    sub(p, sizeof p, path, "type");
    if (t < 0)
        return bad(why, name, p, "unknown type \"%s\" (str, enum, set, bool, date, phone)",
                   echo(type, b));
    bool enumed = t == 1 || t == 2;
    sub(p, sizeof p, path, "enum");
    if (enumed)
        rc = check_enum(f, name, path, why);
    else if (json_object_get(f, "enum"))
        rc = bad(why, name, p, "only enum and set fields have values");
    sub(p, sizeof p, path, "max_len");
    if (!rc && max_len && t != 0)
        rc = bad(why, name, p, "only str fields have a length");
    return rc;
}

static int check_schema(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"fields", "require", "refine", NULL};
    static const char *const brefine[] = {"fields", "required", NULL};
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why))
        || (rc = refine(body, brefine, name, why))
        || (rc = get_strs(body, "require", false, 64, pb_field_ok, NULL, "field", name,
                          "body", why)))
        return rc;
    const json_t *a = json_object_get(body, "fields");
    if (!a)
        return LX_OK;
    if (!json_is_array(a) || json_array_size(a) > MAX_FIELDS)
        return bad(why, name, "body.fields", "expected a list of at most %d fields", MAX_FIELDS);
    size_t i;
    json_t *f;
    char p[200];
    json_array_foreach(a, i, f) {
        idx(p, sizeof p, "body.fields", i);
        if ((rc = check_field(f, name, p, why)))
            return rc;
        const char *fn = json_string_value(json_object_get(f, "name"));
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(a, k), "name")), fn) == 0)
                return bad(why, name, p, "field %s appears twice", fn);
    }
    return LX_OK;
}

/* ---- conditions (classification and alerts) ---- */

/* One condition: {"all": [...]}, {"any": [...]}, {"not": c},
 * {"field": F, "in": [...]}, {"field": F, "is": bool},
 * {"field": F, "present": bool}, {"field": F, "within_days": N},
 * {"age_lt": N}, {"age_ge": N}. */
static int check_cond(const json_t *c, int depth, const char *name, const char *path,
                      why_t *why)
{
    char p[200], pi[220], b[40];
    if (!json_is_object(c))
        return bad(why, name, path, "expected a condition object");
    if (depth > MAX_DEPTH)
        return bad(why, name, path, "nested deeper than %d", MAX_DEPTH);
    const json_t *j;
    if ((j = json_object_get(c, "all")) || (j = json_object_get(c, "any"))) {
        const char *op = json_object_get(c, "all") ? "all" : "any";
        sub(p, sizeof p, path, op);
        if (json_object_size(c) != 1)
            return bad(why, name, path, "\"%s\" stands alone in its object", op);
        if (!json_is_array(j) || json_array_size(j) == 0 || json_array_size(j) > 32)
            return bad(why, name, p, "expected a list of 1 to 32 conditions");
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) {
            idx(pi, sizeof pi, p, i);
            int rc = check_cond(e, depth + 1, name, pi, why);
            if (rc)
                return rc;
        }
        return LX_OK;
    }
    if ((j = json_object_get(c, "not"))) {
        sub(p, sizeof p, path, "not");
        if (json_object_size(c) != 1)
            return bad(why, name, path, "\"not\" stands alone in its object");
        return check_cond(j, depth + 1, name, p, why);
    }
    if (json_object_get(c, "age_lt") || json_object_get(c, "age_ge")) {
        const char *op = json_object_get(c, "age_lt") ? "age_lt" : "age_ge";
        long n;
        if (json_object_size(c) != 1)
            return bad(why, name, path, "\"%s\" stands alone in its object", op);
        return get_int(c, op, true, 0, 30, &n, name, path, why);
    }
    static const char *const keys[] = {"field", "in", "is", "present", "within_days", NULL};
    const char *f;
    int rc;
    if ((rc = pb_keys(c, keys, name, path, why))
        || (rc = get_str(c, "field", true, 64, &f, name, path, why)))
        return rc;
    sub(p, sizeof p, path, "field");
    if (!pb_field_ok(f))
        return bad(why, name, p, "unknown field \"%s\"", echo(f, b));
    if (json_object_size(c) != 2)
        return bad(why, name, path, "expected \"field\" and one of in, is, present, within_days");
    long n;
    if (json_object_get(c, "in"))
        return get_strs(c, "in", true, 64, NULL, NULL, "value", name, path, why);
    if ((rc = get_bool(c, "is", name, path, why)) || (rc = get_bool(c, "present", name, path, why)))
        return rc;
    return get_int(c, "within_days", false, 1, 3650, &n, name, path, why);
}

/* Rules with an id, unique in the body, and a condition. */
static int check_rules(const json_t *body, const char *const *keys,
                       int (*extra)(const json_t *, const char *, const char *, why_t *),
                       const char *name, why_t *why)
{
    const json_t *a = json_object_get(body, "rules");
    if (!a)
        return LX_OK;
    if (!json_is_array(a) || json_array_size(a) > MAX_RULES)
        return bad(why, name, "body.rules", "expected a list of at most %d rules", MAX_RULES);
    size_t i;
    json_t *r;
    char p[200], pw[220], b[40];
    json_array_foreach(a, i, r) {
        idx(p, sizeof p, "body.rules", i);
        const char *id;
        int rc;
        if (!json_is_object(r))
            return bad(why, name, p, "expected a rule object");
        if ((rc = pb_keys(r, keys, name, p, why))
            || (rc = get_str(r, "id", true, 32, &id, name, p, why)))
            return rc;
        sub(pw, sizeof pw, p, "id");
        if (!snake(id, 32))
            return bad(why, name, pw, "\"%s\" is not snake_case ASCII", echo(id, b));
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(a, k), "id")), id) == 0)
                return bad(why, name, pw, "rule %s appears twice", id);
        sub(pw, sizeof pw, p, "when");
        if (!json_object_get(r, "when"))
            return bad(why, name, pw, "required");
        if ((rc = check_cond(json_object_get(r, "when"), 0, name, pw, why))
            || (rc = extra(r, name, p, why)))
            return rc;
    }
    return LX_OK;
}

static bool in_enum(const char *field, const char *v)
{
    const field_def_t *d = schema_field(field);
    return schema_enum_label(d, v, false) != NULL;
}

static bool is_category(const char *s)
{
    return in_enum("categories", s);
}

static int class_rule(const json_t *r, const char *name, const char *path, why_t *why)
{
    const char *cat, *lbt;
    char p[200], b[40];
    int rc;
    if ((rc = get_str(r, "category", true, 32, &cat, name, path, why))
        || (rc = get_str(r, "left_behind_type", false, 32, &lbt, name, path, why)))
        return rc;
    sub(p, sizeof p, path, "category");
    if (!in_enum("categories", cat))
        return bad(why, name, p, "unknown category \"%s\"", echo(cat, b));
    sub(p, sizeof p, path, "left_behind_type");
    if (lbt && (strcmp(cat, "left_behind") != 0 || !in_enum("left_behind_type", lbt)))
        return bad(why, name, p, "expected both_parents_away or one_away_other_incapable, "
                   "on a left_behind rule");
    return LX_OK;
}

static int check_classification(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"rules", "age_limits", "authoritative", "refine", NULL};
    static const char *const rkeys[] = {"id", "category", "left_behind_type", "when", NULL};
    static const char *const brefine[] = {"rules", "age_limits", NULL};
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why)) || (rc = refine(body, brefine, name, why))
        || (rc = check_rules(body, rkeys, class_rule, name, why)))
        return rc;
    const json_t *lim = json_object_get(body, "age_limits");
    const char *key;
    json_t *v;
    char p[200], b[40];
    if (lim && !json_is_object(lim))
        return bad(why, name, "body.age_limits", "expected {\"category\": years, \"*\": years}");
    json_object_foreach((json_t *)lim, key, v) {
        sub(p, sizeof p, "body.age_limits", echo(key, b));
        if (strcmp(key, "*") != 0 && !in_enum("categories", key))
            return bad(why, name, p, "unknown category");
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 25)
            return bad(why, name, p, "expected years, 1..25");
    }
    return get_strs(body, "authoritative", false, 8, is_category, NULL, "category", name,
                    "body", why);
}

static int alert_rule(const json_t *r, const char *name, const char *path, why_t *why)
{
    const char *zh, *en;
    int rc = get_str(r, "reason_zh", true, 128, &zh, name, path, why);
    return rc ? rc : get_str(r, "reason_en", true, 128, &en, name, path, why);
}

static int check_alerts(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"rules", "refine", NULL};
    static const char *const rkeys[] = {"id", "reason_zh", "reason_en", "when", NULL};
    static const char *const brefine[] = {"rules", NULL};
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why)) || (rc = refine(body, brefine, name, why)))
        return rc;
    return check_rules(body, rkeys, alert_rule, name, why);
}

/* ---- reporting, access, retention ---- */

static int check_reporting(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"deadline_days_after_quarter", "levels", "refine", NULL};
    static const char *const brefine[] = {"deadline", NULL};
    long d;
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why)) || (rc = refine(body, brefine, name, why))
        || (rc = get_int(body, "deadline_days_after_quarter", true, 1, 90, &d, name, "body", why)))
        return rc;
    const json_t *lv = json_object_get(body, "levels");
    if (lv && !json_is_object(lv))
        return bad(why, name, "body.levels", "expected {\"village\": days, ...}");
    const char *key;
    json_t *v;
    char p[200], b[40];
    json_object_foreach((json_t *)lv, key, v) {
        sub(p, sizeof p, "body.levels", echo(key, b));
        if (level_parse(key) == LEVEL_NONE)
            return bad(why, name, p, "unknown level (village, township, county, city, province)");
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 90)
            return bad(why, name, p, "expected days, 1..90");
    }
    return LX_OK;
}

static bool access_field(const char *s)
{
    return strcmp(s, "*") == 0 || strcmp(s, "events") == 0 || strcmp(s, "cases") == 0
        || pb_field_ok(s);
}

static int check_access(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"roles", "refine", NULL};
    static const char *const rkeys[] = {"read", "write", "masked", NULL};
    static const char *const brefine[] = {"narrow", NULL};
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why)) || (rc = refine(body, brefine, name, why)))
        return rc;
    const json_t *roles = json_object_get(body, "roles");
    if (!json_is_object(roles))
        return bad(why, name, "body.roles", "expected {\"role\": {\"read\", \"write\", \"masked\"}}");
    const char *key;
    json_t *r;
    char p[200], b[40];
    json_object_foreach((json_t *)roles, key, r) {
        sub(p, sizeof p, "body.roles", echo(key, b));
        bool known = false;
        for (size_t i = 0; pb_roles[i] && !known; i++)
            known = strcmp(pb_roles[i], key) == 0;
        if (!known)
            return bad(why, name, p, "unknown role");
        if (!json_is_object(r))
            return bad(why, name, p, "expected {\"read\", \"write\", \"masked\"}");
        if ((rc = pb_keys(r, rkeys, name, p, why)))
            return rc;
        for (size_t i = 0; rkeys[i]; i++)
            if ((rc = get_strs(r, rkeys[i], false, 128, access_field, NULL, "field", name, p, why)))
                return rc;
    }
    return LX_OK;
}

static int check_retention(const json_t *body, const char *name, why_t *why)
{
    static const char *const keys[] = {"after_years", "action", "refine", NULL};
    static const char *const brefine[] = {"after_years", NULL};
    long y;
    const char *act;
    int rc;
    if ((rc = pb_keys(body, keys, name, "body", why)) || (rc = refine(body, brefine, name, why))
        || (rc = get_int(body, "after_years", true, 1, 100, &y, name, "body", why))
        || (rc = get_str(body, "action", true, 16, &act, name, "body", why)))
        return rc;
    if (strcmp(act, "anonymise") != 0 && strcmp(act, "purge") != 0)
        return bad(why, name, "body.action", "expected anonymise or purge");
    return LX_OK;
}

int pb_check(policy_kind_t k, const json_t *body, const char *name, why_t *why)
{
    switch (k) {
    case POLICY_SCHEMA: return check_schema(body, name, why);
    case POLICY_CLASSIFICATION: return check_classification(body, name, why);
    case POLICY_ALERTS: return check_alerts(body, name, why);
    case POLICY_REPORTING: return check_reporting(body, name, why);
    case POLICY_ACCESS: return check_access(body, name, why);
    case POLICY_RETENTION: return check_retention(body, name, why);
    case POLICY_NKINDS: break;
    }
    return why_set(why, LX_EINVAL, "%s: kind: unknown", name);
}
