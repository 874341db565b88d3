/* lianxin policy issue|accept|list|show|status|apply, and lianxin alerts:
 * the policies a level issues for its subtree, what they add up to at
 * this node, which nodes below apply which versions, and the records they
 * flag. */
#include "cli.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/classify.h"
#include "common/effective.h"
#include "common/linkstate.h"
#include "common/policy.h"
#include "config/config.h"

static const char *U =
    "lianxin policy issue --data DIR --file POLICY.json [--keys DIR] [--out ENVELOPE] [--json]\n"
    "       lianxin policy accept --data DIR ENVELOPE [--json]\n"
    "       lianxin policy list --data DIR [--json]\n"
    "       lianxin policy show --data DIR [--effective] [--today YYYY-MM-DD] [--json]\n"
    "       lianxin policy status --data DIR [--json]\n"
    "       lianxin policy apply --data DIR [--today YYYY-MM-DD] [--json]";

static const char *HELP =
    "Policies are JSON documents a level issues for its subtree, signed with its key:\n"
    "  issue   signs FILE with the node's sign.key (default DIR/../keys) and stores it;\n"
    "          the issuer must be this node; --out also writes the signed envelope\n"
    "  accept  stores a signed envelope carried by hand (from an ancestor)\n"
    "  list    the policies held: issuer, kind, version, dates, in force or not\n"
    "  show    their documents; --effective: the fold from the province down to this\n"
    "          node, each rule with the level that set it and those that refined it\n"
    "  status  which nodes below apply which versions, and which lag and since when\n"
    "  apply   runs the daily pass by hand: classification and retention\n"
    "See README.md, Policies, for the file format.";

typedef struct {
    const char *data, *file, *keys, *out, *today;
    bool json, effective;
} popts_t;

static int parse(const char *cmd, int argc, char **argv, popts_t *o)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"file", required_argument, 0, 'f'},
        {"keys", required_argument, 0, 'k'}, {"out", required_argument, 0, 'o'},
        {"today", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"effective", no_argument, 0, 'e'}, {"help", no_argument, 0, 'h'}, {0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:f:k:o:t:jeh", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data = optarg; break;
        case 'f': o->file = optarg; break;
        case 'k': o->keys = optarg; break;
        case 'o': o->out = optarg; break;
        case 't': o->today = optarg; break;
        case 'j': o->json = true; break;
        case 'e': o->effective = true; break;
        case 'h': printf("usage: %s\n\n%s\n", U, HELP); return -1;
        default: return cli_usage(cmd, U, "bad option");
        }
    }
    if (!o->data)
        return cli_usage(cmd, U, "--data is required");
    if (o->today && !date_valid(o->today))
        return cli_usage(cmd, U, "--today %s: expected YYYY-MM-DD", o->today);
    return 0;
}

static void today_of(const popts_t *o, char out[11])
{
    if (o->today)
        snprintf(out, 11, "%s", o->today);
    else
        policy_today(hlc_wall_ms(), out);
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(j);
}

static json_t *ver_json(const policy_ver_t *v)
{
    char c[CODE_STRLEN + 1];
    return json_pack("{s:s, s:s, s:i}", "issuer", code_fmt(v->issuer, c), "kind",
                     policy_kind_name(v->kind), "version", (json_int_t)v->version);
}

/* ---- issue and accept ---- */

/* Stores an envelope through policy_accept and reports it. */
static int accept_env(const char *cmd, const char *data, const void *env, size_t len,
                      unsigned how, const unsigned char *own_pub, bool as_json)
{
    store_t *s = cli_open(cmd, data, 0);
    if (!s)
        return 1;
    why_t why = {""};
    stxn_t *t = NULL;
    policy_ver_t v = {0};
    unsigned char pinned[POLICY_PUBLEN];
    char c[CODE_STRLEN + 1];
    int rc = store_begin(s, true, &t);
    if (!rc && own_pub) {
        /* The node's own key is pinned from its keys; a different key
         * pinned already means these are not this node's keys. */
        int p = policy_pinned_key(t, store_code(s), pinned);
        if (p == LX_OK && memcmp(pinned, own_pub, POLICY_PUBLEN) != 0)
            rc = why_set(&why, LX_EINVAL, "the signing key is not the one pinned for %s",
                         code_fmt(store_code(s), c));
        else if (p == LX_ENOTFOUND)
            rc = policy_pin_key(t, store_code(s), own_pub);
        else
            rc = p;
    }
    if (!rc)
        rc = policy_accept(t, env, len, how, hlc_wall_ms(), &v, &why);
    bool held = rc == LX_EEXIST;
    if (held) {
        policy_t p;
        if (policy_open(env, len, &p, NULL) == LX_OK)
            v = (policy_ver_t){p.issuer, p.kind, p.version};
        policy_free(&p);
        rc = LX_OK;
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    if (rc)
        return cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
    if (as_json) {
        json_t *j = ver_json(&v);
        json_object_set_new(j, "result", json_string(held ? "already held" : "stored"));
        print_json(j);
    } else {
        printf("%s/%s v%u %s\n", code_fmt(v.issuer, c), policy_kind_name(v.kind), v.version,
               held ? "already held" : "stored");
    }
    return 0;
}

static int write_env(const char *path, const void *env, size_t len, why_t *why)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(env, 1, len, f) != len || fflush(f) || fsync(fileno(f))) {
        if (f)
            fclose(f);
        unlink(tmp);
        return why_set(why, LX_EIO, "%s: cannot write", path);
    }
    fclose(f);
    return rename(tmp, path) ? why_set(why, LX_EIO, "%s: cannot write", path) : LX_OK;
}

static int policy_issue(int argc, char **argv)
{
    popts_t o = {0};
    int rc = parse("policy issue", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!o.file)
        return cli_usage("policy issue", U, "--file is required");
    why_t why = {""};
    size_t len = 0;
    char *text = cli_slurp(o.file, &len, &why);
    if (!text)
        return cli_fail("policy issue", "%s", why.msg);
    policy_t p;
    rc = policy_parse(text, len, o.file, &p, &why);
    if (rc) {
        free(text);
        return cli_fail("policy issue", "%s", why.msg);
    }
    /* The issuer signs: only its own node issues its policies. */
    store_t *s = cli_open("policy issue", o.data, STORE_RDONLY);
    code_t node = s ? store_code(s) : 0;
    store_close(&s);
    char c[CODE_STRLEN + 1], c2[CODE_STRLEN + 1];
    code_t issuer = p.issuer;
    policy_free(&p);
    if (!node || issuer != node) {
        free(text);
        return node ? cli_fail("policy issue", "%s: issuer: %s is not this node (%s)", o.file,
                               code_fmt(issuer, c), code_fmt(node, c2))
                    : 1;
    }
    char kdir[4200], kpath[4300];
    if (!o.keys) {
        cli_beside(o.data, "keys", kdir, sizeof kdir);
        o.keys = kdir;
    }
    snprintf(kpath, sizeof kpath, "%s/sign.key", o.keys);
    unsigned char sk[POLICY_SECLEN], pub[POLICY_PUBLEN];
    if (sodium_init() < 0 || keys_read_hex(kpath, true, sk, sizeof sk, &why)) {
        free(text);
        return cli_fail("policy issue", "%s", why.msg[0] ? why.msg : "libsodium failed");
    }
    crypto_sign_ed25519_sk_to_pk(pub, sk);
    unsigned char *env = NULL;
    size_t envlen = 0;
    rc = policy_sign(text, len, sk, &env, &envlen);
    sodium_memzero(sk, sizeof sk);
    free(text);
    if (rc)
        return cli_fail("policy issue", "%s", err_str(rc));
    if (o.out && write_env(o.out, env, envlen, &why)) {
        free(env);
        return cli_fail("policy issue", "%s", why.msg);
    }
    rc = accept_env("policy issue", o.data, env, envlen, POLICY_LOCAL, pub, o.json);
    free(env);
    return rc;
}

static int policy_accept_cmd(int argc, char **argv)
{
    popts_t o = {0};
    int rc = parse("policy accept", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind != argc - 1)
        return cli_usage("policy accept", U, "give one ENVELOPE file");
    why_t why = {""};
    size_t len = 0;
    char *env = cli_slurp(argv[optind], &len, &why);
    if (!env)
        return cli_fail("policy accept", "%s", why.msg);
    rc = accept_env("policy accept", o.data, env, len, POLICY_CARRIED, NULL, o.json);
    free(env);
    return rc;
}

/* ---- list and show ---- */

typedef struct {
    const char *today;
    code_t node;
    bool json, docs;
    json_t *arr;
} listx_t;

static bool in_force(const policy_t *p, code_t node, const char *today)
{
    return code_contains(p->issuer, node) && strcmp(p->effective, today) <= 0
           && (!p->expires[0] || strcmp(today, p->expires) < 0);
}

static int list_cb(void *arg, const void *env, size_t len, const policy_t *p, uint64_t at)
{
    (void)env, (void)len;
    listx_t *x = arg;
    char c[CODE_STRLEN + 1];
    bool on = in_force(p, x->node, x->today);
    if (x->json || x->docs) {
        policy_ver_t v = {p->issuer, p->kind, p->version};
        json_t *j = ver_json(&v);
        json_object_set_new(j, "effective", json_string(p->effective));
        json_object_set_new(j, "expires", p->expires[0] ? json_string(p->expires) : json_null());
        json_object_set_new(j, "in_force", json_boolean(on));
        json_object_set_new(j, "accepted_ms", json_integer((json_int_t)at));
        if (x->docs)
            json_object_set(j, "body", (json_t *)p->body);
        json_array_append_new(x->arr, j);
        return 0;
    }
    printf("%s  %-14s v%-4u effective %s  expires %-10s  %s\n", code_fmt(p->issuer, c),
           policy_kind_name(p->kind), p->version, p->effective,
           p->expires[0] ? p->expires : "never", on ? "in force" : "not in force");
    return 0;
}

/* The effective policy as text: one line per rule, with its provenance. */
static void prov_line(const json_t *o)
{
    printf("   set by %s", json_string_value(json_object_get(o, "set_by")));
    const json_t *r = json_object_get(o, "refined_by");
    if (json_array_size(r)) {
        printf(", refined by");
        size_t i;
        json_t *c;
        json_array_foreach(r, i, c)
            printf(" %s", json_string_value(c));
    }
    putchar('\n');
}

static void print_rules(const char *title, const json_t *rules)
{
    printf("%s:\n", title);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        const json_t *rule = json_object_get(r, "rule");
        const json_t *cat = json_object_get(rule, "category");
        printf("  %-32s %-22s", json_string_value(json_object_get(rule, "id")),
               cat ? json_string_value(cat) : "");
        prov_line(r);
    }
}

static void print_effective(const json_t *j)
{
    printf("effective policy at %s on %s\n", json_string_value(json_object_get(j, "node")),
           json_string_value(json_object_get(j, "today")));
    size_t i;
    json_t *v;
    printf("schema fields set or refined by policy:\n");
    json_array_foreach(json_object_get(json_object_get(j, "schema"), "fields"), i, v) {
        printf("  %-32s %-22s", json_string_value(json_object_get(v, "name")),
               json_is_true(json_object_get(v, "required")) ? "required" : "optional");
        prov_line(v);
    }
    const json_t *cl = json_object_get(j, "classification");
    print_rules("classification rules", json_object_get(cl, "rules"));
    printf("  %-55s", "age limits");
    prov_line(json_object_get(cl, "age_limits_by"));
    print_rules("alert rules", json_object_get(json_object_get(j, "alerts"), "rules"));
    const json_t *rp = json_object_get(j, "reporting");
    printf("reporting: deadline %d days after the quarter",
           (int)json_integer_value(json_object_get(rp, "deadline_days_after_quarter")));
    prov_line(rp);
    printf("access: %zu roles", json_object_size(json_object_get(json_object_get(j, "access"), "roles")));
    prov_line(json_object_get(j, "access"));
    const json_t *rt = json_object_get(j, "retention");
    printf("retention: %s after %d years", json_string_value(json_object_get(rt, "action")),
           (int)json_integer_value(json_object_get(rt, "after_years")));
    prov_line(rt);
    const json_t *ov = json_object_get(j, "overridden");
    if (json_array_size(ov))
        printf("overridden (not applied):\n");
    json_array_foreach(ov, i, v)
        printf("  %s %s %s: %s (the rule of %s stands)\n",
               json_string_value(json_object_get(v, "issuer")),
               json_string_value(json_object_get(v, "kind")),
               json_string_value(json_object_get(v, "rule")),
               json_string_value(json_object_get(v, "reason")),
               json_string_value(json_object_get(v, "by")));
}

static int policy_list(int argc, char **argv, bool docs)
{
    const char *cmd = docs ? "policy show" : "policy list";
    popts_t o = {0};
    int rc = parse(cmd, argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    char today[11];
    today_of(&o, today);
    store_t *s = cli_open(cmd, o.data, STORE_RDONLY);
    if (!s)
        return 1;
    why_t why = {""};
    stxn_t *t = NULL;
    effective_t *e = NULL;
    listx_t x = {today, store_code(s), o.json, docs && !o.effective, json_array()};
    rc = store_begin(s, false, &t);
    if (!rc && o.effective)
        rc = policy_effective(t, today, &e, &why);
    else if (!rc)
        rc = policy_each(t, list_cb, &x);
    store_abort(&t);
    store_close(&s);
    if (rc) {
        json_decref(x.arr);
        return cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
    }
    if (e) {
        json_decref(x.arr);
        json_t *j = effective_json(e);
        effective_free(&e);
        if (o.json) {
            print_json(j);
            return 0;
        }
        print_effective(j);
        json_decref(j);
        return 0;
    }
    if (o.json || x.docs)
        print_json(x.arr);
    else
        json_decref(x.arr);
    return 0;
}

/* ---- status: the acknowledgement table ---- */

typedef struct {
    policy_ver_t *held;
    uint64_t *held_at;   /* when each held version was accepted here */
    size_t nheld;
    uint64_t now;
    bool json;
    json_t *arr;
    code_t *children;    /* direct children, to name those never heard from */
    uint32_t nchildren;
    bool *heard;
} statusx_t;

static int held_cb(void *arg, const void *env, size_t len, const policy_t *p, uint64_t at)
{
    (void)env, (void)len;
    statusx_t *x = arg;
    for (size_t i = 0; i < x->nheld; i++)
        if (x->held[i].issuer == p->issuer && x->held[i].kind == p->kind)
            x->held_at[i] = at;
    return 0;
}

static void duration(uint64_t ms, char *out, size_t n)
{
    uint64_t s = ms / 1000;
    if (s < 120)
        snprintf(out, n, "%llus", (unsigned long long)s);
    else if (s < 7200)
        snprintf(out, n, "%llum", (unsigned long long)(s / 60));
    else if (s < 172800)
        snprintf(out, n, "%lluh", (unsigned long long)(s / 3600));
    else
        snprintf(out, n, "%llud", (unsigned long long)(s / 86400));
}

/* One node's line: what it lags behind this node's held versions. */
static int status_node(statusx_t *x, code_t node, const policy_ver_t *vers, size_t n,
                       uint64_t when, bool reported)
{
    char c[CODE_STRLEN + 1], c2[CODE_STRLEN + 1], d[32];
    json_t *lag = json_array();
    for (size_t i = 0; i < x->nheld; i++) {
        uint32_t have = 0;
        for (size_t k = 0; k < n; k++)
            if (vers[k].issuer == x->held[i].issuer && vers[k].kind == x->held[i].kind)
                have = vers[k].version;
        if (have >= x->held[i].version)
            continue;
        uint64_t since = x->held_at[i];
        json_t *l = ver_json(&x->held[i]);
        json_object_set_new(l, "applied", have ? json_integer(have) : json_null());
        json_object_set_new(l, "since_ms", json_integer((json_int_t)since));
        json_object_set_new(l, "lag_s", json_integer(since && x->now > since
                                                         ? (json_int_t)((x->now - since) / 1000)
                                                         : 0));
        json_array_append_new(lag, l);
    }
    json_t *vs = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(vs, ver_json(&vers[k]));
    if (x->json) {
        json_array_append_new(x->arr, json_pack("{s:s, s:b, s:o, s:o, s:o, s:b}", "code",
            code_fmt(node, c), "reported", reported, "reported_ms",
            reported ? json_integer((json_int_t)when) : json_null(), "versions", vs,
            "lagging", lag, "up_to_date", json_array_size(lag) == 0));
        return 0;
    }
    printf("%s  %-8s  ", code_fmt(node, c), level_name(code_level(node)));
    if (!reported)
        printf("never reported");
    else if (!json_array_size(lag))
        printf("up to date");
    size_t i;
    json_t *l;
    json_array_foreach(lag, i, l) {
        code_parse(json_string_value(json_object_get(l, "issuer")), &node);
        duration((uint64_t)json_integer_value(json_object_get(l, "lag_s")) * 1000, d, sizeof d);
        const json_t *ap = json_object_get(l, "applied");
        printf("%slags %s/%s: v%s%lld of v%lld, for %s", i ? "; " : "", code_fmt(node, c2),
               json_string_value(json_object_get(l, "kind")), ap ? "" : "(none)",
               ap ? (long long)json_integer_value(ap) : 0LL,
               (long long)json_integer_value(json_object_get(l, "version")), d);
    }
    if (reported && x->now > when) {
        duration(x->now - when, d, sizeof d);
        printf("  (reported %s ago)", d);
    }
    putchar('\n');
    json_decref(lag);
    json_decref(vs);
    return 0;
}

static int ack_cb(void *arg, code_t node, const policy_ver_t *vers, size_t n, uint64_t when)
{
    statusx_t *x = arg;
    for (uint32_t i = 0; i < x->nchildren; i++)
        if (x->children[i] == node)
            x->heard[i] = true;
    return status_node(x, node, vers, n, when, true);
}

static int policy_status(int argc, char **argv)
{
    popts_t o = {0};
    int rc = parse("policy status", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    store_t *s = cli_open("policy status", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    statusx_t x = {.now = hlc_wall_ms(), .json = o.json, .arr = json_array()};
    stxn_t *t = NULL;
    links_t lk = {0};
    rc = store_begin(s, false, &t);
    if (!rc)
        rc = policy_versions(t, &x.held, &x.nheld);
    if (!rc && !(x.held_at = calloc(x.nheld + 1, sizeof *x.held_at)))
        rc = LX_ENOMEM;
    if (!rc)
        rc = policy_each(t, held_cb, &x);
    if (!rc && links_load(t, &lk) == LX_OK && lk.n) {
        x.children = calloc(lk.n, sizeof *x.children);
        x.heard = calloc(lk.n, sizeof *x.heard);
        for (uint32_t i = 0; x.children && x.heard && i < lk.n; i++)
            if (!lk.links[i].is_parent)
                x.children[x.nchildren++] = lk.links[i].code;
    }
    char c[CODE_STRLEN + 1];
    if (!rc && !o.json) {
        printf("%s holds %zu polic%s:", code_fmt(store_code(s), c), x.nheld,
               x.nheld == 1 ? "y" : "ies");
        for (size_t i = 0; i < x.nheld; i++)
            printf(" %s/%s v%u", code_fmt(x.held[i].issuer, c),
                   policy_kind_name(x.held[i].kind), x.held[i].version);
        putchar('\n');
    }
    if (!rc)
        rc = policy_ack_each(t, ack_cb, &x);
    for (uint32_t i = 0; !rc && i < x.nchildren; i++)
        if (!x.heard[i])
            rc = status_node(&x, x.children[i], NULL, 0, 0, false);
    json_t *held = json_array();
    for (size_t i = 0; i < x.nheld; i++) {
        json_t *h = ver_json(&x.held[i]);
        json_object_set_new(h, "accepted_ms", json_integer((json_int_t)x.held_at[i]));
        json_array_append_new(held, h);
    }
    json_t *out = json_pack("{s:s, s:o, s:O}", "code", code_fmt(store_code(s), c), "held",
                            held, "nodes", x.arr);
    store_abort(&t);
    store_close(&s);
    links_free(&lk);
    free(x.held);
    free(x.held_at);
    free(x.children);
    free(x.heard);
    json_decref(x.arr);
    if (rc) {
        json_decref(out);
        return cli_fail("policy status", "%s", err_str(rc));
    }
    if (o.json)
        print_json(out);
    else
        json_decref(out);
    return 0;
}

/* ---- apply ---- */

static int policy_apply(int argc, char **argv)
{
    popts_t o = {0};
    int rc = parse("policy apply", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    char today[11];
    today_of(&o, today);
    store_t *s = cli_open("policy apply", o.data, 0);
    if (!s)
        return 1;
    why_t why = {""};
    policy_stats_t st = {0}, rt = {0};
    rc = policy_daily(s, today, &st, &why);
    if (!rc)
        rc = policy_retention(s, today, &rt, &why);
    store_close(&s);
    if (rc)
        return cli_fail("policy apply", "%s", why.msg[0] ? why.msg : err_str(rc));
    if (o.json)
        print_json(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "today", today,
                             "seen", (json_int_t)st.seen, "changed", (json_int_t)st.changed,
                             "exited", (json_int_t)st.exited, "anonymised",
                             (json_int_t)rt.anonymised, "purged", (json_int_t)rt.purged,
                             "moved_out_cleared", (json_int_t)rt.stubs, "conflicts_cleared",
                             (json_int_t)rt.scrubbed));
    else
        printf("%s: %llu records looked at, %llu changed (%llu exited), %llu anonymised, "
               "%llu purged, %llu moved-out histories and %llu conflict entries cleared\n",
               today, (unsigned long long)st.seen, (unsigned long long)st.changed,
               (unsigned long long)st.exited, (unsigned long long)rt.anonymised,
               (unsigned long long)rt.purged, (unsigned long long)rt.stubs,
               (unsigned long long)rt.scrubbed);
    return 0;
}

int cmd_policy(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("policy", U, "which subcommand?");
        printf("usage: %s\n\n%s\n", U, HELP);
        return 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "issue") == 0)
        return policy_issue(argc - 1, argv + 1);
    if (strcmp(sub, "accept") == 0)
        return policy_accept_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return policy_list(argc - 1, argv + 1, false);
    if (strcmp(sub, "show") == 0)
        return policy_list(argc - 1, argv + 1, true);
    if (strcmp(sub, "status") == 0)
        return policy_status(argc - 1, argv + 1);
    if (strcmp(sub, "apply") == 0)
        return policy_apply(argc - 1, argv + 1);
    return cli_usage("policy", U, "unknown subcommand '%s'", sub);
}

/* ---- alerts ---- */

static const char *AU = "lianxin alerts --data DIR [--today YYYY-MM-DD] [--json]";

typedef struct {
    const effective_t *e;
    bool json;
    json_t *arr;
    uint64_t n;
} alertx_t;

/* By id, village and rule: never a name, ID number or phone. */
static int alert_line(void *arg, const record_t *r, const eff_rule_t *rule)
{
    alertx_t *x = arg;
    const char *v = record_str(r, "village_code");
    const char *id = json_string_value(json_object_get(rule->rule, "id"));
    const char *zh = json_string_value(json_object_get(rule->rule, "reason_zh"));
    const char *en = json_string_value(json_object_get(rule->rule, "reason_en"));
    char c[CODE_STRLEN + 1];
    x->n++;
    if (x->json)
        json_array_append_new(x->arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", r->id,
                                                "village_code", v ? v : "", "rule", id,
                                                "reason_zh", zh, "reason_en", en, "set_by",
                                                prov_code(rule->prov.set_by, c)));
    else
        printf("%s\t%s\t%s\t%s\n", r->id, v ? v : "", id, zh);
    return 0;
}

static int alerts_rec(void *arg, const record_t *r)
{
    alertx_t *x = arg;
    int rc = policy_alerts(x->e, r, alert_line, x);
    return rc < 0 ? rc : 0;
}

int cmd_alerts(int argc, char **argv)
{
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"today", required_argument, 0, 't'},
                                   {"json", no_argument, 0, 'j'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    const char *data = NULL, *day = NULL;
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:t:jh", opts, NULL)) != -1) {
        if (ch == 'd') data = optarg;
        else if (ch == 't') day = optarg;
        else if (ch == 'j') json = true;
        else if (ch == 'h')
            return printf("usage: %s\nLists the active children in alert under the effective "
                          "alert rules,\nby id, village and rule (never a name, ID number or "
                          "phone).\n", AU), 0;
        else return cli_usage("alerts", AU, "bad option");
    }
    if (!data)
        return cli_usage("alerts", AU, "--data is required");
    if (day && !date_valid(day))
        return cli_usage("alerts", AU, "--today %s: expected YYYY-MM-DD", day);
    char today[11];
    if (day)
        snprintf(today, sizeof today, "%s", day);
    else
        policy_today(hlc_wall_ms(), today);
    store_t *s = cli_open("alerts", data, STORE_RDONLY);
    if (!s)
        return 1;
    why_t why = {""};
    stxn_t *t = NULL;
    effective_t *e = NULL;
    alertx_t x = {.json = json, .arr = json_array()};
    int rc = store_begin(s, false, &t);
    if (!rc)
        rc = policy_effective(t, today, &e, &why);
    x.e = e;
    if (!rc)
        rc = store_each_record(t, 0, alerts_rec, &x);
    store_abort(&t);
    store_close(&s);
    effective_free(&e);
    if (rc) {
        json_decref(x.arr);
        return cli_fail("alerts", "%s", why.msg[0] ? why.msg : err_str(rc));
    }
    if (json)
        print_json(x.arr);
    else
        json_decref(x.arr);
    return 0;
}
