#include "classify.h"
#include "polbody.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linkstate.h"
#include "schema.h"

#define NAME_ANONYMISED SCHEMA_NAME_ANONYMISED
#define NAME_PURGED SCHEMA_NAME_PURGED
#define DAILY_BATCH 500

/* ---- conditions ---- */

int age_on(const char *birth, const char *today)
{
    int age = atoi(today) - atoi(birth);
    /* Not yet this year's birthday: MM-DD compare as text. */
    if (strcmp(today + 5, birth + 5) < 0)
        age--;
    return age;
}

/* The date a child born on birth turns n: the same day n years on, or
 * 1 March for a 29 February birthday in a common year. */
static void birthday(const char *birth, int n, char out[11])
{
    snprintf(out, 11, "%04d%s", atoi(birth) + n, birth + 4);
    if (!date_valid(out))
        snprintf(out, 11, "%04d-03-01", atoi(birth) + n);
}

static int eval_all(const json_t *a, bool all, const record_t *r, const char *today)
{
    bool unknown = false;
    size_t i;
    json_t *c;
    json_array_foreach(a, i, c) {
        int v = cond_eval(c, r, today);
        if (v < 0)
            unknown = true;
        else if (v == (all ? 0 : 1))
            return v;
    }
    return unknown ? -1 : all ? 1 : 0;
}

static int eval_field(const json_t *c, const val_t *v, const char *today)
{
    const json_t *j;
    if ((j = json_object_get(c, "present")))
        return (v != NULL) == json_is_true(j);
    if ((j = json_object_get(c, "within_days"))) {
        /* No visit on file is no visit within the period. */
        if (!v || v->kind != VAL_STR || !date_valid(v->s))
            return 0;
        return date_days(today) - date_days(v->s) <= json_integer_value(j);
    }
    if (!v)
        return -1;
    if ((j = json_object_get(c, "is")))
        return v->kind == VAL_BOOL ? v->b == json_is_true(j) : 0;
    j = json_object_get(c, "in");
    if (v->kind == VAL_STR)
        return pb_has(j, v->s);
    if (v->kind == VAL_LIST) {
        for (uint32_t i = 0; i < v->n; i++)
            if (pb_has(j, v->items[i]))
                return 1;
    }
    return 0;
}

int cond_eval(const json_t *c, const record_t *r, const char *today)
{
    const json_t *j;
    if ((j = json_object_get(c, "all")))
        return eval_all(j, true, r, today);
    if ((j = json_object_get(c, "any")))
        return eval_all(j, false, r, today);
    if ((j = json_object_get(c, "not"))) {
        int v = cond_eval(j, r, today);
        return v < 0 ? -1 : !v;
    }
    const json_t *lt = json_object_get(c, "age_lt"), *ge = json_object_get(c, "age_ge");
    if (lt || ge) {
        const char *birth = record_str(r, "birth_date");
        if (!birth || !date_valid(birth))
            return -1;
        int age = age_on(birth, today);
        return lt ? age < json_integer_value(lt) : age >= json_integer_value(ge);
    }
    return eval_field(c, record_val(r, json_string_value(json_object_get(c, "field"))), today);
}

/* ---- classification ---- */

static int age_limit(const effective_t *e, const char *cat)
{
    const json_t *j = json_object_get(e->age_limits, cat);
    if (!j)
        j = json_object_get(e->age_limits, "*");
    return j ? (int)json_integer_value(j) : 1000;
}

/* 1 when a rule for cat holds, 0 when all are false, -1 otherwise; *lbt
 * gets the left_behind_type of the first rule that holds. */
static int rules_for(const effective_t *e, const char *cat, const record_t *r,
                     const char **lbt, bool *any)
{
    int res = 0;
    *any = false;
    for (size_t i = 0; i < e->nclass; i++) {
        const json_t *rule = e->class_rules[i].rule;
        if (strcmp(json_string_value(json_object_get(rule, "category")), cat) != 0)
            continue;
        *any = true;
        int v = cond_eval(json_object_get(rule, "when"), r, e->today);
        if (v == 1) {
            if (!*lbt)
                *lbt = json_string_value(json_object_get(rule, "left_behind_type"));
            res = 1;
        } else if (v < 0 && res == 0) {
            res = -1;
        }
    }
    return res;
}

static int put_write(record_t *out, const char *name, const val_t *v)
{
    field_t f = {.name = (char *)name, .val = *v};
    return record_put(out, &f);
}

static int put_str(record_t *out, const char *name, const char *s)
{
    val_t v = {.kind = VAL_STR, .s = (char *)s};
    return put_write(out, name, &v);
}

typedef struct {
    bool have[16];       /* by index of the categories enum */
    int aged_at;         /* the highest age limit passed now; 0 none */
    bool by_rule;        /* a category left because its rules failed */
    bool lb_by_rule;     /* left_behind left so */
} catset_t;

static bool same_set(const catset_t *s, const val_t *v, const enum_def_t *en)
{
    size_t n = 0;
    for (size_t i = 0; en[i].value; i++)
        if (s->have[i]) {
            n++;
            if (!v || !val_list_has(v, en[i].value))
                return false;
        }
    return n == (v && v->kind == VAL_LIST ? v->n : 0);
}

int policy_derive(const effective_t *e, const record_t *r, record_t *out)
{
    const char *status = record_str(r, "status");
    const char *birth = record_str(r, "birth_date");
    if ((status && strcmp(status, "exited") == 0) || !birth || !date_valid(birth))
        return LX_OK;
    int age = age_on(birth, e->today);
    const field_def_t *cd = schema_field("categories");
    const val_t *cur = record_val(r, "categories");
    catset_t s = {0};
    bool had = false;
    for (size_t i = 0; cd->enums[i].value && i < 16; i++)
        had |= s.have[i] = cur && val_list_has(cur, cd->enums[i].value);
    const char *lbt = NULL;
    int lb = -1;
    for (size_t i = 0; cd->enums[i].value && i < 16; i++) {
        if (strcmp(cd->enums[i].value, "left_behind") == 0)
            lb = (int)i;
        const char *cat = cd->enums[i].value;
        int lim = age_limit(e, cat);
        if (age >= lim) {
            if (s.have[i] && lim > s.aged_at)
                s.aged_at = lim;
            s.have[i] = false;
            continue;
        }
        bool any;
        int v = rules_for(e, cat, r, &lbt, &any);
        if (v == 1) {
            s.have[i] = true;
        } else if (v == 0 && any && s.have[i] && pb_has(e->authoritative, cat)) {
            s.have[i] = false;
            s.by_rule = true;
            s.lb_by_rule |= strcmp(cat, "left_behind") == 0;
        }
    }
    int rc = LX_OK;
    bool now = false;
    val_t list = {.kind = VAL_LIST};
    for (size_t i = 0; cd->enums[i].value && i < 16 && !rc; i++)
        if (s.have[i]) {
            now = true;
            rc = val_list_add(&list, cd->enums[i].value);
        }
    if (!rc && !same_set(&s, cur, cd->enums))
        rc = put_write(out, "categories", &list);
    val_free(&list);
    const char *old_lbt = record_str(r, "left_behind_type");
    if (!rc && lb >= 0 && s.have[lb] && lbt && (!old_lbt || strcmp(old_lbt, lbt) != 0))
        rc = put_str(out, "left_behind_type", lbt);
    if (!rc && s.lb_by_rule && old_lbt) {
        val_t nil = {0};
        rc = put_write(out, "left_behind_type", &nil);
    }
    if (!rc && had && !now) {
        char date[11];
        if (s.aged_at)
            birthday(birth, s.aged_at, date);
        else
            snprintf(date, sizeof date, "%s", e->today);
        rc = put_str(out, "status", "exited");
        if (!rc)
            rc = put_str(out, "exit_reason", s.aged_at ? "reached_age_limit"
                                             : s.lb_by_rule ? "parents_returned"
                                                            : "category_changed");
        if (!rc)
            rc = put_str(out, "exit_date", date);
    }
    return rc;
}

/* ---- the local write ---- */

/* Drops the writes that set a field to the value it holds: they are no
 * change, neither versioned anew nor logged. */
static void drop_unchanged(record_t *r, const record_t *cur)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *old = record_field(cur, r->f[i].name);
        if ((old && val_eq(&old->val, &r->f[i].val))
            || (!old && r->f[i].val.kind == VAL_NIL))
            field_free(&r->f[i]);
        else
            r->f[kept++] = r->f[i];
    }
    r->n = kept;
}

/* Adds the derived writes to the change r (replacing a value r sets)
 * and to the record as it will be. */
static int add_derived(record_t *r, record_t *merged, const record_t *d, const ver_t *ver,
                       const char *author)
{
    for (uint32_t i = 0; i < d->n; i++) {
        const field_t *df = &d->f[i];
        field_t *own = (field_t *)record_field(r, df->name);
        int rc;
        if (own) {
            val_free(&own->val);
            rc = val_copy(&own->val, &df->val);
        } else {
            const field_t *old = record_field(merged, df->name);
            field_t f = {.name = df->name, .val = df->val, .ver = *ver};
            f.ver.base = old ? old->ver.hlc : 0;
            f.ver.author = (char *)author;
            rc = record_put(r, &f);
        }
        if (!rc && merged != r)
            rc = record_put(merged, df);
        if (rc)
            return rc;
    }
    return LX_OK;
}

static int write_merged(stxn_t *t, record_t *r, record_t *cur, const write_opts_t *o,
                        const effective_t *eff, apply_t *res, why_t *why)
{
    code_t node = store_code_of(t);
    hlc_t now = store_tick(t);
    drop_unchanged(r, cur);
    int rc = LX_OK;
    for (uint32_t i = 0; i < r->n; i++) {
        field_t *f = &r->f[i];
        const field_t *old = record_field(cur, f->name);
        /* The author is borrowed for the apply and handed back below:
         * one string for every field of every row of an import. */
        free(f->ver.author);
        f->ver = (ver_t){.hlc = now, .origin = node, .base = old ? old->ver.hlc : 0,
                         .author = (char *)o->author};
    }
    /* The record as it will be: a new one is r itself. */
    record_t *merged = cur->n ? cur : r;
    for (uint32_t i = 0; cur->n && i < r->n && !rc; i++)
        rc = record_put(cur, &r->f[i]);
    record_t *d = rc ? NULL : record_new(NULL);
    if (!rc && !d)
        rc = LX_ENOMEM;
    if (!rc)
        rc = policy_derive(eff, merged, d);
    ver_t ver = {.hlc = now, .origin = node};
    if (!rc)
        rc = add_derived(r, merged, d, &ver, o->author);
    bool derived = d && d->n;
    record_destroy(&d);
    if (!rc && r->n == 0) {
        *res = (apply_t){0};
        return LX_OK;
    }
    /* Only retention writes its markers: a marked record keeps no history
     * of what retention removes (store_apply_ex), so a name typed as one
     * would take that history with it. */
    const field_t *nf = o->system ? NULL : record_field(r, "name");
    if (!rc && nf && schema_retention_marker(&nf->val))
        rc = why_set(why, LX_EINVAL, "field name: \"%s\" is written by retention only",
                     nf->val.s);
    /* A local field written here must be one this node's schema defines;
     * those a record holds from below pass the generic check. */
    for (uint32_t i = 0; !rc && !o->system && i < r->n; i++)
        if (schema_local_name(r->f[i].name) && !eff_field(eff, r->f[i].name))
            rc = why_set(why, LX_EINVAL, "field %s: unknown field (no schema policy in force "
                         "here defines it)", r->f[i].name);
    if (!rc && (cur->n || !o->checked || derived || (eff->schema_policy && !o->system)))
        rc = o->system ? schema_check_record(merged, node, why)
                       : eff_check_record(eff, merged, node, why);
    if (!rc)
        rc = store_apply(t, r->id, r->f, r->n, 0, res, why);
    return rc;
}

int policy_write(stxn_t *t, record_t *r, const write_opts_t *o, apply_t *res, why_t *why)
{
    code_t node = store_code_of(t);
    effective_t *own = NULL;
    const effective_t *eff = o->eff;
    int rc = LX_OK;
    if (!eff) {
        char today[11];
        policy_today(hlc_wall_ms(), today);
        if ((rc = policy_effective(t, today, &own, why)))
            return rc;
        eff = own;
    }
    char idbuf[32];
    if (!r->id) {
        record_id_make(node, store_tick(t), idbuf);
        if (!(r->id = strdup(idbuf)))
            rc = LX_ENOMEM;
    }
    record_t *cur = NULL;
    if (!rc)
        rc = store_get(t, r->id, &cur, why);
    if (rc == LX_ENOTFOUND) {
        if (o->mode == WRITE_EXISTING)
            rc = why_set(why, LX_ENOTFOUND, "no record with id %s", r->id);
        else if (!(cur = record_new(r->id)))
            rc = LX_ENOMEM;
        else
            rc = LX_OK;
    } else if (!rc && o->mode == WRITE_NEW) {
        rc = why_set(why, LX_EEXIST, "a record with id %s already exists", r->id);
    }
    /* A child who moved out of this node's subtree left only a stub here
     * (its new village, nothing personal): the file is kept where the
     * child is now, and edits are made there. */
    const char *vc = !rc ? record_str(cur, "village_code") : NULL;
    code_t vcode;
    if (vc && code_parse(vc, &vcode) == LX_OK && !code_contains(node, vcode))
        rc = why_set(why, LX_ESCOPE, "record %s moved to village %s, outside this node: "
                     "edit it where the child is now", r->id, vc);
    if (!rc)
        rc = write_merged(t, r, cur, o, eff, res, why);
    for (uint32_t i = 0; i < r->n; i++)
        if (r->f[i].ver.author == o->author)
            r->f[i].ver.author = NULL;
    record_destroy(&cur);
    effective_free(&own);
    return rc;
}

/* ---- alerts ---- */

int policy_alerts(const effective_t *e, const record_t *r, alert_cb cb, void *arg)
{
    const char *status = record_str(r, "status");
    if (status && strcmp(status, "exited") == 0)
        return 0;
    int n = 0;
    for (size_t i = 0; i < e->nalerts; i++) {
        if (cond_eval(json_object_get(e->alerts[i].rule, "when"), r, e->today) != 1)
            continue;
        n++;
        int rc = cb ? cb(arg, r, &e->alerts[i]) : 0;
        if (rc)
            return rc;
    }
    return n;
}

/* ---- daily pass and retention ---- */

typedef struct {
    const effective_t *e;
    code_t *children;
    uint32_t nchildren;
    char (*ids)[65];
    size_t n, cap;
    uint64_t seen;
    int (*wants)(const effective_t *, const record_t *);
} sweep_t;

static bool mine(const sweep_t *x, const record_t *r)
{
    code_t v;
    const char *vs = record_str(r, "village_code");
    if (!vs || code_parse(vs, &v))
        return false;
    for (uint32_t i = 0; i < x->nchildren; i++)
        if (code_contains(x->children[i], v))
            return false;
    return true;
}

/* Appends id to a list that grows as it needs. */
static int ids_add(char (**ids)[65], size_t *n, size_t *cap, const char *id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char (*ni)[65] = realloc(*ids, c * sizeof *ni);
        if (!ni)
            return LX_ENOMEM;
        *ids = ni;
        *cap = c;
    }
    snprintf((*ids)[(*n)++], 65, "%s", id);
    return 0;
}

static int sweep_cb(void *arg, const record_t *r)
{
    sweep_t *x = arg;
    if (!mine(x, r))
        return 0;
    x->seen++;
    int w = x->wants(x->e, r);
    if (w <= 0)
        return w;
    return ids_add(&x->ids, &x->n, &x->cap, r->id);
}

static int wants_derive(const effective_t *e, const record_t *r)
{
    record_t *d = record_new(NULL);
    if (!d)
        return LX_ENOMEM;
    int rc = policy_derive(e, r, d);
    int n = rc ? rc : (int)d->n;
    record_destroy(&d);
    return n;
}

/* The writes retention asks of r (into out), or none. */
static int retention_writes(const effective_t *e, const record_t *r, record_t *out)
{
    const char *birth = record_str(r, "birth_date");
    if (!e->retention_years || !birth || !date_valid(birth))
        return LX_OK;
    const char *reason = record_str(r, "exit_reason");
    const char *exit_date = record_str(r, "exit_date");
    char from[11];
    if (reason && strcmp(reason, "reached_age_limit") == 0 && exit_date && date_valid(exit_date))
        snprintf(from, sizeof from, "%s", exit_date);
    else
        birthday(birth, 18, from);
    char until[11];
    birthday(from, e->retention_years, until);
    if (strcmp(until, e->today) > 0)
        return LX_OK;
    bool purge = strcmp(e->retention_action, "purge") == 0;
    const char *name = purge ? NAME_PURGED : NAME_ANONYMISED;
    const char *old = record_str(r, "name");
    int rc = old && strcmp(old, name) == 0 ? LX_OK : put_str(out, "name", name);
    val_t nil = {0}, marker = {.kind = VAL_STR, .s = (char *)name};
    for (uint32_t i = 0; i < r->n && !rc; i++) {
        const char *f = r->f[i].name;
        if (strcmp(f, "name") != 0 && schema_retention_removes(&marker, f)
            && r->f[i].val.kind != VAL_NIL)
            rc = put_write(out, f, &nil);
    }
    return rc;
}

static int wants_retention(const effective_t *e, const record_t *r)
{
    record_t *d = record_new(NULL);
    if (!d)
        return LX_ENOMEM;
    int rc = retention_writes(e, r, d);
    int n = rc ? rc : (int)d->n;
    record_destroy(&d);
    return n;
}

/* Finds, in a read transaction, the records that want a write; then
 * writes them in batches, each record re-read and re-derived in its write
 * transaction (it may have changed since), so the node's writer is never
 * held for a whole walk. */
static int code_cmp(const void *a, const void *b)
{
    code_t x = *(const code_t *)a, y = *(const code_t *)b;
    return x < y ? -1 : x > y;
}

/* Walks only the villages between the children's subtrees: a province
 * under twenty cities reads none of their records (they are the cities'
 * to derive), instead of decoding every one to skip it. */
static int sweep_walk(stxn_t *t, sweep_t *x)
{
    code_t lo, hi, at;
    code_range(store_code_of(t), &lo, &hi);
    if (x->nchildren)
        qsort(x->children, x->nchildren, sizeof *x->children, code_cmp);
    at = lo;
    int rc = LX_OK;
    for (uint32_t i = 0; !rc && i <= x->nchildren; i++) {
        code_t clo = hi, chi = hi;
        if (i < x->nchildren)
            code_range(x->children[i], &clo, &chi);
        if (clo > at)
            rc = store_each_record_range(t, at, clo < hi ? clo : hi, sweep_cb, x);
        if (chi > at)
            at = chi;
    }
    return rc;
}

static int sweep(store_t *s, const char *today, bool retention, policy_stats_t *st,
                 why_t *why)
{
    stxn_t *t = NULL;
    effective_t *e = NULL;
    links_t lk = {0};
    sweep_t x = {.wants = retention ? wants_retention : wants_derive};
    int rc = store_begin(s, false, &t);
    if (!rc)
        rc = policy_effective(t, today, &e, why);
    if (!rc && links_load(t, &lk) == LX_OK && lk.n
        && (x.children = calloc(lk.n, sizeof *x.children))) {
        for (uint32_t i = 0; i < lk.n; i++)
            if (!lk.links[i].is_parent)
                x.children[x.nchildren++] = lk.links[i].code;
    }
    links_free(&lk);
    x.e = e;
    if (!rc && !(retention && !e->retention_years))
        rc = sweep_walk(t, &x);
    store_abort(&t);
    st->seen += x.seen;
    char author[64], c[CODE_STRLEN + 1];
    snprintf(author, sizeof author, "%s/system/policy", code_fmt(store_code(s), c));
    for (size_t i = 0; !rc && i < x.n; i += DAILY_BATCH) {
        if ((rc = store_begin(s, true, &t)))
            break;
        for (size_t k = i; k < x.n && k < i + DAILY_BATCH && !rc; k++) {
            record_t *cur = NULL, *w = NULL;
            apply_t res = {0};
            rc = store_get(t, x.ids[k], &cur, why);
            if (rc == LX_ENOTFOUND) {
                rc = LX_OK;
                continue;
            }
            if (!rc && !(w = record_new(x.ids[k])))
                rc = LX_ENOMEM;
            if (!rc && retention)
                rc = retention_writes(e, cur, w);
            write_opts_t o = {.author = author, .mode = WRITE_EXISTING, .system = true, .eff = e};
            if (!rc)
                rc = policy_write(t, w, &o, &res, why);
            if (!rc && res.changed) {
                const char *after = NULL;
                record_t *now = NULL;
                st->changed++;
                if (retention)
                    (*(strcmp(e->retention_action, "purge") == 0 ? &st->purged
                                                                   : &st->anonymised))++;
                else if (store_get(t, x.ids[k], &now, NULL) == LX_OK
                         && (after = record_str(now, "status")) && strcmp(after, "exited") == 0
                         && !(record_str(cur, "status")
                              && strcmp(record_str(cur, "status"), "exited") == 0))
                    st->exited++;
                record_destroy(&now);
            }
            record_destroy(&cur);
            record_destroy(&w);
        }
        rc = rc ? rc : store_commit(&t);
        store_abort(&t);
    }
    free(x.ids);
    free(x.children);
    effective_free(&e);
    return rc;
}

int policy_daily(store_t *s, const char *today, policy_stats_t *st, why_t *why)
{
    return sweep(s, today, false, st, why);
}

/* ---- retention at the nodes a child left ---- */

typedef struct {
    const effective_t *e;
    char (*ids)[65];   /* the stubs retention is due for, in id order */
    size_t n, cap;
} stubs_t;

static int stub_cb(void *arg, const record_t *r)
{
    stubs_t *x = arg;
    record_t *w = record_new(NULL);
    if (!w)
        return LX_ENOMEM;
    /* Due by the dates alone (retention always writes the name when it
     * is): a stub already scrubbed, or scrubbed under a milder policy
     * than today's, is checked again, and finds nothing or more. */
    int rc = retention_writes(x->e, r, w);
    bool due = !rc && w->n > 0;
    record_destroy(&w);
    if (rc || !due)
        return rc;
    return ids_add(&x->ids, &x->n, &x->cap, r->id);
}

/* A child who moved out of this node's subtree left a stub here, with
 * what it held in the history; later writes (retention's too) go where
 * the child is now. So this node applies retention to that history
 * itself, on the dates its own policy gives, in batches (each stub
 * checked again by store_scrub_history: it may have come back); x
 * takes the stubs it was due for (their conflict log entries are next). */
static int retention_stubs(store_t *s, const char *today, policy_stats_t *st, stubs_t *x,
                           const char **marker, why_t *why)
{
    stxn_t *t;
    effective_t *e = NULL;
    int rc = store_begin(s, false, &t);
    if (!rc)
        rc = policy_effective(t, today, &e, why);
    x->e = e;
    if (!rc && e->retention_years)
        rc = store_each_stub(t, stub_cb, x);
    store_abort(&t);
    *marker = e && strcmp(e->retention_action, "purge") == 0 ? NAME_PURGED : NAME_ANONYMISED;
    for (size_t i = 0; !rc && i < x->n; i += DAILY_BATCH) {
        if ((rc = store_begin(s, true, &t)))
            break;
        for (size_t k = i; !rc && k < x->n && k < i + DAILY_BATCH; k++) {
            uint64_t removed = 0;
            rc = store_scrub_history(t, x->ids[k], *marker, &removed);
            st->stubs += removed > 0;
        }
        if (!rc)
            rc = store_commit(&t);
        store_abort(&t);
    }
    x->e = NULL;
    effective_free(&e);
    return rc && !why->msg[0] ? why_set(why, rc, "retention of moved-out records: %s",
                                        err_str(rc))
                              : rc;
}

int policy_retention(store_t *s, const char *today, policy_stats_t *st, why_t *why)
{
    stubs_t x = {0};
    const char *marker = NULL;
    int rc = sweep(s, today, true, st, why);
    if (!rc)
        rc = retention_stubs(s, today, st, &x, &marker, why);
    /* Then the conflict log: of this pass's markers, of every other that
     * reached this node, and of the stubs retention was due for. */
    stxn_t *t = NULL;
    if (!rc && !(rc = store_begin(s, true, &t))
        && !(rc = store_scrub_conflicts(t, (const char(*)[65])x.ids, x.n, marker, &st->scrubbed)))
        rc = store_commit(&t);
    store_abort(&t);
    free(x.ids);
    return rc && !why->msg[0] ? why_set(why, rc, "retention of the conflict log: %s", err_str(rc))
                              : rc;
}
