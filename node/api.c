/* api: the requests of /api/v1, /metrics and /healthz (see http.h for the
 * server and who may do what; README "The API" for each endpoint).
 *
 * Events and cases live in the child's file as journal fields
 * (schema.h): an event is one field "ev_<when>_<node>" written once; a
 * case is one field per step, "case_<case>_<state>", so steps made at
 * two levels at once merge as a union and the furthest step is the
 * case's state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/access.h"
#include "common/classify.h"
#include "common/linkstate.h"
#include "common/log.h"
#include "common/policy.h"
#include "common/recjson.h"
#include "common/report.h"
#include "common/schema.h"
#include "http.h"

#define API "/api/v1"

/* ---- helpers ---- */

static bool in_scope(const call_t *c, const record_t *r)
{
    const char *v = record_str(r, "village_code");
    code_t vc;
    return v && code_parse(v, &vc) == LX_OK && code_contains(c->tok->scope, vc);
}

/* Reads a record the caller may see: LX_ENOTFOUND for one outside the
 * token's scope (its existence is not revealed). */
static int get_visible(call_t *c, stxn_t *t, const char *id, record_t **out)
{
    why_t why = {""};
    int rc = store_get(t, id, out, &why);
    if (!rc && !in_scope(c, *out)) {
        record_destroy(out);
        rc = LX_ENOTFOUND;
    }
    return rc;
}

/* An audit entry's result for a failure. */
static const char *outcome(int rc)
{
    switch (rc) {
    case LX_OK: return "ok";
    case LX_ENOTFOUND: return "not_found";
    case LX_EDENIED: return "denied";
    case LX_EEXIST: return "conflict";
    case LX_EINVAL: case LX_ESCOPE: case LX_EUSAGE: return "invalid";
    default: return "error";
    }
}

static int store_failure(call_t *c, int rc, const why_t *why)
{
    if (rc == LX_ENOTFOUND)
        return http_error(c, 404, "%s", why->msg[0] ? why->msg : "no such record");
    if (rc == LX_EDENIED)
        return http_error(c, 403, "%s", why->msg);
    if (rc == LX_EINVAL || rc == LX_ESCOPE || rc == LX_EUSAGE)
        return http_error(c, 400, "%s", why->msg[0] ? why->msg : err_str(rc));
    log_error("API: %s", why->msg[0] ? why->msg : err_str(rc));
    return http_error(c, 500, "the store failed: %s", err_str(rc));
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z')
              || (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-' || id[i] == '_'))
            return false;
    return true;
}

/* Splits "a,b,c" into at most max names (pointers into buf); -1 when
 * there are more. */
static int split_names(char *buf, const char **names, int max)
{
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p;
         p = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        names[n++] = p;
    }
    return n;
}

/* A query parameter (http_param): 1 present, 0 absent; -1 after answering
 * 400 for one that cannot be read (it must not widen the answer). */
static int param(call_t *c, const char *name, char *out, size_t n)
{
    int p = http_param(c, name, out, n);
    if (p < 0)
        http_error(c, 400, "%s: too long (at most %zu bytes) or not UTF-8 text", name, n - 1);
    return p;
}

/* ?fields=a,b: 1 with the names, 0 without the parameter, -1 after
 * answering 400. */
static int fields_param(call_t *c, char *buf, size_t n, const char **names, int max, int *count)
{
    int p = param(c, "fields", buf, n);
    if (p <= 0)
        return p;
    if ((*count = split_names(buf, names, max)) < 0) {
        http_error(c, 400, "fields: at most %d names", max);
        return -1;
    }
    return 1;
}

/* ---- children ---- */

typedef struct {
    call_t *c;
    const effective_t *eff;
    const char *category, *risk, *status;
    const char *const *fields;
    size_t nfields;
    char after_id[72];
    code_t after_vil;
    uint32_t limit, n;
    json_t *items;
    char next[96];
    int rc;
    why_t why;
    const char **ids;        /* for the audit entry */
} listctx_t;

static int list_cb(void *arg, const record_t *r)
{
    listctx_t *x = arg;
    const char *v = record_str(r, "village_code");
    code_t vc = 0;
    if (!v || code_parse(v, &vc) || !code_contains(x->c->tok->scope, vc))
        return 0;
    if (x->after_vil && (vc < x->after_vil || (vc == x->after_vil
                                              && strcmp(r->id, x->after_id) <= 0)))
        return 0;
    const val_t *cats = record_val(r, "categories");
    if (x->category && (!cats || !val_list_has(cats, x->category)))
        return 0;
    const char *risk = record_str(r, "risk_level"), *st = record_str(r, "status");
    if (x->risk && (!risk || strcmp(risk, x->risk)))
        return 0;
    if (x->status && strcmp(st ? st : "active", x->status))
        return 0;
    if (x->n == x->limit) {
        /* One more than the page: there is a next page. */
        return 1;
    }
    json_t *j;
    x->rc = access_view(x->eff, x->c->tok->role, r, x->fields, x->nfields,
                        x->c->purpose != NULL, &j, &x->why);
    if (x->rc)
        return 1;
    json_array_append_new(x->items, j);
    x->ids[x->n++] = strdup(r->id);
    snprintf(x->next, sizeof x->next, "%s:%s", v, r->id);
    return 0;
}

static int children_list(call_t *c)
{
    const node_config_t *cfg = http_cfg(c->h);
    char village[16] = "", category[40] = "", risk[16] = "", status[16] = "", fields[1024] = "",
         limit_s[16] = "", after[96] = "";
    listctx_t x = {.c = c, .limit = cfg->http_page_max < 100 ? cfg->http_page_max : 100};
    code_t under = c->tok->scope;
    int p;
    if ((p = param(c, "village", village, sizeof village)) < 0)
        return 0;
    if (p && (code_parse(village, &under) || !code_contains(c->tok->scope, under)))
        return http_error(c, 400, "village: %s is not a division code in your scope", village);
    if ((p = param(c, "category", category, sizeof category)) < 0)
        return 0;
    x.category = p ? category : NULL;
    if ((p = param(c, "risk", risk, sizeof risk)) < 0)
        return 0;
    x.risk = p ? risk : NULL;
    if ((p = param(c, "status", status, sizeof status)) < 0)
        return 0;
    x.status = p ? status : NULL;
    if ((p = param(c, "limit", limit_s, sizeof limit_s)) < 0)
        return 0;
    if (p) {
        char *end;
        long l = strtol(limit_s, &end, 10);
        if (*end || l < 1 || l > (long)cfg->http_page_max)
            return http_error(c, 400, "limit: expected 1..%u", cfg->http_page_max);
        x.limit = (uint32_t)l;
    }
    if ((p = param(c, "after", after, sizeof after)) < 0)
        return 0;
    if (p) {
        char *colon = strchr(after, ':');
        if (!colon || (*colon = '\0', code_parse(after, &x.after_vil)) || !id_ok(colon + 1))
            return http_error(c, 400, "after: expected the \"next\" value of the last page");
        snprintf(x.after_id, sizeof x.after_id, "%s", colon + 1);
    }
    const char *names[64];
    int nf = 0;
    if ((p = fields_param(c, fields, sizeof fields, names, 64, &nf)) < 0)
        return 0;
    if (p) {
        x.nfields = (size_t)nf;
        x.fields = names;
    }
    stxn_t *t;
    if (store_begin(http_store(c->h), false, &t))
        return http_error(c, 500, "the store cannot be read");
    x.eff = http_effective(c->h, t);
    /* A filter reads its field: only one the role reads, and a personal
     * one only with a purpose. */
    static const char *const filtered[] = {"categories", "risk_level", "status"};
    const char *given[] = {x.category, x.risk, x.status};
    for (int i = 0; i < 3; i++) {
        if (!given[i])
            continue;
        if (!(access_rights(x.eff, c->tok->role, filtered[i]) & ACCESS_READ)
            || ((access_rights(x.eff, c->tok->role, filtered[i]) & ACCESS_MASKED))) {
            store_abort(&t);
            http_audit_read(c, "list", NULL, 0, "denied");
            return http_error(c, 403, "the role %s may not read %s, so may not filter by it",
                              c->tok->role, filtered[i]);
        }
        if (access_personal(filtered[i]) && !c->purpose) {
            store_abort(&t);
            http_audit_read(c, "list", NULL, 0, "denied");
            return http_error(c, 403, "filtering by %s reads personal data: state the "
                              "purpose in the X-Purpose header", filtered[i]);
        }
    }
    x.items = json_array();
    x.ids = calloc(x.limit, sizeof *x.ids);
    code_t lo, hi;
    code_range(under, &lo, &hi);
    if (x.after_vil > lo)
        lo = x.after_vil;
    int rc = x.ids ? store_each_record_range(t, lo, hi, list_cb, &x) : LX_ENOMEM;
    store_abort(&t);
    bool more = rc == 1 && !x.rc;
    if (rc < 0 || x.rc) {
        http_audit_read(c, "list", x.ids, x.n, outcome(x.rc ? x.rc : rc));
        for (uint32_t i = 0; i < x.n; i++)
            free((char *)x.ids[i]);
        free(x.ids);
        json_decref(x.items);
        return x.rc ? store_failure(c, x.rc, &x.why) : http_error(c, 500, "%s", err_str(rc));
    }
    http_audit_read(c, "list", x.ids, x.n, "ok");
    for (uint32_t i = 0; i < x.n; i++)
        free((char *)x.ids[i]);
    free(x.ids);
    json_t *body = json_pack("{s:o, s:i}", "items", x.items, "count", (int)x.n);
    json_object_set_new(body, "next", more ? json_string(x.next) : json_null());
    return http_json(c, 200, body);
}

/* The record a read asks for, as get_visible finds it, and the policy in
 * force, from one read transaction. */
static int read_visible(call_t *c, const char *id, const effective_t **eff, record_t **r)
{
    stxn_t *t;
    *r = NULL;
    if (store_begin(http_store(c->h), false, &t))
        return LX_EIO;
    *eff = http_effective(c->h, t);
    int rc = get_visible(c, t, id, r);
    store_abort(&t);
    return rc;
}

static int child_get(call_t *c, const char *id)
{
    const effective_t *eff = NULL;
    record_t *r;
    int rc = read_visible(c, id, &eff, &r);
    const char *ids[1] = {id};
    if (rc) {
        http_audit_read(c, "read", ids, 1, outcome(rc));
        why_t why = {""};
        return store_failure(c, rc, &why);
    }
    char fields[1024];
    const char *names[64];
    int nf = 0, some = fields_param(c, fields, sizeof fields, names, 64, &nf);
    if (some < 0) {
        record_destroy(&r);
        return 0;
    }
    json_t *j;
    why_t why = {""};
    rc = access_view(eff, c->tok->role, r, some ? names : NULL, (size_t)nf, c->purpose != NULL,
                     &j, &why);
    record_destroy(&r);
    http_audit_read(c, "read", ids, 1, outcome(rc));
    return rc ? store_failure(c, rc, &why) : http_json(c, 200, j);
}

/* Writes r (unstamped fields) for the caller; mode says whether it must be
 * new or exist. The audit entry goes in the same transaction. */
static int write_record(call_t *c, record_t *r, write_mode_t mode, const char *action,
                        int ok_status)
{
    stxn_t *t;
    why_t why = {""};
    int rc = http_begin_write(c->h, &t);
    if (rc)
        return http_error(c, 500, "the store cannot be written");
    const effective_t *eff = http_effective(c->h, t);
    record_t *cur = NULL;
    if (mode == WRITE_EXISTING) {
        rc = get_visible(c, t, r->id, &cur);
        record_destroy(&cur);
    }
    /* A new or moved child must land in the token's scope. */
    const char *v = record_str(r, "village_code");
    code_t vc;
    if (!rc && v && (code_parse(v, &vc) || !code_contains(c->tok->scope, vc)))
        rc = why_set(&why, LX_ESCOPE, "field village_code: %s is outside your scope", v);
    apply_t res = {0};
    write_opts_t o = {.author = c->author, .mode = mode, .eff = eff};
    if (!rc)
        rc = policy_write(t, r, &o, &res, &why);
    const char *ids[1] = {r->id};
    if (!rc)
        rc = http_audit_write(c, t, action, ids, r->id ? 1 : 0, "ok", &why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc) {
        /* The refusal is audited too, in a transaction of its own. */
        http_audit_read(c, action, ids, r->id ? 1 : 0,
                        outcome(rc));
        return store_failure(c, rc, &why);
    }
    http_wrote(c->h);
    return http_json(c, ok_status, json_pack("{s:s, s:i}", "id", r->id, "changed",
                                             (int)res.changed));
}

static int child_write(call_t *c, const char *id)
{
    stxn_t *t;
    if (store_begin(http_store(c->h), false, &t))
        return http_error(c, 500, "the store cannot be read");
    const effective_t *eff = http_effective(c->h, t);
    store_abort(&t);
    record_t *r = record_new(id);
    if (!r)
        return http_error(c, 500, "out of memory");
    why_t why = {""};
    int rc = access_parse_write(c->req->entity.base, c->req->entity.len, eff, c->tok->role, r,
                                &why);
    if (rc) {
        const char *ids[1] = {id};
        http_audit_read(c, id ? "patch" : "create", ids, id ? 1 : 0,
                        outcome(rc));
        record_destroy(&r);
        return store_failure(c, rc, &why);
    }
    if (r->n == 0) {
        const char *ids[1] = {id};
        http_audit_read(c, id ? "patch" : "create", ids, id ? 1 : 0, "invalid");
        record_destroy(&r);
        return http_error(c, 400, "the body sets no field");
    }
    rc = write_record(c, r, id ? WRITE_EXISTING : WRITE_NEW, id ? "patch" : "create",
                      id ? 200 : 201);
    record_destroy(&r);
    return rc;
}

/* ---- events and cases ---- */

static const char *const event_types[] = {"home_visit", "call", "help", "meeting", "other", NULL};
static const char *const case_states[] = {"reported", "accepted", "handled", "referred",
                                          "closed", NULL};
/* Days allowed for each step after the one before (accepted after the
 * report, handled after acceptance, ...), as the mandatory reporting
 * rules set them; closing counts from the report. */
static const int case_days[] = {0, 1, 7, 15, 30};

static int pick(const char *const *list, const char *s)
{
    for (int i = 0; s && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return i;
    return -1;
}

static bool date_ok(const char *s)
{
    int y, m, d;
    char tail;
    return s && strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3
        && y >= 1990 && y <= 2100 && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* A journal text from an object the API built (always small). */
static int put_journal(record_t *r, const char *name, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return LX_ENOMEM;
    field_t f = {.name = (char *)name, .val = {.kind = VAL_STR, .s = s}};
    int rc = record_put(r, &f);
    free(s);
    return rc;
}

static const char *json_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Checks an object's keys against the allowed ones and its strings'
 * lengths: why names the first wrong one. */
static int check_keys(const json_t *o, const char *const *allowed, size_t maxlen, why_t *why)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (pick(allowed, k) < 0)
            return why_set(why, LX_EINVAL, "field %.64s: unknown field", k);
        if (!json_is_string(v))
            return why_set(why, LX_EINVAL, "field %s: expected text", k);
        size_t n = strlen(json_string_value(v));
        if (n > maxlen)
            return why_set(why, LX_EINVAL, "field %s: at most %zu bytes", k, maxlen);
    }
    return LX_OK;
}

/* The journal of a record as JSON: events (newest first) or cases. */
static json_t *events_json(const record_t *r)
{
    json_t *a = json_array();
    for (uint32_t i = r->n; i-- > 0;) {
        const field_t *f = &r->f[i];
        if (strncmp(f->name, "ev_", 3) || f->val.kind != VAL_STR)
            continue;
        json_t *o = json_loads(f->val.s, 0, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "event", json_string(f->name + 3));
        json_array_append_new(a, o);
    }
    return a;
}

static uint64_t days_ms(int d)
{
    return (uint64_t)d * 86400000ULL;
}

/* Every case of a record: {"case", "state", "steps": {state: {...}},
 * "deadline", "overdue"}. */
static json_t *cases_json(const record_t *r, uint64_t now_ms)
{
    json_t *by = json_object();
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        if (strncmp(f->name, "case_", 5) || f->val.kind != VAL_STR)
            continue;
        const char *us = strrchr(f->name, '_');
        int st = us ? pick(case_states, us + 1) : -1;
        if (st < 0 || us - (f->name + 5) <= 0 || us - (f->name + 5) > 40)
            continue;
        char cid[48];
        snprintf(cid, sizeof cid, "%.*s", (int)(us - (f->name + 5)), f->name + 5);
        json_t *step = json_loads(f->val.s, 0, NULL);
        if (!json_is_object(step)) {
            json_decref(step);
            continue;
        }
        json_t *cs = json_object_get(by, cid);
        if (!cs) {
            cs = json_pack("{s:s, s:{}}", "case", cid, "steps");
            json_object_set_new(by, cid, cs);
        }
        json_object_set_new(json_object_get(cs, "steps"), case_states[st], step);
    }
    json_t *a = json_array();
    const char *cid;
    json_t *cs;
    json_object_foreach(by, cid, cs) {
        json_t *steps = json_object_get(cs, "steps");
        int state = -1;
        uint64_t at[5] = {0};
        for (int s = 0; case_states[s]; s++) {
            json_t *step = json_object_get(steps, case_states[s]);
            if (step) {
                state = s;
                at[s] = (uint64_t)json_integer_value(json_object_get(step, "at_ms"));
            }
        }
        if (state < 0)
            continue;
        json_t *rep = json_object_get(steps, "reported");
        json_object_set_new(cs, "state", json_string(case_states[state]));
        if (rep) {
            json_object_set(cs, "kind", json_object_get(rep, "kind"));
            json_object_set(cs, "reported_at_ms", json_object_get(rep, "at_ms"));
        }
        /* The deadline of the next step: counted from the step before it
         * (closing from the report). */
        if (state < 4) {
            int next = state == 2 ? 4 : state + 1;   /* referral is optional */
            uint64_t from = next == 4 ? at[0] : at[state];
            uint64_t due = from + days_ms(case_days[next]);
            json_object_set_new(cs, "next", json_string(case_states[next]));
            json_object_set_new(cs, "deadline_ms", json_integer((json_int_t)due));
            json_object_set_new(cs, "overdue", json_boolean(from && now_ms > due));
        } else {
            json_object_set_new(cs, "overdue", json_false());
        }
        json_array_append(a, cs);
    }
    json_decref(by);
    return a;
}

static int journal_get(call_t *c, const char *id, bool events)
{
    const effective_t *eff = NULL;
    record_t *r;
    int rc = read_visible(c, id, &eff, &r);
    const char *ids[1] = {id};
    const char *what = events ? "events" : "cases";
    why_t why = {""};
    if (!rc && !(access_rights(eff, c->tok->role, what) & ACCESS_READ))
        rc = why_set(&why, LX_EDENIED, "the role %s may not read %s", c->tok->role, what);
    if (!rc && !c->purpose)
        rc = why_set(&why, LX_EDENIED, "%s are personal data: state the purpose of the read "
                     "in the X-Purpose header", what);
    http_audit_read(c, events ? "read_events" : "read_cases", ids, 1,
                    outcome(rc));
    if (rc) {
        record_destroy(&r);
        return store_failure(c, rc, &why);
    }
    json_t *a = events ? events_json(r) : cases_json(r, hlc_wall_ms());
    record_destroy(&r);
    return http_json(c, 200, json_pack("{s:s, s:o}", "id", id, what, a));
}

/* Every journal write takes this shape: in one write transaction, the
 * record as it is (in the caller's scope), fn's writes added to it,
 * applied with its audit entry; then the reply fn made (status ok). fn
 * refuses with an error code and why; LX_EEXIST answers 409. */
typedef int (*journal_fn)(call_t *c, stxn_t *t, const effective_t *eff, const record_t *cur,
                          record_t *w, void *arg, json_t **reply, why_t *why);

static int journal_write(call_t *c, const char *id, const char *action, int ok,
                         journal_fn fn, void *arg)
{
    why_t why = {""};
    stxn_t *t;
    if (http_begin_write(c->h, &t))
        return http_error(c, 500, "the store cannot be written");
    const effective_t *eff = http_effective(c->h, t);
    record_t *cur = NULL, *w = record_new(id);
    json_t *reply = NULL;
    int rc = w ? get_visible(c, t, id, &cur) : LX_ENOMEM;
    if (!rc)
        rc = fn(c, t, eff, cur, w, arg, &reply, &why);
    apply_t res;
    write_opts_t o = {.author = c->author, .mode = WRITE_EXISTING, .eff = eff};
    if (!rc)
        rc = policy_write(t, w, &o, &res, &why);
    const char *ids[1] = {id};
    if (!rc)
        rc = http_audit_write(c, t, action, ids, 1, "ok", &why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    record_destroy(&cur);
    record_destroy(&w);
    if (rc) {
        json_decref(reply);
        http_audit_read(c, action, ids, 1, outcome(rc));
        return rc == LX_EEXIST ? http_error(c, 409, "%s", why.msg) : store_failure(c, rc, &why);
    }
    http_wrote(c->h);
    return http_json(c, ok, reply);
}

static int event_fn(call_t *c, stxn_t *t, const effective_t *eff, const record_t *cur,
                    record_t *w, void *arg, json_t **reply, why_t *why)
{
    const json_t *b = arg;
    const char *type = json_str(b, "type"), *date = json_str(b, "date");
    if (!(access_rights(eff, c->tok->role, "events") & ACCESS_READ))
        return why_set(why, LX_EDENIED, "the role %s may not add events", c->tok->role);
    char name[64], code[CODE_STRLEN + 1];
    snprintf(name, sizeof name, "ev_%016llx_%s", (unsigned long long)store_tick(t),
             code_fmt(http_cfg(c->h)->code, code));
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", type, "date", date, "by", c->author);
    if (json_str(b, "note"))
        json_object_set(o, "note", json_object_get(b, "note"));
    int rc = put_journal(w, name, o);
    /* A home visit moves the date of the last visit on. */
    const char *last = record_str(cur, "last_visit_date");
    if (!rc && strcmp(type, "home_visit") == 0 && (!last || strcmp(date, last) > 0)) {
        field_t f = {.name = "last_visit_date", .val = {.kind = VAL_STR, .s = (char *)date}};
        rc = record_put(w, &f);
    }
    *reply = json_pack("{s:s, s:s}", "id", w->id, "event", name + 3);
    return rc;
}

static int events_add(call_t *c, const char *id)
{
    static const char *const keys[] = {"type", "date", "note", NULL};
    why_t why = {""};
    json_t *b = access_parse_object(c->req->entity.base, c->req->entity.len, &why);
    int rc = b ? check_keys(b, keys, 600, &why) : LX_EINVAL;
    const char *type = b ? json_str(b, "type") : NULL, *date = b ? json_str(b, "date") : NULL;
    if (!rc && pick(event_types, type) < 0)
        rc = why_set(&why, LX_EINVAL, "field type: expected home_visit, call, help, meeting "
                     "or other");
    if (!rc && !date_ok(date))
        rc = why_set(&why, LX_EINVAL, "field date: expected YYYY-MM-DD");
    char today[11];
    policy_today(hlc_wall_ms(), today);
    if (!rc && strcmp(date, today) > 0)
        rc = why_set(&why, LX_EINVAL, "field date: %s is in the future", date);
    if (rc) {
        const char *ids[1] = {id};
        http_audit_read(c, "event", ids, 1, outcome(rc));
    }
    rc = rc ? store_failure(c, rc, &why) : journal_write(c, id, "event", 201, event_fn, b);
    json_decref(b);
    return rc;
}

typedef struct {
    const json_t *body;
    const char *cid;     /* the case moved on; NULL: a new one */
    int state;
} casestep_t;

static int case_fn(call_t *c, stxn_t *t, const effective_t *eff, const record_t *cur,
                   record_t *w, void *arg, json_t **reply, why_t *why)
{
    casestep_t *x = arg;
    unsigned need = x->cid ? ACCESS_WRITE : ACCESS_READ;
    if (!(access_rights(eff, c->tok->role, "cases") & need))
        return why_set(why, LX_EDENIED, "the role %s may not %s cases", c->tok->role,
                       x->cid ? "handle" : "report");
    hlc_t now = store_tick(t);
    char code[CODE_STRLEN + 1], caseid[48], name[64];
    code_fmt(http_cfg(c->h)->code, code);
    if (x->cid)
        snprintf(caseid, sizeof caseid, "%s", x->cid);
    else
        snprintf(caseid, sizeof caseid, "%016llx_%s", (unsigned long long)now, code);
    if (x->cid) {
        /* The case's furthest step so far: the new one must be the next
         * (handled may go straight to closed). */
        json_t *all = cases_json(cur, 0), *it;
        size_t k;
        int have = -1;
        json_array_foreach(all, k, it)
            if (strcmp(json_str(it, "case"), x->cid) == 0)
                have = pick(case_states, json_str(it, "state"));
        json_decref(all);
        if (have < 0)
            return why_set(why, LX_ENOTFOUND, "no such case");
        if (x->state != have + 1 && !(have == 2 && x->state == 4))
            return why_set(why, LX_EEXIST, "case %s is %s: it cannot become %s", x->cid,
                           case_states[have], case_states[x->state]);
    }
    snprintf(name, sizeof name, "case_%s_%s", caseid, case_states[x->state]);
    json_t *o = json_pack("{s:s, s:I}", "by", c->author, "at_ms", (json_int_t)hlc_wall_ms());
    static const char *const copied[] = {"kind", "summary", "note", NULL};
    for (size_t i = 0; copied[i]; i++)
        if (json_str(x->body, copied[i]))
            json_object_set(o, copied[i], json_object_get(x->body, copied[i]));
    *reply = json_pack("{s:s, s:s, s:s}", "id", w->id, "case", caseid, "state",
                       case_states[x->state]);
    return put_journal(w, name, o);
}

/* Opens a case (anyone who reads the child may report: the duty to report
 * is everyone's) or moves one to its next step (roles that write
 * "cases"). */
static int case_step(call_t *c, const char *id, const char *cid)
{
    static const char *const open_keys[] = {"kind", "summary", NULL};
    static const char *const step_keys[] = {"state", "note", NULL};
    static const char *const kinds[] = {"abuse", "neglect", "abandonment", "no_guardian",
                                        "dropout", "other", NULL};
    why_t why = {""};
    json_t *b = access_parse_object(c->req->entity.base, c->req->entity.len, &why);
    int rc = b ? check_keys(b, cid ? step_keys : open_keys, 600, &why) : LX_EINVAL;
    casestep_t x = {.body = b, .cid = cid,
                    .state = cid ? pick(case_states, b ? json_str(b, "state") : NULL) : 0};
    if (!rc && !cid && pick(kinds, json_str(b, "kind")) < 0)
        rc = why_set(&why, LX_EINVAL, "field kind: expected abuse, neglect, abandonment, "
                     "no_guardian, dropout or other");
    if (!rc && cid && x.state <= 0)
        rc = why_set(&why, LX_EINVAL, "field state: expected accepted, handled, referred "
                     "or closed");
    if (!rc && cid && (strlen(cid) > 40 || !id_ok(cid) || strchr(cid, '-')))
        rc = why_set(&why, LX_ENOTFOUND, "no such case");
    if (rc) {
        const char *ids[1] = {id};
        http_audit_read(c, cid ? "case_step" : "case_report", ids, 1, outcome(rc));
    }
    rc = rc ? store_failure(c, rc, &why)
            : journal_write(c, id, cid ? "case_step" : "case_report", cid ? 200 : 201, case_fn,
                            &x);
    json_decref(b);
    return rc;
}

/* ---- conflicts and duplicates ---- */

typedef struct {
    call_t *c;
    stxn_t *t;
    const effective_t *eff;
    json_t *arr;
    uint32_t n, max;
} cfctx_t;

static json_t *version_json(const cfctx_t *x, const field_t *f)
{
    char origin[CODE_STRLEN + 1], when[48];
    unsigned a = access_rights(x->eff, x->c->tok->role, f->name);
    json_t *v;
    if (!(a & ACCESS_READ)) {
        v = json_null();
    } else if ((a & ACCESS_MASKED) && f->val.kind == VAL_STR) {
        char m[256];
        access_mask(f->name, f->val.s, m, sizeof m);
        v = json_string(m);
    } else {
        v = recjson_value(&f->val);
    }
    return json_pack("{s:o, s:s, s:s, s:s}", "value", v, "time",
                     hlc_fmt(f->ver.hlc, when, sizeof when), "origin",
                     code_fmt(f->ver.origin, origin), "author", f->ver.author ? f->ver.author : "");
}

static int conflict_cb(void *arg, const conflict_t *cf)
{
    cfctx_t *x = arg;
    record_t *r = NULL;
    if (get_visible(x->c, x->t, cf->id, &r))
        return 0;
    record_destroy(&r);
    json_array_append_new(x->arr, json_pack("{s:I, s:s, s:s, s:o, s:o}", "seq",
                                            (json_int_t)cf->seq, "id", cf->id, "field",
                                            cf->kept->name, "kept", version_json(x, cf->kept),
                                            "lost", version_json(x, cf->lost)));
    return ++x->n >= x->max;
}

static int dup_cb(void *arg, const char *idnum, const char *id)
{
    cfctx_t *x = arg;
    record_t *r = NULL;
    if (get_visible(x->c, x->t, id, &r))
        return 0;
    record_destroy(&r);
    /* The number as the role may see it: whole, masked, or not at all. */
    unsigned a = access_rights(x->eff, x->c->tok->role, "id_number");
    char masked[40];
    access_mask("id_number", idnum, masked, sizeof masked);
    json_t *shown = !(a & ACCESS_READ) ? json_null()
                    : (a & ACCESS_MASKED) ? json_string(masked) : json_string(idnum);
    json_array_append_new(x->arr, json_pack("{s:o, s:s}", "id_number", shown, "id", id));
    return 0;
}

static int conflicts_get(call_t *c)
{
    if (!c->purpose) {
        http_audit_read(c, "conflicts", NULL, 0, "denied");
        return http_error(c, 403, "conflicts show personal data: state the purpose of the "
                          "read in the X-Purpose header");
    }
    stxn_t *t;
    if (store_begin(http_store(c->h), false, &t))
        return http_error(c, 500, "the store cannot be read");
    cfctx_t cx = {.c = c, .t = t, .eff = http_effective(c->h, t), .arr = json_array(),
                  .max = http_cfg(c->h)->http_page_max};
    cfctx_t dx = cx;
    dx.arr = json_array();
    int rc = store_each_conflict(t, conflict_cb, &cx);
    if (rc >= 0)
        rc = store_each_duplicate(t, dup_cb, &dx);
    store_abort(&t);
    http_audit_read(c, "conflicts", NULL, 0, rc < 0 ? "error" : "ok");
    if (rc < 0) {
        json_decref(cx.arr);
        json_decref(dx.arr);
        return http_error(c, 500, "%s", err_str(rc));
    }
    return http_json(c, 200, json_pack("{s:o, s:o}", "conflicts", cx.arr, "duplicates", dx.arr));
}

/* Resolves a conflict by writing the chosen value: {"id", "field",
 * "value"}, the role's write rights applying as to any write. */
static int conflicts_resolve(call_t *c)
{
    why_t why = {""};
    json_t *b = access_parse_object(c->req->entity.base, c->req->entity.len, &why);
    if (!b) {
        http_audit_read(c, "resolve", NULL, 0, "invalid");
        return store_failure(c, LX_EINVAL, &why);
    }
    const char *id = json_str(b, "id"), *field = json_str(b, "field");
    json_t *value = json_object_get(b, "value");
    if (json_object_size(b) != 3 || !id || !field || !value || !id_ok(id)) {
        json_decref(b);
        http_audit_read(c, "resolve", NULL, 0, "invalid");
        return http_error(c, 400, "expected {\"id\": ID, \"field\": NAME, \"value\": VALUE}");
    }
    json_t *w = json_object();
    json_object_set(w, field, value);
    char *text = json_dumps(w, JSON_COMPACT);
    json_decref(w);
    char rid[72];
    snprintf(rid, sizeof rid, "%s", id);
    json_decref(b);
    stxn_t *t;
    if (!text || store_begin(http_store(c->h), false, &t)) {
        free(text);
        return http_error(c, 500, "the store cannot be read");
    }
    const effective_t *eff = http_effective(c->h, t);
    store_abort(&t);
    record_t *r = record_new(rid);
    int rc = r ? access_parse_write(text, strlen(text), eff, c->tok->role, r, &why) : LX_ENOMEM;
    free(text);
    if (!rc) {
        rc = write_record(c, r, WRITE_EXISTING, "resolve", 200);
    } else {
        const char *ids[1] = {rid};
        http_audit_read(c, "resolve", ids, 1, outcome(rc));
        rc = store_failure(c, rc, &why);
    }
    record_destroy(&r);
    return rc;
}

/* ---- reports, policies, status, metrics ---- */

static int report_get(call_t *c, const char *quarter)
{
    char fmt_s[16] = "json", lang[8] = "zh", unit[16] = "";
    if (param(c, "format", fmt_s, sizeof fmt_s) < 0 || param(c, "lang", lang, sizeof lang) < 0)
        return 0;
    int fmt = report_fmt_parse(fmt_s);
    if (fmt < 0)
        return http_error(c, 400, "format: expected json, csv, xlsx or html");
    if (strcmp(lang, "zh") && strcmp(lang, "en"))
        return http_error(c, 400, "lang: expected zh or en");
    code_t node = c->tok->scope;
    int p = param(c, "unit", unit, sizeof unit);
    if (p < 0)
        return 0;
    if (p && (code_parse(unit, &node) || !code_contains(c->tok->scope, node)))
        return http_error(c, 400, "unit: %s is not a division code in your scope", unit);
    stxn_t *t;
    if (store_begin(http_store(c->h), false, &t))
        return http_error(c, 500, "the store cannot be read");
    report_t *r = NULL;
    why_t why = {""};
    int rc = report_compute(t, node, quarter, http_divs(c->h), &r, &why);
    store_abort(&t);
    http_audit_read(c, "report", NULL, 0, rc ? "invalid" : "ok");
    if (rc)
        return store_failure(c, rc, &why);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rc = f ? report_write(r, (report_fmt_t)fmt, strcmp(lang, "zh") == 0, f, &why) : LX_ENOMEM;
    if (f)
        fclose(f);
    report_destroy(&r);
    static const char *const types[] = {
        "application/json; charset=utf-8", "text/csv; charset=utf-8",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/html; charset=utf-8"};
    int out = rc ? store_failure(c, rc, &why) : http_send(c, 200, types[fmt], buf, len);
    free(buf);
    return out;
}

static int policies_get(call_t *c)
{
    stxn_t *t;
    if (store_begin(http_store(c->h), false, &t))
        return http_error(c, 500, "the store cannot be read");
    const effective_t *eff = http_effective(c->h, t);
    store_abort(&t);
    if (!eff)
        return http_error(c, 500, "no effective policy");
    return http_json(c, 200, effective_json(eff));
}

/* The node's state from one read transaction (common/linkstate.h). */
static int state_load(call_t *c, nodestate_t *ns)
{
    stxn_t *t;
    int rc = store_begin(http_store(c->h), false, &t);
    if (!rc)
        rc = nodestate_load(t, ns);
    store_abort(&t);
    return rc;
}

/* As `lianxin status --json`; the node answering runs, so its links are as
 * it saved them. */
static int status_get(call_t *c)
{
    nodestate_t ns;
    if (state_load(c, &ns))
        return http_error(c, 500, "the store cannot be read");
    json_t *j = nodestate_json(&ns, http_cfg(c->h)->code, true);
    nodestate_free(&ns);
    return http_json(c, 200, j);
}

static int metrics_get(call_t *c)
{
    size_t clen;
    const char *cached = http_metrics_get(c->h, &clen);
    if (cached)
        return http_send(c, 200, "text/plain; version=0.0.4", cached, clen);
    nodestate_t hl;
    if (state_load(c, &hl))
        return http_send(c, 503, "text/plain", "store unreadable\n", 17);
    http_counts_t *k = http_counts(c->h);
    char *buf = NULL, lc[CODE_STRLEN + 1];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        nodestate_free(&hl);
        return http_send(c, 500, "text/plain", "out of memory\n", 14);
    }
    fprintf(f, "# HELP lianxin_records Child records this node holds.\n"
               "# TYPE lianxin_records gauge\nlianxin_records %llu\n"
               "# HELP lianxin_log_seq The last sequence number of the node's change log.\n"
               "# TYPE lianxin_log_seq counter\nlianxin_log_seq %llu\n"
               "# TYPE lianxin_conflicts gauge\nlianxin_conflicts %llu\n"
               "# TYPE lianxin_duplicates gauge\nlianxin_duplicates %llu\n"
               "# HELP lianxin_store_bytes Bytes the store uses.\n"
               "# TYPE lianxin_store_bytes gauge\nlianxin_store_bytes %llu\n"
               "# HELP lianxin_refusals_total Changes and frames refused from peers.\n"
               "# TYPE lianxin_refusals_total counter\nlianxin_refusals_total %llu\n",
            (unsigned long long)hl.st.records, (unsigned long long)hl.st.last_seq,
            (unsigned long long)hl.st.conflicts, (unsigned long long)hl.st.duplicates,
            (unsigned long long)hl.st.bytes, (unsigned long long)hl.lk.refusals);
    fprintf(f, "# HELP lianxin_link_up Whether the link to a peer is up.\n"
               "# TYPE lianxin_link_up gauge\n");
    for (uint32_t i = 0; hl.have_links && i < hl.lk.n; i++)
        fprintf(f, "lianxin_link_up{peer=\"%s\",role=\"%s\"} %d\n",
                code_fmt(hl.lk.links[i].code, lc), hl.lk.links[i].is_parent ? "parent" : "child",
                hl.lk.links[i].up);
    fprintf(f, "# HELP lianxin_link_lag Log entries sent or waiting on a link, not yet "
               "acknowledged.\n# TYPE lianxin_link_lag gauge\n");
    for (uint32_t i = 0; hl.have_links && i < hl.lk.n; i++)
        fprintf(f, "lianxin_link_lag{peer=\"%s\"} %llu\n", code_fmt(hl.lk.links[i].code, lc),
                (unsigned long long)(hl.unacked ? hl.unacked[i] : 0));
    fprintf(f, "# HELP lianxin_applied_total Changes received and applied from a peer (rate: "
               "the apply rate).\n# TYPE lianxin_applied_total counter\n");
    for (uint32_t i = 0; hl.have_links && i < hl.lk.n; i++)
        fprintf(f, "lianxin_applied_total{peer=\"%s\"} %llu\n", code_fmt(hl.lk.links[i].code, lc),
                (unsigned long long)hl.lk.links[i].received);
    fprintf(f, "# TYPE lianxin_link_refusals_total counter\n");
    for (uint32_t i = 0; hl.have_links && i < hl.lk.n; i++)
        fprintf(f, "lianxin_link_refusals_total{peer=\"%s\"} %llu\n",
                code_fmt(hl.lk.links[i].code, lc), (unsigned long long)hl.lk.links[i].refusals);
    fprintf(f, "# HELP lianxin_http_requests_total API requests answered, by status class.\n"
               "# TYPE lianxin_http_requests_total counter\n");
    for (int s = 2; s <= 5; s++)
        fprintf(f, "lianxin_http_requests_total{class=\"%dxx\"} %llu\n", s,
                (unsigned long long)k->status[s]);
    fprintf(f, "# TYPE lianxin_http_denied_total counter\nlianxin_http_denied_total %llu\n"
               "# TYPE lianxin_audit_entries_total counter\nlianxin_audit_entries_total %llu\n"
               "# TYPE lianxin_audit_failures_total counter\nlianxin_audit_failures_total %llu\n",
            (unsigned long long)k->denied, (unsigned long long)k->audit_entries,
            (unsigned long long)k->audit_failures);
    fclose(f);
    nodestate_free(&hl);
    int rc = http_send(c, 200, "text/plain; version=0.0.4", buf, len);
    http_metrics_put(c->h, buf, len);
    return rc;
}

/* ---- routing ---- */

/* The segments of a path after a prefix: "/a/b" -> {"a", "b"}. */
static size_t segments(char *path, char **seg, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(path, "/", &save); p && n < max;
         p = strtok_r(NULL, "/", &save))
        seg[n++] = p;
    return n;
}

/* The methods a path answers, for 405: "GET", "POST", "GET, POST", ... */
static const char *allowed(char **s, size_t n)
{
    if (n >= 1 && strcmp(s[0], "children") == 0) {
        if (n == 1 || (n == 3 && (strcmp(s[2], "events") == 0 || strcmp(s[2], "cases") == 0)))
            return "GET, POST";
        if (n == 2)
            return "GET, PATCH";
        if (n == 4 && strcmp(s[2], "cases") == 0)
            return "PATCH";
        return NULL;
    }
    if (n == 1 && strcmp(s[0], "conflicts") == 0)
        return "GET";
    if (n == 2 && strcmp(s[0], "conflicts") == 0 && strcmp(s[1], "resolve") == 0)
        return "POST";
    if ((n == 2 && strcmp(s[0], "reports") == 0)
        || (n == 2 && strcmp(s[0], "policies") == 0 && strcmp(s[1], "effective") == 0)
        || (n == 1 && strcmp(s[0], "status") == 0))
        return "GET";
    return NULL;
}

static int route(call_t *c, char **s, size_t n)
{
    if (n >= 1 && strcmp(s[0], "children") == 0) {
        if (n == 1)
            return c->get ? children_list(c) : child_write(c, NULL);
        if (n == 2)
            return c->get ? child_get(c, s[1]) : child_write(c, s[1]);
        bool events = strcmp(s[2], "events") == 0;
        if (n == 3)
            return c->get ? journal_get(c, s[1], events)
                          : events ? events_add(c, s[1]) : case_step(c, s[1], NULL);
        return case_step(c, s[1], s[3]);
    }
    if (strcmp(s[0], "conflicts") == 0)
        return n == 1 ? conflicts_get(c) : conflicts_resolve(c);
    if (strcmp(s[0], "reports") == 0)
        return report_get(c, s[1]);
    if (strcmp(s[0], "policies") == 0)
        return policies_get(c);
    return status_get(c);
}

int api_handle(call_t *c)
{
    if (strcmp(c->path, "/healthz") == 0) {
        char code[CODE_STRLEN + 1];
        return http_json(c, 200, json_pack("{s:s, s:s}", "status", "ok", "code",
                                           code_fmt(http_cfg(c->h)->code, code)));
    }
    if (strcmp(c->path, "/metrics") == 0)
        return metrics_get(c);
    if (strncmp(c->path, API "/", sizeof API) != 0)
        return http_error(c, 404, "no such endpoint: the API is under " API);
    char path[512];
    snprintf(path, sizeof path, "%s", c->path + sizeof API);
    char *s[6];
    size_t n = segments(path, s, 6);
    const char *allow = allowed(s, n);
    if (!allow)
        return http_error(c, 404, "no such endpoint: %.100s", c->path);
    if (n >= 2 && strcmp(s[0], "children") == 0 && !id_ok(s[1]))
        return http_error(c, 404, "no such record");
    const char *method = c->get ? "GET" : c->post ? "POST" : c->patch ? "PATCH" : NULL;
    if (!method || !strstr(allow, method)) {
        h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_ALLOW, NULL, allow,
                       strlen(allow));
        return http_error(c, 405, "%.100s answers %s", c->path, allow);
    }
    if ((c->post || c->patch) && !c->req->entity.base)
        return http_error(c, 400, "the request body is empty: expected a JSON object");
    /* No effective policy at all (the store could not be folded even
     * once): nothing is served rather than the built-in roles. */
    stxn_t *t;
    const effective_t *eff = NULL;
    if (store_begin(http_store(c->h), false, &t) == LX_OK) {
        eff = http_effective(c->h, t);
        store_abort(&t);
    }
    if (!eff)
        return http_error(c, 503, "the policies in force cannot be read; try again shortly");
    return route(c, s, n);
}
