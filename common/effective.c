/* The fold of the policy chain. Policies are taken in level order,
 * province first; each kind keeps, while folding, what the levels above
 * still allow the levels below to refine. */
#include "effective.h"
#include "polbody.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the built-in defaults (DOMAIN.md), used when no policy of the
 * kind is in force; they pass the same checks as any policy ---- */

static const char DEFAULT_CLASSIFICATION[] =
    "{\"rules\": ["
    "{\"id\": \"both_parents_away\", \"category\": \"left_behind\","
    " \"left_behind_type\": \"both_parents_away\", \"when\": {\"all\": [{\"age_lt\": 16},"
    " {\"field\": \"father_status\", \"in\": [\"migrant_worker\"]},"
    " {\"field\": \"mother_status\", \"in\": [\"migrant_worker\"]}]}},"
    "{\"id\": \"father_away_mother_unable\", \"category\": \"left_behind\","
    " \"left_behind_type\": \"one_away_other_incapable\", \"when\": {\"all\": [{\"age_lt\": 16},"
    " {\"field\": \"father_status\", \"in\": [\"migrant_worker\"]},"
    " {\"any\": [{\"field\": \"mother_status\", \"in\": [\"incapable\"]},"
    "  {\"all\": [{\"field\": \"mother_status\", \"in\": [\"at_home\"]},"
    "   {\"field\": \"guardian_type\", \"in\": [\"parent\"]},"
    "   {\"field\": \"guardian_capable\", \"is\": false}]}]}]}},"
    "{\"id\": \"mother_away_father_unable\", \"category\": \"left_behind\","
    " \"left_behind_type\": \"one_away_other_incapable\", \"when\": {\"all\": [{\"age_lt\": 16},"
    " {\"field\": \"mother_status\", \"in\": [\"migrant_worker\"]},"
    " {\"any\": [{\"field\": \"father_status\", \"in\": [\"incapable\"]},"
    "  {\"all\": [{\"field\": \"father_status\", \"in\": [\"at_home\"]},"
    "   {\"field\": \"guardian_type\", \"in\": [\"parent\"]},"
    "   {\"field\": \"guardian_capable\", \"is\": false}]}]}]}},"
    "{\"id\": \"orphan\", \"category\": \"orphan\", \"when\": {\"all\": ["
    " {\"field\": \"father_status\", \"in\": [\"deceased\"]},"
    " {\"field\": \"mother_status\", \"in\": [\"deceased\"]}]}},"
    "{\"id\": \"de_facto_unsupported\", \"category\": \"de_facto_unsupported\", \"when\": {\"any\": ["
    " {\"all\": [{\"field\": \"father_status\", \"in\": [\"incapable\"]},"
    "  {\"field\": \"mother_status\", \"in\": [\"incapable\", \"deceased\"]}]},"
    " {\"all\": [{\"field\": \"father_status\", \"in\": [\"deceased\"]},"
    "  {\"field\": \"mother_status\", \"in\": [\"incapable\"]}]}]}},"
    "{\"id\": \"dropout\", \"category\": \"dropout\", \"when\": {\"all\": [{\"age_lt\": 16},"
    " {\"field\": \"school_status\", \"in\": [\"dropped_out\"]}]}}],"
    " \"age_limits\": {\"left_behind\": 16, \"*\": 18},"
    " \"authoritative\": [\"left_behind\"]}";

static const char DEFAULT_ALERTS[] =
    "{\"rules\": ["
    "{\"id\": \"no_guardian_under_16\","
    " \"reason_zh\": \"未满16周岁无人监护(未成年人保护法第21条)\","
    " \"reason_en\": \"Under 16 without a guardian (Minors Protection Law art. 21)\","
    " \"when\": {\"all\": [{\"age_lt\": 16}, {\"field\": \"guardian_type\", \"in\": [\"none\"]}]}},"
    "{\"id\": \"high_risk_no_visit_30d\", \"reason_zh\": \"高风险且30日内未走访\","
    " \"reason_en\": \"High risk and no home visit in 30 days\","
    " \"when\": {\"all\": [{\"field\": \"risk_level\", \"in\": [\"high\"]},"
    " {\"not\": {\"field\": \"last_visit_date\", \"within_days\": 30}}]}},"
    "{\"id\": \"guardian_unable\", \"reason_zh\": \"留守儿童的受委托监护人无监护能力\","
    " \"reason_en\": \"Left-behind child whose guardian is unable to care\","
    " \"when\": {\"all\": [{\"field\": \"categories\", \"in\": [\"left_behind\"]},"
    " {\"field\": \"guardian_capable\", \"is\": false}]}}]}";

#define MASKED_PERSONAL "\"masked\": [\"id_number\", \"guardian_phone\", \"father_phone\", \"mother_phone\"]"

static const char DEFAULT_ACCESS[] =
    "{\"roles\": {"
    "\"operator\": {\"read\": [\"*\"], \"write\": [\"*\"]},"
    "\"civil_affairs\": {\"read\": [\"*\"], \"write\": [\"*\"]},"
    "\"education\": {\"read\": [\"*\"], \"write\": [\"school_name\", \"grade\", \"school_status\"], "
    MASKED_PERSONAL "},"
    "\"public_security\": {\"read\": [\"*\"], \"write\": [\"id_number\", \"household_address\"]},"
    "\"justice\": {\"read\": [\"*\"], \"write\": [], " MASKED_PERSONAL "},"
    "\"health\": {\"read\": [\"*\"], \"write\": [\"health_status\", \"disability_type\","
    " \"disability_level\"], " MASKED_PERSONAL "},"
    "\"womens_federation\": {\"read\": [\"*\"], \"write\": [\"help_pairing\", \"proxy_parent\"], "
    MASKED_PERSONAL "},"
    "\"youth_league\": {\"read\": [\"*\"], \"write\": [\"help_pairing\"], " MASKED_PERSONAL "},"
    "\"disabled_persons_federation\": {\"read\": [\"*\"], \"write\": [\"disability_type\","
    " \"disability_level\"], " MASKED_PERSONAL "}}}";

#define DEFAULT_DEADLINE_DAYS 10  /* issue 5: ten days after the quarter ends */

/* ---- helpers ---- */

const char *prov_code(code_t c, char buf[CODE_STRLEN + 1])
{
    return c ? code_fmt(c, buf) : "default";
}

static void refined(prov_t *p, code_t by)
{
    for (unsigned i = 0; i < p->nrefined; i++)
        if (p->refined[i] == by)
            return;
    if (p->nrefined < EFF_MAX_REFINED)
        p->refined[p->nrefined++] = by;
}

/* A lower level's rule left out: which, why, and whose rule stands. */
static void overridden(effective_t *e, code_t issuer, policy_kind_t k, const char *rule,
                       const char *reason, code_t by)
{
    char a[CODE_STRLEN + 1], b[CODE_STRLEN + 1];
    json_array_append_new(e->overridden,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "issuer", prov_code(issuer, a),
                                    "kind", policy_kind_name(k), "rule", rule, "reason", reason,
                                    "by", prov_code(by, b)));
}

long date_days(const char *s)
{
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void days_date(long z, char out[11])
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    long d = doy - (153 * mp + 2) / 5 + 1;
    long m = mp + (mp < 10 ? 3 : -9);
    long y = yoe + era * 400 + (m <= 2);
    snprintf(out, 11, "%04ld-%02ld-%02ld", y, m, d);
}

/* ---- collecting the chain ---- */

typedef struct {
    code_t issuer;
    policy_kind_t kind;
    uint32_t version;
    json_t *doc;   /* a reference */
} link_t;

typedef struct {
    effective_t *e;
    link_t *l;
    size_t n, cap;
} chain_t;

static int chain_cb(void *arg, const void *env, size_t len, const policy_t *p, uint64_t at)
{
    (void)env, (void)len, (void)at;
    chain_t *c = arg;
    const char *today = c->e->today;
    if (!code_contains(p->issuer, c->e->node) || strcmp(p->effective, today) > 0
        || (p->expires[0] && strcmp(today, p->expires) >= 0))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        link_t *nl = realloc(c->l, cap * sizeof *nl);
        if (!nl)
            return LX_ENOMEM;
        c->l = nl;
        c->cap = cap;
    }
    c->l[c->n++] = (link_t){p->issuer, p->kind, p->version, json_incref(p->doc)};
    return 0;
}

static int by_level(const void *a, const void *b)
{
    const link_t *x = a, *y = b;
    int lx = (int)code_level(x->issuer), ly = (int)code_level(y->issuer);
    return lx != ly ? lx - ly : (int)x->kind - (int)y->kind;
}

/* ---- schema ---- */

static eff_field_t *find_field(effective_t *e, const char *name)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (strcmp(e->fields[i].def.name, name) == 0)
            return &e->fields[i];
    return NULL;
}

static unsigned refine_bits(const json_t *arr)
{
    return (pb_has(arr, "enum") ? REF_ENUM : 0) | (pb_has(arr, "required") ? REF_REQUIRED : 0);
}

static ftype_t ftype_of(const char *t)
{
    static const struct { const char *n; ftype_t t; } map[] = {
        {"str", FT_STR}, {"enum", FT_ENUM}, {"set", FT_SET}, {"bool", FT_BOOL},
        {"date", FT_DATE}, {"phone", FT_PHONE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].n, t) == 0)
            return map[i].t;
    return FT_STR;
}

/* An enum array (terminated by {NULL}) of old's values then the new
 * values of list; *added counts them. */
static enum_def_t *merge_enums(const enum_def_t *old, const json_t *list, size_t *added)
{
    size_t n = 0;
    while (old && old[n].value)
        n++;
    enum_def_t *e = calloc(n + json_array_size(list) + 1, sizeof *e);
    if (!e)
        return NULL;
    if (n)
        memcpy(e, old, n * sizeof *e);
    *added = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *val = json_string_value(json_object_get(v, "value"));
        bool have = false;
        for (size_t k = 0; k < n && !have; k++)
            have = strcmp(e[k].value, val) == 0;
        if (have)
            continue;
        e[n++] = (enum_def_t){val, json_string_value(json_object_get(v, "zh")),
                              json_string_value(json_object_get(v, "en"))};
        (*added)++;
    }
    return e;
}

static int add_local(effective_t *e, const json_t *f, code_t issuer, bool allow_required,
                     code_t req_by)
{
    eff_field_t *nf = realloc(e->fields, (e->nfields + 1) * sizeof *nf);
    if (!nf)
        return LX_ENOMEM;
    e->fields = nf;
    eff_field_t *x = &nf[e->nfields];
    memset(x, 0, sizeof *x);
    const char *type = json_string_value(json_object_get(f, "type"));
    const json_t *ml = json_object_get(f, "max_len");
    x->def.name = json_string_value(json_object_get(f, "name"));
    x->def.type = ftype_of(type);
    x->def.zh = json_string_value(json_object_get(f, "label_zh"));
    x->def.en = json_string_value(json_object_get(f, "label_en"));
    x->def.max_len = ml ? (unsigned)json_integer_value(ml) : 128;
    x->def.required = json_is_true(json_object_get(f, "required"));
    if (x->def.required && !allow_required) {
        x->def.required = false;
        overridden(e, issuer, POLICY_SCHEMA, x->def.name,
                   "making fields required is not allowed here; added as optional", req_by);
    }
    if (json_object_get(f, "enum")) {
        size_t added;
        if (!(x->enums = merge_enums(NULL, json_object_get(f, "enum"), &added)))
            return LX_ENOMEM;
        x->def.enums = x->enums;
    }
    x->refine = refine_bits(json_object_get(f, "refine"));
    x->prov.set_by = issuer;
    e->nfields++;
    return LX_OK;
}

/* A lower level's definition of a field a higher level made. */
static int refine_local(effective_t *e, eff_field_t *x, const json_t *f, code_t issuer)
{
    const char *name = x->def.name;
    if (ftype_of(json_string_value(json_object_get(f, "type"))) != x->def.type) {
        overridden(e, issuer, POLICY_SCHEMA, name, "the type cannot change", x->prov.set_by);
        return LX_OK;
    }
    const json_t *en = json_object_get(f, "enum");
    if (en) {
        size_t added = 0;
        enum_def_t *ne = merge_enums(x->def.enums, en, &added);
        if (!ne)
            return LX_ENOMEM;
        if (added && (x->refine & REF_ENUM)) {
            free(x->enums);
            x->enums = ne;
            x->def.enums = ne;
            refined(&x->prov, issuer);
        } else {
            free(ne);
            if (added)
                overridden(e, issuer, POLICY_SCHEMA, name, "adding values is not allowed",
                           x->prov.set_by);
        }
    }
    if (json_is_true(json_object_get(f, "required")) && !x->def.required) {
        if (x->refine & REF_REQUIRED) {
            x->def.required = true;
            refined(&x->prov, issuer);
        } else {
            overridden(e, issuer, POLICY_SCHEMA, name, "making it required is not allowed",
                       x->prov.set_by);
        }
    }
    /* A lower level may pass on less freedom, never more. */
    if (json_object_get(f, "refine"))
        x->refine &= refine_bits(json_object_get(f, "refine"));
    return LX_OK;
}

static void require_field(effective_t *e, const char *name, code_t issuer, bool allow,
                          code_t allow_by)
{
    eff_field_t *x = find_field(e, name);
    if (!x) {
        overridden(e, issuer, POLICY_SCHEMA, name, "no such field in the effective schema", 0);
        return;
    }
    if (x->def.required)
        return;
    bool ok = x->prov.set_by == issuer || (x->prov.set_by ? (x->refine & REF_REQUIRED) : allow);
    if (!ok) {
        overridden(e, issuer, POLICY_SCHEMA, name, "making it required is not allowed",
                   x->prov.set_by ? x->prov.set_by : allow_by);
        return;
    }
    x->def.required = true;
    if (x->prov.set_by != issuer)
        refined(&x->prov, issuer);
}

static int fold_schema(effective_t *e, const link_t *l, size_t n)
{
    e->nfields = schema_count();
    if (!(e->fields = calloc(e->nfields, sizeof *e->fields)))
        return LX_ENOMEM;
    for (size_t i = 0; i < e->nfields; i++)
        e->fields[i].def = *schema_at(i);
    bool allow_fields = true, allow_required = true;
    code_t fields_by = 0, required_by = 0;
    for (size_t i = 0; i < n; i++) {
        if (l[i].kind != POLICY_SCHEMA)
            continue;
        e->schema_policy = true;
        const json_t *body = json_object_get(l[i].doc, "body");
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(body, "fields"), k, f) {
            const char *name = json_string_value(json_object_get(f, "name"));
            eff_field_t *x = find_field(e, name);
            int rc = LX_OK;
            if (x)
                rc = refine_local(e, x, f, l[i].issuer);
            else if (allow_fields)
                rc = add_local(e, f, l[i].issuer, allow_required, required_by);
            else
                overridden(e, l[i].issuer, POLICY_SCHEMA, name, "adding fields is not allowed",
                           fields_by);
            if (rc)
                return rc;
        }
        json_t *r;
        json_array_foreach(json_object_get(body, "require"), k, r)
            require_field(e, json_string_value(r), l[i].issuer, allow_required, required_by);
        const json_t *ref = json_object_get(body, "refine");
        if (allow_fields && !pb_has(ref, "fields"))
            allow_fields = false, fields_by = l[i].issuer;
        if (allow_required && !pb_has(ref, "required"))
            allow_required = false, required_by = l[i].issuer;
    }
    return LX_OK;
}

/* ---- rule lists: classification and alerts ---- */

static eff_rule_t *find_rule(eff_rule_t *r, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(json_string_value(json_object_get(r[i].rule, "id")), id) == 0)
            return &r[i];
    return NULL;
}

static int fold_rules(effective_t *e, policy_kind_t kind, const link_t *l, size_t n,
                      const json_t *defaults, eff_rule_t **out, size_t *nout)
{
    bool any = false, allow = true;
    code_t allow_by = 0;
    for (size_t i = 0; i < n; i++)
        any |= l[i].kind == kind;
    link_t def = {0, kind, 0, (json_t *)defaults};
    const link_t *chain = any ? l : &def;
    size_t len = any ? n : 1;
    for (size_t i = 0; i < len; i++) {
        if (chain[i].kind != kind)
            continue;
        const json_t *body = any ? json_object_get(chain[i].doc, "body") : chain[i].doc;
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(body, "rules"), k, r) {
            const char *id = json_string_value(json_object_get(r, "id"));
            eff_rule_t *old = find_rule(*out, *nout, id);
            if (old) {
                overridden(e, chain[i].issuer, kind, id, "a rule with this id is set above",
                           old->prov.set_by);
                continue;
            }
            if (!allow) {
                overridden(e, chain[i].issuer, kind, id, "adding rules is not allowed", allow_by);
                continue;
            }
            eff_rule_t *nr = realloc(*out, (*nout + 1) * sizeof *nr);
            if (!nr)
                return LX_ENOMEM;
            *out = nr;
            nr[(*nout)++] = (eff_rule_t){.rule = r, .prov = {.set_by = chain[i].issuer}};
        }
        if (kind == POLICY_CLASSIFICATION) {
            const json_t *au = json_object_get(body, "authoritative");
            json_t *c;
            json_array_foreach(au, k, c)
                if (!pb_has(e->authoritative, json_string_value(c)))
                    json_array_append(e->authoritative, c);
        }
        if (allow && !pb_has(json_object_get(body, "refine"), "rules"))
            allow = false, allow_by = chain[i].issuer;
    }
    return LX_OK;
}

static void fold_age_limits(effective_t *e, const link_t *l, size_t n)
{
    e->age_limits = json_pack("{s:i, s:i}", "left_behind", 16, "*", 18);
    bool allow = true, set = false;
    code_t allow_by = 0;
    for (size_t i = 0; i < n; i++) {
        if (l[i].kind != POLICY_CLASSIFICATION)
            continue;
        const json_t *body = json_object_get(l[i].doc, "body");
        const json_t *lim = json_object_get(body, "age_limits");
        if (lim && !allow) {
            overridden(e, l[i].issuer, POLICY_CLASSIFICATION, "age_limits",
                       "changing age limits is not allowed", allow_by);
        } else if (lim) {
            json_object_update(e->age_limits, (json_t *)lim);
            if (!set)
                e->age_prov.set_by = l[i].issuer;
            else
                refined(&e->age_prov, l[i].issuer);
            set = true;
        }
        if (allow && !pb_has(json_object_get(body, "refine"), "age_limits"))
            allow = false, allow_by = l[i].issuer;
    }
}

/* ---- reporting, access, retention ---- */

static void fold_reporting(effective_t *e, const link_t *l, size_t n)
{
    e->deadline_days = DEFAULT_DEADLINE_DAYS;
    e->deadline_levels = json_object();
    bool seen = false, allow = true;
    for (size_t i = 0; i < n; i++) {
        if (l[i].kind != POLICY_REPORTING)
            continue;
        const json_t *body = json_object_get(l[i].doc, "body");
        int d = (int)json_integer_value(json_object_get(body, "deadline_days_after_quarter"));
        const json_t *lv = json_object_get(body, "levels");
        if (!seen) {
            e->deadline_days = d;
            if (lv)
                json_object_update(e->deadline_levels, (json_t *)lv);
            e->deadline_prov.set_by = l[i].issuer;
        } else if (!allow) {
            overridden(e, l[i].issuer, POLICY_REPORTING, "deadline",
                       "changing the deadline is not allowed", e->deadline_prov.set_by);
        } else if (d > e->deadline_days) {
            overridden(e, l[i].issuer, POLICY_REPORTING, "deadline",
                       "a later deadline is not a tightening", e->deadline_prov.set_by);
        } else {
            e->deadline_days = d;
            const char *key;
            json_t *v;
            json_object_foreach((json_t *)lv, key, v) {
                json_t *old = json_object_get(e->deadline_levels, key);
                if (!old || json_integer_value(v) < json_integer_value(old))
                    json_object_set(e->deadline_levels, key, v);
            }
            refined(&e->deadline_prov, l[i].issuer);
        }
        seen = true;
        allow = allow && pb_has(json_object_get(body, "refine"), "deadline");
    }
}

static bool list_allows(const json_t *arr, const char *f)
{
    return pb_has(arr, "*") || pb_has(arr, f);
}

/* A lower level's role narrowed within the higher one: reads and writes
 * the higher allows, masks added to the higher's. */
static void narrow_role(effective_t *e, json_t *cur, const json_t *lower, code_t issuer,
                        const char *role, code_t by)
{
    static const char *const lists[] = {"read", "write"};
    for (int li = 0; li < 2; li++) {
        const json_t *want = json_object_get(lower, lists[li]);
        if (!want)
            continue;
        json_t *have = json_object_get(cur, lists[li]);
        json_t *next = json_array();
        size_t k;
        json_t *f;
        json_array_foreach(want, k, f) {
            if (list_allows(have, json_string_value(f))) {
                json_array_append(next, f);
            } else {
                char rule[96];
                snprintf(rule, sizeof rule, "%s.%s %s", role, lists[li], json_string_value(f));
                overridden(e, issuer, POLICY_ACCESS, rule, "widening a role is not allowed", by);
            }
        }
        json_object_set_new(cur, lists[li], next);
    }
    json_t *masked = json_object_get(cur, "masked");
    if (!masked)
        json_object_set_new(cur, "masked", masked = json_array());
    size_t k;
    json_t *f;
    json_array_foreach(json_object_get(lower, "masked"), k, f)
        if (!pb_has(masked, json_string_value(f)))
            json_array_append(masked, f);
}

static int fold_access(effective_t *e, const link_t *l, size_t n)
{
    json_error_t err;
    bool seen = false, allow = true;
    for (size_t i = 0; i < n; i++) {
        if (l[i].kind != POLICY_ACCESS)
            continue;
        const json_t *body = json_object_get(l[i].doc, "body");
        const json_t *roles = json_object_get(body, "roles");
        if (!seen) {
            e->roles = json_deep_copy(roles);
            e->access_prov.set_by = l[i].issuer;
        } else if (!allow) {
            overridden(e, l[i].issuer, POLICY_ACCESS, "roles", "changing roles is not allowed",
                       e->access_prov.set_by);
        } else {
            const char *role;
            json_t *r;
            json_object_foreach((json_t *)roles, role, r) {
                json_t *cur = json_object_get(e->roles, role);
                if (!cur)
                    overridden(e, l[i].issuer, POLICY_ACCESS, role,
                               "a role the level above does not grant", e->access_prov.set_by);
                else
                    narrow_role(e, cur, r, l[i].issuer, role, e->access_prov.set_by);
            }
            refined(&e->access_prov, l[i].issuer);
        }
        seen = true;
        allow = allow && pb_has(json_object_get(body, "refine"), "narrow");
    }
    if (!seen) {
        json_t *d = json_loads(DEFAULT_ACCESS, 0, &err);
        e->roles = d ? json_incref(json_object_get(d, "roles")) : json_object();
        json_decref(d);
    }
    return e->roles ? LX_OK : LX_ENOMEM;
}

static void fold_retention(effective_t *e, const link_t *l, size_t n)
{
    bool seen = false, allow = true;
    for (size_t i = 0; i < n; i++) {
        if (l[i].kind != POLICY_RETENTION)
            continue;
        const json_t *body = json_object_get(l[i].doc, "body");
        int y = (int)json_integer_value(json_object_get(body, "after_years"));
        const char *act = json_string_value(json_object_get(body, "action"));
        if (!seen) {
            e->retention_years = y;
            snprintf(e->retention_action, sizeof e->retention_action, "%s", act);
            e->retention_prov.set_by = l[i].issuer;
        } else if (!allow || y > e->retention_years) {
            overridden(e, l[i].issuer, POLICY_RETENTION, "after_years",
                       allow ? "a longer period is not a tightening"
                             : "changing the period is not allowed",
                       e->retention_prov.set_by);
        } else {
            e->retention_years = y;
            refined(&e->retention_prov, l[i].issuer);
        }
        if (seen && strcmp(act, e->retention_action) != 0)
            overridden(e, l[i].issuer, POLICY_RETENTION, "action",
                       "the action is set above", e->retention_prov.set_by);
        seen = true;
        allow = allow && pb_has(json_object_get(body, "refine"), "after_years");
    }
}

/* ---- the fold ---- */

static int fold(effective_t *e, link_t *l, size_t n)
{
    json_error_t err;
    for (size_t i = 0; i < n; i++) {
        char c[CODE_STRLEN + 1];
        json_array_append(e->docs, l[i].doc);
        json_array_append_new(e->in_force,
                              json_pack("{s:s, s:s, s:i}", "issuer", code_fmt(l[i].issuer, c),
                                        "kind", policy_kind_name(l[i].kind), "version",
                                        (json_int_t)l[i].version));
    }
    json_t *dc = json_loads(DEFAULT_CLASSIFICATION, 0, &err);
    json_t *da = json_loads(DEFAULT_ALERTS, 0, &err);
    if (!dc || !da) {
        json_decref(dc);
        json_decref(da);
        return LX_ENOMEM;
    }
    json_array_append_new(e->docs, dc);
    json_array_append_new(e->docs, da);
    int rc = fold_schema(e, l, n);
    if (!rc)
        rc = fold_rules(e, POLICY_CLASSIFICATION, l, n, dc, &e->class_rules, &e->nclass);
    if (!rc)
        rc = fold_rules(e, POLICY_ALERTS, l, n, da, &e->alerts, &e->nalerts);
    if (!rc) {
        fold_age_limits(e, l, n);
        fold_reporting(e, l, n);
        fold_retention(e, l, n);
        rc = fold_access(e, l, n);
    }
    return rc;
}

int policy_effective(stxn_t *t, const char *today, effective_t **out, why_t *why)
{
    effective_t *e = calloc(1, sizeof *e);
    if (!e)
        return LX_ENOMEM;
    e->node = store_code_of(t);
    snprintf(e->today, sizeof e->today, "%s", today);
    e->docs = json_array();
    e->in_force = json_array();
    e->overridden = json_array();
    e->authoritative = json_array();
    chain_t c = {.e = e};
    int rc = e->docs && e->in_force && e->overridden && e->authoritative ? LX_OK : LX_ENOMEM;
    if (!rc)
        rc = policy_each(t, chain_cb, &c);
    if (!rc) {
        if (c.n)
            qsort(c.l, c.n, sizeof *c.l, by_level);
        rc = fold(e, c.l, c.n);
    }
    for (size_t i = 0; i < c.n; i++)
        json_decref(c.l[i].doc);
    free(c.l);
    if (rc) {
        effective_free(&e);
        return why_set(why, rc, "effective policy: %s", err_str(rc));
    }
    *out = e;
    return LX_OK;
}

void effective_free(effective_t **self_p)
{
    effective_t *e = *self_p;
    if (!e)
        return;
    for (size_t i = 0; i < e->nfields; i++)
        free(e->fields[i].enums);
    free(e->fields);
    free(e->class_rules);
    free(e->alerts);
    json_decref(e->docs);
    json_decref(e->in_force);
    json_decref(e->overridden);
    json_decref(e->age_limits);
    json_decref(e->authoritative);
    json_decref(e->deadline_levels);
    json_decref(e->roles);
    free(e);
    *self_p = NULL;
}

/* ---- accessors ---- */

const field_def_t *eff_field(const effective_t *e, const char *name)
{
    if (!e)
        return schema_field(name);
    for (size_t i = 0; i < e->nfields; i++)
        if (strcmp(e->fields[i].def.name, name) == 0)
            return &e->fields[i].def;
    return NULL;
}

static const field_def_t *lookup(const void *ctx, const char *name)
{
    return eff_field(ctx, name);
}

int eff_check_record(const effective_t *e, const record_t *r, code_t node, why_t *why)
{
    if (!e)
        return schema_check_record(r, node, why);
    int rc = schema_check_record_in(r, node, lookup, e, why);
    if (rc)
        return rc;
    for (size_t i = 0; i < e->nfields; i++)
        if (e->fields[i].def.required && !record_val(r, e->fields[i].def.name))
            return why_set(why, LX_EINVAL, "field %s: required", e->fields[i].def.name);
    return LX_OK;
}

int policy_report_deadline(const effective_t *e, const char *quarter, char out[11],
                           why_t *why)
{
    if (!quarter || strlen(quarter) != 6 || quarter[4] != 'Q' || quarter[5] < '1'
        || quarter[5] > '4' || atoi(quarter) < 1900 || atoi(quarter) > 2199)
        return why_set(why, LX_EINVAL, "quarter: expected YYYYQn, e.g. 2026Q3");
    int y = atoi(quarter), q = quarter[5] - '0';
    char next[11];
    /* The day after the quarter's last day, then days - 1 more. */
    snprintf(next, sizeof next, "%04d-%02d-01", q == 4 ? y + 1 : y, q == 4 ? 1 : q * 3 + 1);
    int days = e->deadline_days;
    const json_t *lv = json_object_get(e->deadline_levels, level_name(code_level(e->node)));
    if (lv)
        days = (int)json_integer_value(lv);
    days_date(date_days(next) - 1 + days, out);
    return LX_OK;
}

unsigned policy_access(const effective_t *e, const char *role, const char *field)
{
    return policy_access_in(e->roles, role, field);
}

unsigned policy_access_in(const json_t *roles, const char *role, const char *field)
{
    const json_t *r = json_object_get(roles, role);
    if (!r)
        return 0;
    unsigned a = 0;
    if (list_allows(json_object_get(r, "read"), field))
        a |= ACCESS_READ;
    if (list_allows(json_object_get(r, "write"), field))
        a |= ACCESS_WRITE;
    if ((a & ACCESS_READ) && list_allows(json_object_get(r, "masked"), field))
        a |= ACCESS_MASKED;
    return a;
}

/* ---- as JSON ---- */

static json_t *prov_json(const prov_t *p)
{
    char c[CODE_STRLEN + 1];
    json_t *o = json_pack("{s:s}", "set_by", prov_code(p->set_by, c));
    json_t *a = json_array();
    for (unsigned i = 0; i < p->nrefined; i++)
        json_array_append_new(a, json_string(code_fmt(p->refined[i], c)));
    json_object_set_new(o, "refined_by", a);
    return o;
}

static json_t *rules_json(const eff_rule_t *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = prov_json(&r[i].prov);
        json_object_set(o, "rule", (json_t *)r[i].rule);
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *fields_json(const effective_t *e)
{
    json_t *a = json_array();
    for (size_t i = 0; i < e->nfields; i++) {
        const eff_field_t *f = &e->fields[i];
        /* The default schema's untouched fields are not rules of anyone. */
        if (!f->prov.set_by && !f->prov.nrefined)
            continue;
        json_t *o = prov_json(&f->prov);
        json_object_set_new(o, "name", json_string(f->def.name));
        json_object_set_new(o, "required", json_boolean(f->def.required));
        if (f->def.enums) {
            json_t *v = json_array();
            for (const enum_def_t *d = f->def.enums; d->value; d++)
                json_array_append_new(v, json_string(d->value));
            json_object_set_new(o, "enum", v);
        }
        json_array_append_new(a, o);
    }
    return a;
}

json_t *effective_json(const effective_t *e)
{
    char c[CODE_STRLEN + 1];
    json_t *o = json_object();
    json_object_set_new(o, "node", json_string(code_fmt(e->node, c)));
    json_object_set_new(o, "today", json_string(e->today));
    json_object_set(o, "in_force", e->in_force);
    json_object_set_new(o, "schema", json_pack("{s:o}", "fields", fields_json(e)));
    json_t *cl = json_pack("{s:o, s:O, s:O}", "rules", rules_json(e->class_rules, e->nclass),
                           "age_limits", e->age_limits, "authoritative", e->authoritative);
    json_object_set_new(cl, "age_limits_by", prov_json(&e->age_prov));
    json_object_set_new(o, "classification", cl);
    json_object_set_new(o, "alerts", json_pack("{s:o}", "rules",
                                               rules_json(e->alerts, e->nalerts)));
    json_t *rp = prov_json(&e->deadline_prov);
    json_object_set_new(rp, "deadline_days_after_quarter", json_integer(e->deadline_days));
    json_object_set(rp, "levels", e->deadline_levels);
    json_object_set_new(o, "reporting", rp);
    json_t *ac = prov_json(&e->access_prov);
    json_object_set(ac, "roles", e->roles);
    json_object_set_new(o, "access", ac);
    json_t *rt = prov_json(&e->retention_prov);
    json_object_set_new(rt, "after_years", json_integer(e->retention_years));
    json_object_set_new(rt, "action", json_string(e->retention_years ? e->retention_action
                                                                      : "none"));
    json_object_set_new(o, "retention", rt);
    json_object_set(o, "overridden", e->overridden);
    return o;
}
