/* lianxin child add|update|get|list: one child's file at a time. */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/effective.h"
#include "common/recjson.h"

#define OPT_HELP {"help", no_argument, 0, 'h'}

static const char *CHILD_USAGE =
    "lianxin child add --data DIR --json JSON|@FILE [--author A]\n"
    "       lianxin child update --data DIR ID --set FIELD=VALUE ... [--author A]\n"
    "       lianxin child get --data DIR ID [--json] [--versions]\n"
    "       lianxin child list --data DIR [--village CODE] [--json] [--limit N]";

typedef struct {
    const char *data, *json, *author, *village;
    bool as_json, versions;
    long limit;
    char **sets;
    int nsets;
} childopts_t;

static int parse(const char *cmd, int argc, char **argv, childopts_t *o)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"json", optional_argument, 0, 'j'},
        {"author", required_argument, 0, 'a'}, {"set", required_argument, 0, 's'},
        {"village", required_argument, 0, 'v'}, {"versions", no_argument, 0, 'V'},
        {"limit", required_argument, 0, 'l'}, OPT_HELP, {0}};
    int ch;
    optind = 1;
    o->sets = calloc((size_t)argc + 1, sizeof *o->sets);
    if (!o->sets)
        return cli_fail(cmd, "out of memory");
    while ((ch = getopt_long(argc, argv, "d:a:s:v:l:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data = optarg; break;
        case 'j':
            /* `--json JSON` for add, a bare `--json` flag for get/list. */
            if (optarg)
                o->json = optarg;
            else if (strcmp(cmd, "child add") == 0 && optind < argc)
                o->json = argv[optind++];
            else
                o->as_json = true;
            break;
        case 'a': o->author = optarg; break;
        case 's': o->sets[o->nsets++] = optarg; break;
        case 'v': o->village = optarg; break;
        case 'V': o->versions = true; break;
        case 'l': o->limit = strtol(optarg, NULL, 10); break;
        case 'h': printf("usage: %s\n", CHILD_USAGE); return -1;
        default: return cli_usage(cmd, CHILD_USAGE, "bad option");
        }
    }
    if (!o->data)
        return cli_usage(cmd, CHILD_USAGE, "--data is required");
    return 0;
}

static int child_add(int argc, char **argv)
{
    childopts_t o = {0};
    int rc = parse("child add", argc, argv, &o);
    if (rc) {
        free(o.sets);
        return rc < 0 ? 0 : rc;
    }
    free(o.sets);
    if (!o.json)
        return cli_usage("child add", CHILD_USAGE, "--json is required");
    why_t why = {""};
    char *text = NULL;
    size_t len = 0;
    if (o.json[0] == '@') {
        if (!(text = cli_slurp(o.json + 1, &len, &why)))
            return cli_fail("child add", "%s", why.msg);
    }
    json_t *j = text ? recjson_parse(text, len, &why)
                     : recjson_parse(o.json, strlen(o.json), &why);
    free(text);
    if (!j)
        return cli_fail("child add", "--json: %s", why.msg);
    store_t *s = cli_open("child add", o.data, 0);
    if (!s) {
        json_decref(j);
        return 1;
    }
    char author[160];
    cli_author(author, sizeof author, store_code(s), o.author);
    record_t *r = record_new(NULL);
    ver_t none = {0};
    stxn_t *t = NULL;
    apply_t res;
    rc = r ? recjson_to_record(j, &none, r, &why) : LX_ENOMEM;
    json_decref(j);
    if (!rc)
        rc = store_begin(s, true, &t);
    if (!rc)
        rc = cli_write(t, r, author, WRITE_NEW, false, NULL, &res, &why);
    /* Tell the operator when the ID number is already on file: the new
     * record is kept and both are flagged as duplicates. */
    const char *idn = rc ? NULL : record_str(r, "id_number");
    char ids[4][65];
    uint32_t nids = 0;
    if (idn)
        store_find_idnum(t, idn, ids, 4, &nids);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    if (rc) {
        record_destroy(&r);
        return cli_fail("child add", "%s", why.msg[0] ? why.msg : err_str(rc));
    }
    for (uint32_t i = 0; i < nids && i < 4; i++)
        if (strcmp(ids[i], r->id) != 0)
            fprintf(stderr, "lianxin child add: warning: the ID number is also on "
                    "record %s; both are flagged as duplicates\n", ids[i]);
    printf("%s\n", r->id);
    record_destroy(&r);
    return 0;
}

/* The --set arguments as unstamped writes, typed by the effective
 * schema (local fields included). */
static int parse_sets(const effective_t *eff, char **sets, int nsets, record_t *r, why_t *why)
{
    int rc = LX_OK;
    for (int i = 0; i < nsets && !rc; i++) {
        char *eq = strchr(sets[i], '=');
        if (!eq)
            return why_set(why, LX_EUSAGE, "--set %s: expected FIELD=VALUE", sets[i]);
        *eq = '\0';
        const field_def_t *d = eff_field(eff, sets[i]);
        field_t f = {.name = sets[i]};
        if (!d)
            rc = why_set(why, LX_EINVAL, "field %s: unknown field", sets[i]);
        else if (record_field(r, sets[i]))
            rc = why_set(why, LX_EINVAL, "field %s: set twice", sets[i]);
        else if (!(rc = schema_parse_text(d, eq + 1, &f.val, why))) {
            rc = record_put(r, &f);
            val_free(&f.val);
        }
    }
    return rc;
}

static int child_update(int argc, char **argv)
{
    childopts_t o = {0};
    int rc = parse("child update", argc, argv, &o);
    if (rc) {
        free(o.sets);
        return rc < 0 ? 0 : rc;
    }
    if (optind != argc - 1 || o.nsets == 0) {
        free(o.sets);
        return cli_usage("child update", CHILD_USAGE, "give one ID and at least one --set");
    }
    const char *id = argv[optind];
    why_t why = {""};
    record_t *r = record_new(id);
    store_t *s = r ? cli_open("child update", o.data, 0) : NULL;
    if (!s) {
        free(o.sets);
        record_destroy(&r);
        return 1;
    }
    char author[160], today[11];
    cli_author(author, sizeof author, store_code(s), o.author);
    policy_today(hlc_wall_ms(), today);
    stxn_t *t = NULL;
    effective_t *eff = NULL;
    apply_t res = {0};
    rc = store_begin(s, true, &t);
    if (!rc)
        rc = policy_effective(t, today, &eff, &why);
    if (!rc)
        rc = parse_sets(eff, o.sets, o.nsets, r, &why);
    if (!rc)
        rc = cli_write(t, r, author, WRITE_EXISTING, false, eff, &res, &why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    effective_free(&eff);
    record_destroy(&r);
    free(o.sets);
    if (rc == LX_EUSAGE)
        return cli_usage("child update", CHILD_USAGE, "%s", why.msg);
    if (rc)
        return cli_fail("child update", "%s", why.msg[0] ? why.msg : err_str(rc));
    printf("%s: %u field%s changed\n", id, res.changed, res.changed == 1 ? "" : "s");
    return 0;
}

/* A value as display text: lists joined by ';'. */
static void put_text(FILE *f, const val_t *v)
{
    switch (v->kind) {
    case VAL_NIL: break;
    case VAL_BOOL: fputs(v->b ? "true" : "false", f); break;
    case VAL_STR: fputs(v->s, f); break;
    case VAL_LIST:
        for (uint32_t i = 0; i < v->n; i++)
            fprintf(f, "%s%s", i ? ";" : "", v->items[i]);
        break;
    }
}

static int child_get(int argc, char **argv)
{
    childopts_t o = {0};
    int rc = parse("child get", argc, argv, &o);
    free(o.sets);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind != argc - 1)
        return cli_usage("child get", CHILD_USAGE, "give one record ID");
    store_t *s = cli_open("child get", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t = NULL;
    record_t *r = NULL;
    effective_t *eff = NULL;
    why_t why = {""};
    char today[11];
    policy_today(hlc_wall_ms(), today);
    rc = store_begin(s, false, &t);
    if (!rc)
        rc = store_get(t, argv[optind], &r, &why);
    if (!rc && !o.as_json)
        rc = policy_effective(t, today, &eff, &why);
    store_abort(&t);
    store_close(&s);
    if (rc == LX_ENOTFOUND)
        return cli_fail("child get", "no record with id %s", argv[optind]);
    if (rc) {
        record_destroy(&r);
        return cli_fail("child get", "%s", why.msg[0] ? why.msg : err_str(rc));
    }
    if (o.as_json) {
        json_t *j = recjson_from_record(r, o.versions);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("%-18s %s\n", "id", r->id);
        /* The default fields in schema order, then local ones (x_...),
         * labelled when this node's schema defines them. */
        for (size_t i = 0; i < schema_count() + r->n; i++) {
            const field_def_t *d = i < schema_count() ? schema_at(i) : NULL;
            field_def_t local = {0};
            if (!d) {
                const field_t *lf = &r->f[i - schema_count()];
                if (!schema_local_name(lf->name))
                    continue;
                if (!(d = eff_field(eff, lf->name))) {
                    local = (field_def_t){.name = lf->name, .zh = lf->name};
                    d = &local;
                }
            }
            const field_t *f = record_field(r, d->name);
            if (!f || f->val.kind == VAL_NIL)
                continue;
            /* Pad by display width: a CJK label is two columns a character. */
            int cols = 0;
            for (const unsigned char *c = (const unsigned char *)d->zh; *c; c++)
                if ((*c & 0xc0) != 0x80)
                    cols += *c >= 0x80 ? 2 : 1;
            printf("%s%*s ", d->zh, cols < 18 ? 18 - cols : 0, "");
            const char *label = f->val.kind == VAL_STR ? schema_enum_label(d, f->val.s, true) : NULL;
            if (label)
                printf("%s (%s)", label, f->val.s);
            else if (f->val.kind == VAL_LIST && d->enums) {
                for (uint32_t k = 0; k < f->val.n; k++) {
                    const char *l = schema_enum_label(d, f->val.items[k], true);
                    printf("%s%s", k ? "、" : "", l ? l : f->val.items[k]);
                }
            } else
                put_text(stdout, &f->val);
            if (o.versions) {
                char when[48];
                printf("   [%s %s]", hlc_fmt(f->ver.hlc, when, sizeof when),
                       f->ver.author ? f->ver.author : "");
            }
            putchar('\n');
        }
    }
    record_destroy(&r);
    effective_free(&eff);
    return 0;
}

typedef struct {
    bool json;
    long limit, n;
    json_t *arr;
} listctx_t;

static int list_cb(void *arg, const record_t *r)
{
    listctx_t *x = arg;
    if (x->limit > 0 && x->n >= x->limit)
        return 1;
    x->n++;
    if (x->json) {
        json_array_append_new(x->arr, recjson_from_record(r, false));
        return 0;
    }
    static const char *cols[] = {"village_code", "name", "gender", "birth_date", "categories"};
    printf("%s", r->id);
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        const field_t *f = record_field(r, cols[i]);
        putchar('\t');
        if (f)
            put_text(stdout, &f->val);
    }
    putchar('\n');
    return 0;
}

static int child_list(int argc, char **argv)
{
    childopts_t o = {0};
    int rc = parse("child list", argc, argv, &o);
    free(o.sets);
    if (rc)
        return rc < 0 ? 0 : rc;
    code_t under = 0;
    if (o.village && code_parse(o.village, &under))
        return cli_fail("child list", "--village %s: not a 12-digit division code", o.village);
    store_t *s = cli_open("child list", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t = NULL;
    listctx_t x = {.json = o.as_json, .limit = o.limit, .arr = json_array()};
    rc = store_begin(s, false, &t);
    if (!rc)
        rc = store_each_record(t, under, list_cb, &x);
    store_abort(&t);
    store_close(&s);
    if (rc < 0) {
        json_decref(x.arr);
        return cli_fail("child list", "%s", err_str(rc));
    }
    if (o.as_json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(x.arr);
    return 0;
}

int cmd_child(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("child", CHILD_USAGE, "which subcommand?");
        printf("usage: %s\n", CHILD_USAGE);
        return 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0)
        return child_add(argc - 1, argv + 1);
    if (strcmp(sub, "update") == 0)
        return child_update(argc - 1, argv + 1);
    if (strcmp(sub, "get") == 0)
        return child_get(argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return child_list(argc - 1, argv + 1);
    return cli_usage("child", CHILD_USAGE, "unknown subcommand '%s'", sub);
}
